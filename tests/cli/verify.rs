//! `iotca verify`: a corpus of chains built with rcgen (and openssl where
//! rcgen cannot sign: SHA-1, RSA-1024 keys), each run through the real
//! binary, plus a differential test against `openssl verify`.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose as Eku,
    IsCa, Issuer, KeyPair, KeyUsagePurpose as Ku, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_ED25519, PKCS_RSA_SHA256, PKCS_RSA_SHA384, PKCS_RSA_SHA512, SignatureAlgorithm,
};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

// ---------------------------------------------------------------------------
// Keys. RSA generation is slow: openssl makes each key once per test binary,
// all of them in parallel on first use.

const RSA_KEYS: [(&str, u32); 5] = [
    ("rsa2048a", 2048),
    ("rsa2048b", 2048),
    ("rsa2048c", 2048),
    ("rsa4096", 4096),
    ("rsa1024", 1024),
];

fn rsa_pems() -> &'static Vec<(String, String)> {
    static KEYS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let children: Vec<_> = RSA_KEYS
            .iter()
            .map(|(name, bits)| {
                let child = StdCommand::new("openssl")
                    .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
                    .arg(format!("rsa_keygen_bits:{bits}"))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("openssl is needed to make RSA test keys");
                (name.to_string(), child)
            })
            .collect();
        children
            .into_iter()
            .map(|(name, child)| {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "openssl genpkey failed");
                (name, String::from_utf8(out.stdout).unwrap())
            })
            .collect()
    })
}

fn rsa_pem(name: &str) -> &'static str {
    &rsa_pems().iter().find(|(n, _)| n == name).unwrap().1
}

/// An RSA key that signs with `alg` (SHA-256/384/512).
fn rsa(name: &str, alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::from_pem_and_sign_algo(rsa_pem(name), alg).unwrap()
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn p384() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap()
}

// ---------------------------------------------------------------------------
// Certificates.

/// A certificate and what is needed to sign with it.
struct Cert {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

impl Cert {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut d = rcgen::DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![Ku::KeyCertSign, Ku::CrlSign, Ku::DigitalSignature];
    p.not_before = now() - days(1);
    p.not_after = now() + days(3650);
    p.use_authority_key_identifier_extension = true;
    p
}

fn leaf_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![Ku::DigitalSignature];
    p.extended_key_usages = vec![Eku::ClientAuth];
    p.not_before = now() - days(1);
    p.not_after = now() + days(365);
    p.use_authority_key_identifier_extension = true;
    p
}

fn root(cn: &str, key: KeyPair) -> Cert {
    root_with(ca_params(cn), key)
}

fn root_with(mut params: CertificateParams, key: KeyPair) -> Cert {
    params.use_authority_key_identifier_extension = false;
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Cert { params, key, der }
}

fn issue(params: CertificateParams, key: KeyPair, by: &Cert) -> Cert {
    let der = params.signed_by(&key, &by.issuer()).unwrap().der().to_vec();
    Cert { params, key, der }
}

fn ca(cn: &str, key: KeyPair, by: &Cert) -> Cert {
    issue(ca_params(cn), key, by)
}

fn leaf(cn: &str, by: &Cert) -> Cert {
    issue(leaf_params(cn), p256(), by)
}

fn pem(ders: &[&[u8]]) -> String {
    ders.iter()
        .map(|d| pem::encode(&pem::Pem::new("CERTIFICATE", d.to_vec())))
        .collect()
}

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = StdCommand::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A leaf signed by an RSA CA with SHA-1, made by openssl (rcgen will not).
fn sha1_leaf(dir: &Path, ca: &Cert) -> Vec<u8> {
    let ca_pem = dir.join("sha1-ca.pem");
    let ca_key = dir.join("sha1-ca.key");
    let leaf_key = dir.join("sha1-leaf.key");
    let ext = dir.join("sha1.ext");
    std::fs::write(&ca_pem, pem(&[&ca.der])).unwrap();
    std::fs::write(&ca_key, ca.key.serialize_pem()).unwrap();
    std::fs::write(&leaf_key, p256().serialize_pem()).unwrap();
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    let csr = openssl(
        &[
            "req",
            "-new",
            "-key",
            s(&leaf_key),
            "-subj",
            "/CN=sha1-device",
        ],
        None,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-sha1",
            "-days",
            "30",
            "-CA",
            s(&ca_pem),
            "-CAkey",
            s(&ca_key),
            "-extfile",
            s(&ext),
            "-outform",
            "DER",
        ],
        Some(&csr),
    )
}

/// A leaf whose key is RSA-1024 (from openssl), signed by `by`.
fn rsa1024_leaf(by: &Cert) -> Vec<u8> {
    let spki = openssl(
        &["pkey", "-pubout", "-outform", "DER"],
        Some(rsa_pem("rsa1024").as_bytes()),
    );
    let public = rcgen::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    leaf_params("weak-device")
        .signed_by(&public, &by.issuer())
        .unwrap()
        .der()
        .to_vec()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// The corpus.

/// Does `openssl verify` agree with iotca on this case?
#[derive(Clone, Copy, Debug)]
enum Openssl {
    Agrees,
    /// iotca deliberately answers differently; the reason is printed.
    Differs(&'static str),
}

const STRICTER_LEAF_CA: &str = "DPS device certificates are end entities; openssl's sslclient purpose accepts a CA as the leaf";
const STRICTER_CN: &str =
    "DPS takes the registration ID from exactly one CN; openssl does not look at the subject";
const STRICTER_INCOMPLETE: &str = "openssl is given the --untrusted certificates as -untrusted and completes the path; DPS only sees what the device sends";
const STRICTER_BC_CRITICAL: &str = "RFC 5280 4.2.1.9: a CA MUST mark basicConstraints critical; openssl enforces it only under -x509_strict";
const NOT_AFTER_INCLUSIVE: &str = "RFC 5280 4.1.2.5: valid through notAfter inclusive (x509-limbo's notafter-exact agrees); openssl counts the notAfter second itself as expired";
const STRICTER_EMPTY_NAME: &str = "RFC 5280 4.1.2.6: a CA's subject is non-empty, so an empty issuer name names no CA (x509-limbo's ca-empty-subject); openssl links an empty issuer to an empty subject";
const STRICTER_ALGORITHM: &str = "openssl verifies Ed25519; iotca accepts only the RSA and ECDSA P-256/P-384 algorithms DPS devices use";

struct Case {
    name: &'static str,
    /// Leaf first, as the device presents them.
    presented: Vec<Vec<u8>>,
    cas: Vec<Vec<u8>>,
    untrusted: Vec<Vec<u8>>,
    at: Option<&'static str>,
    chains: bool,
    /// The first problem code (the defect), when it does not chain.
    code: Option<&'static str>,
    /// Warning codes that must be present.
    warnings: Vec<&'static str>,
    openssl: Openssl,
}

fn good(name: &'static str, presented: Vec<&[u8]>, cas: Vec<&[u8]>) -> Case {
    Case {
        name,
        presented: presented.into_iter().map(<[u8]>::to_vec).collect(),
        cas: cas.into_iter().map(<[u8]>::to_vec).collect(),
        untrusted: Vec::new(),
        at: None,
        chains: true,
        code: None,
        warnings: Vec::new(),
        openssl: Openssl::Agrees,
    }
}

fn bad(name: &'static str, presented: Vec<&[u8]>, cas: Vec<&[u8]>, code: &'static str) -> Case {
    Case {
        chains: false,
        code: Some(code),
        ..good(name, presented, cas)
    }
}

impl Case {
    fn at(mut self, at: &'static str) -> Self {
        self.at = Some(at);
        self
    }
    fn untrusted(mut self, u: Vec<&[u8]>) -> Self {
        self.untrusted = u.into_iter().map(<[u8]>::to_vec).collect();
        self
    }
    fn warns(mut self, w: &'static str) -> Self {
        self.warnings.push(w);
        self
    }
    fn differs(mut self, why: &'static str) -> Self {
        self.openssl = Openssl::Differs(why);
        self
    }
}

struct Corpus {
    _dir: tempfile::TempDir,
    cases: Vec<Case>,
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(build_corpus)
}

fn build_corpus() -> Corpus {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();

    // A P-256 PKI: root -> int -> leaf, and root -> int -> int2 -> leaf2.
    let root_ca = root("Corpus Root", p256());
    let int = ca("Corpus Intermediate", p256(), &root_ca);
    let int2 = ca("Corpus Intermediate 2", p256(), &int);
    let dev = leaf("device-001", &int);
    let dev2 = leaf("device-002", &int2);
    let direct = leaf("device-direct", &root_ca);

    cases.push(good(
        "p256 leaf signed by the group CA",
        vec![&direct.der],
        vec![&root_ca.der],
    ));
    cases.push(good(
        "leaf + intermediate, group CA is the root",
        vec![&dev.der, &int.der],
        vec![&root_ca.der],
    ));
    cases.push(good(
        "group CA is the intermediate",
        vec![&dev.der, &int.der],
        vec![&int.der],
    ));
    cases.push(good(
        "root included, group CA is the intermediate",
        vec![&dev.der, &int.der, &root_ca.der],
        vec![&int.der],
    ));
    cases.push(good(
        "root included, group CA is the root",
        vec![&dev.der, &int.der, &root_ca.der],
        vec![&root_ca.der],
    ));
    cases.push(good(
        "two intermediates",
        vec![&dev2.der, &int2.der, &int.der],
        vec![&root_ca.der],
    ));
    cases.push(good(
        "two intermediates out of order, root in the middle",
        vec![&dev2.der, &root_ca.der, &int.der, &int2.der],
        vec![&root_ca.der],
    ));
    cases.push(good(
        "group CA is the lower of two intermediates",
        vec![&dev2.der, &int2.der, &int.der],
        vec![&int2.der],
    ));

    let other_root = root("Other Root", p256());
    cases.push(good(
        "second group CA matches",
        vec![&dev.der, &int.der],
        vec![&other_root.der, &root_ca.der],
    ));

    let mut no_eku = leaf_params("device-no-eku");
    no_eku.extended_key_usages = vec![];
    let no_eku = issue(no_eku, p256(), &int);
    cases.push(good(
        "leaf without EKU",
        vec![&no_eku.der, &int.der],
        vec![&root_ca.der],
    ));

    // RSA, P-384, mixed.
    let rsa_root = root("RSA Root", rsa("rsa4096", &PKCS_RSA_SHA256));
    let rsa_int = ca(
        "RSA Intermediate",
        rsa("rsa2048a", &PKCS_RSA_SHA256),
        &rsa_root,
    );
    let rsa_leaf = issue(
        leaf_params("rsa-device"),
        rsa("rsa2048b", &PKCS_RSA_SHA256),
        &rsa_int,
    );
    cases.push(good(
        "RSA 4096 root, RSA 2048 intermediate and leaf",
        vec![&rsa_leaf.der, &rsa_int.der],
        vec![&rsa_root.der],
    ));
    let rsa384_root = root("RSA SHA-384 Root", rsa("rsa2048c", &PKCS_RSA_SHA384));
    let rsa512_int = ca(
        "RSA SHA-512 Intermediate",
        rsa("rsa2048a", &PKCS_RSA_SHA512),
        &rsa384_root,
    );
    let rsa512_leaf = leaf("rsa-sha512-device", &rsa512_int);
    cases.push(good(
        "RSA with SHA-384 and SHA-512 signatures",
        vec![&rsa512_leaf.der, &rsa512_int.der],
        vec![&rsa384_root.der],
    ));
    let p384_root = root("P-384 Root", p384());
    let p384_int = ca("P-384 Intermediate", p384(), &p384_root);
    let p384_leaf = issue(leaf_params("p384-device"), p384(), &p384_int);
    cases.push(good(
        "P-384 chain",
        vec![&p384_leaf.der, &p384_int.der],
        vec![&p384_root.der],
    ));
    let mixed_int = ca("Mixed P-256 Intermediate", p256(), &rsa_root);
    let mixed_leaf = issue(leaf_params("mixed-device"), p384(), &mixed_int);
    cases.push(good(
        "mixed: RSA root, P-256 intermediate, P-384 leaf",
        vec![&mixed_leaf.der, &mixed_int.der],
        vec![&rsa_root.der],
    ));
    let mixed2_int = ca(
        "Mixed RSA Intermediate",
        rsa("rsa2048b", &PKCS_RSA_SHA256),
        &p384_root,
    );
    let mixed2_leaf = leaf("mixed-device-2", &mixed2_int);
    cases.push(good(
        "mixed: P-384 root, RSA intermediate, P-256 leaf",
        vec![&mixed2_leaf.der, &mixed2_int.der],
        vec![&p384_root.der],
    ));

    // The group CA re-issued with the same key: still the group CA.
    let mut renewed = ca_params("Corpus Intermediate");
    renewed.not_after = now() + days(7300);
    let renewed_int = issue(
        renewed,
        KeyPair::from_pem(&int.key.serialize_pem()).unwrap(),
        &root_ca,
    );
    cases.push(good(
        "group CA renewed with the same key",
        vec![&dev.der, &int.der],
        vec![&renewed_int.der],
    ));

    // pathlen respected.
    let mut pl1 = ca_params("Pathlen 1 Root");
    pl1.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    let pl1 = root_with(pl1, p256());
    let pl1_int = ca("Under Pathlen 1", p256(), &pl1);
    let pl1_leaf = leaf("pathlen-ok-device", &pl1_int);
    cases.push(good(
        "pathlen 1 with one intermediate",
        vec![&pl1_leaf.der, &pl1_int.der],
        vec![&pl1.der],
    ));

    // Warnings.
    let mut soon = leaf_params("expiring-device");
    soon.not_after = now() + days(10);
    let soon = issue(soon, p256(), &int);
    cases.push(
        good(
            "leaf expiring within 30 days",
            vec![&soon.der, &int.der],
            vec![&root_ca.der],
        )
        .warns("leaf_expiring_soon"),
    );
    cases.push(
        good(
            "stray presented certificate",
            vec![&dev.der, &int.der, &other_root.der],
            vec![&root_ca.der],
        )
        .warns("certificate_not_on_path"),
    );
    let weak = rsa1024_leaf(&int);
    cases.push(
        good(
            "RSA-1024 leaf key",
            vec![&weak, &int.der],
            vec![&root_ca.der],
        )
        .warns("weak_rsa_key"),
    );
    let sha1_ca = root("SHA-1 Issuing CA", rsa("rsa2048c", &PKCS_RSA_SHA256));
    let sha1 = sha1_leaf(dir.path(), &sha1_ca);
    cases.push(good("SHA-1 signed leaf", vec![&sha1], vec![&sha1_ca.der]).warns("sha1_signature"));

    // Fixed dates, checked with --at.
    let mut dated = leaf_params("dated-device");
    dated.not_before = datetime!(2030-01-01 0:00 UTC);
    dated.not_after = datetime!(2031-01-01 0:00 UTC);
    let dated = issue(dated, p256(), &int);
    cases.push(
        good(
            "valid at --at",
            vec![&dated.der, &int.der],
            vec![&root_ca.der],
        )
        .at("2030-06-01T00:00:00Z"),
    );
    cases.push(
        bad(
            "not yet valid at --at",
            vec![&dated.der, &int.der],
            vec![&root_ca.der],
            "not_yet_valid",
        )
        .at("2029-12-31T23:59:59Z"),
    );
    cases.push(
        bad(
            "expired at --at",
            vec![&dated.der, &int.der],
            vec![&root_ca.der],
            "expired",
        )
        .at("2031-01-02T00:00:00Z"),
    );
    // X.509 dates have whole seconds: a fraction of a second in --at does
    // not move the answer (x509-limbo's validity::*-fractional).
    cases.push(
        good(
            "--at a fraction of a second after notAfter",
            vec![&dated.der, &int.der],
            vec![&root_ca.der],
        )
        .at("2031-01-01T00:00:00.999Z")
        .differs(NOT_AFTER_INCLUSIVE),
    );
    cases.push(
        bad(
            "--at a fraction of a second before notBefore",
            vec![&dated.der, &int.der],
            vec![&root_ca.der],
            "not_yet_valid",
        )
        .at("2029-12-31T23:59:59.999Z"),
    );

    // issuer_not_found.
    let stranger = leaf("stranger", &other_root);
    cases.push(bad(
        "leaf from another PKI",
        vec![&stranger.der],
        vec![&root_ca.der],
        "issuer_not_found",
    ));
    cases.push(bad(
        "intermediate missing from the chain",
        vec![&dev.der],
        vec![&root_ca.der],
        "issuer_not_found",
    ));
    cases.push(bad(
        "group CA is another root; the device presents its own",
        vec![&dev.der, &int.der, &root_ca.der],
        vec![&other_root.der],
        "issuer_not_found",
    ));

    // signature_invalid.
    let mut tampered = dev.der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    cases.push(bad(
        "leaf signature altered",
        vec![&tampered, &int.der],
        vec![&root_ca.der],
        "signature_invalid",
    ));
    let impostor = root("Corpus Root", p256());
    let impostor_int = ca("Corpus Intermediate", p256(), &impostor);
    let impostor_leaf = leaf("impostor-device", &impostor_int);
    cases.push(bad(
        "group CA name, different key (leaf direct)",
        vec![&leaf("impostor-direct", &impostor).der],
        vec![&root_ca.der],
        "signature_invalid",
    ));
    cases.push(bad(
        "intermediate with the group CA's name but another key",
        vec![&impostor_leaf.der, &impostor_int.der],
        vec![&int.der],
        "signature_invalid",
    ));

    // Validity.
    let mut old = leaf_params("expired-device");
    old.not_before = now() - days(400);
    old.not_after = now() - days(1);
    let old = issue(old, p256(), &int);
    cases.push(bad(
        "expired leaf",
        vec![&old.der, &int.der],
        vec![&root_ca.der],
        "expired",
    ));
    let mut future = leaf_params("future-device");
    future.not_before = now() + days(2);
    let future = issue(future, p256(), &int);
    cases.push(bad(
        "leaf not yet valid",
        vec![&future.der, &int.der],
        vec![&root_ca.der],
        "not_yet_valid",
    ));
    let mut old_int = ca_params("Expired Intermediate");
    old_int.not_before = now() - days(400);
    old_int.not_after = now() - days(1);
    let old_int = issue(old_int, p256(), &root_ca);
    let under_old = leaf("under-expired-int", &old_int);
    cases.push(bad(
        "expired intermediate",
        vec![&under_old.der, &old_int.der],
        vec![&root_ca.der],
        "expired",
    ));
    let mut old_root = ca_params("Expired Root");
    old_root.not_before = now() - days(400);
    old_root.not_after = now() - days(1);
    let old_root = root_with(old_root, p256());
    let under_old_root = leaf("under-expired-root", &old_root);
    cases.push(bad(
        "expired group CA",
        vec![&under_old_root.der],
        vec![&old_root.der],
        "expired",
    ));

    // CA constraints.
    let mut not_ca = ca_params("Not A CA");
    not_ca.is_ca = IsCa::ExplicitNoCa;
    let not_ca = issue(not_ca, p256(), &root_ca);
    let under_not_ca = leaf("under-not-ca", &not_ca);
    cases.push(bad(
        "issuer says CA:FALSE",
        vec![&under_not_ca.der, &not_ca.der],
        vec![&root_ca.der],
        "issuer_not_ca",
    ));
    let mut no_bc = ca_params("No Basic Constraints");
    no_bc.is_ca = IsCa::NoCa;
    let no_bc = issue(no_bc, p256(), &root_ca);
    let under_no_bc = leaf("under-no-bc", &no_bc);
    cases.push(bad(
        "issuer without basicConstraints",
        vec![&under_no_bc.der, &no_bc.der],
        vec![&root_ca.der],
        "issuer_not_ca",
    ));
    let mut no_kcs = ca_params("No keyCertSign");
    no_kcs.key_usages = vec![Ku::DigitalSignature, Ku::CrlSign];
    let no_kcs = issue(no_kcs, p256(), &root_ca);
    let under_no_kcs = leaf("under-no-kcs", &no_kcs);
    cases.push(bad(
        "issuer keyUsage lacks keyCertSign",
        vec![&under_no_kcs.der, &no_kcs.der],
        vec![&root_ca.der],
        "issuer_missing_keycertsign",
    ));
    let mut pl0 = ca_params("Pathlen 0 Root");
    pl0.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let pl0 = root_with(pl0, p256());
    let pl0_int = ca("Under Pathlen 0", p256(), &pl0);
    let pl0_leaf = leaf("pathlen-device", &pl0_int);
    cases.push(bad(
        "pathlen 0 with an intermediate",
        vec![&pl0_leaf.der, &pl0_int.der],
        vec![&pl0.der],
        "pathlen_exceeded",
    ));
    let mut pl0_mid = ca_params("Pathlen 0 Intermediate");
    pl0_mid.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let pl0_mid = issue(pl0_mid, p256(), &root_ca);
    let pl0_low = ca("Below Pathlen 0 Intermediate", p256(), &pl0_mid);
    let pl0_low_leaf = leaf("pathlen-device-2", &pl0_low);
    cases.push(bad(
        "intermediate pathlen 0 with another intermediate below",
        vec![&pl0_low_leaf.der, &pl0_low.der, &pl0_mid.der],
        vec![&root_ca.der],
        "pathlen_exceeded",
    ));

    // Leaf rules.
    let mut leaf_ca = ca_params("device-as-ca");
    leaf_ca.extended_key_usages = vec![Eku::ClientAuth];
    let leaf_ca = issue(leaf_ca, p256(), &int);
    cases.push(
        bad(
            "leaf is a CA",
            vec![&leaf_ca.der, &int.der],
            vec![&root_ca.der],
            "leaf_is_ca",
        )
        .differs(STRICTER_LEAF_CA),
    );
    let mut server = leaf_params("server-only");
    server.extended_key_usages = vec![Eku::ServerAuth];
    let server = issue(server, p256(), &int);
    cases.push(bad(
        "leaf EKU serverAuth only",
        vec![&server.der, &int.der],
        vec![&root_ca.der],
        "leaf_eku_lacks_client_auth",
    ));
    let mut any = leaf_params("any-eku");
    any.extended_key_usages = vec![Eku::Any];
    let any = issue(any, p256(), &int);
    cases.push(bad(
        "leaf EKU anyExtendedKeyUsage only",
        vec![&any.der, &int.der],
        vec![&root_ca.der],
        "leaf_eku_lacks_client_auth",
    ));
    let mut no_cn = leaf_params("x");
    no_cn.distinguished_name = rcgen::DistinguishedName::new();
    no_cn
        .distinguished_name
        .push(DnType::OrganizationName, "No CN Devices");
    let no_cn = issue(no_cn, p256(), &int);
    cases.push(
        bad(
            "leaf without CN",
            vec![&no_cn.der, &int.der],
            vec![&root_ca.der],
            "leaf_missing_cn",
        )
        .differs(STRICTER_CN),
    );
    let mut two_cn = leaf_params("device-a");
    two_cn
        .distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "device-b");
    let two_cn = issue(two_cn, p256(), &int);
    cases.push(
        bad(
            "leaf with two CNs",
            vec![&two_cn.der, &int.der],
            vec![&root_ca.der],
            "leaf_multiple_cn",
        )
        .differs(STRICTER_CN),
    );

    // Extensions and algorithms.
    let mut crit = leaf_params("critical-ext-device");
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![0x05, 0x00]);
    ext.set_criticality(true);
    crit.custom_extensions = vec![ext];
    let crit = issue(crit, p256(), &int);
    cases.push(bad(
        "unknown critical extension on the leaf",
        vec![&crit.der, &int.der],
        vec![&root_ca.der],
        "unsupported_critical_extension",
    ));
    let mut crit_int = ca_params("Critical Extension Intermediate");
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 2], vec![0x05, 0x00]);
    ext.set_criticality(true);
    crit_int.custom_extensions = vec![ext];
    let crit_int = issue(crit_int, p256(), &root_ca);
    let under_crit = leaf("under-critical-int", &crit_int);
    cases.push(bad(
        "unknown critical extension on the intermediate",
        vec![&under_crit.der, &crit_int.der],
        vec![&root_ca.der],
        "unsupported_critical_extension",
    ));
    let mut noncrit = leaf_params("noncritical-ext-device");
    noncrit.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 55555, 3],
        vec![0x05, 0x00],
    )];
    let noncrit = issue(noncrit, p256(), &int);
    cases.push(good(
        "unknown non-critical extension",
        vec![&noncrit.der, &int.der],
        vec![&root_ca.der],
    ));

    // x509-limbo's rfc5280::aki::critical-aki and ::ski::critical-ski: RFC
    // 5280 4.2.1.1 and 4.2.1.2 say AKI and SKI are non-critical.
    let int_ski = {
        let (_, c) = x509_parser::parse_x509_certificate(&int.der).unwrap();
        match c
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
                _ => None,
            }) {
            Some(k) => k.to_vec(),
            None => panic!("rcgen's intermediate has an SKI"),
        }
    };
    let mut aki = vec![0x30, int_ski.len() as u8 + 2, 0x80, int_ski.len() as u8];
    aki.extend_from_slice(&int_ski);
    let mut crit_aki = leaf_params("critical-aki-device");
    crit_aki.use_authority_key_identifier_extension = false;
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 35], aki);
    ext.set_criticality(true);
    crit_aki.custom_extensions = vec![ext];
    let crit_aki = issue(crit_aki, p256(), &int);
    cases.push(bad(
        "critical AKI on the leaf",
        vec![&crit_aki.der, &int.der],
        vec![&root_ca.der],
        "unsupported_critical_extension",
    ));
    let mut crit_ski = leaf_params("critical-ski-device");
    crit_ski.is_ca = IsCa::NoCa; // rcgen writes its own SKI with basicConstraints
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 14], vec![0x04, 2, 1, 2]);
    ext.set_criticality(true);
    crit_ski.custom_extensions = vec![ext];
    let crit_ski = issue(crit_ski, p256(), &int);
    cases.push(bad(
        "critical SKI on the leaf",
        vec![&crit_ski.der, &int.der],
        vec![&root_ca.der],
        "unsupported_critical_extension",
    ));
    // x509-limbo's rfc5280::root-non-critical-basic-constraints: RFC 5280
    // 4.2.1.9 says a CA MUST mark basicConstraints critical.
    let mut lax = ca_params("Non-critical BC Intermediate");
    lax.is_ca = IsCa::NoCa;
    lax.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 19],
        vec![0x30, 3, 1, 1, 0xff],
    )];
    let lax = issue(lax, p256(), &root_ca);
    let under_lax = leaf("under-lax-bc-int", &lax);
    cases.push(
        bad(
            "intermediate with non-critical basicConstraints",
            vec![&under_lax.der, &lax.der],
            vec![&root_ca.der],
            "issuer_not_ca",
        )
        .differs(STRICTER_BC_CRITICAL),
    );
    // x509-limbo's rfc5280::ca-empty-subject: a CA's subject must not be
    // empty (RFC 5280 4.1.2.6), so an empty issuer name links to nothing.
    let mut empty = ca_params("x");
    empty.distinguished_name = rcgen::DistinguishedName::new();
    let empty = issue(empty, p256(), &root_ca);
    let under_empty = leaf("under-empty-subject-ca", &empty);
    cases.push(
        bad(
            "intermediate with an empty subject",
            vec![&under_empty.der, &empty.der],
            vec![&root_ca.der],
            "issuer_not_found",
        )
        .differs(STRICTER_EMPTY_NAME),
    );
    let ed_root = root(
        "Ed25519 Root",
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
    );
    let ed_leaf = leaf("ed25519-signed-device", &ed_root);
    cases.push(
        bad(
            "leaf signed with Ed25519",
            vec![&ed_leaf.der],
            vec![&ed_root.der],
            "unsupported_algorithm",
        )
        .differs(STRICTER_ALGORITHM),
    );
    let ed_key_leaf = issue(
        leaf_params("ed25519-key-device"),
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
        &int,
    );
    cases.push(
        bad(
            "leaf with an Ed25519 key",
            vec![&ed_key_leaf.der, &int.der],
            vec![&root_ca.der],
            "unsupported_algorithm",
        )
        .differs(STRICTER_ALGORITHM),
    );

    // chain_incomplete.
    cases.push(
        bad(
            "intermediate only in --untrusted",
            vec![&dev.der],
            vec![&root_ca.der],
            "chain_incomplete",
        )
        .untrusted(vec![&int.der])
        .differs(STRICTER_INCOMPLETE),
    );
    cases.push(
        bad(
            "upper intermediate only in --untrusted",
            vec![&dev2.der, &int2.der],
            vec![&root_ca.der],
            "chain_incomplete",
        )
        .untrusted(vec![&int.der, &other_root.der])
        .differs(STRICTER_INCOMPLETE),
    );
    cases.push(
        good(
            "--untrusted not needed",
            vec![&dev.der, &int.der],
            vec![&root_ca.der],
        )
        .untrusted(vec![&int2.der]),
    );

    // A loop: A issued by B and B by A, neither the group CA.
    let mut loop_a = ca_params("Loop A");
    loop_a.distinguished_name = dn("Loop A");
    let key_a = p256();
    let key_b = p256();
    let a_params = ca_params("Loop A");
    let b_params = ca_params("Loop B");
    let a_by_b = a_params
        .signed_by(&key_a, &Issuer::from_params(&b_params, &key_b))
        .unwrap()
        .der()
        .to_vec();
    let b_by_a = b_params
        .signed_by(&key_b, &Issuer::from_params(&a_params, &key_a))
        .unwrap()
        .der()
        .to_vec();
    let loop_leaf = leaf_params("loop-device")
        .signed_by(&p256(), &Issuer::from_params(&a_params, &key_a))
        .unwrap()
        .der()
        .to_vec();
    cases.push(bad(
        "issuer loop",
        vec![&loop_leaf, &a_by_b, &b_by_a],
        vec![&root_ca.der],
        "issuer_not_found",
    ));

    Corpus { _dir: dir, cases }
}

// ---------------------------------------------------------------------------
// Running a case.

struct Files {
    presented: PathBuf,
    leaf: PathBuf,
    cas: Vec<PathBuf>,
    untrusted: Option<PathBuf>,
    /// Everything openssl may use to complete the path.
    openssl_untrusted: PathBuf,
}

fn write_case(dir: &Path, i: usize, case: &Case) -> Files {
    let d = dir.join(format!("case{i:02}"));
    std::fs::create_dir_all(&d).unwrap();
    let presented = d.join("presented.pem");
    let refs: Vec<&[u8]> = case.presented.iter().map(Vec::as_slice).collect();
    std::fs::write(&presented, pem(&refs)).unwrap();
    let leaf = d.join("leaf.pem");
    std::fs::write(&leaf, pem(&refs[..1])).unwrap();
    let cas: Vec<PathBuf> = case
        .cas
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let p = d.join(format!("ca{j}.pem"));
            std::fs::write(&p, pem(&[c])).unwrap();
            p
        })
        .collect();
    let untrusted = (!case.untrusted.is_empty()).then(|| {
        let p = d.join("untrusted.pem");
        let u: Vec<&[u8]> = case.untrusted.iter().map(Vec::as_slice).collect();
        std::fs::write(&p, pem(&u)).unwrap();
        p
    });
    let openssl_untrusted = d.join("openssl-untrusted.pem");
    let all: Vec<&[u8]> = case
        .presented
        .iter()
        .chain(case.untrusted.iter())
        .map(Vec::as_slice)
        .collect();
    std::fs::write(&openssl_untrusted, pem(&all)).unwrap();
    Files {
        presented,
        leaf,
        cas,
        untrusted,
        openssl_untrusted,
    }
}

fn iotca_verify(case: &Case, f: &Files) -> (i32, Value) {
    let mut cmd = Command::cargo_bin("iotca").unwrap();
    cmd.arg("verify").arg(&f.presented).arg("--json");
    for c in &f.cas {
        cmd.arg("--ca").arg(c);
    }
    if let Some(u) = &f.untrusted {
        cmd.arg("--untrusted").arg(u);
    }
    if let Some(at) = case.at {
        cmd.args(["--at", at]);
    }
    let out = cmd.output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: no JSON ({e}); stderr: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

fn openssl_verify(case: &Case, f: &Files) -> (bool, String) {
    let all_cas = f.leaf.with_file_name("group-cas.pem");
    let refs: Vec<&[u8]> = case.cas.iter().map(Vec::as_slice).collect();
    std::fs::write(&all_cas, pem(&refs)).unwrap();
    let mut cmd = StdCommand::new("openssl");
    cmd.args([
        "verify",
        "-purpose",
        "sslclient",
        "-partial_chain",
        "-CAfile",
    ])
    .arg(&all_cas)
    .arg("-untrusted")
    .arg(&f.openssl_untrusted);
    if let Some(at) = case.at {
        let t = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
        cmd.args(["-attime", &t.unix_timestamp().to_string()]);
    }
    cmd.arg(&f.leaf);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

fn codes(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn corpus_covers_every_problem_code() {
    let corpus = corpus();
    assert!(corpus.cases.len() >= 30, "{} cases", corpus.cases.len());
    let produced: std::collections::HashSet<&str> =
        corpus.cases.iter().filter_map(|c| c.code).collect();
    for code in iotca::problem::ProblemCode::ALL {
        // malformed and no_certificate are unreadable input: exit 2, tested below.
        if matches!(code.as_str(), "malformed" | "no_certificate") {
            continue;
        }
        assert!(produced.contains(code.as_str()), "no case produces {code}");
    }
}

#[test]
fn corpus_verdicts() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, case) in corpus.cases.iter().enumerate() {
        let files = write_case(dir.path(), i, case);
        let (code, json) = iotca_verify(case, &files);
        let problems = codes(&json, "problems");
        let warnings = codes(&json, "warnings");
        let expected_exit = if case.chains { 0 } else { 1 };
        let mut wrong = Vec::new();
        if code != expected_exit {
            wrong.push(format!("exit {code}, expected {expected_exit}"));
        }
        if json["chains"] != Value::Bool(case.chains) {
            wrong.push(format!("chains {}", json["chains"]));
        }
        match case.code {
            Some(c) if problems.first().map(String::as_str) != Some(c) => {
                wrong.push(format!("first problem {problems:?}, expected {c}"))
            }
            None if !problems.is_empty() => wrong.push(format!("problems {problems:?}")),
            _ => {}
        }
        for w in &case.warnings {
            if !warnings.iter().any(|x| x == w) {
                wrong.push(format!("warnings {warnings:?}, expected {w}"));
            }
        }
        if json["leaf"]["sha256"].as_str().map(str::len) != Some(64) {
            wrong.push("leaf summary missing".into());
        }
        if case.chains && json["path"].as_array().map(Vec::len).unwrap_or(0) < 2 {
            wrong.push(format!("path {}", json["path"]));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n  {}",
                case.name,
                wrong.join("; "),
                json["problems"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// iotca and `openssl verify -purpose sslclient -partial_chain` agree on
/// every case, except where iotca is stricter by design (the case says why):
/// a CA as the leaf, a missing or repeated CN, chain_incomplete (openssl is
/// given the untrusted certificates), and Ed25519.
#[test]
fn differential_against_openssl() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, case) in corpus.cases.iter().enumerate() {
        let files = write_case(dir.path(), i, case);
        let (_, json) = iotca_verify(case, &files);
        let ours = json["chains"].as_bool().unwrap();
        let (theirs, text) = openssl_verify(case, &files);
        match case.openssl {
            Openssl::Agrees if ours != theirs => failures.push(format!(
                "{}: iotca chains={ours}, openssl ok={theirs}: {text}",
                case.name
            )),
            Openssl::Differs(why) if ours == theirs => failures.push(format!(
                "{}: documented as differing ({why}) but both say {ours}: {text}",
                case.name
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Text output, bad input, hostile chains, a device made by iotca.

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

#[test]
fn text_output_draws_the_path_and_names_the_defect() {
    let dir = tempfile::tempdir().unwrap();
    let r = root("Text Root", p256());
    let mut old_int = ca_params("Text Intermediate");
    old_int.not_after = now() - days(3);
    let old_int = issue(old_int, p256(), &r);
    let dev = leaf("text-device", &old_int);
    let chain = write(dir.path(), "chain.pem", pem(&[&dev.der, &old_int.der]));
    let ca = write(dir.path(), "ca.pem", pem(&[&r.der]));
    let out = Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&chain)
        .arg("--ca")
        .arg(&ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let leaf_at = text.find("CN=text-device").expect(&text);
    let int_at = text.find("CN=Text Intermediate").expect(&text);
    let root_at = text.find("CN=Text Root").expect(&text);
    assert!(leaf_at < int_at && int_at < root_at, "{text}");
    assert!(text.contains("DOES NOT CHAIN"), "{text}");
    assert!(text.contains("✗ expired"), "{text}");
    assert!(text.contains("what to do"), "{text}");
    assert!(text.contains("valid "), "{text}");

    // -q prints nothing but keeps the exit code.
    Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&chain)
        .arg("--ca")
        .arg(&ca)
        .arg("-q")
        .assert()
        .code(1)
        .stdout("");
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = root("Bad Input Root", p256());
    let dev = leaf("bad-input-device", &r);
    let ca = write(dir.path(), "ca.pem", pem(&[&r.der]));
    let key_pem = p256().serialize_pem();
    let full = pem(&[&dev.der]);
    let truncated = &full[..full.len() / 2];
    let mut truncated_der = dev.der.clone();
    truncated_der.truncate(dev.der.len() - 20);
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pem", Vec::new()),
        (
            "garbage.pem",
            b"this is not a certificate at all\n".to_vec(),
        ),
        ("key.pem", key_pem.into_bytes()),
        ("truncated.pem", truncated.as_bytes().to_vec()),
        ("truncated.der", truncated_der),
        (
            "random.bin",
            (0..600u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        (
            "pubkey.pem",
            b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n".to_vec(),
        ),
    ];
    for (name, bytes) in inputs {
        let p = write(dir.path(), name, bytes);
        for as_ca in [false, true] {
            let mut cmd = Command::cargo_bin("iotca").unwrap();
            cmd.arg("verify");
            if as_ca {
                cmd.arg(write(dir.path(), "dev.pem", &full))
                    .arg("--ca")
                    .arg(&p);
            } else {
                cmd.arg(&p).arg("--ca").arg(&ca);
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} (as ca: {as_ca}): {stderr}"
            );
            assert!(stderr.contains(name), "{name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        }
    }
    // A missing file.
    Command::cargo_bin("iotca")
        .unwrap()
        .args(["verify", "no-such-file.pem", "--ca"])
        .arg(&ca)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no-such-file.pem"));
    // A bad --at names the value.
    let dev_pem = write(dir.path(), "dev.pem", &full);
    Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&dev_pem)
        .arg("--ca")
        .arg(&ca)
        .args(["--at", "next tuesday"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("next tuesday"));
}

#[test]
fn der_leaf_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let r = root("DER Root", p256());
    let dev = leaf("der-device", &r);
    let leaf_der = write(dir.path(), "leaf.der", &dev.der);
    let ca_der = write(dir.path(), "ca.der", &r.der);
    Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&leaf_der)
        .arg("--ca")
        .arg(&ca_der)
        .assert()
        .code(0);
}

#[test]
fn a_chain_of_thousands_gets_a_prompt_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let r = root("Long Root", p256());
    let mut chain = vec![r];
    for i in 0..1500 {
        let next = ca(&format!("Long {i}"), p256(), chain.last().unwrap());
        chain.push(next);
    }
    let dev = leaf("long-device", chain.last().unwrap());
    let mut ders: Vec<&[u8]> = vec![&dev.der];
    ders.extend(chain[1..].iter().rev().map(|c| c.der.as_slice()));
    let presented = write(dir.path(), "long.pem", pem(&ders));
    let ca = write(dir.path(), "ca.pem", pem(&[&chain[0].der]));
    let started = Instant::now();
    let out = Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&presented)
        .arg("--ca")
        .arg(&ca)
        .arg("--json")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(codes(&json, "problems")[0], "issuer_not_found");
    // Not a benchmark: a guard against exponential path search.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn many_certificates_with_one_name_do_not_explode() {
    // 400 CAs all named "Same", each signed by another "Same": every one is a
    // name match for every other, so only the signature budget bounds the search.
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<KeyPair> = (0..400).map(|_| p256()).collect();
    let params = ca_params("Same");
    let mut ders = Vec::new();
    let dev = leaf_params("same-device")
        .signed_by(&p256(), &Issuer::from_params(&params, &keys[0]))
        .unwrap()
        .der()
        .to_vec();
    ders.push(dev);
    for i in 0..keys.len() {
        let by = &keys[(i + 1) % keys.len()];
        ders.push(
            params
                .signed_by(&keys[i], &Issuer::from_params(&params, by))
                .unwrap()
                .der()
                .to_vec(),
        );
    }
    let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
    let presented = write(dir.path(), "same.pem", pem(&refs));
    let other = root("Unrelated Root", p256());
    let ca = write(dir.path(), "ca.pem", pem(&[&other.der]));
    let started = Instant::now();
    Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&presented)
        .arg("--ca")
        .arg(&ca)
        .assert()
        .code(1);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn device_made_by_iotca_chains_in_text_and_json() {
    let home = tempfile::tempdir().unwrap();
    Command::cargo_bin("iotca")
        .unwrap()
        .arg("--home")
        .arg(home.path())
        .args(["ca", "init"])
        .assert()
        .code(0);
    Command::cargo_bin("iotca")
        .unwrap()
        .arg("--home")
        .arg(home.path())
        .args(["device", "create", "sensor-thl-002"])
        .assert()
        .code(0);
    let certs = home.path().join("certs");
    let chain = certs.join("sensor-thl-002-full-chain.cert.pem");
    for ca in [
        "azure-iot-test-only.root.ca.cert.pem",
        "azure-iot-test-only.intermediate.cert.pem",
    ] {
        let text = Command::cargo_bin("iotca")
            .unwrap()
            .arg("verify")
            .arg(&chain)
            .arg("--ca")
            .arg(certs.join(ca))
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        assert!(String::from_utf8_lossy(&text).contains("CHAINS"));
        let out = Command::cargo_bin("iotca")
            .unwrap()
            .arg("verify")
            .arg(&chain)
            .arg("--ca")
            .arg(certs.join(ca))
            .arg("--json")
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone();
        let json: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["chains"], Value::Bool(true));
        assert_eq!(json["leaf"]["cn"], "sensor-thl-002");
        assert_eq!(json["path"][0], "CN=sensor-thl-002");
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        for k in ["chains", "leaf", "path", "problems", "warnings"] {
            assert!(keys.contains(&k), "{k}");
        }
    }
}

/// Issue 13: a `--ca` file that is not a CA certificate, and a full-chain
/// file in the wrong order, get problems that say so.
#[test]
fn wrong_order_and_non_ca_group_ca_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = root("Order Root", p256());
    let int = ca("Order Intermediate", p256(), &r);
    let dev = leaf("order-device", &int);
    let other = leaf("other-device", &int);
    let run = |chain: &Path, ca: &Path| -> (i32, Value) {
        let out = Command::cargo_bin("iotca")
            .unwrap()
            .arg("verify")
            .arg(chain)
            .arg("--ca")
            .arg(ca)
            .arg("--json")
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    };
    let root_pem = write(dir.path(), "root.pem", pem(&[&r.der]));

    // CA first, leaf later.
    let swapped = write(dir.path(), "swapped.pem", pem(&[&int.der, &dev.der]));
    let (code, json) = run(&swapped, &root_pem);
    assert_eq!(code, 1, "{json}");
    let leaf_is_ca = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "leaf_is_ca")
        .unwrap_or_else(|| panic!("{json}"));
    let msg = leaf_is_ca["message"].as_str().unwrap();
    assert!(msg.contains("out of order"), "{msg}");
    assert!(msg.contains("CN=order-device"), "{msg}");
    assert!(codes(&json, "warnings").contains(&"chain_out_of_order".to_string()));
    // The right order chains, without the warning.
    let right = write(dir.path(), "right.pem", pem(&[&dev.der, &int.der]));
    let (code, json) = run(&right, &root_pem);
    assert_eq!(code, 0, "{json}");
    assert!(!codes(&json, "warnings").contains(&"chain_out_of_order".to_string()));

    // --ca is a device certificate, not the group's CA.
    let other_pem = write(dir.path(), "other.pem", pem(&[&other.der]));
    let (code, json) = run(&right, &other_pem);
    assert_eq!(code, 1, "{json}");
    let msg = json["problems"][0]["message"].as_str().unwrap();
    assert_eq!(json["problems"][0]["code"], "issuer_not_found");
    assert!(msg.contains("is not a CA certificate"), "{msg}");
    assert!(msg.contains("CN=other-device"), "{msg}");
}

/// Certificate-derived strings reach the terminal escaped; JSON stays exact.
#[test]
fn text_output_escapes_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let r = root("Escape Root", p256());
    let other = root("Escape Other Root", p256());
    let dev = leaf("evil\u{1b}[2J\ndevice", &r);
    let chain = write(dir.path(), "chain.pem", pem(&[&dev.der]));
    let ca = write(dir.path(), "ca.pem", pem(&[&other.der]));
    let out = Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&chain)
        .arg("--ca")
        .arg(&ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("evil\\u{1b}[2J\\ndevice"), "{text}");
    let out = Command::cargo_bin("iotca")
        .unwrap()
        .arg("verify")
        .arg(&chain)
        .arg("--ca")
        .arg(&ca)
        .arg("--json")
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["leaf"]["cn"], "evil\u{1b}[2J\ndevice");
}
