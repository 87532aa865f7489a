//! Property tests (issue 7) over the library's parsers and ID rules: no
//! input makes a parser panic, and the ID rules accept exactly the
//! documented character sets and lengths (DESIGN section 6), so no accepted
//! name can leave the home.

use std::path::{Component, Path};
use std::sync::OnceLock;

use proptest::prelude::*;
use time::OffsetDateTime;

use iotca::cert::{self, CertDetails};
use iotca::enroll::store::{parse_group, parse_individual};
use iotca::ids;
use iotca::keys::{KeyAlgorithm, PrivateKey, Secret};
use iotca::verify::GroupCas;

// ---------------------------------------------------------------------------
// Fixtures: a small real PKI, made once.
// ---------------------------------------------------------------------------

struct Pki {
    root_der: Vec<u8>,
    /// Leaf, intermediate, root as PEM (a full chain).
    chain_pem: String,
    chain_der: Vec<Vec<u8>>,
    leaf_key_pem: String,
    /// The same key, SEC1 (`EC PRIVATE KEY`) and encrypted PKCS#8.
    sec1_pem: String,
    encrypted_pem: String,
    individual_json: String,
    group_json: String,
}

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(3650);
    p
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root_key = rcgen::KeyPair::generate().unwrap();
        let root_params = ca_params("props root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = rcgen::Issuer::new(root_params, root_key);
        let int_key = rcgen::KeyPair::generate().unwrap();
        let mut int_params = ca_params("props intermediate");
        int_params.use_authority_key_identifier_extension = true;
        let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = rcgen::Issuer::new(int_params, int_key);
        let leaf_key = PrivateKey::generate(KeyAlgorithm::P256).unwrap();
        let leaf_kp = leaf_key.signing_key().unwrap();
        let mut lp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "props-device-01");
        lp.distinguished_name = dn;
        lp.is_ca = rcgen::IsCa::ExplicitNoCa;
        lp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        lp.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        lp.not_before = now - time::Duration::days(1);
        lp.not_after = now + time::Duration::days(365);
        let leaf = lp.signed_by(&leaf_kp, &int_issuer).unwrap();
        let chain_der = vec![leaf.der().to_vec(), int.der().to_vec(), root.der().to_vec()];
        let chain_pem = chain_der.iter().map(|d| cert::to_pem(d)).collect();
        let sec1_pem = {
            use p256::pkcs8::DecodePrivateKey;
            let sk = p256::SecretKey::from_pkcs8_der(leaf_key.pkcs8_der()).unwrap();
            let der = sk.to_sec1_der().unwrap();
            // With the named curve, as openssl writes it.
            let mut ec = sec1::EcPrivateKey::try_from(der.as_slice()).unwrap();
            ec.parameters = Some(sec1::EcParameters::NamedCurve(
                sec1::der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            ));
            let der = sec1::der::Encode::to_der(&ec).unwrap();
            pem::encode(&pem::Pem::new("EC PRIVATE KEY", der))
        };
        let encrypted_pem = leaf_key
            .to_encrypted_pem(&Secret::new("props"))
            .unwrap()
            .to_string();
        let individual_json = serde_json::json!({
            "registrationId": "props-device-01",
            "deviceId": "props-device-01",
            "attestation": {"type": "x509", "x509": {"clientCertificates": {
                "primary": {"certificate": cert::to_pem(&chain_der[0])}}}},
            "provisioningStatus": "disabled",
            "capabilities": {"iotEdge": false},
            "reprovisionPolicy": {"updateHubAssignment": true, "migrateDeviceData": true}
        })
        .to_string();
        let group_json = serde_json::json!({
            "enrollmentGroupId": "props-group",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {
                "primary": {"certificate": cert::to_pem(&chain_der[1])},
                "secondary": {"certificate": cert::to_pem(&chain_der[2])}}}},
            "provisioningStatus": "enabled",
            "iotHubs": ["hub.azure-devices.net"]
        })
        .to_string();
        Pki {
            root_der: root.der().to_vec(),
            chain_pem,
            chain_der,
            leaf_key_pem: leaf_key.to_pem().to_string(),
            sec1_pem,
            encrypted_pem,
            individual_json,
            group_json,
        }
    })
}

fn group_cas() -> &'static GroupCas {
    static CAS: OnceLock<GroupCas> = OnceLock::new();
    CAS.get_or_init(|| {
        let p = pki();
        GroupCas::new(&[p.root_der.clone(), p.chain_der[1].clone()]).unwrap()
    })
}

// ---------------------------------------------------------------------------
// Mutations of well-formed input
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte.
    Flip(usize, u8),
    /// Cut the input.
    Truncate(usize),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Remove a range.
    Remove(usize, usize),
    /// Repeat a range.
    Duplicate(usize, usize, u8),
    /// Insert a PEM armour line.
    Armour(usize, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let armours = prop_oneof![
        Just("-----BEGIN CERTIFICATE-----\n"),
        Just("-----END CERTIFICATE-----\n"),
        Just("-----BEGIN PRIVATE KEY-----\n"),
        Just("-----END PRIVATE KEY-----\n"),
        Just("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        Just("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"),
        Just("-----BEGIN EC PRIVATE KEY-----\n"),
        Just("-----END EC PRIVATE KEY-----\n"),
        Just("-----BEGIN \n"),
        Just("====\n"),
        Just("\r\n"),
        Just("\0"),
    ];
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<usize>(), 1..256usize, 1..8u8).prop_map(|(i, n, k)| Mutation::Duplicate(i, n, k)),
        (any::<usize>(), armours).prop_map(|(i, a)| Mutation::Armour(i, a)),
    ]
}

fn apply(base: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = base.to_vec();
    for m in muts {
        let len = v.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if !v.is_empty() {
                    let i = i % v.len();
                    v[i] ^= x;
                }
            }
            Mutation::Truncate(i) => v.truncate(i % len),
            Mutation::Insert(i, b) => {
                let i = i % (v.len() + 1);
                v.splice(i..i, b.iter().copied());
            }
            Mutation::Remove(i, n) => {
                if !v.is_empty() {
                    let i = i % v.len();
                    let end = (i + n).min(v.len());
                    v.drain(i..end);
                }
            }
            Mutation::Duplicate(i, n, k) => {
                if !v.is_empty() {
                    let i = i % v.len();
                    let end = (i + n).min(v.len());
                    let piece: Vec<u8> = v[i..end].to_vec();
                    for _ in 0..*k {
                        v.splice(end..end, piece.iter().copied());
                    }
                }
            }
            Mutation::Armour(i, a) => {
                let i = i % (v.len() + 1);
                v.splice(i..i, a.bytes());
            }
        }
    }
    v
}

/// What every certificate reader does with the bytes: split, then (when
/// accepted) parse and describe each certificate and verify the chain.
fn exercise_certificates(bytes: &[u8]) {
    let now = OffsetDateTime::now_utc();
    let _ = cert::split_unchecked(bytes);
    if let Ok(ders) = cert::split_certificates(bytes) {
        assert!(!ders.is_empty(), "Ok with no certificate");
        for der in &ders {
            // The contract: what split_certificates accepts parses.
            let c = cert::parse_der(der).expect("split_certificates accepted unparsable DER");
            let _ = CertDetails::new(&c, der, now);
        }
        let _ = group_cas().verify(&ders, now);
    }
}

// ---------------------------------------------------------------------------
// Parsers never panic
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn certificate_splitting_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096)
    ) {
        exercise_certificates(&bytes);
    }

    #[test]
    fn certificate_splitting_never_panics_on_pem_like_text(
        text in "(-----(BEGIN|END) (CERTIFICATE|PRIVATE KEY|X509 CERTIFICATE|TRUSTED CERTIFICATE|[A-Z ]{0,12})-----\r?\n|[A-Za-z0-9+/=]{0,80}\r?\n|[ -~]{0,20}\n){0,24}"
    ) {
        exercise_certificates(text.as_bytes());
    }

    #[test]
    fn certificate_splitting_never_panics_on_mutated_chains(
        muts in proptest::collection::vec(mutation(), 1..5)
    ) {
        exercise_certificates(&apply(pki().chain_pem.as_bytes(), &muts));
    }

    #[test]
    fn certificate_splitting_never_panics_on_mutated_der(
        which in 0..3usize,
        muts in proptest::collection::vec(mutation(), 1..4)
    ) {
        exercise_certificates(&apply(&pki().chain_der[which], &muts));
    }

    #[test]
    fn group_verification_never_panics_on_arbitrary_certificates(
        presented in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1024), 0..4),
        mutated in proptest::collection::vec(mutation(), 0..3),
        at in -2_000_000_000i64..4_000_000_000i64,
    ) {
        let at = OffsetDateTime::from_unix_timestamp(at).unwrap();
        let p = pki();
        let cas = group_cas();
        let _ = cas.verify(&presented, at);
        // A real chain with one certificate mutated (DER), and arbitrary
        // bytes as untrusted helpers.
        let mut chain = p.chain_der.clone();
        let i = mutated.len() % chain.len();
        chain[i] = apply(&chain[i], &mutated);
        let v = cas.verify(&chain, at);
        let _ = v.codes();
        let _ = cas.verify_with(&chain[..1], &presented, &iotca::verify::VerifyOptions::at(at));
    }

    #[test]
    fn key_reading_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        let _ = PrivateKey::from_pem(&bytes, None);
        let _ = PrivateKey::from_pem(&bytes, Some(&Secret::new("props")));
        let _ = PrivateKey::from_pkcs8_der(&bytes);
    }

    #[test]
    fn key_reading_never_panics_on_mutated_keys(
        which in 0..3usize,
        muts in proptest::collection::vec(mutation(), 1..4)
    ) {
        let p = pki();
        let base = [&p.leaf_key_pem, &p.sec1_pem, &p.encrypted_pem][which];
        let bytes = apply(base.as_bytes(), &muts);
        if let Ok(k) = PrivateKey::from_pem(&bytes, None) {
            // Whatever is accepted can sign or says why not.
            let _ = k.signing_key();
        }
        // Only mutated encrypted keys pay for PBKDF2; keep those few.
        if which == 2 && muts.len() == 1 {
            let _ = PrivateKey::from_pem(&bytes, Some(&Secret::new("props")));
        }
    }
}

// ---------------------------------------------------------------------------
// Store records never panic
// ---------------------------------------------------------------------------

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,24}".prop_map(Value::String),
        Just(Value::String("x509".into())),
        Just(Value::String("disabled".into())),
        Just(Value::String("props-device-01".into())),
        Just(Value::String(
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n".into()
        )),
    ];
    let keys = prop_oneof![
        Just("registrationId"),
        Just("enrollmentGroupId"),
        Just("deviceId"),
        Just("attestation"),
        Just("type"),
        Just("x509"),
        Just("clientCertificates"),
        Just("signingCertificates"),
        Just("primary"),
        Just("secondary"),
        Just("certificate"),
        Just("provisioningStatus"),
        Just("iotHubs"),
        Just("capabilities"),
        Just("reprovisionPolicy"),
        Just("allocationPolicy"),
        Just("other"),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a dotted path of a JSON document.
fn set(v: &mut serde_json::Value, path: &[&str], new: serde_json::Value) {
    let mut cur = v;
    for (i, k) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur[*k] = new;
            return;
        }
        cur = &mut cur[*k];
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, .. ProptestConfig::default() })]

    #[test]
    fn store_records_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        let _ = parse_individual(Path::new("dps/enrollments/props-device-01.json"), &bytes);
        let _ = parse_group(Path::new("dps/enrollmentGroups/props-group.json"), &bytes);
    }

    #[test]
    fn store_records_never_panic_on_arbitrary_json(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = parse_individual(Path::new("dps/enrollments/props-device-01.json"), &bytes);
        let _ = parse_group(Path::new("dps/enrollmentGroups/props-group.json"), &bytes);
        let _ = parse_individual(Path::new(""), &bytes);
        let _ = parse_group(Path::new("/"), &bytes);
    }

    #[test]
    fn store_records_never_panic_when_one_field_is_replaced(
        field in prop_oneof![
            Just(&["registrationId"][..]),
            Just(&["deviceId"][..]),
            Just(&["attestation"][..]),
            Just(&["attestation", "type"][..]),
            Just(&["attestation", "x509"][..]),
            Just(&["attestation", "x509", "clientCertificates", "primary", "certificate"][..]),
            Just(&["attestation", "x509", "clientCertificates", "secondary"][..]),
            Just(&["provisioningStatus"][..]),
            Just(&["capabilities"][..]),
        ],
        new in json_value(),
        cert_muts in proptest::collection::vec(mutation(), 0..3),
    ) {
        let p = pki();
        for (path, base, is_group) in [
            ("dps/enrollments/props-device-01.json", &p.individual_json, false),
            ("dps/enrollmentGroups/props-group.json", &p.group_json, true),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
            let mut f: Vec<&str> = field.to_vec();
            if is_group {
                for k in f.iter_mut() {
                    *k = match *k {
                        "registrationId" => "enrollmentGroupId",
                        "clientCertificates" => "signingCertificates",
                        other => other,
                    };
                }
            }
            set(&mut v, &f, new.clone());
            // And the certificate text itself mutated.
            let certs = if is_group { "signingCertificates" } else { "clientCertificates" };
            if let Some(s) = v["attestation"]["x509"][certs]["primary"]["certificate"].as_str() {
                let m = apply(s.as_bytes(), &cert_muts);
                v["attestation"]["x509"][certs]["primary"]["certificate"] =
                    String::from_utf8_lossy(&m).into_owned().into();
            }
            let bytes = serde_json::to_vec(&v).unwrap();
            let path = Path::new(path);
            if is_group {
                let _ = parse_group(path, &bytes);
            } else {
                let _ = parse_individual(path, &bytes);
            }
        }
    }

    #[test]
    fn store_records_never_panic_on_mutated_json_text(
        muts in proptest::collection::vec(mutation(), 1..4)
    ) {
        let p = pki();
        let a = apply(p.individual_json.as_bytes(), &muts);
        let _ = parse_individual(Path::new("dps/enrollments/props-device-01.json"), &a);
        let b = apply(p.group_json.as_bytes(), &muts);
        let _ = parse_group(Path::new("dps/enrollmentGroups/props-group.json"), &b);
    }
}

#[test]
fn the_fixture_records_parse_so_the_mutations_start_from_valid_input() {
    let p = pki();
    let i = parse_individual(
        Path::new("dps/enrollments/props-device-01.json"),
        p.individual_json.as_bytes(),
    )
    .unwrap();
    assert_eq!(i.certificates, vec![p.chain_der[0].clone()]);
    let g = parse_group(
        Path::new("dps/enrollmentGroups/props-group.json"),
        p.group_json.as_bytes(),
    )
    .unwrap();
    assert_eq!(g.certificates.len(), 2);
    assert_eq!(
        cert::split_certificates(p.chain_pem.as_bytes()).unwrap(),
        p.chain_der
    );
    let v = group_cas().verify(&p.chain_der, OffsetDateTime::now_utc());
    assert!(v.codes().is_empty(), "{:?}", v.codes());
    for k in [&p.leaf_key_pem, &p.sec1_pem] {
        PrivateKey::from_pem(k.as_bytes(), None).unwrap();
    }
    PrivateKey::from_pem(p.encrypted_pem.as_bytes(), Some(&Secret::new("props"))).unwrap();
}

// ---------------------------------------------------------------------------
// ID rules: exactly the documented sets (DESIGN section 6)
// ---------------------------------------------------------------------------

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const REG_EXTRA: &str = "-._:";
const DEVICE_EXTRA: &str = "-.%_*?!(),:=@$'";

fn chars_of(set: &'static str) -> impl Strategy<Value = char> {
    let v: Vec<char> = set.chars().collect();
    proptest::sample::select(v)
}

/// A valid registration ID of `min..=max` characters: alphanumeric ends,
/// middle from the whole set.
fn registration_id(min: usize, max: usize) -> impl Strategy<Value = String> {
    let all: &'static str = Box::leak(format!("{ALNUM}{REG_EXTRA}").into_boxed_str());
    (
        chars_of(ALNUM),
        proptest::collection::vec(chars_of(all), min.saturating_sub(2)..=max.saturating_sub(2)),
        chars_of(ALNUM),
        any::<bool>(),
    )
        .prop_map(move |(a, mid, b, one)| {
            if one && min <= 1 {
                return a.to_string();
            }
            let mut s = String::new();
            s.push(a);
            s.extend(mid);
            s.push(b);
            s
        })
}

/// Any character outside `allowed` (ASCII controls, separators, non-ASCII).
fn bad_char(allowed: &'static str) -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range('\0', '\u{7f}'),
        Just('/'),
        Just('\\'),
        Just('\0'),
        Just(' '),
        Just('\u{e9}'),
        Just('\u{2215}'),
        Just('\u{ff0f}'),
        any::<char>(),
    ]
    .prop_filter("outside the set", move |c| {
        !(c.is_ascii_alphanumeric() || allowed.contains(*c))
    })
}

fn insert_char(s: &str, pos: usize, c: char) -> String {
    let chars: Vec<char> = s.chars().collect();
    let pos = pos % (chars.len() + 1);
    let mut out: String = chars[..pos].iter().collect();
    out.push(c);
    out.extend(&chars[pos..]);
    out
}

/// A name the store would accept as a single, normal path component.
fn is_one_normal_component(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!(c.next(), Some(Component::Normal(n)) if n == name)
        && c.next().is_none()
        && !name.contains('\\')
        && !name.contains('\0')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn valid_registration_ids_are_accepted(id in registration_id(1, 128)) {
        prop_assert_eq!(ids::check_registration_id(&id), Ok(()));
        prop_assert_eq!(ids::check_ca_name(&id), Ok(()));
        prop_assert_eq!(ids::check_file_name(&id), Ok(()));
        let x509 = ids::check_x509_registration_id(&id);
        if id.len() <= 64 {
            prop_assert_eq!(x509, Ok(()));
        } else {
            prop_assert!(
                matches!(x509, Err(ids::IdError::TooLong { max: 64, .. })),
                "{} chars accepted as a CN", id.len()
            );
        }
        prop_assert!(is_one_normal_component(&id));
        prop_assert!(ids::registration_ids_match(&id, &id.to_ascii_uppercase()));
        prop_assert!(is_one_normal_component(&ids::registration_file_stem(&id)));
    }

    #[test]
    fn registration_ids_too_long_are_refused(id in registration_id(129, 300)) {
        let too_long = matches!(
            ids::check_registration_id(&id),
            Err(ids::IdError::TooLong { max: 128, .. })
        );
        prop_assert!(too_long);
        prop_assert!(ids::check_x509_registration_id(&id).is_err());
        prop_assert!(ids::check_file_name(&id).is_err());
    }

    #[test]
    fn one_bad_character_makes_a_registration_id_invalid(
        id in registration_id(1, 127),
        pos in any::<usize>(),
        c in bad_char(REG_EXTRA),
    ) {
        let bad = insert_char(&id, pos, c);
        prop_assert!(ids::check_registration_id(&bad).is_err(), "{:?}", bad);
        prop_assert!(ids::check_x509_registration_id(&bad).is_err(), "{:?}", bad);
        prop_assert!(ids::check_ca_name(&bad).is_err(), "{:?}", bad);
        // `--allow-any-cn` names take any printable ASCII but path separators:
        // whatever they accept is still one plain path component.
        let file_ok = ids::check_file_name(&bad).is_ok();
        if c == '/' || c == '\\' || !(' '..='~').contains(&c) {
            prop_assert!(!file_ok, "{:?}", bad);
        }
        if file_ok {
            prop_assert!(is_one_normal_component(&bad), "{:?}", bad);
        }
    }

    #[test]
    fn registration_ids_must_start_and_end_alphanumeric(
        id in registration_id(1, 126),
        c in chars_of(REG_EXTRA),
        at_end in any::<bool>(),
    ) {
        let bad = if at_end { format!("{id}{c}") } else { format!("{c}{id}") };
        let refused = matches!(ids::check_registration_id(&bad), Err(ids::IdError::BadEnds { .. }));
        prop_assert!(refused, "{:?}", bad);
    }

    #[test]
    fn valid_device_ids_are_accepted(
        id in proptest::collection::vec(
            chars_of(Box::leak(format!("{ALNUM}{DEVICE_EXTRA}").into_boxed_str())),
            1..=128
        ).prop_map(|v| v.into_iter().collect::<String>())
    ) {
        prop_assert_eq!(ids::check_device_id(&id), Ok(()));
        let registry = iotca::hub::check_registry_id(&id);
        if id.starts_with('.') {
            prop_assert!(registry.is_err());
        } else {
            prop_assert!(registry.is_ok(), "{:?}: {:?}", id, registry);
            prop_assert!(is_one_normal_component(&id), "{:?}", id);
        }
    }

    #[test]
    fn device_ids_with_a_bad_character_or_too_long_are_refused(
        id in proptest::collection::vec(chars_of(ALNUM), 1..=127)
            .prop_map(|v| v.into_iter().collect::<String>()),
        pos in any::<usize>(),
        c in bad_char(DEVICE_EXTRA),
        pad in 129..200usize,
    ) {
        let bad = insert_char(&id, pos, c);
        prop_assert!(ids::check_device_id(&bad).is_err(), "{:?}", bad);
        let long: String = id.chars().cycle().take(pad).collect();
        prop_assert!(ids::check_device_id(&long).is_err());
    }

    #[test]
    fn any_accepted_name_is_one_path_component_inside_the_home(s in "\\PC{0,40}|[./\\\\a-z:]{0,8}") {
        for (rule, ok) in [
            ("registration", ids::check_registration_id(&s).is_ok()),
            ("x509", ids::check_x509_registration_id(&s).is_ok()),
            ("file", ids::check_file_name(&s).is_ok()),
            ("ca", ids::check_ca_name(&s).is_ok()),
            ("registry", iotca::hub::check_registry_id(&s).is_ok()),
        ] {
            if ok {
                prop_assert!(is_one_normal_component(&s), "{} accepted {:?}", rule, s);
                prop_assert!(!s.starts_with('.'), "{} accepted {:?}", rule, s);
            }
        }
    }
}

#[test]
fn id_limits_are_exact() {
    let a = |n: usize| "a".repeat(n);
    assert_eq!(ids::check_registration_id(&a(128)), Ok(()));
    assert!(ids::check_registration_id(&a(129)).is_err());
    assert_eq!(ids::check_x509_registration_id(&a(64)), Ok(()));
    assert!(ids::check_x509_registration_id(&a(65)).is_err());
    assert_eq!(ids::check_device_id(&a(128)), Ok(()));
    assert!(ids::check_device_id(&a(129)).is_err());
    for empty in [
        ids::check_registration_id(""),
        ids::check_x509_registration_id(""),
        ids::check_device_id(""),
        ids::check_file_name(""),
    ] {
        assert!(matches!(empty, Err(ids::IdError::Empty { .. })));
    }
}

// ---------------------------------------------------------------------------
// Attacker-chosen KDF parameters in an encrypted key
// ---------------------------------------------------------------------------

/// An `ENCRYPTED PRIVATE KEY` whose PBES2 parameters are chosen by whoever
/// wrote the file: PBKDF2 with `iterations`, or scrypt with N = 2^`log_n`.
fn hostile_encrypted_key(iterations: Option<u32>, log_n: Option<u8>) -> String {
    use pkcs8::der::Encode;
    use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Params, ScryptParams};
    let salt = [7u8; 16];
    let iv = [9u8; 16];
    let kdf = match (iterations, log_n) {
        (Some(n), _) => Kdf::Pbkdf2(Pbkdf2Params {
            salt: &salt,
            iteration_count: n,
            key_length: None,
            prf: pbes2::Pbkdf2Prf::HmacWithSha256,
        }),
        (None, Some(log_n)) => Kdf::Scrypt(ScryptParams {
            salt: &salt,
            cost_parameter: 1 << log_n,
            block_size: 8,
            parallelization: 1,
            key_length: None,
        }),
        _ => unreachable!(),
    };
    let params = pbes2::Parameters {
        kdf,
        encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: &iv },
    };
    let info = pkcs8::EncryptedPrivateKeyInfo {
        encryption_algorithm: pkcs8::pkcs5::EncryptionScheme::Pbes2(params),
        encrypted_data: &[0u8; 48],
    };
    pem::encode(&pem::Pem::new(
        "ENCRYPTED PRIVATE KEY",
        info.to_der().unwrap(),
    ))
}

/// Runs `from_pem` with a passphrase on a thread; true when it returns
/// (Ok or Err) within `limit`.
fn returns_within(pem: String, limit: std::time::Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = PrivateKey::from_pem(pem.as_bytes(), Some(&Secret::new("guess")));
        let _ = tx.send(r.is_err());
    });
    rx.recv_timeout(limit).is_ok()
}

#[test]
fn an_encrypted_key_with_absurd_kdf_costs_is_refused_quickly() {
    // iotca itself writes 100,000 PBKDF2 iterations; openssl 2,048.
    let limit = std::time::Duration::from_secs(5);
    assert!(
        returns_within(hostile_encrypted_key(Some(100_000_000), None), limit),
        "PBKDF2 with 100,000,000 iterations: still running after {limit:?}"
    );
    // scrypt N = 2^20, r = 8: 1 GiB of memory for one guess (the file may ask for far more).
    assert!(
        returns_within(hostile_encrypted_key(None, Some(20)), limit),
        "scrypt N=2^20: still running after {limit:?}"
    );
}
