//! Unit tests of the rules, the signature check and the path search.

use super::facts::{Facts, tbs_slice};
use super::rules::*;
use super::signature::{SigCheck, check_signature};
use super::*;
use crate::cert;
use crate::problem::{Problem, ProblemCode, WarningCode};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, DnValue,
    ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyPair, KeyUsagePurpose as Ku,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use time::macros::datetime;

const AT: OffsetDateTime = datetime!(2030-06-01 0:00 UTC);

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn params(cn: &str, ca: bool) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = datetime!(2030-01-01 0:00 UTC);
    p.not_after = datetime!(2031-01-01 0:00 UTC);
    p.use_authority_key_identifier_extension = true;
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![Ku::KeyCertSign, Ku::DigitalSignature];
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![Ku::DigitalSignature];
        p.extended_key_usages = vec![Eku::ClientAuth];
    }
    p
}

struct Made {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

fn self_signed(params: CertificateParams, key: KeyPair) -> Made {
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Made { params, key, der }
}

fn signed(params: CertificateParams, key: KeyPair, by: &Made) -> Made {
    let der = params
        .signed_by(&key, &Issuer::from_params(&by.params, &by.key))
        .unwrap()
        .der()
        .to_vec();
    Made { params, key, der }
}

fn facts(der: &[u8]) -> Facts<'_> {
    Facts::new(&cert::parse_exact(der, 1).unwrap(), der)
}

fn code(p: Option<Problem>) -> Option<ProblemCode> {
    p.map(|p| p.code)
}

fn verdict(presented: &[&[u8]], cas: &[&[u8]], untrusted: &[&[u8]]) -> Verdict {
    GroupCas::new(cas)
        .unwrap()
        .verify_with(presented, untrusted, &VerifyOptions::at(AT))
}

#[test]
fn group_cas_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GroupCas>();
    assert_send_sync::<Anchor>();
    assert_send_sync::<Verdict>();
}

#[test]
fn rule_validity() {
    let root = self_signed(params("Root", true), key());
    let f = facts(&root.der);
    assert_eq!(code(check_validity(&f, AT)), None);
    assert_eq!(
        code(check_validity(&f, datetime!(2029-12-31 23:59:59 UTC))),
        Some(ProblemCode::NotYetValid)
    );
    assert_eq!(
        code(check_validity(&f, datetime!(2031-01-01 0:00:01 UTC))),
        Some(ProblemCode::Expired)
    );
    // Both ends inclusive (RFC 5280 section 4.1.2.5).
    assert_eq!(
        code(check_validity(&f, datetime!(2031-01-01 0:00 UTC))),
        None
    );
}

#[test]
fn rule_issuer_is_ca() {
    let root = self_signed(params("Root", true), key());
    assert_eq!(code(check_issuer_is_ca(&facts(&root.der))), None);
    let mut p = params("Not CA", true);
    p.is_ca = IsCa::ExplicitNoCa;
    let not_ca = self_signed(p.clone(), key());
    assert_eq!(
        code(check_issuer_is_ca(&facts(&not_ca.der))),
        Some(ProblemCode::IssuerNotCa)
    );
    p.is_ca = IsCa::NoCa;
    let no_bc = self_signed(p, key());
    assert_eq!(
        code(check_issuer_is_ca(&facts(&no_bc.der))),
        Some(ProblemCode::IssuerNotCa)
    );
}

#[test]
fn rule_key_cert_sign() {
    let root = self_signed(params("Root", true), key());
    assert_eq!(code(check_key_cert_sign(&facts(&root.der))), None);
    let mut p = params("No KCS", true);
    p.key_usages = vec![Ku::DigitalSignature];
    let c = self_signed(p.clone(), key());
    assert_eq!(
        code(check_key_cert_sign(&facts(&c.der))),
        Some(ProblemCode::IssuerMissingKeycertsign)
    );
    p.key_usages = vec![];
    let no_ku = self_signed(p, key());
    assert_eq!(code(check_key_cert_sign(&facts(&no_ku.der))), None);
}

#[test]
fn rule_pathlen() {
    let mut rp = params("Root", true);
    rp.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let root = self_signed(rp, key());
    let int = signed(params("Int", true), key(), &root);
    let leaf = signed(params("leaf", false), key(), &int);
    let (l, i, r) = (facts(&leaf.der), facts(&int.der), facts(&root.der));
    let found = check_pathlen(&[&l, &i, &r]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, 2);
    assert_eq!(found[0].1.code, ProblemCode::PathlenExceeded);
    assert!(check_pathlen(&[&l, &r]).is_empty());
}

#[test]
fn rule_leaf_not_ca() {
    let root = self_signed(params("Root", true), key());
    let leaf = signed(params("leaf", false), key(), &root);
    assert_eq!(code(check_leaf_not_ca(&facts(&leaf.der))), None);
    assert_eq!(
        code(check_leaf_not_ca(&facts(&root.der))),
        Some(ProblemCode::LeafIsCa)
    );
}

#[test]
fn rule_leaf_cn() {
    let root = self_signed(params("Root", true), key());
    let one = signed(params("device", false), key(), &root);
    assert_eq!(code(check_leaf_cn(&facts(&one.der))), None);
    let mut p = params("device", false);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "Org");
    let none = signed(p, key(), &root);
    assert_eq!(
        code(check_leaf_cn(&facts(&none.der))),
        Some(ProblemCode::LeafMissingCn)
    );
    let mut p = params("device-a", false);
    p.distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "device-b");
    let two = signed(p, key(), &root);
    assert_eq!(
        code(check_leaf_cn(&facts(&two.der))),
        Some(ProblemCode::LeafMultipleCn)
    );
}

#[test]
fn rule_leaf_eku() {
    let root = self_signed(params("Root", true), key());
    let ok = signed(params("device", false), key(), &root);
    assert_eq!(code(check_leaf_eku(&facts(&ok.der))), None);
    let mut p = params("device", false);
    p.extended_key_usages = vec![Eku::ServerAuth, Eku::Any];
    let server = signed(p.clone(), key(), &root);
    assert_eq!(
        code(check_leaf_eku(&facts(&server.der))),
        Some(ProblemCode::LeafEkuLacksClientAuth)
    );
    p.extended_key_usages = vec![];
    let none = signed(p, key(), &root);
    assert_eq!(code(check_leaf_eku(&facts(&none.der))), None);
}

#[test]
fn rule_critical_extensions() {
    let root = self_signed(params("Root", true), key());
    let mut p = params("device", false);
    let mut ext = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]);
    ext.set_criticality(true);
    p.custom_extensions = vec![ext];
    let crit = signed(p.clone(), key(), &root);
    assert_eq!(
        code(check_critical_extensions(&facts(&crit.der))),
        Some(ProblemCode::UnsupportedCriticalExtension)
    );
    p.custom_extensions = vec![CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0])];
    let non = signed(p, key(), &root);
    assert_eq!(code(check_critical_extensions(&facts(&non.der))), None);
}

#[test]
fn rule_key_algorithm() {
    let root = self_signed(params("Root", true), key());
    assert_eq!(code(check_key_algorithm(&facts(&root.der))), None);
    let ed = signed(
        params("device", false),
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
        &root,
    );
    assert_eq!(
        code(check_key_algorithm(&facts(&ed.der))),
        Some(ProblemCode::UnsupportedAlgorithm)
    );
}

#[test]
fn rule_signature() {
    let root = self_signed(params("Root", true), key());
    let leaf = signed(params("device", false), key(), &root);
    let (l, r) = (facts(&leaf.der), facts(&root.der));
    assert!(matches!(check_signature(&l, &r), SigCheck::Valid));
    let other = self_signed(params("Root", true), key());
    assert!(matches!(
        check_signature(&l, &facts(&other.der)),
        SigCheck::Invalid(_)
    ));
    let mut bad = leaf.der.clone();
    let n = bad.len() - 1;
    bad[n] ^= 1;
    assert!(matches!(
        check_signature(&facts(&bad), &r),
        SigCheck::Invalid(_)
    ));
    let ed_root = self_signed(
        params("Ed", true),
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
    );
    let ed_leaf = signed(params("device", false), key(), &ed_root);
    assert!(matches!(
        check_signature(&facts(&ed_leaf.der), &facts(&ed_root.der)),
        SigCheck::Unsupported(_)
    ));
}

#[test]
fn rule_presented() {
    let root = self_signed(params("Root", true), key());
    let f = facts(&root.der);
    assert_eq!(code(check_presented(&f, Source::Presented, 2)), None);
    assert_eq!(
        code(check_presented(&f, Source::Untrusted, 1)),
        Some(ProblemCode::ChainIncomplete)
    );
}

#[test]
fn warning_expiring_soon() {
    let root = self_signed(params("Root", true), key());
    let f = facts(&root.der);
    let near = VerifyOptions::at(datetime!(2030-12-20 0:00 UTC));
    assert_eq!(
        warn_expiring(&f, &near).map(|w| w.code),
        Some(WarningCode::LeafExpiringSoon)
    );
    assert!(warn_expiring(&f, &VerifyOptions::at(AT)).is_none());
}

#[test]
fn path_through_intermediate_and_fast_path() {
    let root = self_signed(params("Root", true), key());
    let int = signed(params("Int", true), key(), &root);
    let leaf = signed(params("device", false), key(), &int);
    let v = verdict(&[&leaf.der, &int.der], &[&root.der], &[]);
    assert!(v.chains, "{:?}", v.problems);
    assert_eq!(v.path_subjects(), ["CN=device", "CN=Int", "CN=Root"]);
    assert_eq!(v.group_ca, Some(0));
    let direct = signed(params("direct", false), key(), &root);
    let v = GroupCas::new(&[&root.der])
        .unwrap()
        .verify(&[&direct.der], AT);
    assert!(v.chains);
    assert_eq!(v.leaf.unwrap().cn.as_deref(), Some("direct"));
}

#[test]
fn same_name_other_key_is_not_the_group_ca() {
    let root = self_signed(params("Root", true), key());
    let impostor = self_signed(params("Root", true), key());
    let leaf = signed(params("device", false), key(), &impostor);
    let v = verdict(&[&leaf.der], &[&root.der], &[]);
    assert!(!v.chains);
    assert_eq!(v.codes()[0], ProblemCode::SignatureInvalid);
    // Even when the device presents the look-alike.
    let v = verdict(&[&leaf.der, &impostor.der], &[&root.der], &[]);
    assert_eq!(v.codes()[0], ProblemCode::SignatureInvalid);
}

#[test]
fn names_match_across_encodings_and_case() {
    // The CA's subject is a UTF8String; the leaf names it as a
    // PrintableString in another letter case.
    let root = self_signed(params("Group Root", true), key());
    let mut as_printable = params("x", true);
    as_printable.distinguished_name = rcgen::DistinguishedName::new();
    as_printable.distinguished_name.push(
        DnType::CommonName,
        DnValue::PrintableString("group  ROOT".try_into().unwrap()),
    );
    let issuer = Made {
        params: as_printable,
        key: KeyPair::from_pem(&root.key.serialize_pem()).unwrap(),
        der: Vec::new(),
    };
    let leaf = signed(params("device", false), key(), &issuer);
    let l = facts(&leaf.der);
    assert_ne!(l.issuer_raw, facts(&root.der).subject_raw);
    let v = verdict(&[&leaf.der], &[&root.der], &[]);
    assert!(v.chains, "{:?}", v.problems);
}

#[test]
fn untrusted_completion_is_chain_incomplete() {
    let root = self_signed(params("Root", true), key());
    let int = signed(params("Int", true), key(), &root);
    let leaf = signed(params("device", false), key(), &int);
    let v = verdict(&[&leaf.der], &[&root.der], &[&int.der]);
    assert!(!v.chains);
    assert_eq!(v.codes(), [ProblemCode::ChainIncomplete]);
    assert_eq!(v.problems[0].subject, "CN=Int");
    assert!(v.reaches_group_ca);
    // Presented and untrusted both: the presented path wins.
    let v = verdict(&[&leaf.der, &int.der], &[&root.der], &[&int.der]);
    assert!(v.chains);
}

#[test]
fn stray_presented_certificate_warns() {
    let root = self_signed(params("Root", true), key());
    let int = signed(params("Int", true), key(), &root);
    let leaf = signed(params("device", false), key(), &int);
    let stray = self_signed(params("Stray", true), key());
    let v = verdict(
        &[&leaf.der, &int.der, &root.der, &stray.der],
        &[&int.der],
        &[],
    );
    assert!(v.chains);
    let warned: Vec<&str> = v
        .warnings
        .iter()
        .filter(|w| w.code == WarningCode::CertificateNotOnPath)
        .map(|w| w.subject.as_str())
        .collect();
    // The root is above the group CA: not stray.
    assert_eq!(warned, ["CN=Stray"]);
}

#[test]
fn empty_and_malformed_input() {
    let root = self_signed(params("Root", true), key());
    let cas = GroupCas::new(&[&root.der]).unwrap();
    let v = cas.verify(&[] as &[&[u8]], AT);
    assert_eq!(v.codes(), [ProblemCode::NoCertificate]);
    let v = cas.verify(&[b"garbage".as_slice()], AT);
    assert_eq!(v.codes(), [ProblemCode::Malformed]);
    assert!(v.leaf.is_none());
    let truncated = &root.der[..root.der.len() - 10];
    let v = cas.verify(&[truncated], AT);
    assert_eq!(v.codes(), [ProblemCode::Malformed]);
    let leaf = signed(params("device", false), key(), &root);
    let v = cas.verify(&[leaf.der.as_slice(), b"\x30\x03\x02\x01\x01"], AT);
    assert_eq!(v.codes(), [ProblemCode::Malformed]);
    assert!(matches!(
        GroupCas::new(&[b"nope".as_slice()]),
        Err(ParseError::Malformed { index: 1, .. })
    ));
}

#[test]
fn loops_terminate() {
    let (ka, kb) = (key(), key());
    let (pa, pb) = (params("A", true), params("B", true));
    let a = pa
        .signed_by(&ka, &Issuer::from_params(&pb, &kb))
        .unwrap()
        .der()
        .to_vec();
    let b = pb
        .signed_by(&kb, &Issuer::from_params(&pa, &ka))
        .unwrap()
        .der()
        .to_vec();
    let leaf = params("device", false)
        .signed_by(&key(), &Issuer::from_params(&pa, &ka))
        .unwrap()
        .der()
        .to_vec();
    let other = self_signed(params("Other", true), key());
    let v = verdict(&[&leaf, &a, &b], &[&other.der], &[]);
    assert_eq!(v.codes(), [ProblemCode::IssuerNotFound]);
}

#[test]
fn tbs_slice_matches_parser() {
    let root = self_signed(params("Root", true), key());
    let x = cert::parse_exact(&root.der, 1).unwrap();
    assert_eq!(tbs_slice(&root.der), Some(x.tbs_certificate.as_ref()));
}

/// A custom extension with this OID and DER content, critical or not.
fn ext(oid: &[u64], content: Vec<u8>, critical: bool) -> CustomExtension {
    let mut e = CustomExtension::from_oid_content(oid, content);
    e.set_criticality(critical);
    e
}

#[test]
fn rule_critical_aki_and_ski_are_unsupported() {
    // RFC 5280 sections 4.2.1.1 and 4.2.1.2: both must be non-critical.
    let root = self_signed(params("Root", true), key());
    let mut p = params("device", false);
    p.use_authority_key_identifier_extension = false;
    let ski = facts(&root.der).ski.unwrap().into_owned();
    let mut aki = vec![0x30, ski.len() as u8 + 2, 0x80, ski.len() as u8];
    aki.extend_from_slice(&ski);
    p.custom_extensions = vec![ext(&[2, 5, 29, 35], aki.clone(), true)];
    let crit_aki = signed(p.clone(), key(), &root);
    let problem = check_critical_extensions(&facts(&crit_aki.der)).unwrap();
    assert_eq!(problem.code, ProblemCode::UnsupportedCriticalExtension);
    assert!(problem.message.contains("4.2.1.1"), "{}", problem.message);
    assert!(facts(&crit_aki.der).aki.is_some(), "still read as a hint");
    let v = verdict(&[&crit_aki.der], &[&root.der], &[]);
    assert_eq!(v.codes(), [ProblemCode::UnsupportedCriticalExtension]);
    // Non-critical, the same AKI is fine.
    p.custom_extensions = vec![ext(&[2, 5, 29, 35], aki, false)];
    let ok = signed(p.clone(), key(), &root);
    assert!(verdict(&[&ok.der], &[&root.der], &[]).chains);

    // rcgen writes its own (non-critical) SKI along with basicConstraints.
    p.is_ca = IsCa::NoCa;
    p.custom_extensions = vec![ext(&[2, 5, 29, 14], vec![0x04, 2, 1, 2], true)];
    let crit_ski = signed(p, key(), &root);
    let problem = check_critical_extensions(&facts(&crit_ski.der)).unwrap();
    assert_eq!(problem.code, ProblemCode::UnsupportedCriticalExtension);
    assert!(problem.message.contains("4.2.1.2"), "{}", problem.message);
}

#[test]
fn rule_ca_basic_constraints_must_be_critical() {
    // rcgen marks basicConstraints critical; write a non-critical one.
    let mut p = params("Lax Root", true);
    p.is_ca = IsCa::NoCa;
    p.custom_extensions = vec![ext(&[2, 5, 29, 19], vec![0x30, 3, 1, 1, 0xff], false)];
    let lax = self_signed(p, key());
    let f = facts(&lax.der);
    assert!(f.is_ca() && !f.basic_critical);
    assert_eq!(code(check_issuer_is_ca(&f)), None);
    assert_eq!(
        code(check_basic_constraints_critical(&f)),
        Some(ProblemCode::IssuerNotCa)
    );
    let root = self_signed(params("Root", true), key());
    assert_eq!(
        code(check_basic_constraints_critical(&facts(&root.der))),
        None
    );
    // A leaf's non-critical CA:FALSE is fine (the rule is for issuers).
    let leaf = signed(params("device", false), key(), &lax);
    let v = verdict(&[&leaf.der], &[&lax.der], &[]);
    assert_eq!(v.codes(), [ProblemCode::IssuerNotCa]);
    assert!(v.problems[0].message.contains("not marked critical"));
}

#[test]
fn empty_issuer_name_links_to_nothing() {
    // RFC 5280 section 4.1.2.6: a CA's subject must not be empty, so a CA
    // with an empty subject is not linked to a leaf with an empty issuer.
    let mut p = params("x", true);
    p.distinguished_name = rcgen::DistinguishedName::new();
    let empty = self_signed(p, key());
    let leaf = signed(params("device", false), key(), &empty);
    assert!(facts(&leaf.der).issuer_empty);
    let v = verdict(&[&leaf.der], &[&empty.der], &[]);
    assert_eq!(v.codes(), [ProblemCode::IssuerNotFound]);
    assert!(v.problems[0].message.contains("empty issuer name"));
    // Presented, not as the group CA: the same.
    let root = self_signed(params("Root", true), key());
    let v = verdict(&[&leaf.der, &empty.der], &[&root.der], &[]);
    assert_eq!(v.codes(), [ProblemCode::IssuerNotFound]);
}

#[test]
fn validity_is_compared_to_the_second() {
    let root = self_signed(params("Root", true), key());
    let f = facts(&root.der);
    // notAfter 2031-01-01T00:00:00Z: valid through that whole second.
    assert_eq!(
        code(check_validity(&f, datetime!(2031-01-01 0:00:00.999 UTC))),
        None
    );
    assert_eq!(
        code(check_validity(&f, datetime!(2031-01-01 0:00:01 UTC))),
        Some(ProblemCode::Expired)
    );
    // notBefore 2030-01-01T00:00:00Z: not in the second before it.
    assert_eq!(
        code(check_validity(&f, datetime!(2029-12-31 23:59:59.999 UTC))),
        Some(ProblemCode::NotYetValid)
    );
}

#[test]
fn any_extended_key_usage_alone_lacks_client_auth() {
    let root = self_signed(params("Root", true), key());
    let mut p = params("device", false);
    p.extended_key_usages = vec![Eku::Any];
    let any = signed(p.clone(), key(), &root);
    let problem = check_leaf_eku(&facts(&any.der)).unwrap();
    assert_eq!(problem.code, ProblemCode::LeafEkuLacksClientAuth);
    assert!(problem.message.contains("anyExtendedKeyUsage"));
    p.extended_key_usages = vec![Eku::Any, Eku::ClientAuth];
    let both = signed(p, key(), &root);
    assert_eq!(code(check_leaf_eku(&facts(&both.der))), None);
}

#[test]
fn chain_file_out_of_order_says_so() {
    let root = self_signed(params("Root", true), key());
    let int = signed(params("Int", true), key(), &root);
    let leaf = signed(params("device", false), key(), &int);
    let v = verdict(&[&int.der, &leaf.der], &[&root.der], &[]);
    assert!(!v.chains);
    assert!(v.has(ProblemCode::LeafIsCa));
    let p = v.problems.iter().find(|p| p.code == ProblemCode::LeafIsCa);
    assert!(
        p.unwrap().message.contains("out of order"),
        "{:?}",
        v.problems
    );
    let w: Vec<_> = v.warnings.iter().map(|w| w.code).collect();
    assert!(w.contains(&WarningCode::ChainOutOfOrder), "{w:?}");
    assert_eq!(
        v.warnings
            .iter()
            .find(|w| w.code == WarningCode::ChainOutOfOrder)
            .unwrap()
            .subject,
        "CN=device"
    );
    // A CA alone as the leaf: leaf_is_ca, no order warning.
    let v = verdict(&[&int.der], &[&root.der], &[]);
    assert!(v.has(ProblemCode::LeafIsCa));
    assert!(
        v.warnings
            .iter()
            .all(|w| w.code != WarningCode::ChainOutOfOrder)
    );
}

#[test]
fn group_ca_that_is_not_a_ca_is_named() {
    let root = self_signed(params("Root", true), key());
    let int = signed(params("Int", true), key(), &root);
    let leaf = signed(params("device", false), key(), &int);
    let other = signed(params("other-device", false), key(), &int);
    // --ca is another device's certificate.
    let v = verdict(&[&leaf.der, &int.der], &[&other.der], &[]);
    assert_eq!(v.codes()[0], ProblemCode::IssuerNotFound);
    assert!(
        v.problems[0].message.contains("is not a CA certificate"),
        "{}",
        v.problems[0].message
    );
    // --ca is a non-CA that did sign the leaf.
    let mut p = params("Not A CA", true);
    p.is_ca = IsCa::ExplicitNoCa;
    let not_ca = self_signed(p, key());
    let signed_by_it = signed(params("device", false), key(), &not_ca);
    let v = verdict(&[&signed_by_it.der], &[&not_ca.der], &[]);
    assert_eq!(v.codes(), [ProblemCode::IssuerNotCa]);
    assert!(
        v.problems[0].message.contains("--ca"),
        "{}",
        v.problems[0].message
    );
}
