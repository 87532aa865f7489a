//! certGen.sh and OpenSSL compatibility (issue 6, DESIGN sections 3 and 4):
//! encrypted CA keys, every key format openssl writes, adopting a
//! certGen.sh directory built here with openssl, and PFX files read back by
//! openssl and by pyca/cryptography.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::util::{
    CHAIN, INT_CERT, INT_KEY, IOTCA, ROOT_CERT, ROOT_KEY, cert_text, iotca, issuer, ok, openssl,
    openssl_ok, run, show, stderr, stdout, subject, verifies,
};

const ROOT_CN: &str = "Azure IoT Hub CA Cert Test Only";
const INT_CN: &str = "Azure IoT Hub Intermediate Cert Test Only";

fn pem_certs_in(text: &str) -> Vec<String> {
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|b| {
            b.split("-----END CERTIFICATE-----")
                .next()
                .unwrap()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect()
        })
        .collect()
}

fn pem_certs(path: &Path) -> Vec<String> {
    pem_certs_in(&fs::read_to_string(path).unwrap())
}

fn cert_pubkey(dir: &Path, cert: &str) -> String {
    openssl_ok(&["x509", "-in", cert, "-noout", "-pubkey"], dir)
}

fn key_pubkey(dir: &Path, key: &str, pass: Option<&str>) -> String {
    let mut args = vec!["pkey", "-in", key, "-pubout"];
    if let Some(p) = pass {
        args.extend(["-passin", p]);
    }
    openssl_ok(&args, dir)
}

/// The hex bytes after a line naming an extension in `openssl x509 -text`,
/// e.g. the SKI, or the keyid of an AKI; upper case, no colons.
fn key_id(text: &str, extension: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.contains(extension));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {extension} in\n{text}"));
    let line = lines.next().unwrap().trim();
    let line = line.strip_prefix("keyid:").unwrap_or(line);
    let hex: String = line
        .split(':')
        .take_while(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert!(!hex.is_empty(), "no key id after {extension} in\n{text}");
    hex.to_ascii_uppercase()
}

/// Every file under `dir` with its bytes (the lock file left out).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if !p.ends_with(".iotca.lock") {
                let bytes = fs::read(&p).unwrap_or_default();
                out.push((p.strip_prefix(base).unwrap().to_path_buf(), bytes));
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

fn write_secret(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

// ---------------------------------------------------------------------------
// (a) Encrypted CA keys

/// A P-256 home whose CA keys are encrypted with the first line of `pass.txt`.
fn encrypted_home() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("pki");
    let pass = t.path().join("pass.txt");
    // Only the first line counts, without its line ending (openssl -passin file:).
    write_secret(
        &pass,
        "correct horse battery\nsecond line is not part of it\n",
    );
    ok(iotca(&home)
        .args(["ca", "init", "--passphrase-file"])
        .arg(&pass));
    (t, home, pass)
}

#[test]
fn encrypted_ca_keys_are_pkcs8_pbes2_pbkdf2_sha256_aes256_and_open_with_openssl() {
    let (t, home, pass) = encrypted_home();
    let passin = format!("file:{}", pass.display());
    for (key, cert) in [(ROOT_KEY, ROOT_CERT), (INT_KEY, INT_CERT)] {
        let pem = fs::read_to_string(home.join(key)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key}: {pem}"
        );
        assert_eq!(
            fs::metadata(home.join(key)).unwrap().permissions().mode() & 0o777,
            0o600
        );
        openssl_ok(&["pkey", "-in", key, "-passin", &passin, "-noout"], &home);
        let text = openssl_ok(
            &["pkey", "-in", key, "-passin", &passin, "-text", "-noout"],
            &home,
        );
        assert!(text.contains("Private-Key"), "{text}");
        assert_eq!(
            key_pubkey(&home, key, Some(&passin)),
            cert_pubkey(&home, cert),
            "{key} does not belong to {cert}"
        );
        assert!(
            !openssl(
                &["pkey", "-in", key, "-passin", "pass:wrong", "-noout"],
                &home
            )
            .status
            .success(),
            "openssl opened {key} with a wrong passphrase"
        );
        let asn1 = openssl_ok(&["asn1parse", "-in", key], &home);
        for what in ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"] {
            assert!(asn1.contains(what), "{key} lacks {what}:\n{asn1}");
        }
        // The iteration count: the first INTEGER after the PBKDF2 OID.
        let iterations = asn1
            .lines()
            .skip_while(|l| !l.contains("PBKDF2"))
            .find(|l| l.contains("INTEGER"))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or_else(|| panic!("no iteration count in\n{asn1}"));
        assert!(iterations >= 10_000, "{iterations} PBKDF2 iterations");
    }
    drop(t);
}

#[test]
fn signing_without_the_passphrase_exits_2_names_the_key_and_writes_nothing() {
    let (_t, home, _pass) = encrypted_home();
    let before = snapshot(&home);
    let o = run(iotca(&home).args(["device", "create", "sensor-1"]));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains(INT_KEY), "the key file is not named: {err}");
    assert!(
        err.contains("--passphrase-file") && err.contains("IOTCA_PASSPHRASE"),
        "does not say how to give the passphrase: {err}"
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one sentence expected: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(snapshot(&home), before, "something was written");

    // Every command that signs asks for it.
    for args in [
        &["device", "create", "sensor-1", "--ca", "root"][..],
        &["verification-cert", "ABCDEF"][..],
        &["ca", "intermediate", "line-7"][..],
    ] {
        let o = run(iotca(&home).args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", show(&o));
        assert!(stderr(&o).contains("passphrase"), "{args:?}\n{}", show(&o));
        assert_eq!(snapshot(&home), before, "{args:?} wrote something");
    }
}

#[test]
fn a_wrong_passphrase_exits_2_and_writes_nothing() {
    let (t, home, _pass) = encrypted_home();
    let before = snapshot(&home);
    let o = run(iotca(&home)
        .args(["device", "create", "sensor-1"])
        .env("IOTCA_PASSPHRASE", "wrong horse"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains(INT_KEY) && err.contains("passphrase"), "{err}");
    assert_eq!(snapshot(&home), before);
    let wrong = t.path().join("wrong.txt");
    write_secret(&wrong, "correct horse battery staple\n");
    let o = run(iotca(&home)
        .args(["device", "create", "sensor-1", "--passphrase-file"])
        .arg(&wrong));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert_eq!(snapshot(&home), before);
}

#[test]
fn an_empty_passphrase_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("pki");
    let empty = t.path().join("empty.txt");
    write_secret(&empty, "\nsecond line\n");
    let o = run(iotca(&home)
        .args(["ca", "init", "--passphrase-file"])
        .arg(&empty));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("empty.txt"), "{}", show(&o));
    assert!(
        !home.join(ROOT_KEY).exists(),
        "a CA key was written under an empty passphrase"
    );
}

#[test]
fn with_the_passphrase_devices_are_issued() {
    let (_t, home, pass) = encrypted_home();
    ok(iotca(&home)
        .args(["device", "create", "sensor-1"])
        .env("IOTCA_PASSPHRASE", "correct horse battery"));
    ok(iotca(&home)
        .args(["device", "create", "sensor-2", "--passphrase-file"])
        .arg(&pass));
    for id in ["sensor-1", "sensor-2"] {
        let cert = format!("certs/{id}.cert.pem");
        assert_eq!(subject(&home, &cert), format!("CN={id}"));
        assert!(verifies(&home, ROOT_CERT, Some(INT_CERT), &cert));
        // Device keys are not encrypted (device software reads them as is).
        let key = fs::read_to_string(home.join(format!("private/{id}.key.pem"))).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}

// ---------------------------------------------------------------------------
// (b) Reading keys in every format openssl writes

const OPENSSL_CNF: &str = "\
[ req ]
distinguished_name = req_dn
string_mask = utf8only
default_md = sha256
prompt = no

[ req_dn ]
CN = placeholder

[ ca ]
default_ca = CA_root

[ CA_root ]
dir = @DIR@
new_certs_dir = $dir/newcerts
database = $dir/index.txt
serial = $dir/serial
private_key = $dir/private/azure-iot-test-only.root.ca.key.pem
certificate = $dir/certs/azure-iot-test-only.root.ca.cert.pem
default_md = sha256
default_days = 30
policy = policy_loose
unique_subject = no

[ CA_int ]
dir = @DIR@
new_certs_dir = $dir/newcerts
database = $dir/index.txt
serial = $dir/serial
private_key = $dir/private/azure-iot-test-only.intermediate.key.pem
certificate = $dir/certs/azure-iot-test-only.intermediate.cert.pem
default_md = sha256
default_days = 30
policy = policy_loose
unique_subject = no

[ policy_loose ]
commonName = supplied

[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign

[ v3_intermediate_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign

[ usr_cert ]
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
";

/// An empty certGen.sh-style directory with its openssl configuration.
fn openssl_dir() -> (tempfile::TempDir, PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("certificates");
    for sub in ["certs", "private", "csr", "newcerts"] {
        fs::create_dir_all(d.join(sub)).unwrap();
    }
    fs::write(d.join("index.txt"), "").unwrap();
    fs::write(d.join("serial"), "01\n").unwrap();
    let cnf = t.path().join("openssl.cnf");
    fs::write(&cnf, OPENSSL_CNF.replace("@DIR@", d.to_str().unwrap())).unwrap();
    let cnf = cnf.to_str().unwrap().to_string();
    (t, d, cnf)
}

/// A self-signed root (30 days) over the key already in `ROOT_KEY`.
fn openssl_root(d: &Path, cnf: &str, passin: Option<&str>) {
    let mut args = vec![
        "req", "-new", "-x509", "-config", cnf, "-key", ROOT_KEY, "-subj",
    ];
    let subj = format!("/CN={ROOT_CN}");
    args.push(&subj);
    args.extend([
        "-days",
        "30",
        "-sha256",
        "-extensions",
        "v3_ca",
        "-out",
        ROOT_CERT,
    ]);
    if let Some(p) = passin {
        args.extend(["-passin", p]);
    }
    openssl_ok(&args, d);
}

/// Issues `dev-1` from the openssl-made root and checks it with openssl.
fn issue_from_openssl_root(d: &Path, passphrase: Option<&str>) -> Output {
    let mut c = iotca(d);
    c.args(["device", "create", "dev-1", "--ca", "root"]);
    if let Some(p) = passphrase {
        c.env("IOTCA_PASSPHRASE", p);
    }
    run(&mut c)
}

fn check_dev_1(d: &Path, o: &Output) {
    assert!(o.status.success(), "{}", show(o));
    assert_eq!(subject(d, "certs/dev-1.cert.pem"), "CN=dev-1");
    assert_eq!(issuer(d, "certs/dev-1.cert.pem"), format!("CN={ROOT_CN}"));
    assert!(verifies(d, ROOT_CERT, None, "certs/dev-1.cert.pem"));
}

#[test]
fn reads_pkcs1_rsa_private_key() {
    let (_t, d, cnf) = openssl_dir();
    openssl_ok(&["genrsa", "-traditional", "-out", ROOT_KEY, "2048"], &d);
    assert!(
        fs::read_to_string(d.join(ROOT_KEY))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    openssl_root(&d, &cnf, None);
    let o = issue_from_openssl_root(&d, None);
    check_dev_1(&d, &o);
    assert!(cert_text(&d, "certs/dev-1.cert.pem").contains("sha256WithRSAEncryption"));
}

#[test]
fn reads_sec1_ec_private_keys() {
    for (curve, sig) in [
        ("prime256v1", "ecdsa-with-SHA256"),
        ("secp384r1", "ecdsa-with-SHA384"),
    ] {
        let (_t, d, cnf) = openssl_dir();
        openssl_ok(
            &["ecparam", "-genkey", "-name", curve, "-out", ROOT_KEY],
            &d,
        );
        let pem = fs::read_to_string(d.join(ROOT_KEY)).unwrap();
        assert!(pem.contains("-----BEGIN EC PRIVATE KEY-----"), "{pem}");
        openssl_root(&d, &cnf, None);
        let o = issue_from_openssl_root(&d, None);
        check_dev_1(&d, &o);
        let text = cert_text(&d, "certs/dev-1.cert.pem");
        assert!(text.contains(sig), "{curve}: {text}");
    }
}

#[test]
fn reads_encrypted_pkcs8_as_openssl3_writes_it() {
    let (_t, d, cnf) = openssl_dir();
    openssl_ok(
        &[
            "genrsa",
            "-aes256",
            "-passout",
            "pass:1234",
            "-out",
            ROOT_KEY,
            "2048",
        ],
        &d,
    );
    assert!(
        fs::read_to_string(d.join(ROOT_KEY))
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    openssl_root(&d, &cnf, Some("pass:1234"));
    let before = snapshot(&d);
    let o = issue_from_openssl_root(&d, None);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains(ROOT_KEY), "{}", show(&o));
    assert_eq!(snapshot(&d), before);
    let o = issue_from_openssl_root(&d, Some("1234"));
    check_dev_1(&d, &o);
}

#[test]
fn legacy_proc_type_encrypted_keys_are_refused_with_how_to_convert() {
    let (_t, d, cnf) = openssl_dir();
    openssl_ok(
        &[
            "genrsa",
            "-traditional",
            "-aes256",
            "-passout",
            "pass:1234",
            "-out",
            ROOT_KEY,
            "2048",
        ],
        &d,
    );
    assert!(
        fs::read_to_string(d.join(ROOT_KEY))
            .unwrap()
            .contains("Proc-Type: 4,ENCRYPTED")
    );
    openssl_root(&d, &cnf, Some("pass:1234"));
    let before = snapshot(&d);
    let o = issue_from_openssl_root(&d, Some("1234"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains(ROOT_KEY), "{err}");
    assert!(
        err.contains("openssl pkcs8 -topk8"),
        "no conversion hint: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(snapshot(&d), before, "something was written");
    // The conversion it suggests works.
    openssl_ok(
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            "hmacWithSHA256",
            "-in",
            ROOT_KEY,
            "-passin",
            "pass:1234",
            "-passout",
            "pass:1234",
            "-out",
            "private/root.key.new",
        ],
        &d,
    );
    fs::rename(d.join("private/root.key.new"), d.join(ROOT_KEY)).unwrap();
    let o = issue_from_openssl_root(&d, Some("1234"));
    check_dev_1(&d, &o);
}

#[test]
fn other_pkcs8_encryption_schemes_are_refused_with_how_to_convert() {
    for scheme in [&["-v2", "des3"][..], &["-v1", "PBE-SHA1-3DES"][..]] {
        let (_t, d, cnf) = openssl_dir();
        openssl_ok(&["genrsa", "-out", "private/plain.pem", "2048"], &d);
        let mut args = vec![
            "pkcs8",
            "-topk8",
            "-in",
            "private/plain.pem",
            "-passout",
            "pass:1234",
            "-out",
            ROOT_KEY,
        ];
        args.extend(scheme);
        openssl_ok(&args, &d);
        fs::remove_file(d.join("private/plain.pem")).unwrap();
        openssl_root(&d, &cnf, Some("pass:1234"));
        let before = snapshot(&d);
        let o = issue_from_openssl_root(&d, Some("1234"));
        assert_eq!(o.status.code(), Some(2), "{scheme:?}\n{}", show(&o));
        let err = stderr(&o);
        assert!(err.contains(ROOT_KEY), "{err}");
        assert_eq!(snapshot(&d), before);
        assert!(
            err.contains("openssl pkcs8 -topk8"),
            "{scheme:?}: no conversion hint: {err}"
        );
    }
}

// ---------------------------------------------------------------------------
// (c) A certGen.sh directory, built with openssl, adopted by iotca

/// What certGen.sh's create_root_and_intermediate and
/// create_device_certificate_from_intermediate leave (RSA 2048 here to stay
/// fast): keys encrypted with 1234, 30-day CAs, SHA-1 key identifiers.
fn certgen_dir() -> (tempfile::TempDir, PathBuf, String) {
    let (t, d, cnf) = openssl_dir();
    let genkey = |out: &str| {
        openssl_ok(
            &[
                "genrsa",
                "-aes256",
                "-passout",
                "pass:1234",
                "-out",
                out,
                "2048",
            ],
            &d,
        );
        fs::set_permissions(d.join(out), fs::Permissions::from_mode(0o400)).unwrap();
    };
    genkey(ROOT_KEY);
    openssl_root(&d, &cnf, Some("pass:1234"));
    genkey(INT_KEY);
    let int_subj = format!("/CN={INT_CN}");
    openssl_ok(
        &[
            "req",
            "-new",
            "-sha256",
            "-config",
            &cnf,
            "-passin",
            "pass:1234",
            "-subj",
            &int_subj,
            "-key",
            INT_KEY,
            "-out",
            "csr/azure-iot-test-only.intermediate.csr.pem",
        ],
        &d,
    );
    openssl_ok(
        &[
            "ca",
            "-batch",
            "-config",
            &cnf,
            "-name",
            "CA_root",
            "-passin",
            "pass:1234",
            "-extensions",
            "v3_intermediate_ca",
            "-days",
            "30",
            "-notext",
            "-md",
            "sha256",
            "-in",
            "csr/azure-iot-test-only.intermediate.csr.pem",
            "-out",
            INT_CERT,
        ],
        &d,
    );
    let chain = format!(
        "{}{}",
        fs::read_to_string(d.join(INT_CERT)).unwrap(),
        fs::read_to_string(d.join(ROOT_CERT)).unwrap()
    );
    fs::write(d.join(CHAIN), chain).unwrap();
    // An existing new-device, as create_device_certificate_from_intermediate leaves it.
    openssl_ok(
        &["genrsa", "-out", "private/new-device.key.pem", "2048"],
        &d,
    );
    openssl_ok(
        &[
            "req",
            "-new",
            "-sha256",
            "-config",
            &cnf,
            "-key",
            "private/new-device.key.pem",
            "-subj",
            "/CN=sensor-thl-001",
            "-out",
            "csr/new-device.csr.pem",
        ],
        &d,
    );
    openssl_ok(
        &[
            "ca",
            "-batch",
            "-config",
            &cnf,
            "-name",
            "CA_int",
            "-passin",
            "pass:1234",
            "-extensions",
            "usr_cert",
            "-days",
            "30",
            "-notext",
            "-md",
            "sha256",
            "-in",
            "csr/new-device.csr.pem",
            "-out",
            "certs/new-device.cert.pem",
        ],
        &d,
    );
    openssl_ok(
        &[
            "pkcs12",
            "-export",
            "-in",
            "certs/new-device.cert.pem",
            "-inkey",
            "private/new-device.key.pem",
            "-password",
            "pass:1234",
            "-out",
            "certs/new-device.cert.pfx",
        ],
        &d,
    );
    // Sanity: this is the directory certGen.sh would have made.
    assert!(verifies(
        &d,
        ROOT_CERT,
        Some(INT_CERT),
        "certs/new-device.cert.pem"
    ));
    (t, d, cnf)
}

#[test]
fn a_certgen_directory_is_a_home() {
    let (_t, d, _cnf) = certgen_dir();
    let keys_before: Vec<Vec<u8>> = [ROOT_KEY, INT_KEY]
        .iter()
        .map(|k| fs::read(d.join(k)).unwrap())
        .collect();
    let o = ok(iotca(&d)
        .args(["device", "create", "sensor-thl-003"])
        .env("IOTCA_PASSPHRASE", "1234"));
    let leaf = "certs/sensor-thl-003.cert.pem";
    let full = "certs/sensor-thl-003-full-chain.cert.pem";
    // Issued under the certGen.sh intermediate (the default CA).
    assert_eq!(subject(&d, leaf), "CN=sensor-thl-003");
    assert_eq!(issuer(&d, leaf), format!("CN={INT_CN}"));
    assert!(verifies(&d, ROOT_CERT, Some(INT_CERT), leaf));
    assert!(verifies(&d, ROOT_CERT, Some(full), leaf));
    assert_eq!(
        pem_certs(&d.join(full)),
        [pem_certs(&d.join(leaf)), pem_certs(&d.join(CHAIN))].concat()
    );
    // Clamped to the intermediate's 30 days, with a warning.
    let end = |c: &str| openssl_ok(&["x509", "-in", c, "-noout", "-enddate"], &d);
    assert_eq!(end(leaf), end(INT_CERT), "notAfter not clamped");
    assert!(
        stderr(&o).to_lowercase().contains("warning"),
        "no clamp warning\n{}",
        show(&o)
    );
    // AKI = the intermediate's SHA-1 SKI, byte for byte.
    let ski = key_id(&cert_text(&d, INT_CERT), "X509v3 Subject Key Identifier");
    assert_eq!(ski.len(), 40, "openssl's SKI is a 20-byte SHA-1: {ski}");
    let aki = key_id(&cert_text(&d, leaf), "X509v3 Authority Key Identifier");
    assert_eq!(aki, ski);
    // The CA keys were only read.
    for (k, before) in [ROOT_KEY, INT_KEY].iter().zip(&keys_before) {
        assert_eq!(&fs::read(d.join(k)).unwrap(), before, "{k} changed");
    }
    // `ca list` shows the CAs, the new device and certGen's new-device.
    let o = ok(iotca(&d).args(["ca", "list"]));
    let text = stdout(&o);
    for what in [ROOT_CN, INT_CN, "sensor-thl-003", "new-device"] {
        assert!(text.contains(what), "ca list lacks {what}:\n{text}");
    }
    let o = ok(iotca(&d).args(["ca", "list", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let flat = json.to_string();
    assert!(flat.contains("\"new-device\""), "{flat}");
    assert!(flat.contains("sensor-thl-003"), "{flat}");
}

#[test]
fn the_certgen_shim_works_in_a_certgen_directory() {
    let (_t, d, _cnf) = certgen_dir();
    let old_device = fs::read(d.join("certs/new-device.cert.pem")).unwrap();
    let shim = |args: &[&str]| {
        let mut c = Command::new("bash");
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/certGen.sh"))
            .args(args)
            .current_dir(&d)
            .stdin(Stdio::null())
            .env("IOTCA_BIN", IOTCA)
            .env("CERTGEN_ALGORITHM", "p256")
            .env_remove("TERM")
            .env_remove("IOTCA_PASSPHRASE");
        c
    };
    // No passphrase given: certGen.sh's 1234 opens the CA keys.
    ok(&mut shim(&[
        "create_device_certificate_from_intermediate",
        "sensor-thl-004",
    ]));
    assert_eq!(
        subject(&d, "certs/new-device.cert.pem"),
        "CN=sensor-thl-004"
    );
    assert!(verifies(
        &d,
        ROOT_CERT,
        Some(INT_CERT),
        "certs/new-device.cert.pem"
    ));
    // certGen's own new-device was archived, not deleted.
    let archived: Vec<PathBuf> = fs::read_dir(d.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path().join("certs/new-device.cert.pem"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(fs::read(&archived[0]).unwrap(), old_device);
    // Root-signed device and the verification certificate too.
    ok(&mut shim(&["create_device_certificate", "sensor-thl-005"]));
    assert!(verifies(&d, ROOT_CERT, None, "certs/new-device.cert.pem"));
    ok(&mut shim(&["create_verification_certificate", "0A1B2C3D"]));
    assert!(verifies(
        &d,
        ROOT_CERT,
        None,
        "certs/verification-code.cert.pem"
    ));
    // The edge CA key is handed over unencrypted, as certGen.sh does.
    ok(&mut shim(&["create_edge_device_certificate", "edge-1"]));
    let key = fs::read_to_string(d.join("private/new-edge-device.key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    assert!(verifies(
        &d,
        ROOT_CERT,
        Some(INT_CERT),
        "certs/new-edge-device.cert.pem"
    ));
}

// ---------------------------------------------------------------------------
// (d) PFX

fn pfx_home() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("pki");
    ok(iotca(&home).args(["ca", "init"]));
    let pw = t.path().join("pfx-password.txt");
    write_secret(&pw, "pfx Pa55 word\nignored second line\n");
    (t, home, pw)
}

/// `openssl pkcs12 -info -nodes` of a PFX: (PEM output, info on stderr).
fn openssl_pkcs12(home: &Path, pfx: &str, pw: &Path) -> (String, String) {
    let passin = format!("file:{}", pw.display());
    let base = ["pkcs12", "-in", pfx, "-passin", &passin, "-nodes", "-info"];
    let o = openssl(&base, home);
    let o = if o.status.success() {
        o
    } else {
        let mut legacy = base.to_vec();
        legacy.push("-legacy");
        openssl(&legacy, home)
    };
    assert!(o.status.success(), "openssl pkcs12 failed\n{}", show(&o));
    (stdout(&o), stderr(&o))
}

/// Checks a PFX holds the key, the leaf and the chain, the key matching the
/// leaf, and the key bag and the leaf's bag sharing one localKeyID (how
/// Windows and .NET pair them).
fn check_pfx_contents(home: &Path, id: &str, pem: &str) {
    let ids: Vec<&str> = pem
        .lines()
        .filter_map(|l| l.trim().strip_prefix("localKeyID:"))
        .map(str::trim)
        .collect();
    assert_eq!(ids.len(), 2, "localKeyID on the key and the leaf: {pem}");
    assert_eq!(ids[0], ids[1], "{pem}");
    assert_eq!(
        pem.matches("-----BEGIN PRIVATE KEY-----").count(),
        1,
        "{pem}"
    );
    let mut in_pfx = pem_certs_in(pem);
    let mut expected = pem_certs(&home.join(format!("certs/{id}-full-chain.cert.pem")));
    assert_eq!(expected.len(), 3);
    in_pfx.sort();
    expected.sort();
    assert_eq!(
        in_pfx, expected,
        "the PFX must hold the leaf and the CA chain"
    );
    let key_start = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let key_end =
        pem.find("-----END PRIVATE KEY-----").unwrap() + "-----END PRIVATE KEY-----".len();
    let key_file = home.join("extracted.key.pem");
    write_secret(&key_file, &pem[key_start..key_end]);
    assert_eq!(
        key_pubkey(home, key_file.to_str().unwrap(), None),
        cert_pubkey(home, &format!("certs/{id}.cert.pem")),
        "the PFX key does not match the leaf"
    );
    fs::remove_file(key_file).unwrap();
    // And it is the same key as private/<id>.key.pem.
    assert_eq!(
        key_pubkey(home, &format!("private/{id}.key.pem"), None),
        cert_pubkey(home, &format!("certs/{id}.cert.pem"))
    );
}

const PY_LOAD: &str = r#"
import json, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
data = open(sys.argv[1], "rb").read()
password = open(sys.argv[2], "rb").read().split(b"\n")[0]
p = pkcs12.load_pkcs12(data, password)
pub = lambda k: k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
cn = lambda c: c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
print(json.dumps({
    "has_key": p.key is not None,
    "cn": cn(p.cert.certificate),
    "key_matches": pub(p.key.public_key()) == pub(p.cert.certificate.public_key()),
    "chain": [cn(c.certificate) for c in p.additional_certs],
    "leaf_der": p.cert.certificate.public_bytes(serialization.Encoding.DER).hex(),
}))
"#;

fn python_load(home: &Path, pfx: &str, pw: &Path) -> serde_json::Value {
    let o = run(Command::new("python3")
        .arg("-c")
        .arg(PY_LOAD)
        .arg(home.join(pfx))
        .arg(pw)
        .stdin(Stdio::null()));
    assert!(
        o.status.success(),
        "python3 / cryptography failed\n{}",
        show(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn check_python(home: &Path, id: &str, pw: &Path) {
    let v = python_load(home, &format!("certs/{id}.cert.pfx"), pw);
    assert_eq!(v["has_key"], true, "{v}");
    assert_eq!(v["cn"], id, "{v}");
    assert_eq!(v["key_matches"], true, "{v}");
    let mut chain: Vec<String> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    chain.sort();
    assert_eq!(chain, vec![ROOT_CN.to_string(), INT_CN.to_string()], "{v}");
    openssl_ok(
        &[
            "x509",
            "-in",
            &format!("certs/{id}.cert.pem"),
            "-outform",
            "DER",
            "-out",
            "leaf.der",
        ],
        home,
    );
    let leaf: String = fs::read(home.join("leaf.der"))
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::remove_file(home.join("leaf.der")).unwrap();
    assert_eq!(v["leaf_der"], leaf);
}

#[test]
fn pfx_modern_reads_back_with_openssl_and_cryptography() {
    let (_t, home, pw) = pfx_home();
    ok(iotca(&home)
        .args([
            "device",
            "create",
            "dotnet-01",
            "--pfx",
            "--pfx-password-file",
        ])
        .arg(&pw));
    let pfx = "certs/dotnet-01.cert.pfx";
    assert_eq!(
        fs::metadata(home.join(pfx)).unwrap().permissions().mode() & 0o777,
        0o600,
        "the PFX holds the key: it must be private"
    );
    let (pem, info) = openssl_pkcs12(&home, pfx, &pw);
    check_pfx_contents(&home, "dotnet-01", &pem);
    assert!(info.contains("MAC: sha256"), "{info}");
    assert!(
        info.contains("PBES2, PBKDF2, AES-256-CBC"),
        "not AES-256/PBKDF2: {info}"
    );
    assert!(!info.contains("3DES") && !info.contains("RC2"), "{info}");
    // A wrong password is refused.
    assert!(
        !openssl(
            &["pkcs12", "-in", pfx, "-passin", "pass:pfx", "-nodes"],
            &home
        )
        .status
        .success()
    );
    check_python(&home, "dotnet-01", &pw);
}

#[test]
fn pfx_legacy_reads_back_with_openssl_and_cryptography() {
    let (_t, home, pw) = pfx_home();
    ok(iotca(&home)
        .args([
            "device",
            "create",
            "win-01",
            "--algorithm",
            "rsa2048",
            "--pfx",
            "--pfx-legacy",
            "--pfx-password-file",
        ])
        .arg(&pw));
    let pfx = "certs/win-01.cert.pfx";
    let (pem, info) = openssl_pkcs12(&home, pfx, &pw);
    check_pfx_contents(&home, "win-01", &pem);
    assert!(info.contains("MAC: sha1"), "{info}");
    assert!(
        info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
        "not PBE-SHA1-3DES: {info}"
    );
    check_python(&home, "win-01", &pw);
}

#[test]
fn pfx_without_a_password_file_and_no_terminal_exits_2_and_writes_nothing() {
    let (t, home, _pw) = pfx_home();
    let before = snapshot(&home);
    let o = run(iotca(&home).args(["device", "create", "sensor-9", "--pfx"]));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("--pfx-password-file"),
        "does not say how to give the password\n{}",
        show(&o)
    );
    assert_eq!(snapshot(&home), before, "something was written");
    // An empty password is refused too (no silent unprotected PFX).
    let empty = t.path().join("empty.txt");
    write_secret(&empty, "\n");
    let o = run(iotca(&home)
        .args([
            "device",
            "create",
            "sensor-9",
            "--pfx",
            "--pfx-password-file",
        ])
        .arg(&empty));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert_eq!(snapshot(&home), before, "something was written");
}

#[test]
fn ca_intermediate_unencrypted_key_under_an_encrypted_parent() {
    let (_t, home, pass) = encrypted_home();
    ok(iotca(&home)
        .args([
            "ca",
            "intermediate",
            "edge-1",
            "--unencrypted-key",
            "--passphrase-file",
        ])
        .arg(&pass));
    ok(iotca(&home)
        .args(["ca", "intermediate", "line-2", "--passphrase-file"])
        .arg(&pass));
    let plain = fs::read_to_string(home.join("private/edge-1.key.pem")).unwrap();
    assert!(plain.contains("-----BEGIN PRIVATE KEY-----"), "{plain}");
    let enc = fs::read_to_string(home.join("private/line-2.key.pem")).unwrap();
    assert!(enc.contains("ENCRYPTED PRIVATE KEY"), "{enc}");
    // The plain key is the certificate's, and openssl reads it without a passphrase.
    let o = std::process::Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(home.join("private/edge-1.key.pem"))
        .output()
        .unwrap();
    assert!(o.status.success());
    // Devices issue under it without a passphrase.
    ok(iotca(&home).args(["device", "create", "edge-child", "--ca", "edge-1"]));
}
