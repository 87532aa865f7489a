//! scripts/certGen.sh, the certGen.sh drop-in (DESIGN section 8): every
//! subcommand, the files it must leave, and openssl's view of them.
//!
//! The shim runs under bash with no TERM, as in CI; CERTGEN_ALGORITHM is
//! p256 (one case rsa2048) to keep the suite fast.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::util::{
    CHAIN, INT_CERT, INT_KEY, IOTCA, ROOT_CERT, ROOT_KEY, cert_text, iotca, issuer, ok, openssl,
    openssl_ok, run, show, stderr, stdout, subject, verifies,
};

const DEV_CERT: &str = "certs/new-device.cert.pem";
const DEV_CHAIN: &str = "certs/new-device-full-chain.cert.pem";
const DEV_KEY: &str = "private/new-device.key.pem";
const DEV_PFX: &str = "certs/new-device.cert.pfx";
const EDGE_CERT: &str = "certs/new-edge-device.cert.pem";
const EDGE_CHAIN: &str = "certs/new-edge-device-full-chain.cert.pem";
const EDGE_KEY: &str = "private/new-edge-device.key.pem";
const VERIFY_CERT: &str = "certs/verification-code.cert.pem";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/certGen.sh")
}

/// The shim, run by bash in `dir`, with a clean CI-like environment.
fn shim(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("bash");
    c.arg(script())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("IOTCA_BIN", IOTCA)
        .env("CERTGEN_ALGORITHM", "p256");
    for v in [
        "TERM",
        "IOTCA_PASSPHRASE",
        "IOTCA_HOME",
        "CERTGEN_DAYS",
        "CERTGEN_PFX_LEGACY",
    ] {
        c.env_remove(v);
    }
    c
}

/// The base64 bodies of the CERTIFICATE blocks in a PEM file, whitespace removed.
fn pem_certs(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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

fn one_cert(path: &Path) -> String {
    let v = pem_certs(path);
    assert_eq!(v.len(), 1, "{} should hold one certificate", path.display());
    v.into_iter().next().unwrap()
}

fn cert_pubkey(dir: &Path, cert: &str) -> String {
    openssl_ok(&["x509", "-in", cert, "-noout", "-pubkey"], dir)
}

fn key_pubkey(dir: &Path, key: &str) -> String {
    openssl_ok(&["pkey", "-in", key, "-pubout"], dir)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, relative, sorted (the lock file left out).
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                if rel != ".iotca.lock" {
                    out.push(rel);
                }
            }
        }
    }
    let mut v = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut v);
    }
    v.sort();
    v
}

/// The archive directories, sorted by name (the UTC timestamp).
fn archives(dir: &Path) -> Vec<PathBuf> {
    let a = dir.join("archive");
    if !a.exists() {
        return Vec::new();
    }
    let mut v: Vec<PathBuf> = fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn home_with_cas() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    ok(&mut shim(t.path(), &["create_root_and_intermediate"]));
    t
}

#[test]
fn create_root_and_intermediate_writes_certgens_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let o = ok(&mut shim(d, &["create_root_and_intermediate"]));
    for f in [ROOT_CERT, ROOT_KEY, INT_CERT, INT_KEY, CHAIN] {
        assert!(d.join(f).is_file(), "{f} missing\n{}", show(&o));
    }
    assert!(stdout(&o).contains(ROOT_CERT), "{}", show(&o));
    assert_eq!(subject(d, ROOT_CERT), "CN=Azure IoT Hub CA Cert Test Only");
    assert_eq!(issuer(d, ROOT_CERT), subject(d, ROOT_CERT));
    assert_eq!(
        subject(d, INT_CERT),
        "CN=Azure IoT Hub Intermediate Cert Test Only"
    );
    assert_eq!(issuer(d, INT_CERT), subject(d, ROOT_CERT));
    assert!(verifies(d, ROOT_CERT, None, INT_CERT));
    for c in [ROOT_CERT, INT_CERT] {
        let text = cert_text(d, c);
        assert!(text.contains("CA:TRUE"), "{c}: {text}");
        assert!(text.contains("Certificate Sign"), "{c}: {text}");
        assert!(text.contains("ecdsa-with-SHA256"), "{c}: {text}");
    }
    // The chain file is the intermediate, then the root.
    assert_eq!(
        pem_certs(&d.join(CHAIN)),
        vec![one_cert(&d.join(INT_CERT)), one_cert(&d.join(ROOT_CERT))]
    );
    // The keys belong to the certificates and are private.
    assert_eq!(cert_pubkey(d, ROOT_CERT), key_pubkey(d, ROOT_KEY));
    assert_eq!(cert_pubkey(d, INT_CERT), key_pubkey(d, INT_KEY));
    assert_eq!(mode(&d.join(ROOT_KEY)), 0o600);
    assert_eq!(mode(&d.join("private")), 0o700);
    assert!(stderr(&o).contains("not for production"), "{}", show(&o));
}

#[test]
fn create_device_certificate_is_signed_by_the_root() {
    let t = home_with_cas();
    let d = t.path();
    let o = ok(&mut shim(d, &["create_device_certificate", "dev-root-01"]));
    for f in [DEV_CERT, DEV_CHAIN, DEV_KEY, DEV_PFX] {
        assert!(d.join(f).is_file(), "{f} missing\n{}", show(&o));
    }
    // Only new-device.* remain, as with certGen.sh.
    for f in [
        "certs/dev-root-01.cert.pem",
        "certs/dev-root-01-full-chain.cert.pem",
        "private/dev-root-01.key.pem",
        "certs/dev-root-01.cert.pfx",
    ] {
        assert!(!d.join(f).exists(), "{f} left behind");
    }
    assert_eq!(subject(d, DEV_CERT), "CN=dev-root-01");
    assert_eq!(issuer(d, DEV_CERT), subject(d, ROOT_CERT));
    assert!(verifies(d, ROOT_CERT, None, DEV_CERT));
    assert!(
        !verifies(d, INT_CERT, None, DEV_CERT),
        "a root-signed device must not verify against the intermediate"
    );
    let text = cert_text(d, DEV_CERT);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    // Full chain: the leaf, then the root.
    assert_eq!(
        pem_certs(&d.join(DEV_CHAIN)),
        vec![one_cert(&d.join(DEV_CERT)), one_cert(&d.join(ROOT_CERT))]
    );
    assert_eq!(cert_pubkey(d, DEV_CERT), key_pubkey(d, DEV_KEY));
    assert_eq!(mode(&d.join(DEV_KEY)), 0o600);
    // The PFX opens with certGen.sh's password and holds key and leaf.
    let pfx = openssl_ok(
        &["pkcs12", "-in", DEV_PFX, "-passin", "pass:1234", "-nodes"],
        d,
    );
    assert!(pfx.contains("-----BEGIN PRIVATE KEY-----"), "{pfx}");
    assert!(pfx.contains("subject=CN = dev-root-01"), "{pfx}");
    assert!(
        !openssl(
            &["pkcs12", "-in", DEV_PFX, "-passin", "pass:wrong", "-nodes"],
            d
        )
        .status
        .success()
    );
    let err = stderr(&o);
    assert!(err.contains("'1234'") && err.contains("warning"), "{err}");
}

#[test]
fn create_device_certificate_from_intermediate_chains_through_the_intermediate() {
    let t = home_with_cas();
    let d = t.path();
    ok(&mut shim(
        d,
        &[
            "create_device_certificate_from_intermediate",
            "sensor-thl-002",
        ],
    ));
    assert_eq!(subject(d, DEV_CERT), "CN=sensor-thl-002");
    assert_eq!(issuer(d, DEV_CERT), subject(d, INT_CERT));
    assert!(!verifies(d, ROOT_CERT, None, DEV_CERT));
    assert!(verifies(d, ROOT_CERT, Some(INT_CERT), DEV_CERT));
    assert!(verifies(d, ROOT_CERT, Some(DEV_CHAIN), DEV_CERT));
    assert_eq!(
        pem_certs(&d.join(DEV_CHAIN)),
        vec![
            one_cert(&d.join(DEV_CERT)),
            one_cert(&d.join(INT_CERT)),
            one_cert(&d.join(ROOT_CERT))
        ]
    );
    assert_eq!(cert_pubkey(d, DEV_CERT), key_pubkey(d, DEV_KEY));
    let pfx = openssl_ok(
        &["pkcs12", "-in", DEV_PFX, "-passin", "pass:1234", "-nodes"],
        d,
    );
    assert_eq!(
        pfx.matches("-----BEGIN CERTIFICATE-----").count(),
        3,
        "{pfx}"
    );
}

#[test]
fn each_device_call_archives_the_previous_new_device_files() {
    let t = home_with_cas();
    let d = t.path();
    ok(&mut shim(
        d,
        &["create_device_certificate_from_intermediate", "first-01"],
    ));
    let before: Vec<(&str, Vec<u8>)> = [DEV_CERT, DEV_CHAIN, DEV_KEY, DEV_PFX]
        .into_iter()
        .map(|f| (f, fs::read(d.join(f)).unwrap()))
        .collect();
    assert!(archives(d).is_empty());
    let o = ok(&mut shim(d, &["create_device_certificate", "second-02"]));
    assert_eq!(subject(d, DEV_CERT), "CN=second-02");
    let a = archives(d);
    assert_eq!(a.len(), 1, "{a:?}\n{}", show(&o));
    for (f, bytes) in &before {
        assert_eq!(&fs::read(a[0].join(f)).unwrap(), bytes, "archived {f}");
        assert_ne!(&fs::read(d.join(f)).unwrap(), bytes, "{f} was not replaced");
    }
    assert_eq!(subject(&a[0], DEV_CERT), "CN=first-01");
    // A third call keeps both earlier generations.
    ok(&mut shim(
        d,
        &["create_device_certificate_from_intermediate", "third-03"],
    ));
    let a = archives(d);
    assert_eq!(a.len(), 2, "{a:?}");
    let cns: Vec<String> = a.iter().map(|p| subject(p, DEV_CERT)).collect();
    assert!(cns.contains(&"CN=first-01".to_string()), "{cns:?}");
    assert!(cns.contains(&"CN=second-02".to_string()), "{cns:?}");
    assert_eq!(subject(d, DEV_CERT), "CN=third-03");
    // Nothing was deleted: 4 live device files plus 4 in each archive.
    let all = files(d);
    assert_eq!(
        all.iter().filter(|f| f.contains("new-device")).count(),
        12,
        "{all:?}"
    );
}

#[test]
fn a_device_named_new_device_replaces_the_previous_one_through_the_archive() {
    let t = home_with_cas();
    let d = t.path();
    ok(&mut shim(d, &["create_device_certificate", "new-device"]));
    let first = fs::read(d.join(DEV_CERT)).unwrap();
    ok(&mut shim(
        d,
        &["create_device_certificate_from_intermediate", "new-device"],
    ));
    assert_eq!(subject(d, DEV_CERT), "CN=new-device");
    assert!(verifies(d, ROOT_CERT, Some(INT_CERT), DEV_CERT));
    let a = archives(d);
    assert_eq!(a.len(), 1);
    assert_eq!(fs::read(a[0].join(DEV_CERT)).unwrap(), first);
}

#[test]
fn an_iotca_device_of_the_same_id_is_left_alone() {
    let t = home_with_cas();
    let d = t.path();
    ok(iotca(d).args(["device", "create", "sensor-1"]));
    let before = fs::read(d.join("certs/sensor-1.cert.pem")).unwrap();
    let o = run(&mut shim(
        d,
        &["create_device_certificate_from_intermediate", "sensor-1"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("certs/sensor-1.cert.pem"),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read(d.join("certs/sensor-1.cert.pem")).unwrap(), before);
    assert!(!d.join(DEV_CERT).exists());
}

#[test]
fn create_verification_certificate_signs_the_code_with_the_root() {
    let t = home_with_cas();
    let d = t.path();
    let code = "1A2B3C4D5E6F7081A2B3C4D5E6F708";
    ok(&mut shim(d, &["create_verification_certificate", code]));
    assert_eq!(subject(d, VERIFY_CERT), format!("CN={code}"));
    assert_eq!(issuer(d, VERIFY_CERT), subject(d, ROOT_CERT));
    assert!(verifies(d, ROOT_CERT, None, VERIFY_CERT));
    assert!(cert_text(d, VERIFY_CERT).contains("CA:FALSE"));
    let first = fs::read(d.join(VERIFY_CERT)).unwrap();
    // A second code archives the first certificate.
    ok(&mut shim(
        d,
        &["create_verification_certificate", "FFEE0011"],
    ));
    assert_eq!(subject(d, VERIFY_CERT), "CN=FFEE0011");
    let a = archives(d);
    assert_eq!(a.len(), 1);
    assert_eq!(fs::read(a[0].join(VERIFY_CERT)).unwrap(), first);
}

#[test]
fn create_edge_device_certificate_makes_a_ca_named_name_dot_ca() {
    let t = home_with_cas();
    let d = t.path();
    let o = ok(&mut shim(
        d,
        &["create_edge_device_certificate", "edge-gw-01"],
    ));
    for f in [EDGE_CERT, EDGE_CHAIN, EDGE_KEY] {
        assert!(d.join(f).is_file(), "{f} missing\n{}", show(&o));
    }
    assert_eq!(subject(d, EDGE_CERT), "CN=edge-gw-01.ca");
    assert_eq!(issuer(d, EDGE_CERT), subject(d, INT_CERT));
    let text = cert_text(d, EDGE_CERT);
    assert!(
        text.contains("X509v3 Basic Constraints: critical") && text.contains("CA:TRUE"),
        "{text}"
    );
    assert!(text.contains("Certificate Sign"), "{text}");
    assert!(verifies(d, ROOT_CERT, Some(INT_CERT), EDGE_CERT));
    assert_eq!(
        pem_certs(&d.join(EDGE_CHAIN)),
        vec![
            one_cert(&d.join(EDGE_CERT)),
            one_cert(&d.join(INT_CERT)),
            one_cert(&d.join(ROOT_CERT))
        ]
    );
    let key = fs::read_to_string(d.join(EDGE_KEY)).unwrap();
    assert!(
        key.contains("-----BEGIN PRIVATE KEY-----"),
        "edge key must be unencrypted"
    );
    assert_eq!(cert_pubkey(d, EDGE_CERT), key_pubkey(d, EDGE_KEY));
    assert_eq!(mode(&d.join(EDGE_KEY)), 0o600);
    // It is also an iotca CA that can sign downstream devices.
    assert_eq!(
        fs::read(d.join("certs/edge-gw-01.cert.pem")).unwrap(),
        fs::read(d.join(EDGE_CERT)).unwrap()
    );
    ok(iotca(d).args(["device", "create", "leaf-1", "--ca", "edge-gw-01"]));
    assert!(verifies(
        d,
        ROOT_CERT,
        Some("certs/leaf-1-full-chain.cert.pem"),
        "certs/leaf-1.cert.pem"
    ));
    // A second edge device archives the first new-edge-device.*.
    let first = fs::read(d.join(EDGE_CERT)).unwrap();
    ok(&mut shim(
        d,
        &["create_edge_device_certificate", "edge-gw-02"],
    ));
    assert_eq!(subject(d, EDGE_CERT), "CN=edge-gw-02.ca");
    let archived: Vec<PathBuf> = archives(d)
        .into_iter()
        .filter(|a| a.join(EDGE_CERT).exists())
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(fs::read(archived[0].join(EDGE_CERT)).unwrap(), first);
    assert!(archived[0].join(EDGE_KEY).exists());
}

#[test]
fn a_second_create_root_and_intermediate_archives_instead_of_wiping() {
    let t = home_with_cas();
    let d = t.path();
    ok(&mut shim(
        d,
        &["create_device_certificate_from_intermediate", "dev-1"],
    ));
    let old: Vec<(&str, Vec<u8>)> = [ROOT_CERT, ROOT_KEY, INT_CERT, INT_KEY, CHAIN]
        .into_iter()
        .map(|f| (f, fs::read(d.join(f)).unwrap()))
        .collect();
    let device = fs::read(d.join(DEV_CERT)).unwrap();
    let o = ok(&mut shim(d, &["create_root_and_intermediate"]));
    let a = archives(d);
    assert_eq!(a.len(), 1, "{}", show(&o));
    for (f, bytes) in &old {
        assert_eq!(&fs::read(a[0].join(f)).unwrap(), bytes, "archived {f}");
        assert_ne!(&fs::read(d.join(f)).unwrap(), bytes, "{f} not renewed");
    }
    assert!(verifies(d, ROOT_CERT, None, INT_CERT));
    // The device made before is still there (certGen.sh would have wiped it),
    // and still verifies against the archived root.
    assert_eq!(fs::read(d.join(DEV_CERT)).unwrap(), device);
    let old_root = a[0].join(ROOT_CERT);
    let old_int = a[0].join(INT_CERT);
    assert!(verifies(
        d,
        old_root.to_str().unwrap(),
        Some(old_int.to_str().unwrap()),
        DEV_CERT
    ));
}

#[test]
fn rsa2048_when_certgen_algorithm_says_so() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(shim(d, &["create_root_and_intermediate"]).env("CERTGEN_ALGORITHM", "rsa2048"));
    ok(shim(
        d,
        &["create_device_certificate_from_intermediate", "rsa-dev-1"],
    )
    .env("CERTGEN_ALGORITHM", "rsa2048"));
    for c in [ROOT_CERT, INT_CERT, DEV_CERT] {
        let text = cert_text(d, c);
        assert!(text.contains("rsaEncryption"), "{c}: {text}");
        assert!(text.contains("Public-Key: (2048 bit)"), "{c}: {text}");
        assert!(text.contains("sha256WithRSAEncryption"), "{c}: {text}");
    }
    assert!(cert_text(d, DEV_CERT).contains("Key Encipherment"));
    assert!(verifies(d, ROOT_CERT, Some(INT_CERT), DEV_CERT));
    assert_eq!(cert_pubkey(d, DEV_CERT), key_pubkey(d, DEV_KEY));
}

/// A stand-in for iotca that records its arguments and environment, to see
/// what the shim asks for without generating RSA-4096 keys.
fn recording_iotca(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("calls.log");
    let bin = dir.join("fake-iotca");
    fs::write(
        &bin,
        format!(
            "#!/bin/bash\nprintf 'ARGS' >>'{log}'\nprintf ' [%s]' \"$@\" >>'{log}'\nprintf ' PASS=%s\\n' \"${{IOTCA_PASSPHRASE-unset}}\" >>'{log}'\nif [[ \"$1\" == template ]]; then echo 'name = \"edge-ca\"'; fi\nexit 0\n",
            log = log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

#[test]
fn rsa4096_is_the_default_and_passwords_never_reach_argv() {
    let t = tempfile::tempdir().unwrap();
    let (bin, log) = recording_iotca(t.path());
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    let o = ok(shim(&home, &["create_root_and_intermediate"])
        .env("IOTCA_BIN", &bin)
        .env_remove("CERTGEN_ALGORITHM"));
    let calls = fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("[--home] [.] [ca] [init] [--algorithm] [rsa4096] [--force]"),
        "{calls}\n{}",
        show(&o)
    );
    // The verification certificate (also RSA-4096) with a fake CA key
    // encrypted as certGen.sh writes it: the passphrase goes by environment.
    fs::create_dir_all(home.join("private")).unwrap();
    fs::write(
        home.join(ROOT_KEY),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::remove_file(&log).unwrap();
    ok(shim(&home, &["create_verification_certificate", "ABCD"])
        .env("IOTCA_BIN", &bin)
        .env_remove("CERTGEN_ALGORITHM"));
    let calls = fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains(
            "[verification-cert] [--ca] [root] [--algorithm] [rsa4096] [--] [ABCD] PASS=1234"
        ),
        "{calls}"
    );
    assert!(!calls.contains("[1234]"), "a password on argv: {calls}");
    // Without an encrypted key, no passphrase is invented.
    fs::remove_file(home.join(ROOT_KEY)).unwrap();
    fs::remove_file(&log).unwrap();
    ok(shim(&home, &["create_verification_certificate", "ABCD"]).env("IOTCA_BIN", &bin));
    let calls = fs::read_to_string(&log).unwrap();
    assert!(calls.contains("PASS=unset"), "{calls}");
}

#[test]
fn wrong_calls_print_the_usage_and_exit_2_writing_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let subcommands = [
        "create_root_and_intermediate",
        "create_verification_certificate <subjectName>",
        "create_device_certificate <subjectName>",
        "create_device_certificate_from_intermediate <subjectName>",
        "create_edge_device_certificate <subjectName>",
    ];
    for args in [&[][..], &["create_everything"][..], &["--bogus"][..]] {
        let o = run(&mut shim(d, args));
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", show(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.starts_with("Usage: create_root_and_intermediate"),
            "{all}"
        );
        for s in subcommands {
            assert!(all.contains(s), "usage lacks {s}: {all}");
        }
    }
    for args in [
        &["create_device_certificate"][..],
        &["create_device_certificate_from_intermediate"][..],
        &["create_verification_certificate"][..],
        &["create_edge_device_certificate"][..],
        &["create_device_certificate", "a", "b"][..],
        &["create_root_and_intermediate", "extra"][..],
    ] {
        let o = run(&mut shim(d, args));
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", show(&o));
        assert!(stderr(&o).contains("Usage:"), "{args:?}\n{}", show(&o));
    }
    let o = ok(&mut shim(d, &["--help"]));
    assert!(stdout(&o).contains("create_device_certificate_from_intermediate <subjectName>"));
    assert!(files(d).is_empty(), "{:?}", files(d));
}

#[test]
fn errors_from_iotca_stop_the_script_with_its_exit_code() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // No CA yet.
    let o = run(&mut shim(d, &["create_device_certificate", "dev-1"]));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("iotca: error"), "{}", show(&o));
    assert!(!d.join(DEV_CERT).exists());
    // A device ID DPS would refuse.
    ok(&mut shim(d, &["create_root_and_intermediate"]));
    let o = run(&mut shim(d, &["create_device_certificate", "bad id/../x"]));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(!d.join(DEV_CERT).exists());
    // An unknown algorithm.
    let o = run(shim(d, &["create_device_certificate", "dev-1"]).env("CERTGEN_ALGORITHM", "dsa"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

/// bash running `script` in `home` with a PATH that holds no iotca.
fn bare_bash(script: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("bash");
    c.arg(script)
        .args(args)
        .current_dir(home)
        .stdin(Stdio::null())
        .env("PATH", "/usr/bin:/bin")
        .env("CERTGEN_ALGORITHM", "p256");
    for v in ["IOTCA_BIN", "TERM", "IOTCA_PASSPHRASE", "IOTCA_HOME"] {
        c.env_remove(v);
    }
    c
}

#[test]
fn finds_iotca_next_to_the_script() {
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let copy = bin.join("certGen.sh");
    fs::copy(script(), &copy).unwrap();
    std::os::unix::fs::symlink(IOTCA, bin.join("iotca")).unwrap();
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    let o = ok(&mut bare_bash(
        &copy,
        &home,
        &["create_root_and_intermediate"],
    ));
    assert!(home.join(INT_CERT).is_file(), "{}", show(&o));
    // Without any iotca to find, it says so and how to fix it.
    fs::remove_file(bin.join("iotca")).unwrap();
    let o = run(&mut bare_bash(
        &copy,
        &home,
        &["create_device_certificate", "d1"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("iotca not found"), "{}", show(&o));
    assert!(stderr(&o).contains("IOTCA_BIN"), "{}", show(&o));
    assert!(!home.join(DEV_CERT).exists());
}

#[test]
fn finds_iotca_in_the_target_directory() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = fs::canonicalize(IOTCA).unwrap();
    let candidates = ["target/debug/iotca", "target/release/iotca"];
    if !candidates
        .iter()
        .any(|c| fs::canonicalize(manifest.join(c)).ok().as_ref() == Some(&built))
    {
        eprintln!("skipped: iotca is not built under ./target (CARGO_TARGET_DIR is set)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let o = ok(&mut bare_bash(
        &script(),
        t.path(),
        &["create_root_and_intermediate"],
    ));
    assert!(t.path().join(ROOT_CERT).is_file(), "{}", show(&o));
}

#[test]
fn encrypted_ca_keys_default_to_certgens_password() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(iotca(d)
        .args(["ca", "init"])
        .env("IOTCA_PASSPHRASE", "1234"));
    assert!(
        fs::read_to_string(d.join(INT_KEY))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    ok(&mut shim(
        d,
        &["create_device_certificate_from_intermediate", "dev-enc-1"],
    ));
    assert!(verifies(d, ROOT_CERT, Some(INT_CERT), DEV_CERT));
    ok(&mut shim(d, &["create_verification_certificate", "C0DE"]));
    assert!(verifies(d, ROOT_CERT, None, VERIFY_CERT));
    // The edge CA key handed to IoT Edge is unencrypted, as certGen.sh's
    // (`ca intermediate --unencrypted-key`), while the CA keys that signed it
    // stay encrypted.
    ok(&mut shim(
        d,
        &["create_edge_device_certificate", "edge-enc"],
    ));
    let edge_key = fs::read_to_string(d.join(EDGE_KEY)).unwrap();
    assert!(
        edge_key.contains("-----BEGIN PRIVATE KEY-----"),
        "{edge_key}"
    );
    assert_eq!(cert_pubkey(d, EDGE_CERT), key_pubkey(d, EDGE_KEY));
    assert!(
        fs::read_to_string(d.join("private/edge-enc.key.pem"))
            .unwrap()
            .contains("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        fs::read_to_string(d.join(INT_KEY))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    // Another passphrase: without it the shim stops, writing no device.
    let t2 = tempfile::tempdir().unwrap();
    let d2 = t2.path();
    ok(iotca(d2)
        .args(["ca", "init"])
        .env("IOTCA_PASSPHRASE", "not-1234"));
    let o = run(&mut shim(
        d2,
        &["create_device_certificate_from_intermediate", "dev-enc-2"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(!d2.join(DEV_CERT).exists());
    ok(shim(
        d2,
        &["create_device_certificate_from_intermediate", "dev-enc-2"],
    )
    .env("IOTCA_PASSPHRASE", "not-1234"));
    assert!(verifies(d2, ROOT_CERT, Some(INT_CERT), DEV_CERT));
}

#[test]
fn the_script_is_valid_bash_and_shellcheck_clean_when_shellcheck_is_there() {
    let o = run(Command::new("bash").arg("-n").arg(script()));
    assert!(o.status.success(), "{}", show(&o));
    let mode = fs::metadata(script()).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "scripts/certGen.sh is not executable");
    match Command::new("shellcheck").arg(script()).output() {
        Ok(o) => assert!(o.status.success(), "shellcheck:\n{}", show(&o)),
        Err(_) => eprintln!("shellcheck not installed; skipped"),
    }
}

#[test]
fn runs_under_sh_through_a_symlink_finding_iotca_beside_the_real_script() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = fs::canonicalize(IOTCA).unwrap();
    if !["target/debug/iotca", "target/release/iotca"]
        .iter()
        .any(|c| fs::canonicalize(manifest.join(c)).ok().as_ref() == Some(&built))
    {
        eprintln!("skipped: iotca is not built under ./target (CARGO_TARGET_DIR is set)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let link = t.path().join("certGen.sh");
    std::os::unix::fs::symlink(script(), &link).unwrap();
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    let mut c = bare_bash(&link, &home, &["create_root_and_intermediate"]);
    // `sh certGen.sh ...`, as some guides write it.
    let mut sh = Command::new("sh");
    sh.args(c.get_args())
        .current_dir(&home)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CERTGEN_ALGORITHM", "p256");
    let o = ok(&mut sh);
    assert!(home.join(INT_CERT).is_file(), "{}", show(&o));
    let o = ok(&mut c);
    assert_eq!(archives(&home).len(), 1, "{}", show(&o));
}

#[test]
fn certgen_days_and_pfx_legacy() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(shim(d, &["create_root_and_intermediate"]).env("CERTGEN_DAYS", "30"));
    let expires_within = |cert: &str, days: u32| {
        let secs = (days * 86_400).to_string();
        // -checkend fails (exit 1) when the certificate expires within that time.
        !openssl(&["x509", "-in", cert, "-noout", "-checkend", &secs], d)
            .status
            .success()
    };
    for c in [ROOT_CERT, INT_CERT] {
        assert!(expires_within(c, 31) && !expires_within(c, 29), "{c}");
    }
    ok(shim(
        d,
        &["create_device_certificate_from_intermediate", "short-1"],
    )
    .env("CERTGEN_DAYS", "10")
    .env("CERTGEN_PFX_LEGACY", "1"));
    assert!(expires_within(DEV_CERT, 11) && !expires_within(DEV_CERT, 9));
    let mut args = vec![
        "pkcs12",
        "-in",
        DEV_PFX,
        "-passin",
        "pass:1234",
        "-nodes",
        "-info",
    ];
    let mut o = openssl(&args, d);
    if !o.status.success() {
        args.push("-legacy");
        o = openssl(&args, d);
    }
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stderr(&o).contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{}",
        show(&o)
    );
    let o = run(shim(d, &["create_device_certificate", "x-1"]).env("CERTGEN_DAYS", "soon"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("CERTGEN_DAYS"), "{}", show(&o));
}
