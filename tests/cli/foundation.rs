//! Foundation integration tests (issue 2): the real `iotca` binary runs in
//! temporary homes, and every result is checked with independent tools:
//! openssl (`x509 -text`, `verify -x509_strict`, `s_server`/`s_client`) and,
//! when installed, DigiCert's pkilint (`lint_pkix_cert`).
//!
//! Nothing here reads iotca's own output to judge iotca's certificates,
//! except `inspect`, whose numbers are compared with openssl's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration as StdDuration, Instant};

use assert_cmd::Command;
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

const BIN: &str = env!("CARGO_BIN_EXE_iotca");

const ROOT_CERT: &str = "certs/azure-iot-test-only.root.ca.cert.pem";
const ROOT_KEY: &str = "private/azure-iot-test-only.root.ca.key.pem";
const INT_CERT: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
const INT_KEY: &str = "private/azure-iot-test-only.intermediate.key.pem";
const CHAIN: &str = "certs/azure-iot-test-only.chain.ca.cert.pem";
const VERIFICATION_CERT: &str = "certs/verification-code.cert.pem";
const LOCK: &str = ".iotca.lock";

const DEFAULT_ROOT_CN: &str = "Azure IoT Hub CA Cert Test Only";
const DEFAULT_INT_CN: &str = "Azure IoT Hub Intermediate Cert Test Only";

const ALL_CA_FILES: [&str; 5] = [ROOT_CERT, ROOT_KEY, INT_CERT, INT_KEY, CHAIN];

fn dev_cert(id: &str) -> String {
    format!("certs/{id}.cert.pem")
}

fn dev_chain(id: &str) -> String {
    format!("certs/{id}-full-chain.cert.pem")
}

fn dev_key(id: &str) -> String {
    format!("private/{id}.key.pem")
}

fn dev_files(id: &str) -> [String; 3] {
    [dev_cert(id), dev_chain(id), dev_key(id)]
}

// ---------------------------------------------------------------------------
// Running iotca
// ---------------------------------------------------------------------------

/// A temporary PKI home (`<tmp>/pki`, not created until iotca creates it).
struct Home {
    tmp: TempDir,
    dir: PathBuf,
}

/// What a successful run printed.
#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
}

impl Home {
    fn new() -> Home {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("pki");
        Home { tmp, dir }
    }

    /// A path inside the home.
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A path next to the home (scratch space that is not part of it).
    fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = iotca();
        c.arg("--home").arg(&self.dir);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run iotca")
    }

    /// Runs iotca and insists on exit 0.
    fn ok(&self, args: &[&str]) -> Run {
        let out = self.run(args);
        let run = Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            out.status.success(),
            "iotca {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status,
            run.stdout,
            run.stderr
        );
        assert_no_panic(&run.stderr);
        run
    }

    /// Runs iotca and insists on exit 2 with one clean line on stderr.
    fn refused(&self, args: &[&str]) -> String {
        refused(self.run(args), &format!("iotca {args:?}"))
    }

    fn init(&self, extra: &[&str]) -> Run {
        let mut args = vec!["ca", "init"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    fn cert(&self, rel: &str) -> Cert {
        cert(&self.p(rel))
    }
}

/// The binary with a clean environment (no inherited home, passphrase or
/// backtrace setting, so a panic would show its RUST_BACKTRACE note).
fn iotca() -> Command {
    let mut c = Command::cargo_bin("iotca").expect("the iotca binary");
    c.env_remove("IOTCA_HOME")
        .env_remove("IOTCA_PASSPHRASE")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "iotca panicked: {stderr}"
    );
}

/// Exit 2, one line on stderr, no panic. Returns stderr.
fn refused(out: Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: expected exit 2, got {:?}\nstdout: {}\nstderr: {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_panic(&err);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: the error must be one line on stderr, got: {err:?}"
    );
    err
}

/// Runs `iotca --home H ARGS` under `sh -c 'umask U; exec iotca ...'`.
fn run_with_umask(umask: &str, home: &Home, args: &[&str]) -> Output {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .arg("--home")
        .arg(&home.dir)
        .args(args)
        .env_remove("IOTCA_HOME")
        .env_remove("IOTCA_PASSPHRASE")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "umask {umask} iotca {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------------------
// openssl
// ---------------------------------------------------------------------------

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn openssl(args: &[&str]) -> Output {
    std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed")
}

fn openssl_ok(args: &[&str]) -> String {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One X.509v3 extension as `openssl x509 -text` shows it.
#[derive(Debug, Clone)]
struct Ext {
    critical: bool,
    value: String,
}

/// A certificate as openssl reads it.
#[derive(Debug)]
struct Cert {
    path: PathBuf,
    subject: String,
    issuer: String,
    serial: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    text: String,
    signature: String,
    exts: BTreeMap<String, Ext>,
}

fn parse_openssl_date(s: &str) -> OffsetDateTime {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(s.trim(), &fmt)
        .unwrap_or_else(|e| panic!("openssl date {s:?}: {e}"))
        .assume_utc()
}

fn cert(path: &Path) -> Cert {
    let fields = openssl_ok(&[
        "x509",
        "-in",
        s(path),
        "-noout",
        "-subject",
        "-issuer",
        "-serial",
        "-startdate",
        "-enddate",
        "-nameopt",
        "RFC2253",
        "-dateopt",
        "iso_8601",
    ]);
    let field = |name: &str| -> String {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {fields}"))
            .to_string()
    };
    let text = openssl_ok(&["x509", "-in", s(path), "-noout", "-text"]);
    let signature = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Signature Algorithm: "))
        .expect("signature algorithm")
        .to_string();
    let mut exts = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_exts = false;
    for line in text.lines() {
        if line.trim() == "X509v3 extensions:" {
            in_exts = true;
            continue;
        }
        if !in_exts {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent < 12 {
            break;
        }
        if indent == 12 {
            let (name, rest) = line.trim().rsplit_once(':').expect("extension header");
            exts.insert(
                name.to_string(),
                Ext {
                    critical: rest.trim() == "critical",
                    value: String::new(),
                },
            );
            current = Some(name.to_string());
        } else if let Some(name) = &current {
            let e = exts.get_mut(name).expect("current extension");
            if !e.value.is_empty() {
                e.value.push('\n');
            }
            e.value.push_str(line.trim());
        }
    }
    Cert {
        path: path.to_path_buf(),
        subject: field("subject"),
        issuer: field("issuer"),
        serial: field("serial"),
        not_before: parse_openssl_date(&field("notBefore")),
        not_after: parse_openssl_date(&field("notAfter")),
        text,
        signature,
        exts,
    }
}

const BC: &str = "X509v3 Basic Constraints";
const KU: &str = "X509v3 Key Usage";
const EKU: &str = "X509v3 Extended Key Usage";
const SKI: &str = "X509v3 Subject Key Identifier";
const AKI: &str = "X509v3 Authority Key Identifier";

impl Cert {
    fn ext(&self, name: &str) -> &Ext {
        self.exts
            .get(name)
            .unwrap_or_else(|| panic!("{}: no {name}: {:?}", self.path.display(), self.exts))
    }

    fn ski(&self) -> String {
        self.ext(SKI).value.clone()
    }

    fn aki(&self) -> Option<String> {
        self.exts
            .get(AKI)
            .map(|e| e.value.trim_start_matches("keyid:").to_string())
    }

    fn key_usage(&self) -> BTreeSet<String> {
        self.ext(KU)
            .value
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    }

    /// `EC P-256`, `EC P-384` or `RSA 2048` (from openssl's text).
    fn public_key(&self) -> String {
        let bits = self
            .text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Public-Key: (")
                    .and_then(|r| r.strip_suffix(" bit)"))
            })
            .expect("public key size")
            .to_string();
        if self.text.contains("Public Key Algorithm: rsaEncryption") {
            format!("RSA {bits}")
        } else {
            let curve = self
                .text
                .lines()
                .find_map(|l| l.trim().strip_prefix("NIST CURVE: "))
                .expect("EC curve");
            format!("EC {curve}")
        }
    }

    fn cn(&self) -> &str {
        self.subject.strip_prefix("CN=").unwrap_or(&self.subject)
    }
}

/// What a certificate is, for the DESIGN section 4 checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Ca {
        pathlen: Option<u8>,
    },
    /// A device or verification certificate; `rsa` when its key is RSA.
    Leaf {
        rsa: bool,
    },
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The DESIGN section 4 profile: subject, extensions (exactly these, with
/// these criticalities), SKI/AKI linkage, serial, version.
fn check_profile(c: &Cert, role: Role, cn: &str, issuer: &Cert) {
    let at = c.path.display();
    assert_eq!(c.subject, format!("CN={cn}"), "{at}: subject is CN only");
    assert_eq!(c.issuer, issuer.subject, "{at}: issuer");
    assert!(c.text.contains("Version: 3 (0x2)"), "{at}: X.509 v3");
    // 16 bytes, positive: 32 hex digits with the top bit clear.
    assert_eq!(c.serial.len(), 32, "{at}: serial {} is 16 bytes", c.serial);
    assert!(
        c.serial.chars().all(|ch| ch.is_ascii_hexdigit()),
        "{at}: serial {}",
        c.serial
    );
    assert!(
        u8::from_str_radix(&c.serial[..2], 16).unwrap() < 0x80,
        "{at}: serial {} is positive",
        c.serial
    );
    let names: BTreeSet<String> = c.exts.keys().cloned().collect();
    let expected = match role {
        Role::Root => set(&[BC, KU, SKI]),
        Role::Ca { .. } => set(&[BC, KU, SKI, AKI]),
        Role::Leaf { .. } => set(&[BC, KU, EKU, SKI, AKI]),
    };
    assert_eq!(names, expected, "{at}: the extensions present");
    let bc = c.ext(BC);
    assert!(bc.critical, "{at}: basicConstraints is critical");
    let bc_expected = match role {
        Role::Root | Role::Ca { pathlen: None } => "CA:TRUE".to_string(),
        Role::Ca { pathlen: Some(n) } => format!("CA:TRUE, pathlen:{n}"),
        Role::Leaf { .. } => "CA:FALSE".to_string(),
    };
    assert_eq!(bc.value, bc_expected, "{at}: basicConstraints");
    assert!(c.ext(KU).critical, "{at}: keyUsage is critical");
    let ku_expected = match role {
        Role::Root | Role::Ca { .. } => set(&["Certificate Sign", "CRL Sign", "Digital Signature"]),
        Role::Leaf { rsa: false } => set(&["Digital Signature"]),
        Role::Leaf { rsa: true } => set(&["Digital Signature", "Key Encipherment"]),
    };
    assert_eq!(c.key_usage(), ku_expected, "{at}: keyUsage");
    if let Role::Leaf { .. } = role {
        let eku = c.ext(EKU);
        assert!(!eku.critical, "{at}: EKU is not critical");
        assert_eq!(eku.value, "TLS Web Client Authentication", "{at}: EKU");
    }
    let ski = c.ext(SKI);
    assert!(!ski.critical, "{at}: SKI is not critical");
    assert!(
        ski.value.len() >= 2 && ski.value.split(':').all(|b| b.len() == 2),
        "{at}: SKI {}",
        ski.value
    );
    match role {
        Role::Root => {
            assert_eq!(c.subject, c.issuer, "{at}: a root is self-issued");
            assert_eq!(c.aki(), None, "{at}: no AKI on a root");
        }
        _ => {
            assert!(!c.ext(AKI).critical, "{at}: AKI is not critical");
            assert_eq!(
                c.aki(),
                Some(issuer.ski()),
                "{at}: AKI equals the issuer's SKI"
            );
        }
    }
}

/// Signature algorithm name openssl shows for a signer of algorithm `alg`.
fn signature_for(alg: &str) -> &'static str {
    match alg {
        "p256" => "ecdsa-with-SHA256",
        "p384" => "ecdsa-with-SHA384",
        a if a.starts_with("rsa") => "sha256WithRSAEncryption",
        a => panic!("unknown algorithm {a}"),
    }
}

fn public_key_for(alg: &str) -> String {
    match alg {
        "p256" => "EC P-256".into(),
        "p384" => "EC P-384".into(),
        a => format!("RSA {}", a.trim_start_matches("rsa")),
    }
}

/// notBefore is 5 minutes before the run; notAfter - notBefore = days + 5 minutes.
fn check_validity(c: &Cert, days: i64, before: OffsetDateTime, after: OffsetDateTime) {
    let at = c.path.display();
    let earliest = before - Duration::minutes(5) - Duration::seconds(2);
    let latest = after - Duration::minutes(5) + Duration::seconds(1);
    assert!(
        c.not_before >= earliest && c.not_before <= latest,
        "{at}: notBefore {} should be ~5 minutes before the run ({before}..{after})",
        c.not_before
    );
    assert_eq!(
        c.not_after - c.not_before,
        Duration::days(days) + Duration::minutes(5),
        "{at}: validity of {days} days (plus the 5-minute backdate)"
    );
}

/// The key file is PKCS#8 PEM and holds the private half of the certificate's key.
fn assert_key_matches(key: &Path, cert: &Path) {
    let pem = fs::read_to_string(key).unwrap();
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{}: PKCS#8 PEM",
        key.display()
    );
    let from_key = openssl_ok(&["pkey", "-in", s(key), "-pubout"]);
    let from_cert = openssl_ok(&["x509", "-in", s(cert), "-noout", "-pubkey"]);
    assert_eq!(
        from_key,
        from_cert,
        "{} does not match {}",
        key.display(),
        cert.display()
    );
}

/// `openssl verify -x509_strict -purpose sslclient -CAfile ROOT [-untrusted CAS] LEAF`.
fn openssl_verify(scratch: &Path, root: &Path, untrusted: &[&Path], leaf: &Path) -> Output {
    let mut args = vec![
        "verify".to_string(),
        "-x509_strict".into(),
        "-purpose".into(),
        "sslclient".into(),
        "-CAfile".into(),
        s(root).into(),
    ];
    if !untrusted.is_empty() {
        let mut bundle = String::new();
        for u in untrusted {
            bundle.push_str(&fs::read_to_string(u).unwrap());
        }
        let f = tempfile::Builder::new()
            .suffix(".pem")
            .tempfile_in(scratch)
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        fs::write(&f, bundle).unwrap();
        args.push("-untrusted".into());
        args.push(s(&f).into());
    }
    args.push(s(leaf).into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&refs)
}

fn assert_verifies(scratch: &Path, root: &Path, untrusted: &[&Path], leaf: &Path) {
    let out = openssl_verify(scratch, root, untrusted, leaf);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with(": OK"),
        "openssl verify of {} failed:\n{stdout}{}",
        leaf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_does_not_verify(scratch: &Path, root: &Path, untrusted: &[&Path], leaf: &Path) {
    let out = openssl_verify(scratch, root, untrusted, leaf);
    assert!(
        !out.status.success(),
        "{} must not verify against {}",
        leaf.display(),
        root.display()
    );
}

/// The certificates of a PEM file, each as its base64 body.
fn pem_blocks(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            blocks.push(cur.take().expect("END without BEGIN"));
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    assert!(cur.is_none(), "{}: unterminated PEM", path.display());
    blocks
}

fn assert_chain_file(chain: &Path, parts: &[&Path]) {
    let expected: Vec<String> = parts.iter().flat_map(|p| pem_blocks(p)).collect();
    assert_eq!(
        pem_blocks(chain),
        expected,
        "{} must hold {:?} in that order",
        chain.display(),
        parts
    );
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory under `dir` (the lock file aside), with file contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            if rel == Path::new(LOCK) {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(rel, None);
                walk(base, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_unchanged(before: &BTreeMap<PathBuf, Option<Vec<u8>>>, dir: &Path, what: &str) {
    let after = snapshot(dir);
    let b: BTreeSet<&PathBuf> = before.keys().collect();
    let a: BTreeSet<&PathBuf> = after.keys().collect();
    assert_eq!(a, b, "{what}: files appeared or vanished");
    assert!(before == &after, "{what}: file contents changed");
}

/// The single `archive/<timestamp>/` directory of a home (there must be exactly `n`).
fn archives(home: &Home) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(home.p("archive")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

// ---------------------------------------------------------------------------
// ca init: every algorithm, the whole section 4 profile
// ---------------------------------------------------------------------------

/// `ca init --algorithm ALG`, a device of `device_alg`, a verification
/// certificate; then every DESIGN section 4 property, checked with openssl.
fn check_pki(alg: &str, device_alg: &str) {
    let h = Home::new();
    let t0 = now();
    h.init(&["--algorithm", alg]);
    h.ok(&["device", "create", "dev-1", "--algorithm", device_alg]);
    h.ok(&["verification-cert", "0A1B2C3D4E5F"]);
    let t1 = now();

    let root = h.cert(ROOT_CERT);
    let int = h.cert(INT_CERT);
    let dev = h.cert(&dev_cert("dev-1"));
    let ver = h.cert(VERIFICATION_CERT);

    check_profile(&root, Role::Root, DEFAULT_ROOT_CN, &root);
    check_profile(&int, Role::Ca { pathlen: None }, DEFAULT_INT_CN, &root);
    let rsa_dev = device_alg.starts_with("rsa");
    check_profile(&dev, Role::Leaf { rsa: rsa_dev }, "dev-1", &int);
    check_profile(&ver, Role::Leaf { rsa: false }, "0A1B2C3D4E5F", &root);

    assert_eq!(root.public_key(), public_key_for(alg), "root key");
    assert_eq!(int.public_key(), public_key_for(alg), "intermediate key");
    assert_eq!(dev.public_key(), public_key_for(device_alg), "device key");
    assert_eq!(ver.public_key(), "EC P-256", "verification key");
    // The signature hash follows the issuer's key.
    for c in [&root, &int, &dev, &ver] {
        assert_eq!(c.signature, signature_for(alg), "{}", c.path.display());
    }

    check_validity(&root, 3650, t0, t1);
    check_validity(&int, 1825, t0, t1);
    check_validity(&dev, 365, t0, t1);
    check_validity(&ver, 30, t0, t1);

    assert_key_matches(&h.p(ROOT_KEY), &h.p(ROOT_CERT));
    assert_key_matches(&h.p(INT_KEY), &h.p(INT_CERT));
    assert_key_matches(&h.p(&dev_key("dev-1")), &h.p(&dev_cert("dev-1")));
    assert_key_matches(
        &h.p("private/verification-code.key.pem"),
        &h.p(VERIFICATION_CERT),
    );

    assert_chain_file(&h.p(CHAIN), &[&h.p(INT_CERT), &h.p(ROOT_CERT)]);
    assert_chain_file(
        &h.p(&dev_chain("dev-1")),
        &[&h.p(&dev_cert("dev-1")), &h.p(INT_CERT), &h.p(ROOT_CERT)],
    );

    let scratch = h.tmp.path();
    assert_verifies(
        scratch,
        &h.p(ROOT_CERT),
        &[&h.p(INT_CERT)],
        &h.p(&dev_cert("dev-1")),
    );
    // The device's own full chain completes the path too.
    assert_verifies(
        scratch,
        &h.p(ROOT_CERT),
        &[&h.p(&dev_chain("dev-1"))],
        &h.p(&dev_cert("dev-1")),
    );
    assert_verifies(scratch, &h.p(ROOT_CERT), &[], &h.p(VERIFICATION_CERT));
    // Without the intermediate there is no path: the check can fail.
    assert_does_not_verify(scratch, &h.p(ROOT_CERT), &[], &h.p(&dev_cert("dev-1")));

    let serials: BTreeSet<&str> = [&root, &int, &dev, &ver]
        .iter()
        .map(|c| c.serial.as_str())
        .collect();
    assert_eq!(serials.len(), 4, "serial numbers are never reused");
}

#[test]
fn ca_init_p256_is_the_default_and_matches_design_section_4() {
    // No --algorithm at all: P-256 everywhere.
    let h = Home::new();
    h.init(&[]);
    h.ok(&["device", "create", "plain"]);
    assert_eq!(h.cert(ROOT_CERT).public_key(), "EC P-256");
    assert_eq!(h.cert(INT_CERT).public_key(), "EC P-256");
    assert_eq!(h.cert(&dev_cert("plain")).public_key(), "EC P-256");
    check_pki("p256", "p256");
}

#[test]
fn ca_init_p384_signs_with_sha384_whatever_the_device_key() {
    check_pki("p384", "p384");
    check_pki("p384", "p256");
    check_pki("p384", "rsa2048");
}

#[test]
fn ca_init_rsa2048_and_rsa_devices_get_key_encipherment() {
    check_pki("rsa2048", "rsa2048");
    check_pki("rsa2048", "p256");
}

/// RSA 3072/4096 key generation takes a few seconds each; both run here, in
/// one test, so the rest of the suite proceeds on the other core.
#[test]
fn ca_init_rsa3072_and_rsa4096() {
    check_pki("rsa3072", "rsa3072");
    check_pki("rsa4096", "rsa4096");
}

#[test]
fn ca_init_custom_names_and_validity() {
    let h = Home::new();
    let t0 = now();
    h.init(&[
        "--root-cn",
        "Contoso Root CA",
        "--intermediate-cn",
        "Contoso Devices 2025",
        "--days",
        "100",
        "--intermediate-days",
        "50",
    ]);
    h.ok(&["device", "create", "sensor-7", "--days", "7"]);
    h.ok(&["verification-cert", "ABCDEF", "--ca", "intermediate"]);
    let t1 = now();
    let root = h.cert(ROOT_CERT);
    let int = h.cert(INT_CERT);
    let dev = h.cert(&dev_cert("sensor-7"));
    let ver = h.cert(VERIFICATION_CERT);
    check_profile(&root, Role::Root, "Contoso Root CA", &root);
    check_profile(
        &int,
        Role::Ca { pathlen: None },
        "Contoso Devices 2025",
        &root,
    );
    check_profile(&dev, Role::Leaf { rsa: false }, "sensor-7", &int);
    check_profile(&ver, Role::Leaf { rsa: false }, "ABCDEF", &int);
    check_validity(&root, 100, t0, t1);
    check_validity(&int, 50, t0, t1);
    check_validity(&dev, 7, t0, t1);
    check_validity(&ver, 30, t0, t1);
    assert_verifies(
        h.tmp.path(),
        &h.p(ROOT_CERT),
        &[&h.p(INT_CERT)],
        &h.p(&dev_cert("sensor-7")),
    );
}

#[test]
fn ca_init_no_intermediate_then_devices_are_signed_by_the_root() {
    let h = Home::new();
    h.init(&["--no-intermediate"]);
    for f in [INT_CERT, INT_KEY, CHAIN] {
        assert!(
            !h.p(f).exists(),
            "{f} must not exist with --no-intermediate"
        );
    }
    h.ok(&["device", "create", "rooted-1"]);
    let root = h.cert(ROOT_CERT);
    let dev = h.cert(&dev_cert("rooted-1"));
    check_profile(&root, Role::Root, DEFAULT_ROOT_CN, &root);
    check_profile(&dev, Role::Leaf { rsa: false }, "rooted-1", &root);
    assert_chain_file(
        &h.p(&dev_chain("rooted-1")),
        &[&h.p(&dev_cert("rooted-1")), &h.p(ROOT_CERT)],
    );
    assert_verifies(
        h.tmp.path(),
        &h.p(ROOT_CERT),
        &[],
        &h.p(&dev_cert("rooted-1")),
    );
    // Asking for the missing intermediate is a clear error.
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "x-1", "--ca", "intermediate"]);
    assert!(err.contains("intermediate"), "{err}");
    assert_unchanged(&before, &h.dir, "device create --ca intermediate");
}

#[test]
fn encrypted_ca_keys_open_with_openssl_and_sign_devices() {
    let h = Home::new();
    let pass = h.scratch("pass.txt");
    // openssl's -passin file: reads the first line without its line ending.
    fs::write(&pass, "correct horse battery\nsecond line\n").unwrap();
    h.init(&["--passphrase-file", s(&pass)]);
    for (key, crt) in [(ROOT_KEY, ROOT_CERT), (INT_KEY, INT_CERT)] {
        let pem = fs::read_to_string(h.p(key)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key}: encrypted PKCS#8"
        );
        assert_eq!(mode(&h.p(key)), 0o600);
        let passin = format!("file:{}", s(&pass));
        let from_key = openssl_ok(&["pkey", "-in", s(&h.p(key)), "-passin", &passin, "-pubout"]);
        let from_cert = openssl_ok(&["x509", "-in", s(&h.p(crt)), "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert, "{key}");
        assert!(
            !openssl(&[
                "pkey",
                "-in",
                s(&h.p(key)),
                "-passin",
                "pass:wrong",
                "-pubout"
            ])
            .status
            .success(),
            "{key} must not open with a wrong passphrase"
        );
    }
    h.ok(&["device", "create", "enc-1", "--passphrase-file", s(&pass)]);
    let out = h
        .cmd()
        .env("IOTCA_PASSPHRASE", "correct horse battery")
        .args(["device", "create", "enc-2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in ["enc-1", "enc-2"] {
        assert_verifies(
            h.tmp.path(),
            &h.p(ROOT_CERT),
            &[&h.p(INT_CERT)],
            &h.p(&dev_cert(d)),
        );
        // Device keys stay unencrypted PKCS#8 (devices load them as they are).
        assert_key_matches(&h.p(&dev_key(d)), &h.p(&dev_cert(d)));
    }
    // Without the passphrase, or with a wrong one: exit 2, nothing written.
    let wrong = h.scratch("wrong.txt");
    fs::write(&wrong, "wrong\n").unwrap();
    let before = snapshot(&h.dir);
    h.refused(&["device", "create", "enc-3"]);
    h.refused(&["device", "create", "enc-3", "--passphrase-file", s(&wrong)]);
    assert_unchanged(&before, &h.dir, "device create with a wrong passphrase");
}

#[test]
fn not_after_is_clamped_to_the_issuer_with_a_warning() {
    let h = Home::new();
    let init = h.init(&["--days", "10"]);
    assert!(
        init.stderr.contains("warning") && init.stderr.contains("clamped"),
        "ca init must warn that the intermediate was clamped: {}",
        init.stderr
    );
    let root = h.cert(ROOT_CERT);
    let int = h.cert(INT_CERT);
    assert_eq!(
        int.not_after, root.not_after,
        "intermediate clamped to the root"
    );
    let run = h.ok(&["device", "create", "short-1", "--days", "365"]);
    assert!(
        run.stderr.contains("warning") && run.stderr.contains("clamped"),
        "device create must warn: {}",
        run.stderr
    );
    let dev = h.cert(&dev_cert("short-1"));
    assert_eq!(dev.not_after, int.not_after, "device clamped to its issuer");
    assert_verifies(
        h.tmp.path(),
        &h.p(ROOT_CERT),
        &[&h.p(INT_CERT)],
        &h.p(&dev_cert("short-1")),
    );
    // Within the issuer's lifetime: no warning, no clamp.
    let run = h.ok(&["device", "create", "short-2", "--days", "2"]);
    assert!(!run.stderr.contains("clamped"), "{}", run.stderr);
    let dev2 = h.cert(&dev_cert("short-2"));
    assert_eq!(
        dev2.not_after - dev2.not_before,
        Duration::days(2) + Duration::minutes(5)
    );
}

// ---------------------------------------------------------------------------
// Further CAs, verification certificates
// ---------------------------------------------------------------------------

#[test]
fn ca_intermediate_pathlen_only_when_asked_and_deeper_chains_verify() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["ca", "intermediate", "factory-a", "--pathlen", "0"]);
    h.ok(&[
        "ca",
        "intermediate",
        "line-7",
        "--parent",
        "intermediate",
        "--cn",
        "Line 7 Devices",
    ]);
    let root = h.cert(ROOT_CERT);
    let int = h.cert(INT_CERT);
    let fa = h.cert("certs/factory-a.cert.pem");
    let l7 = h.cert("certs/line-7.cert.pem");
    check_profile(&fa, Role::Ca { pathlen: Some(0) }, "factory-a", &root);
    check_profile(&l7, Role::Ca { pathlen: None }, "Line 7 Devices", &int);
    assert_key_matches(
        &h.p("private/factory-a.key.pem"),
        &h.p("certs/factory-a.cert.pem"),
    );
    assert_key_matches(
        &h.p("private/line-7.key.pem"),
        &h.p("certs/line-7.cert.pem"),
    );

    h.ok(&["device", "create", "fa-1", "--ca", "factory-a"]);
    h.ok(&["device", "create", "l7-1", "--ca", "line-7"]);
    check_profile(
        &h.cert(&dev_cert("fa-1")),
        Role::Leaf { rsa: false },
        "fa-1",
        &fa,
    );
    check_profile(
        &h.cert(&dev_cert("l7-1")),
        Role::Leaf { rsa: false },
        "l7-1",
        &l7,
    );
    assert_chain_file(
        &h.p(&dev_chain("fa-1")),
        &[
            &h.p(&dev_cert("fa-1")),
            &h.p("certs/factory-a.cert.pem"),
            &h.p(ROOT_CERT),
        ],
    );
    assert_chain_file(
        &h.p(&dev_chain("l7-1")),
        &[
            &h.p(&dev_cert("l7-1")),
            &h.p("certs/line-7.cert.pem"),
            &h.p(INT_CERT),
            &h.p(ROOT_CERT),
        ],
    );
    let scratch = h.tmp.path();
    assert_verifies(
        scratch,
        &h.p(ROOT_CERT),
        &[&h.p("certs/factory-a.cert.pem")],
        &h.p(&dev_cert("fa-1")),
    );
    assert_verifies(
        scratch,
        &h.p(ROOT_CERT),
        &[&h.p(&dev_chain("l7-1"))],
        &h.p(&dev_cert("l7-1")),
    );
    // pathlen 0 is enforced by openssl: a CA under factory-a cannot sign a
    // verifiable device (proves the pathlen really is in the certificate).
    // (iotca may also refuse to make such a CA up front; both are fine.)
    let out = h.run(&["ca", "intermediate", "under-fa", "--parent", "factory-a"]);
    if out.status.success() {
        h.ok(&["device", "create", "ufa-1", "--ca", "under-fa"]);
        assert_does_not_verify(
            scratch,
            &h.p(ROOT_CERT),
            &[&h.p(&dev_chain("ufa-1"))],
            &h.p(&dev_cert("ufa-1")),
        );
    } else {
        refused(out, "ca intermediate under a pathlen-0 CA");
    }

    // Re-creating a CA refuses; --force archives.
    let before = snapshot(&h.dir);
    let err = h.refused(&["ca", "intermediate", "factory-a"]);
    assert!(
        err.contains("factory-a") && err.contains("--force"),
        "{err}"
    );
    assert_unchanged(&before, &h.dir, "ca intermediate over an existing CA");
    let old_key = fs::read(h.p("private/factory-a.key.pem")).unwrap();
    h.ok(&["ca", "intermediate", "factory-a", "--force"]);
    let a = archives(&h);
    assert_eq!(a.len(), 1);
    assert_eq!(
        fs::read(a[0].join("private/factory-a.key.pem")).unwrap(),
        old_key
    );
    // Reserved and invalid names.
    for bad in ["root", "intermediate", "../evil", "bad name"] {
        let before = snapshot(&h.dir);
        h.refused(&["ca", "intermediate", bad]);
        assert_unchanged(&before, &h.dir, bad);
    }
}

#[test]
fn verification_cert_for_root_and_intermediate() {
    let h = Home::new();
    h.init(&[]);
    let scratch = h.tmp.path();
    let root = h.cert(ROOT_CERT);
    let int = h.cert(INT_CERT);

    h.ok(&["verification-cert", "5E9A2C0D1B7F43A6"]);
    let v = h.cert(VERIFICATION_CERT);
    check_profile(&v, Role::Leaf { rsa: false }, "5E9A2C0D1B7F43A6", &root);
    assert_verifies(scratch, &h.p(ROOT_CERT), &[], &h.p(VERIFICATION_CERT));
    let first = fs::read(h.p(VERIFICATION_CERT)).unwrap();

    h.ok(&["verification-cert", "77AA88BB", "--ca", "intermediate"]);
    let v = h.cert(VERIFICATION_CERT);
    check_profile(&v, Role::Leaf { rsa: false }, "77AA88BB", &int);
    assert_verifies(
        scratch,
        &h.p(ROOT_CERT),
        &[&h.p(INT_CERT)],
        &h.p(VERIFICATION_CERT),
    );
    // Signed by the intermediate, not the root.
    assert_does_not_verify(scratch, &h.p(ROOT_CERT), &[], &h.p(VERIFICATION_CERT));
    // The previous one was archived, not overwritten.
    let a = archives(&h);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(fs::read(a[0].join(VERIFICATION_CERT)).unwrap(), first);

    h.ok(&["verification-cert", "RSA-CODE-1", "--algorithm", "rsa2048"]);
    let v = h.cert(VERIFICATION_CERT);
    check_profile(&v, Role::Leaf { rsa: true }, "RSA-CODE-1", &root);

    let long = "A".repeat(65);
    let bad_codes: [&str; 4] = ["", "has space", "x/y", &long];
    for bad in bad_codes {
        let before = snapshot(&h.dir);
        h.refused(&["verification-cert", bad]);
        assert_unchanged(&before, &h.dir, &format!("verification-cert {bad:?}"));
    }
    let before = snapshot(&h.dir);
    let err = h.refused(&["verification-cert", "ABC", "--ca", "no-such-ca"]);
    assert!(err.contains("no-such-ca"), "{err}");
    assert_unchanged(&before, &h.dir, "verification-cert --ca no-such-ca");
}

// ---------------------------------------------------------------------------
// Files: modes, refusal to overwrite, archiving
// ---------------------------------------------------------------------------

fn check_modes(h: &Home, devices: &[&str]) {
    assert_eq!(mode(&h.p("private")), 0o700, "private/");
    for k in [ROOT_KEY, INT_KEY] {
        assert_eq!(mode(&h.p(k)), 0o600, "{k}");
    }
    for c in [ROOT_CERT, INT_CERT, CHAIN] {
        assert_eq!(mode(&h.p(c)), 0o644, "{c}");
    }
    for d in devices {
        assert_eq!(mode(&h.p(&dev_key(d))), 0o600, "{d} key");
        assert_eq!(mode(&h.p(&dev_cert(d))), 0o644, "{d} cert");
        assert_eq!(mode(&h.p(&dev_chain(d))), 0o644, "{d} chain");
    }
    for dir in ["certs", "private"] {
        let m = mode(&h.p(dir));
        assert_eq!(
            m & 0o022,
            0,
            "{dir}/ must not be group/world-writable: {m:o}"
        );
        for e in fs::read_dir(h.p(dir)).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".iotca-tmp"),
                "temporary file left behind: {dir}/{name:?}"
            );
        }
    }
}

#[test]
fn file_modes_hold_whatever_the_umask() {
    for umask in ["000", "077"] {
        let h = Home::new();
        run_with_umask(umask, &h, &["ca", "init"]);
        run_with_umask(umask, &h, &["device", "create", "m-1", "m-2"]);
        run_with_umask(umask, &h, &["device", "create", "m-1", "--force"]);
        check_modes(&h, &["m-1", "m-2"]);
        // Archived keys stay private.
        let a = archives(&h);
        assert_eq!(a.len(), 1);
        assert_eq!(mode(&h.p("archive")) & 0o077, 0, "archive/ (umask {umask})");
        assert_eq!(mode(&a[0]) & 0o077, 0, "archive/<ts>/ (umask {umask})");
        assert_eq!(mode(&a[0].join(dev_key("m-1"))), 0o600, "archived key");
    }
    // A pre-existing, too-open private/ is tightened.
    let h = Home::new();
    fs::create_dir_all(h.p("private")).unwrap();
    fs::set_permissions(h.p("private"), fs::Permissions::from_mode(0o777)).unwrap();
    h.init(&[]);
    assert_eq!(mode(&h.p("private")), 0o700);
}

#[test]
fn ca_init_refuses_to_overwrite_and_force_archives_byte_identical() {
    let h = Home::new();
    h.init(&[]);
    let before = snapshot(&h.dir);
    let err = h.refused(&["ca", "init"]);
    assert!(err.contains("--force"), "{err}");
    assert!(
        ALL_CA_FILES
            .iter()
            .any(|f| err.contains(h.p(f).to_str().unwrap())),
        "the error must name the existing file: {err}"
    );
    assert_unchanged(&before, &h.dir, "ca init over an existing PKI");
    // Any one CA file present is enough to refuse.
    let h2 = Home::new();
    h2.init(&["--no-intermediate"]);
    let before2 = snapshot(&h2.dir);
    h2.refused(&["ca", "init", "--algorithm", "p384"]);
    assert_unchanged(&before2, &h2.dir, "ca init over a root-only PKI");

    let old: Vec<(&str, Vec<u8>)> = ALL_CA_FILES
        .iter()
        .map(|f| (*f, fs::read(h.p(f)).unwrap()))
        .collect();
    let run = h.ok(&["ca", "init", "--force"]);
    assert!(run.stdout.contains("archive"), "{}", run.stdout);
    let a = archives(&h);
    assert_eq!(a.len(), 1, "{a:?}");
    for (f, bytes) in &old {
        assert_eq!(
            &fs::read(a[0].join(f)).unwrap(),
            bytes,
            "archived {f} must be byte-identical"
        );
        assert_ne!(&fs::read(h.p(f)).unwrap(), bytes, "{f} is new");
    }
    let name = a[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.len() >= 16
            && name.as_bytes()[8] == b'T'
            && name[..8].bytes().all(|b| b.is_ascii_digit()),
        "archive/<UTC timestamp>: {name}"
    );
    // A second --force keeps both generations: nothing is ever deleted.
    let second: Vec<Vec<u8>> = ALL_CA_FILES
        .iter()
        .map(|f| fs::read(h.p(f)).unwrap())
        .collect();
    h.ok(&["ca", "init", "--force"]);
    let a = archives(&h);
    assert_eq!(a.len(), 2, "{a:?}");
    let archived: BTreeSet<Vec<Vec<u8>>> = a
        .iter()
        .map(|dir| {
            ALL_CA_FILES
                .iter()
                .map(|f| fs::read(dir.join(f)).unwrap())
                .collect()
        })
        .collect();
    let first: Vec<Vec<u8>> = old.iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(
        archived,
        BTreeSet::from([first, second]),
        "both earlier PKIs are in archive/, one per directory"
    );
    // The new PKI works.
    h.ok(&["device", "create", "after-force"]);
    assert_verifies(
        h.tmp.path(),
        &h.p(ROOT_CERT),
        &[&h.p(INT_CERT)],
        &h.p(&dev_cert("after-force")),
    );
}

#[test]
fn device_create_refuses_to_overwrite_and_force_archives() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["device", "create", "d-1"]);
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "d-1"]);
    assert!(
        err.contains("d-1") && err.contains("--force"),
        "the error must name the device and --force: {err}"
    );
    assert_unchanged(&before, &h.dir, "device create over an existing device");

    let old: Vec<(String, Vec<u8>)> = dev_files("d-1")
        .into_iter()
        .map(|f| {
            let b = fs::read(h.p(&f)).unwrap();
            (f, b)
        })
        .collect();
    let run = h.ok(&["device", "create", "d-1", "--force"]);
    assert!(run.stdout.contains("archive"), "{}", run.stdout);
    let a = archives(&h);
    assert_eq!(a.len(), 1, "{a:?}");
    for (f, bytes) in &old {
        assert_eq!(&fs::read(a[0].join(f)).unwrap(), bytes, "archived {f}");
        assert_ne!(&fs::read(h.p(f)).unwrap(), bytes, "{f} was re-issued");
    }
    assert_key_matches(&h.p(&dev_key("d-1")), &h.p(&dev_cert("d-1")));
    assert_ne!(
        h.cert(&dev_cert("d-1")).serial,
        cert(&a[0].join(dev_cert("d-1"))).serial
    );
    // A lone leftover file (here the key) counts as existing.
    fs::write(h.p(&dev_key("lonely")), b"not a key").unwrap();
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "lonely"]);
    assert!(err.contains("lonely"), "{err}");
    assert_unchanged(&before, &h.dir, "device create over a leftover key");
}

#[test]
fn a_list_with_existing_ids_is_refused_up_front_and_skip_existing_resumes() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["device", "create", "fleet-002", "fleet-004"]);
    let ids = h.scratch("ids.txt");
    fs::write(
        &ids,
        "# fleet\nfleet-001\nfleet-002\n\nfleet-003\nfleet-004\nfleet-005\n",
    )
    .unwrap();
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "--ids-file", s(&ids)]);
    assert!(
        err.contains("fleet-002") && err.contains("fleet-004"),
        "the error must name every existing ID: {err}"
    );
    assert!(
        !err.contains("fleet-001") && !err.contains("fleet-003"),
        "only the existing IDs are named: {err}"
    );
    assert!(err.contains("--skip-existing"), "{err}");
    assert_unchanged(&before, &h.dir, "a partly existing list");

    let kept: Vec<Vec<u8>> = ["fleet-002", "fleet-004"]
        .iter()
        .flat_map(|d| dev_files(d))
        .map(|f| fs::read(h.p(&f)).unwrap())
        .collect();
    h.ok(&["device", "create", "--ids-file", s(&ids), "--skip-existing"]);
    let still: Vec<Vec<u8>> = ["fleet-002", "fleet-004"]
        .iter()
        .flat_map(|d| dev_files(d))
        .map(|f| fs::read(h.p(&f)).unwrap())
        .collect();
    assert_eq!(kept, still, "existing devices are left alone");
    for d in ["fleet-001", "fleet-003", "fleet-005"] {
        check_profile(
            &h.cert(&dev_cert(d)),
            Role::Leaf { rsa: false },
            d,
            &h.cert(INT_CERT),
        );
        assert_key_matches(&h.p(&dev_key(d)), &h.p(&dev_cert(d)));
    }
    assert!(archives(&h).is_empty(), "--skip-existing archives nothing");
    // Everything exists now: a second resume is a no-op that succeeds.
    let before = snapshot(&h.dir);
    h.ok(&["device", "create", "--ids-file", s(&ids), "--skip-existing"]);
    assert_unchanged(&before, &h.dir, "a resume with nothing left to do");
    // --force and --skip-existing together make no sense.
    let out = h.run(&[
        "device",
        "create",
        "fleet-001",
        "--force",
        "--skip-existing",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn invalid_device_ids_exit_2_before_anything_is_written() {
    let h = Home::new();
    h.init(&[]);
    let long = "a".repeat(65);
    let bad: [&str; 9] = [
        "bad id",
        "../x",
        &long,
        "-lead",
        "trail-",
        "sensör-1",
        "a/b",
        ".hidden",
        "",
    ];
    for id in bad {
        let before = snapshot(&h.dir);
        // As an argument (after `--` so clap does not read "-lead" as a flag),
        // alongside a valid ID that must not be issued either.
        let err = h.refused(&["device", "create", "--", "good-1", id]);
        assert_unchanged(&before, &h.dir, &format!("device create {id:?}"));
        if !id.is_empty() && id.is_ascii() && id.len() <= 32 {
            assert!(err.contains(id), "the error must name {id:?}: {err}");
        }
        // And from an --ids-file.
        let f = h.scratch("bad-ids.txt");
        fs::write(&f, format!("good-2\n{id}\n")).unwrap();
        if !id.is_empty() {
            h.refused(&["device", "create", "--ids-file", s(&f)]);
            assert_unchanged(&before, &h.dir, &format!("--ids-file with {id:?}"));
        }
    }
    // 64 characters is the longest CN, so the longest X.509 registration ID.
    let max = "b".repeat(64);
    h.ok(&["device", "create", &max]);
    assert_eq!(h.cert(&dev_cert(&max)).cn(), max);
    // Case-insensitive duplicates in one list are refused (DPS would see one ID).
    let before = snapshot(&h.dir);
    h.refused(&["device", "create", "Dup-1", "dup-1"]);
    assert_unchanged(&before, &h.dir, "duplicate IDs");
    // --allow-any-cn relaxes the DPS rules but never the file-name rules.
    for id in ["../x", "a/b", ".hidden"] {
        let before = snapshot(&h.dir);
        h.refused(&["device", "create", "--allow-any-cn", "--", id]);
        assert_unchanged(&before, &h.dir, &format!("--allow-any-cn {id:?}"));
    }
    h.ok(&["device", "create", "--allow-any-cn", "--", "_edge_"]);
    assert_eq!(h.cert(&dev_cert("_edge_")).cn(), "_edge_");
}

// ---------------------------------------------------------------------------
// Bad input: exit 2, one line, nothing written
// ---------------------------------------------------------------------------

#[test]
fn missing_home_is_a_clear_error() {
    let h = Home::new();
    for args in [
        vec!["device", "create", "d-1"],
        vec!["ca", "list"],
        vec!["ca", "intermediate", "x-ca"],
        vec!["verification-cert", "ABCD"],
    ] {
        let err = h.refused(&args);
        assert!(
            err.contains(h.dir.to_str().unwrap()),
            "{args:?}: the error must name the home: {err}"
        );
        assert!(!h.dir.exists(), "{args:?} must not create the home");
    }
    // A home that is a file.
    fs::write(&h.dir, b"").unwrap();
    let err = h.refused(&["device", "create", "d-1"]);
    assert!(err.contains(h.dir.to_str().unwrap()), "{err}");
}

#[test]
fn wrong_ca_name_is_a_clear_error() {
    let h = Home::new();
    h.init(&[]);
    for ca in ["no-such-ca", "../etc", "bad name"] {
        let before = snapshot(&h.dir);
        let err = h.refused(&["device", "create", "d-1", "--ca", ca]);
        if ca == "no-such-ca" {
            assert!(err.contains(ca), "{err}");
        }
        assert_unchanged(&before, &h.dir, &format!("--ca {ca}"));
    }
}

#[test]
fn unknown_algorithm_is_refused_before_anything_is_written() {
    let h = Home::new();
    let out = h.run(&["ca", "init", "--algorithm", "ed448"]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_panic(&String::from_utf8_lossy(&out.stderr));
    assert!(!h.dir.exists(), "nothing written for a bad --algorithm");
    h.init(&[]);
    let before = snapshot(&h.dir);
    for alg in ["rsa1024", "P-256x", ""] {
        let out = h.run(&["device", "create", "alg-1", "--algorithm", alg]);
        assert_eq!(out.status.code(), Some(2), "--algorithm {alg:?}");
        assert_no_panic(&String::from_utf8_lossy(&out.stderr));
        assert_unchanged(&before, &h.dir, &format!("--algorithm {alg:?}"));
    }
}

#[test]
fn unusable_ca_key_is_a_clear_error() {
    let h = Home::new();
    h.init(&[]);
    let key = h.p(INT_KEY);
    // Root can read anything, so corrupt the key instead of chmod 000.
    for (what, bytes) in [
        ("garbage", b"this is not a key\n".to_vec()),
        ("empty", Vec::new()),
        ("truncated PEM", fs::read(&key).unwrap()[..60].to_vec()),
    ] {
        let good = fs::read(&key).unwrap();
        fs::write(&key, &bytes).unwrap();
        let before = snapshot(&h.dir);
        let err = h.refused(&["device", "create", "d-1"]);
        assert!(
            err.contains(key.to_str().unwrap()),
            "{what}: the error must name the key file: {err}"
        );
        assert_unchanged(&before, &h.dir, what);
        fs::write(&key, good).unwrap();
    }
    // A valid key that belongs to another CA.
    fs::copy(h.p(ROOT_KEY), &key).unwrap();
    let before = snapshot(&h.dir);
    h.refused(&["device", "create", "d-1"]);
    assert_unchanged(&before, &h.dir, "a foreign CA key");
    // The key file missing altogether.
    fs::remove_file(&key).unwrap();
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "d-1"]);
    assert!(err.contains(key.to_str().unwrap()), "{err}");
    assert_unchanged(&before, &h.dir, "a missing CA key");
    // A corrupt CA certificate.
    fs::write(
        h.p(ROOT_CERT),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "d-1", "--ca", "root"]);
    assert!(err.contains(h.p(ROOT_CERT).to_str().unwrap()), "{err}");
    assert_unchanged(&before, &h.dir, "a corrupt CA certificate");
}

#[test]
fn unwritable_private_dir_is_a_clear_error() {
    // As root, chmod does not stop writes: make private/ a regular file.
    let h = Home::new();
    fs::create_dir_all(&h.dir).unwrap();
    fs::write(h.p("private"), b"not a directory").unwrap();
    let err = h.refused(&["ca", "init"]);
    assert!(
        err.contains("private"),
        "the error must name private/: {err}"
    );
    let files: Vec<PathBuf> = snapshot(&h.dir)
        .into_iter()
        .filter(|(_, c)| c.is_some())
        .map(|(p, _)| p)
        .collect();
    assert_eq!(files, vec![PathBuf::from("private")], "nothing written");
    assert_eq!(fs::read(h.p("private")).unwrap(), b"not a directory");

    // A working home whose private/ later becomes a file: devices cannot be
    // issued (the CA key is unreachable and device keys have nowhere to go).
    let h = Home::new();
    h.init(&[]);
    fs::rename(h.p("private"), h.scratch("private.moved")).unwrap();
    fs::write(h.p("private"), b"not a directory").unwrap();
    let before = snapshot(&h.dir);
    let err = h.refused(&["device", "create", "d-1", "d-2"]);
    assert!(err.contains("private"), "{err}");
    assert_unchanged(&before, &h.dir, "device create with private/ a file");

    // certs/ a file: the keys must not be written either.
    let h = Home::new();
    h.init(&[]);
    let certs_moved = h.scratch("certs.moved");
    fs::rename(h.p("certs"), &certs_moved).unwrap();
    fs::write(h.p("certs"), b"not a directory").unwrap();
    let before = snapshot(&h.dir);
    h.refused(&["device", "create", "d-1"]);
    assert_unchanged(&before, &h.dir, "device create with certs/ a file");
}

// ---------------------------------------------------------------------------
// inspect, ca list, help
// ---------------------------------------------------------------------------

fn fingerprint(path: &Path, alg: &str) -> String {
    let out = openssl_ok(&["x509", "-in", s(path), "-noout", "-fingerprint", alg]);
    out.trim()
        .split_once('=')
        .expect("fingerprint line")
        .1
        .replace(':', "")
}

#[test]
fn inspect_json_thumbprints_match_openssl() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["device", "create", "insp-1", "--algorithm", "rsa2048"]);
    let dev = dev_cert("insp-1");
    let files = [ROOT_CERT, INT_CERT, dev.as_str()];
    let paths: Vec<String> = files
        .iter()
        .map(|f| h.p(f).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["inspect", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let run = h.ok(&args);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("inspect --json is JSON");
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 3);
    for (obj, f) in arr.iter().zip(files) {
        let c = h.cert(f);
        for key in [
            "subject",
            "cn",
            "serial",
            "not_before",
            "not_after",
            "sha256",
            "sha1",
            "issuer",
            "is_ca",
            "pathlen",
            "key_usage",
            "extended_key_usage",
            "key_algorithm",
        ] {
            assert!(
                obj.get(key).is_some(),
                "{f}: inspect --json lacks {key}: {obj}"
            );
        }
        let sha1 = fingerprint(&h.p(f), "-sha1");
        let sha256 = fingerprint(&h.p(f), "-sha256");
        assert_eq!(sha1.len(), 40);
        assert_eq!(obj["sha1"], sha1.as_str(), "{f}: SHA-1 thumbprint");
        assert_eq!(obj["sha256"], sha256.as_str(), "{f}: SHA-256 thumbprint");
        assert_eq!(obj["subject"], c.subject.as_str(), "{f}");
        assert_eq!(obj["cn"], c.cn(), "{f}");
        assert_eq!(obj["issuer"], c.issuer.as_str(), "{f}");
        assert!(
            obj["serial"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(&c.serial),
            "{f}: serial {} vs openssl {}",
            obj["serial"],
            c.serial
        );
        let nb = OffsetDateTime::parse(
            obj["not_before"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let na = OffsetDateTime::parse(
            obj["not_after"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!((nb, na), (c.not_before, c.not_after), "{f}: validity");
        assert_eq!(obj["is_ca"], f != dev, "{f}: is_ca");
    }
    assert_eq!(
        arr[2]["extended_key_usage"],
        serde_json::json!(["clientAuth"])
    );
    assert_eq!(arr[0]["extended_key_usage"], serde_json::json!([]));
    assert!(arr[2]["key_algorithm"].as_str().unwrap().contains("2048"));

    // The full chain: three certificates, leaf first.
    let run = h.ok(&[
        "inspect",
        "--json",
        h.p(&dev_chain("insp-1")).to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let cns: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["cn"].as_str().unwrap())
        .collect();
    assert_eq!(cns, ["insp-1", DEFAULT_INT_CN, DEFAULT_ROOT_CN]);

    // Text output shows the thumbprints as IoT Hub does.
    let run = h.ok(&["inspect", h.p(&dev_cert("insp-1")).to_str().unwrap()]);
    assert!(
        run.stdout
            .contains(&fingerprint(&h.p(&dev_cert("insp-1")), "-sha1"))
    );
    assert!(
        run.stdout
            .contains(&fingerprint(&h.p(&dev_cert("insp-1")), "-sha256"))
    );

    // DER input reads too.
    let der = h.scratch("dev.der");
    openssl_ok(&[
        "x509",
        "-in",
        s(&h.p(&dev_cert("insp-1"))),
        "-outform",
        "DER",
        "-out",
        s(&der),
    ]);
    let run = h.ok(&["inspect", "--json", s(&der)]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v[0]["sha1"],
        fingerprint(&h.p(&dev_cert("insp-1")), "-sha1").as_str()
    );

    // Unreadable input: exit 2, naming the file.
    let garbage = h.scratch("garbage.pem");
    fs::write(&garbage, "hello\n").unwrap();
    for f in [garbage, h.scratch("missing.pem")] {
        let err = h.refused(&["inspect", s(&f)]);
        assert!(err.contains(s(&f)), "{err}");
    }
}

#[test]
fn ca_list_shows_the_tree_and_json_parses() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["ca", "intermediate", "factory-a", "--pathlen", "0"]);
    h.ok(&["device", "create", "tree-dev-1", "tree-dev-2"]);
    h.ok(&["device", "create", "fa-dev-1", "--ca", "factory-a"]);
    let run = h.ok(&["ca", "list"]);
    let text = &run.stdout;
    for needle in [
        "[root]",
        "[intermediate]",
        "[factory-a]",
        DEFAULT_ROOT_CN,
        DEFAULT_INT_CN,
        "tree-dev-1",
        "tree-dev-2",
        "fa-dev-1",
    ] {
        assert!(text.contains(needle), "ca list lacks {needle}:\n{text}");
    }
    // A tree: the root first, the CAs it signed indented below it, devices
    // below their CA.
    let line = |needle: &str| -> (usize, usize) {
        let (i, l) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {text}"));
        (
            i,
            l.chars()
                .position(|c| c.is_alphanumeric() || c == '[')
                .unwrap(),
        )
    };
    let (root_line, root_indent) = line("[root]");
    let (int_line, int_indent) = line("[intermediate]");
    let (fa_line, fa_indent) = line("[factory-a]");
    let (d1_line, d1_indent) = line("tree-dev-1");
    let (fd_line, fd_indent) = line("fa-dev-1");
    assert!(root_line < int_line && root_line < fa_line, "{text}");
    assert!(
        int_indent > root_indent && fa_indent > root_indent,
        "{text}"
    );
    assert!(d1_line > int_line && d1_indent > int_indent, "{text}");
    assert!(fd_line > fa_line && fd_indent > fa_indent, "{text}");

    // --json, given after the subcommand, with the home from IOTCA_HOME.
    let out = iotca()
        .env("IOTCA_HOME", &h.dir)
        .args(["ca", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("ca list --json is one JSON document");
    let json = v.to_string();
    for needle in ["tree-dev-1", "tree-dev-2", "fa-dev-1", "factory-a"] {
        assert!(
            json.contains(needle),
            "ca list --json lacks {needle}: {json}"
        );
    }
    // The same with --home after the subcommand.
    let out = iotca()
        .args(["ca", "list", "--home", s(&h.dir), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        v
    );
    // A home with an empty certs/ lists nothing, successfully, and says how to start.
    let empty = Home::new();
    fs::create_dir_all(empty.p("certs")).unwrap();
    let run = empty.ok(&["ca", "list"]);
    assert!(run.stdout.contains("ca init"), "{}", run.stdout);
    let e: serde_json::Value =
        serde_json::from_str(&empty.ok(&["ca", "list", "--json"]).stdout).unwrap();
    assert_eq!(e["cas"], serde_json::json!([]), "{e}");
}

#[test]
fn ca_list_of_a_home_without_certs_dir_says_how_to_start() {
    // An existing, empty directory (no certs/ yet) is an empty home: `ca list`
    // prints its "(no certificates; make a PKI with `iotca ca init`)" line and
    // exits 0, as it does for an empty certs/, instead of
    // "iotca: error: <home>/certs: No such file or directory (os error 2)".
    let empty = Home::new();
    fs::create_dir_all(&empty.dir).unwrap();
    let run = empty.ok(&["ca", "list"]);
    assert!(run.stdout.contains("ca init"), "{}", run.stdout);
    let e: serde_json::Value =
        serde_json::from_str(&empty.ok(&["ca", "list", "--json"]).stdout).unwrap();
    assert_eq!(e["cas"], serde_json::json!([]), "{e}");
}

#[test]
fn templates_override_the_builtin_profiles() {
    let h = Home::new();
    let list = h.ok(&["template", "list"]).stdout;
    for name in [
        "root-ca",
        "intermediate-ca",
        "device",
        "verification",
        "edge-ca",
    ] {
        assert!(list.contains(name), "template list lacks {name}: {list}");
    }
    let device = h.ok(&["template", "show", "device"]).stdout;
    let custom = device.replace("days = 365", "days = 10");
    assert_ne!(custom, device, "the device template sets days = 365");
    let device_file = h.scratch("device.toml");
    fs::write(&device_file, custom).unwrap();
    let root = h.ok(&["template", "show", "root-ca"]).stdout;
    let custom = root.replace("# pathlen = 2", "pathlen = 1");
    assert_ne!(custom, root, "the root template documents pathlen");
    let root_file = h.scratch("root.toml");
    fs::write(&root_file, custom).unwrap();

    let t0 = now();
    h.init(&["--template", s(&root_file)]);
    h.ok(&["device", "create", "tpl-1", "--template", s(&device_file)]);
    let t1 = now();
    let root = h.cert(ROOT_CERT);
    assert_eq!(root.ext(BC).value, "CA:TRUE, pathlen:1");
    let dev = h.cert(&dev_cert("tpl-1"));
    check_profile(&dev, Role::Leaf { rsa: false }, "tpl-1", &h.cert(INT_CERT));
    check_validity(&dev, 10, t0, t1);
    assert_verifies(
        h.tmp.path(),
        &h.p(ROOT_CERT),
        &[&h.p(INT_CERT)],
        &h.p(&dev_cert("tpl-1")),
    );

    // Unknown or unreadable templates: exit 2, nothing written.
    h.refused(&["template", "show", "no-such-template"]);
    let broken = h.scratch("broken.toml");
    fs::write(&broken, "days = \"many\"\n[[[").unwrap();
    for f in [broken, h.scratch("missing.toml")] {
        let before = snapshot(&h.dir);
        let err = h.refused(&["device", "create", "tpl-2", "--template", s(&f)]);
        assert!(
            err.contains(s(&f)),
            "the error must name the template: {err}"
        );
        assert_unchanged(&before, &h.dir, "device create with a bad template");
    }
}

#[test]
fn device_create_json_and_quiet() {
    let h = Home::new();
    h.init(&["-q"]);
    let run = h.ok(&["device", "create", "j-1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("--json is JSON");
    assert!(v.to_string().contains("j-1"), "{v}");
    let run = h.ok(&["-q", "device", "create", "q-1"]);
    assert!(run.stdout.is_empty(), "-q prints nothing: {}", run.stdout);
}

/// The commands listed under `Commands:` in a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() || !line.starts_with(' ') {
            break;
        }
        if line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.split_whitespace().next().unwrap().to_string();
            if name != "help" {
                out.push(name);
            }
        }
    }
    out
}

fn help_of(path: &[String]) -> String {
    let out = iotca().args(path).arg("--help").output().unwrap();
    assert!(out.status.success(), "iotca {path:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every subcommand's `--help`, walking the tree from `iotca --help`.
fn help_tree() -> Vec<(Vec<String>, String)> {
    let mut todo: Vec<Vec<String>> = subcommands(&help_of(&[]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    assert!(todo.len() >= 5, "iotca --help lists the commands");
    let mut all = Vec::new();
    while let Some(path) = todo.pop() {
        let help = help_of(&path);
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        all.push((path, help));
    }
    all.sort();
    all
}

#[test]
fn foundation_commands_help_has_examples() {
    let top = help_of(&[]);
    assert!(top.contains("EXAMPLES"), "iotca --help");
    let all = help_tree();
    let foundation: &[&[&str]] = &[
        &["ca", "init"],
        &["ca", "intermediate"],
        &["ca", "list"],
        &["device", "create"],
        &["verification-cert"],
        &["inspect"],
        &["template", "show"],
    ];
    for want in foundation {
        let (_, help) = all
            .iter()
            .find(|(p, _)| p.iter().map(String::as_str).eq(want.iter().copied()))
            .unwrap_or_else(|| panic!("iotca --help does not list {want:?}"));
        assert!(
            help.contains("EXAMPLES"),
            "iotca {want:?} --help lacks EXAMPLES"
        );
    }
}

#[test]
fn every_subcommand_help_has_examples() {
    let missing: Vec<String> = help_tree()
        .into_iter()
        .filter(|(_, help)| !help.contains("EXAMPLES"))
        .map(|(p, _)| p.join(" "))
        .collect();
    assert!(
        missing.is_empty(),
        "--help without EXAMPLES: {}",
        missing.join("; ")
    );
}

// ---------------------------------------------------------------------------
// Concurrency: the lock serialises writers
// ---------------------------------------------------------------------------

#[test]
fn concurrent_runs_on_one_home_do_not_corrupt_it() {
    let h = Home::new();
    // Two ca init at once on a fresh home: exactly one wins, the other refuses.
    let spawn = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("--home")
            .arg(&h.dir)
            .args(args)
            .env_remove("IOTCA_HOME")
            .env_remove("IOTCA_PASSPHRASE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&["ca", "init"]);
    let b = spawn(&["ca", "init"]);
    let codes: Vec<Option<i32>> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, vec![Some(0), Some(2)], "{codes:?}");
    assert_key_matches(&h.p(ROOT_KEY), &h.p(ROOT_CERT));
    assert_key_matches(&h.p(INT_KEY), &h.p(INT_CERT));
    assert_verifies(h.tmp.path(), &h.p(ROOT_CERT), &[], &h.p(INT_CERT));
    // Four device batches at once: all succeed, every device is whole.
    let batches: Vec<Vec<String>> = (0..4)
        .map(|b| (0..5).map(|i| format!("par-{b}-{i}")).collect())
        .collect();
    let children: Vec<Child> = batches
        .iter()
        .map(|ids| {
            let mut args = vec!["device", "create"];
            args.extend(ids.iter().map(String::as_str));
            spawn(&args)
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for id in batches.iter().flatten() {
        assert_key_matches(&h.p(&dev_key(id)), &h.p(&dev_cert(id)));
        assert_chain_file(
            &h.p(&dev_chain(id)),
            &[&h.p(&dev_cert(id)), &h.p(INT_CERT), &h.p(ROOT_CERT)],
        );
    }
}

// ---------------------------------------------------------------------------
// TLS client authentication with openssl s_server / s_client
// ---------------------------------------------------------------------------

fn wait_timeout(child: &mut Child, limit: StdDuration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(StdDuration::from_millis(25));
    }
}

/// Kills the server if a test fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one handshake did.
#[derive(Debug)]
struct Handshake {
    accepted: bool,
    server_log: String,
    client_log: String,
}

/// One TLS connection on 127.0.0.1: `openssl s_server -Verify 2
/// -verify_return_error -CAfile trust` (a web page once the client's
/// certificate verifies) against `openssl s_client` presenting a device's
/// certificate, its full chain and its key. Bounded: every process is killed
/// after 20 seconds.
fn handshake(
    dir: &Path,
    trust: &Path,
    server: (&Path, &Path),
    device: (&Path, &Path, &Path),
    tls_version: &str,
) -> Handshake {
    let srv_out = dir.join("s_server.out");
    let srv_err = dir.join("s_server.err");
    let mut attempt = 0;
    let (mut srv, port) = loop {
        attempt += 1;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-naccept",
                "1",
                "-www",
                "-Verify",
                "2",
                "-verify_return_error",
            ])
            .arg("-CAfile")
            .arg(trust)
            .arg("-cert")
            .arg(server.0)
            .arg("-key")
            .arg(server.1)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&srv_out).unwrap())
            .stderr(fs::File::create(&srv_err).unwrap())
            .spawn()
            .expect("openssl s_server");
        let mut srv = KillOnDrop(child);
        let start = Instant::now();
        let ready = loop {
            if fs::read_to_string(&srv_out)
                .unwrap_or_default()
                .contains("ACCEPT")
            {
                break true;
            }
            if srv.0.try_wait().unwrap().is_some() || start.elapsed() > StdDuration::from_secs(20) {
                break false;
            }
            std::thread::sleep(StdDuration::from_millis(25));
        };
        if ready {
            break (srv, port);
        }
        let _ = srv.0.kill();
        assert!(
            attempt < 5,
            "openssl s_server did not start: {}",
            fs::read_to_string(&srv_err).unwrap_or_default()
        );
    };
    let cli_out = dir.join("s_client.out");
    let cli_err = dir.join("s_client.err");
    let mut cli = std::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", tls_version, "-ign_eof"])
        .arg("-CAfile")
        .arg(server.0)
        .arg("-verify_return_error")
        .arg("-cert")
        .arg(device.0)
        .arg("-cert_chain")
        .arg(device.1)
        .arg("-key")
        .arg(device.2)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&cli_out).unwrap())
        .stderr(fs::File::create(&cli_err).unwrap())
        .spawn()
        .expect("openssl s_client");
    {
        let mut stdin = cli.stdin.take().unwrap();
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let cli_status = wait_timeout(&mut cli, StdDuration::from_secs(20));
    let srv_status = wait_timeout(&mut srv.0, StdDuration::from_secs(20));
    let server_log = format!(
        "{}{}",
        fs::read_to_string(&srv_out).unwrap_or_default(),
        fs::read_to_string(&srv_err).unwrap_or_default()
    );
    let client_stdout = fs::read_to_string(&cli_out).unwrap_or_default();
    let client_log = format!(
        "{client_stdout}{}",
        fs::read_to_string(&cli_err).unwrap_or_default()
    );
    assert!(cli_status.is_some(), "s_client timed out:\n{client_log}");
    assert!(srv_status.is_some(), "s_server timed out:\n{server_log}");
    let accepted = cli_status.is_some_and(|s| s.success())
        && client_stdout.contains("HTTP/1.0 200 ok")
        && server_log.contains("1 server accepts that finished");
    Handshake {
        accepted,
        server_log,
        client_log,
    }
}

#[test]
fn tls_client_auth_accepts_own_devices_and_rejects_another_roots() {
    let ours = Home::new();
    ours.init(&[]);
    ours.ok(&["device", "create", "tls-dev-1"]);
    ours.ok(&["device", "create", "tls-rsa-1", "--algorithm", "rsa2048"]);
    let theirs = Home::new();
    theirs.init(&[]);
    theirs.ok(&["device", "create", "tls-dev-1"]);

    // The server's own certificate: anything, made by openssl.
    let dir = ours.tmp.path();
    let (skey, scert) = (dir.join("server.key.pem"), dir.join("server.cert.pem"));
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-days",
        "2",
        "-keyout",
        s(&skey),
        "-out",
        s(&scert),
    ]);
    let trust = ours.p(ROOT_CERT);
    let device = |h: &Home, id: &str| -> (PathBuf, PathBuf, PathBuf) {
        (h.p(&dev_cert(id)), h.p(&dev_chain(id)), h.p(&dev_key(id)))
    };
    for (id, version) in [
        ("tls-dev-1", "-tls1_2"),
        ("tls-dev-1", "-tls1_3"),
        ("tls-rsa-1", "-tls1_2"),
    ] {
        let d = device(&ours, id);
        let hs = handshake(dir, &trust, (&scert, &skey), (&d.0, &d.1, &d.2), version);
        assert!(
            hs.accepted,
            "{id} ({version}) must be accepted by a server trusting its root\nserver:\n{}\nclient:\n{}",
            hs.server_log, hs.client_log
        );
        assert!(
            hs.server_log.contains(&format!("CN = {id}")),
            "{}",
            hs.server_log
        );
    }
    // A device of another iotca root, with the same CN, is rejected.
    for version in ["-tls1_2", "-tls1_3"] {
        let d = device(&theirs, "tls-dev-1");
        let hs = handshake(dir, &trust, (&scert, &skey), (&d.0, &d.1, &d.2), version);
        assert!(
            !hs.accepted,
            "a device from another root must be rejected ({version})\nserver:\n{}",
            hs.server_log
        );
        assert!(
            hs.server_log.contains("certificate verify failed")
                || hs.server_log.contains("verify error"),
            "the server rejected it for its certificate: {}",
            hs.server_log
        );
    }
}

// ---------------------------------------------------------------------------
// pkilint (RFC 5280 linter)
// ---------------------------------------------------------------------------

fn pkilint_available() -> bool {
    std::process::Command::new("lint_pkix_cert")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `lint_pkix_cert lint -s WARNING -f JSON FILE`: the findings, empty when clean.
fn pkilint(path: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("lint_pkix_cert")
        .args(["lint", "-s", "WARNING", "-f", "JSON"])
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "lint_pkix_cert on {}: not JSON ({e}): {stdout}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let results = v["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        out.status.success(),
        results.is_empty(),
        "lint_pkix_cert exit status vs findings for {}: {stdout}",
        path.display()
    );
    results
}

#[test]
fn pkilint_reports_nothing_at_warning_or_above() {
    if !pkilint_available() {
        assert!(
            std::env::var_os("IOTCA_REQUIRE_PKILINT").is_none(),
            "IOTCA_REQUIRE_PKILINT is set but lint_pkix_cert is not on PATH"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED pkilint_reports_nothing_at_warning_or_above: lint_pkix_cert is not installed \
             (pip install pkilint, or run .ci/run which installs it)"
        );
        return;
    }
    let mut findings = Vec::new();
    let mut linted = 0;
    for alg in ["p256", "rsa2048"] {
        let h = Home::new();
        h.init(&["--algorithm", alg]);
        h.ok(&[
            "ca",
            "intermediate",
            "factory-a",
            "--pathlen",
            "0",
            "--algorithm",
            alg,
        ]);
        h.ok(&["device", "create", "lint-dev-1", "--algorithm", alg]);
        h.ok(&[
            "device",
            "create",
            "lint-dev-2",
            "--ca",
            "factory-a",
            "--algorithm",
            alg,
        ]);
        let mut files: Vec<PathBuf> = vec![
            h.p(ROOT_CERT),
            h.p(INT_CERT),
            h.p("certs/factory-a.cert.pem"),
            h.p(&dev_cert("lint-dev-1")),
            h.p(&dev_cert("lint-dev-2")),
        ];
        for (code, ca) in [("ROOTPOP01", "root"), ("INTPOP02", "intermediate")] {
            h.ok(&["verification-cert", code, "--ca", ca, "--algorithm", alg]);
            let keep = h.scratch(&format!("verification-{ca}.pem"));
            fs::copy(h.p(VERIFICATION_CERT), &keep).unwrap();
            files.push(keep);
        }
        for f in files {
            linted += 1;
            for r in pkilint(&f) {
                findings.push(format!("{alg} {}: {r}", f.display()));
            }
        }
    }
    assert_eq!(linted, 14);
    assert!(
        findings.is_empty(),
        "pkilint findings at WARNING or above:\n{}",
        findings.join("\n")
    );
}

/// Review finding: `--allow-any-cn` lifts the registration-ID rule and only
/// keeps IDs that are safe file names.
#[test]
fn allow_any_cn_accepts_any_safe_file_name() {
    let h = Home::new();
    h.init(&[]);
    h.refused(&["device", "create", "a@b"]);
    h.ok(&[
        "device",
        "create",
        "a@b",
        "dev+1",
        "x_",
        "--allow-any-cn",
        "-q",
    ]);
    for id in ["a@b", "dev+1", "x_"] {
        let c = h.cert(&format!("certs/{id}.cert.pem"));
        // openssl prints the subject RFC 2253-escaped.
        assert_eq!(c.subject, format!("CN={}", id.replace('+', "\\+")));
    }
    for bad in ["../x", "a/b", "a\\b", ".hidden", "déjà"] {
        h.refused(&["device", "create", bad, "--allow-any-cn"]);
    }
}

/// Review finding: a CA under a pathlen-0 CA could never sign a device that chains.
#[test]
fn a_ca_under_a_pathlen_zero_ca_is_refused() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["ca", "intermediate", "factory-a", "--pathlen", "0", "-q"]);
    let err = h.refused(&["ca", "intermediate", "sub-b", "--parent", "factory-a"]);
    assert!(
        err.contains("pathlen 0") && err.contains("--ca factory-a"),
        "{err}"
    );
    assert!(!h.p("certs/sub-b.cert.pem").exists());
    // pathlen 1 leaves room for exactly one CA below.
    h.ok(&["ca", "intermediate", "line-1", "--pathlen", "1", "-q"]);
    h.ok(&["ca", "intermediate", "line-1a", "--parent", "line-1", "-q"]);
    h.refused(&["ca", "intermediate", "line-1b", "--parent", "line-1a"]);
}

/// Review finding: a closed pipe (`| head`) ends iotca quietly, with exit 0.
#[test]
fn a_closed_pipe_is_not_an_error() {
    let h = Home::new();
    h.init(&[]);
    let ids = h.scratch("ids.txt");
    let list: String = (0..2000).map(|i| format!("pipe-{i:05}\n")).collect();
    std::fs::write(&ids, list).unwrap();
    h.ok(&[
        "device",
        "create",
        "--ids-file",
        ids.to_str().unwrap(),
        "-q",
    ]);
    let script = format!(
        "'{bin}' --home '{home}' ca list --json | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin = assert_cmd::cargo::cargo_bin("iotca").display(),
        home = h.dir.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{err}");
    assert!(!err.contains("error"), "{err}");
}

/// Review finding: DPS matches registration IDs case-insensitively, so a
/// device whose ID differs only in case from an existing one is refused.
#[test]
fn a_device_id_differing_only_in_case_from_an_existing_one_is_refused() {
    let h = Home::new();
    h.init(&[]);
    h.ok(&["device", "create", "Sensor-UP", "-q"]);
    let err = h.refused(&["device", "create", "sensor-up"]);
    assert!(err.contains("Sensor-UP") && err.contains("case"), "{err}");
    assert!(!h.p("certs/sensor-up.cert.pem").exists());
    assert!(!h.p("private/sensor-up.key.pem").exists());
    h.ok(&["device", "create", "Sensor-UP", "--force", "-q"]);
}
