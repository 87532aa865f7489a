//! Certificate lifecycle (issue 18, DESIGN section 13), with the real
//! binary in temporary homes and independent judges: CSRs made by
//! `openssl req` and by pyca/cryptography, certificates checked by openssl
//! (and DigiCert's pkilint when installed), and the rollover walkthrough
//! both against the local store (`provision`) and against `dps serve` with
//! the Azure IoT Python device SDK.
//!
//! Optional clients: python3 with `cryptography` (pyca CSRs), pkilint
//! (`lint_pkix_cert` on PATH or in target/pyenv-pki), the SDK venv
//! (scripts/dps-test-env.sh). A missing one prints "SKIPPED: ..." and
//! passes, except when `CI` is set, where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ROOT: &str = "certs/azure-iot-test-only.root.ca.cert.pem";
const INTER: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
const SCOPE: &str = "0ne00IOTCA1";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_iotca")
}

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("IOTCA_HOME")
        .env_remove("IOTCA_PASSPHRASE")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(home: &Path, args: &[&str]) -> i32 {
    run(home, args).status.code().unwrap()
}

fn ok(home: &Path, args: &[&str]) -> Output {
    let o = run(home, args);
    assert_eq!(o.status.code(), Some(0), "iotca {args:?}: {}", text(&o));
    o
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn openssl(args: &[&str]) -> Output {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    o
}

/// Skips visibly, or fails under CI.
fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// openssl's own view of a certificate's public key (PEM).
fn cert_pubkey(cert: &Path) -> Vec<u8> {
    openssl(&["x509", "-in", p(cert), "-noout", "-pubkey"]).stdout
}

fn openssl_verify(home: &Path, cert: &Path, untrusted: &Path) {
    let o = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&home.join(ROOT)),
        "-untrusted",
        p(untrusted),
        p(cert),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(": OK"));
}

/// A python3 with pyca/cryptography, or None.
fn pyca_python() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![here.join("target/pyenv-pki/bin/python")];
    if let Some(v) = std::env::var_os("IOTCA_TOOLS_VENV") {
        candidates.push(PathBuf::from(v).join("bin/python"));
    }
    candidates.push(PathBuf::from("python3"));
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import cryptography"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn pkilint() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![here.join("target/pyenv-pki/bin/lint_pkix_cert")];
    if let Some(v) = std::env::var_os("IOTCA_TOOLS_VENV") {
        candidates.push(PathBuf::from(v).join("bin/lint_pkix_cert"));
    }
    candidates.push(PathBuf::from("lint_pkix_cert"));
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// pkilint's findings at WARNING or above (empty when clean).
fn lint(tool: &Path, cert: &Path) -> Vec<Value> {
    let o = Command::new(tool)
        .args(["lint", "-s", "WARNING", "-f", "JSON"])
        .arg(cert)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("pkilint on {}: {e}: {}", cert.display(), text(&o)));
    v["results"].as_array().cloned().unwrap_or_default()
}

const PYCA_CSR: &str = r#"
import sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
open(out + ".key", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
csr = (x509.CertificateSigningRequestBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyca-dev-01")]))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .add_extension(x509.SubjectAlternativeName([x509.DNSName("extra.example.com")]), critical=False)
    .sign(key, hashes.SHA256()))
open(out, "wb").write(csr.public_bytes(serialization.Encoding.DER))
"#;

#[test]
fn csrs_from_openssl_and_pyca_become_device_certificates() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("pki");
    ok(&h, &["ca", "init"]);
    let csrs = t.path().join("csrs");
    std::fs::create_dir(&csrs).unwrap();
    let keys = t.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    // openssl: P-256, P-384, RSA-2048 (this one asks for CA:TRUE and a SAN).
    for (id, alg) in [("se-p256", "P-256"), ("se-p384", "P-384")] {
        let key = keys.join(format!("{id}.key"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{alg}"),
            "-out",
            p(&key),
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            p(&key),
            "-subj",
            &format!("/CN={id}"),
            "-out",
            p(&csrs.join(format!("{id}.csr"))),
        ]);
    }
    let rsa_key = keys.join("se-rsa.key");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        p(&rsa_key),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        p(&rsa_key),
        "-subj",
        "/CN=se-rsa/O=Contoso",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "subjectAltName=DNS:extra.example.net,IP:10.0.0.1",
        "-outform",
        "DER",
        "-out",
        p(&csrs.join("se-rsa.der")),
    ]);
    // A certificate next to the CSRs is not one of them.
    std::fs::copy(h.join(ROOT), csrs.join("not-a-csr.pem")).unwrap();
    let mut ids = vec!["se-p256", "se-p384", "se-rsa"];
    match pyca_python() {
        Some(py) => {
            let out = csrs.join("pyca-dev-01.der");
            let o = Command::new(py)
                .args(["-c", PYCA_CSR, p(&out)])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o));
            std::fs::rename(
                csrs.join("pyca-dev-01.der.key"),
                keys.join("pyca-dev-01.key"),
            )
            .unwrap();
            ids.push("pyca-dev-01");
        }
        None => skip("python3 with pyca/cryptography is missing: the pyca CSR is not tested"),
    }

    let o = ok(&h, &["device", "sign", p(&csrs)]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    // The requested extensions are named in a warning, and not copied.
    assert!(
        err.contains("se-rsa")
            && err.contains("basicConstraints CA:TRUE")
            && err.contains("DNS:extra.example.net")
            && err.contains("IP:10.0.0.1")
            && err.contains("organizationName=Contoso"),
        "{err}"
    );
    if ids.contains(&"pyca-dev-01") {
        assert!(
            err.contains("pyca-dev-01") && err.contains("DNS:extra.example.com"),
            "{err}"
        );
    }
    let lint_tool = pkilint();
    if lint_tool.is_none() {
        skip("pkilint (lint_pkix_cert) is missing: signed certificates are not linted");
    }
    for id in &ids {
        let cert = h.join(format!("certs/{id}.cert.pem"));
        let chain = h.join(format!("certs/{id}-full-chain.cert.pem"));
        assert!(
            !h.join(format!("private/{id}.key.pem")).exists(),
            "no key is written"
        );
        openssl_verify(&h, &cert, &h.join(INTER));
        openssl_verify(&h, &chain, &chain);
        let txt =
            String::from_utf8_lossy(&openssl(&["x509", "-in", p(&cert), "-noout", "-text"]).stdout)
                .into_owned();
        assert!(txt.contains("CA:FALSE"), "{id}: {txt}");
        assert!(txt.contains("TLS Web Client Authentication"), "{id}");
        assert!(!txt.contains("Subject Alternative Name"), "{id}: {txt}");
        assert!(!txt.contains("Contoso"), "{id}");
        let subject = String::from_utf8_lossy(
            &openssl(&[
                "x509",
                "-in",
                p(&cert),
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
            ])
            .stdout,
        )
        .into_owned();
        assert_eq!(subject.trim(), format!("subject=CN={id}"));
        // The certified key is the device's own: the key file matches.
        let key = keys.join(format!("{id}.key"));
        let o = ok(&h, &["inspect", "--key", p(&key), p(&cert)]);
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("MATCH"));
        let pubkey = openssl(&["pkey", "-in", p(&key), "-pubout"]).stdout;
        assert_eq!(pubkey, cert_pubkey(&cert), "{id}: the SPKI is the CSR's");
        if let Some(tool) = &lint_tool {
            let findings = lint(tool, &cert);
            assert!(findings.is_empty(), "{id}: pkilint: {findings:?}");
        }
    }
    // The RSA certificate has keyEncipherment, the EC ones do not.
    let rsa = String::from_utf8_lossy(
        &openssl(&[
            "x509",
            "-in",
            p(&h.join("certs/se-rsa.cert.pem")),
            "-noout",
            "-ext",
            "keyUsage",
        ])
        .stdout,
    )
    .into_owned();
    assert!(rsa.contains("Key Encipherment"), "{rsa}");
    // A key that is not the device's: exit 1.
    let other = keys.join("se-p384.key");
    let cert = h.join("certs/se-p256.cert.pem");
    assert_eq!(code(&h, &["inspect", "--key", p(&other), p(&cert)]), 1);
    // Signing again is refused; --force archives.
    let one = csrs.join("se-p256.csr");
    let o = run(&h, &["device", "sign", p(&one)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already exist"), "{}", text(&o));
    let o = ok(
        &h,
        &[
            "device",
            "sign",
            p(&one),
            "--force",
            "--id",
            "se-p256",
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["archived_to"].is_string(), "{v}");
    assert_eq!(v["devices"][0]["id"], "se-p256");
    // --id must be the CSR's CN.
    let o = run(
        &h,
        &["device", "sign", p(&one), "--force", "--id", "se-other"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--id"), "{}", text(&o));
}

#[test]
fn bad_csrs_are_refused_with_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("pki");
    ok(&h, &["ca", "init"]);
    let key = t.path().join("k.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        p(&key),
    ]);
    // A CN with a space.
    let space = t.path().join("space.csr");
    openssl(&[
        "req",
        "-new",
        "-key",
        p(&key),
        "-subj",
        "/CN=sensor 01",
        "-out",
        p(&space),
    ]);
    let o = run(&h, &["device", "sign", p(&space)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        e.contains("space.csr") && e.contains("sensor 01") && e.contains("' '"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    // A tampered CSR: the CN changed after signing (openssl agrees it is bad).
    let good = t.path().join("good.der");
    openssl(&[
        "req",
        "-new",
        "-key",
        p(&key),
        "-subj",
        "/CN=sensor-abc",
        "-outform",
        "DER",
        "-out",
        p(&good),
    ]);
    let mut der = std::fs::read(&good).unwrap();
    let at = der.windows(10).position(|w| w == b"sensor-abc").unwrap();
    der[at + 9] = b'x';
    let bad = t.path().join("tampered.der");
    std::fs::write(&bad, &der).unwrap();
    let o = Command::new("openssl")
        .args(["req", "-inform", "DER", "-in", p(&bad), "-noout", "-verify"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() || text(&o).contains("failure"),
        "openssl: {}",
        text(&o)
    );
    let o = run(&h, &["device", "sign", p(&bad)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        e.contains("tampered.der") && e.contains("does not verify"),
        "{e}"
    );
    // Not a CSR at all, and a batch with one bad CSR writes nothing.
    let junk = t.path().join("junk.csr");
    std::fs::write(&junk, "hello").unwrap();
    assert_eq!(code(&h, &["device", "sign", p(&junk)]), 2);
    assert_eq!(code(&h, &["device", "sign", p(&good), p(&bad)]), 2);
    assert!(!h.join("certs/sensor-abc.cert.pem").exists());
    // With --allow-any-cn, a CN that is not a registration ID but a safe file name.
    let o = ok(&h, &["device", "sign", p(&space), "--allow-any-cn"]);
    assert!(h.join("certs/sensor 01.cert.pem").exists(), "{}", text(&o));
}

#[test]
fn renew_keeps_the_key_unless_rekey_and_flags_individual_enrollments() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("pki");
    ok(&h, &["ca", "init"]);
    ok(&h, &["device", "create", "d1", "d2", "d3", "--days", "10"]);
    let cert = |id: &str| h.join(format!("certs/{id}.cert.pem"));
    let key = |id: &str| h.join(format!("private/{id}.key.pem"));
    let old_der = |id: &str| openssl(&["x509", "-in", p(&cert(id)), "-outform", "DER"]).stdout;
    let before = old_der("d1");
    let before_pub = cert_pubkey(&cert("d1"));
    let before_key = std::fs::read(key("d1")).unwrap();
    std::fs::copy(cert("d1"), t.path().join("d1-before.pem")).unwrap();
    ok(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "d2",
            "--cert",
            p(&cert("d2")),
        ],
    );
    // Nothing expires within 5 days; all three within 30.
    let o = ok(&h, &["device", "renew", "--expiring-within", "5", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["devices"].as_array().unwrap().len(), 0, "{v}");
    let o = ok(
        &h,
        &["device", "renew", "--expiring-within", "30", "--json"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["devices"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    for r in rows {
        assert_eq!(r["same_key"], true);
        assert_eq!(r["enrollment_update_needed"], r["id"] == "d2", "{r}");
    }
    let archived = PathBuf::from(v["archived_to"].as_str().unwrap());
    assert_eq!(
        std::fs::read(archived.join("certs/d1.cert.pem")).unwrap(),
        std::fs::read(t.path().join("d1-before.pem")).unwrap()
    );
    // SubjectPublicKeyInfo byte-equal (openssl's DER of the key), new serial, longer life.
    let after = old_der("d1");
    assert_ne!(before, after);
    assert_eq!(before_pub, cert_pubkey(&cert("d1")));
    assert_eq!(
        std::fs::read(key("d1")).unwrap(),
        before_key,
        "the key file is untouched"
    );
    let spki = |der: &[u8]| {
        let c = x509_parser::parse_x509_certificate(der).unwrap().1;
        c.public_key().raw.to_vec()
    };
    assert_eq!(spki(&before), spki(&after));
    let end = openssl(&[
        "x509",
        "-in",
        p(&cert("d1")),
        "-noout",
        "-checkend",
        &(300 * 86400).to_string(),
    ]);
    assert!(String::from_utf8_lossy(&end.stdout).contains("will not expire"));
    assert_eq!(
        code(&h, &["inspect", "--key", p(&key("d1")), p(&cert("d1"))]),
        0
    );
    openssl_verify(
        &h,
        &h.join("certs/d1-full-chain.cert.pem"),
        &h.join("certs/d1-full-chain.cert.pem"),
    );
    // The enrolled device: its enrollment names the old certificate, so DPS
    // refuses the renewed one until `enroll update` (the text says so).
    let chain2 = h.join("certs/d2-full-chain.cert.pem");
    assert_eq!(code(&h, &["provision", p(&chain2)]), 1);
    let o = ok(&h, &["device", "renew", "d2"]);
    assert!(text(&o).contains("enroll update d2 --cert"), "{}", text(&o));
    // A mismatching certificate is refused by the pre-flight.
    let o = run(&h, &["enroll", "update", "d2", "--cert", p(&cert("d3"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    ok(&h, &["enroll", "update", "d2", "--cert", p(&cert("d2"))]);
    assert_eq!(code(&h, &["provision", p(&chain2)]), 0);
    ok(&h, &["enroll", "update", "d2", "--status", "disabled"]);
    let o = run(&h, &["provision", p(&chain2), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "disabled");
    let o = ok(
        &h,
        &[
            "enroll",
            "update",
            "d2",
            "--status",
            "enabled",
            "--to",
            "az",
            "--dps-name",
            "dps-X",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "az iot dps enrollment update --dps-name dps-X --enrollment-id d2 --provisioning-status enabled"
    );
    // --rekey: a new key, the old one archived and no longer matching.
    let o = ok(&h, &["device", "renew", "d3", "--rekey", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["devices"][0]["same_key"], false);
    let old_key = PathBuf::from(v["archived_to"].as_str().unwrap()).join("private/d3.key.pem");
    assert!(old_key.exists());
    assert_eq!(
        code(&h, &["inspect", "--key", p(&old_key), p(&cert("d3"))]),
        1
    );
    assert_eq!(
        code(&h, &["inspect", "--key", p(&key("d3")), p(&cert("d3"))]),
        0
    );
    // Unknown devices, and --rekey for a device whose key is not in the home.
    assert_eq!(code(&h, &["device", "renew", "nope"]), 2);
    std::fs::rename(key("d1"), t.path().join("away.pem")).unwrap();
    let o = run(&h, &["device", "renew", "d1", "--rekey"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("device sign"), "{}", text(&o));
    ok(&h, &["device", "renew", "d1"]);
}

/// The local rollover: ca rollover, group update, devices of both
/// generations provision, promotion strands the old devices.
fn rollover_home(dir: &Path) -> PathBuf {
    let h = dir.join("pki");
    ok(&h, &["ca", "init"]);
    ok(&h, &["device", "create", "old-1", "old-2"]);
    ok(
        &h,
        &[
            "enroll",
            "group",
            "create",
            "fleet",
            "--ca",
            p(&h.join(INTER)),
            "--iot-hub",
            "lab-hub.azure-devices.net",
        ],
    );
    let o = ok(&h, &["ca", "rollover", "intermediate"]);
    let out = text(&o);
    assert!(
        out.contains("--secondary-ca") && out.contains("--promote-secondary"),
        "{out}"
    );
    let new = h.join("certs/intermediate-2.cert.pem");
    let subj = String::from_utf8_lossy(
        &openssl(&[
            "x509",
            "-in",
            p(&new),
            "-noout",
            "-subject",
            "-issuer",
            "-nameopt",
            "RFC2253",
        ])
        .stdout,
    )
    .into_owned();
    assert!(
        subj.contains("subject=CN=Azure IoT Hub Intermediate Cert Test Only G2"),
        "{subj}"
    );
    assert!(
        subj.contains("issuer=CN=Azure IoT Hub CA Cert Test Only"),
        "{subj}"
    );
    openssl_verify(&h, &new, &new);
    // The old CA stays the default.
    ok(&h, &["device", "create", "still-old"]);
    ok(&h, &["device", "create", "new-1", "--ca", "intermediate-2"]);
    let o = ok(
        &h,
        &[
            "enroll",
            "group",
            "update",
            "fleet",
            "--secondary-ca",
            p(&new),
        ],
    );
    assert!(
        text(&o).contains("secondary CN=Azure IoT Hub Intermediate Cert Test Only G2"),
        "{}",
        text(&o)
    );
    h
}

fn chain(h: &Path, id: &str) -> PathBuf {
    h.join(format!("certs/{id}-full-chain.cert.pem"))
}

#[test]
fn rollover_walkthrough_in_the_local_store() {
    let t = tempfile::tempdir().unwrap();
    let h = rollover_home(t.path());
    for id in ["old-1", "old-2", "still-old", "new-1"] {
        assert_eq!(code(&h, &["provision", p(&chain(&h, id))]), 0, "{id}");
    }
    // ca list: both generations and the devices under each.
    let o = ok(&h, &["ca", "list", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let kids = v["cas"][0]["children"].as_array().unwrap();
    let under = |name: &str| -> Vec<String> {
        let n = kids.iter().find(|k| k["name"] == name).unwrap();
        n["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(under("intermediate"), ["old-1", "old-2", "still-old"]);
    assert_eq!(under("intermediate-2"), ["new-1"]);
    // audit with the group's two CAs: every device chains and is assigned.
    let o = ok(
        &h,
        &[
            "audit",
            "--ca",
            p(&h.join(INTER)),
            "--ca",
            p(&h.join("certs/intermediate-2.cert.pem")),
            p(&h.join("certs")),
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for d in v["devices"].as_array().unwrap() {
        assert_eq!(d["chains"], true, "{d}");
        assert_eq!(d["provisioning"], "assigned", "{d}");
    }
    // Re-issue old-1 under the new CA (same key); promotion still strands old-2.
    ok(&h, &["device", "renew", "old-1", "--ca", "intermediate-2"]);
    let o = run(
        &h,
        &["enroll", "group", "update", "fleet", "--promote-secondary"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("old-2")
            && text(&o).contains("still-old")
            && !text(&o).contains("old-1,"),
        "{}",
        text(&o)
    );
    let az = ok(
        &h,
        &[
            "enroll",
            "group",
            "update",
            "fleet",
            "--promote-secondary",
            "--to",
            "az",
            "--dps-name",
            "dps-X",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&az.stdout).trim(),
        format!(
            "az iot dps enrollment-group update --dps-name dps-X --enrollment-id fleet --certificate-path {} --remove-secondary-certificate",
            p(&h.join("certs/intermediate-2.cert.pem"))
        )
    );
    let o = ok(
        &h,
        &[
            "enroll",
            "group",
            "update",
            "fleet",
            "--promote-secondary",
            "--force",
            "--json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["primary"],
        "CN=Azure IoT Hub Intermediate Cert Test Only G2"
    );
    assert!(v["secondary"].is_null());
    assert!(v["enrollment"]["attestation"]["x509"]["signingCertificates"]["secondary"].is_null());
    for (id, want) in [("old-1", 0), ("new-1", 0), ("old-2", 1), ("still-old", 1)] {
        let o = run(&h, &["provision", p(&chain(&h, id)), "--json"]);
        assert_eq!(o.status.code(), Some(want), "{id}: {}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["status"],
            if want == 0 { "assigned" } else { "failed" },
            "{id}"
        );
    }
    // Nothing left to promote or remove.
    assert_eq!(
        code(
            &h,
            &["enroll", "group", "update", "fleet", "--promote-secondary"]
        ),
        2
    );
    assert_eq!(
        code(
            &h,
            &["enroll", "group", "update", "fleet", "--remove-secondary"]
        ),
        2
    );
    assert_eq!(
        code(
            &h,
            &["enroll", "group", "update", "nope", "--status", "disabled"]
        ),
        2
    );
    // A secondary that is not a CA is refused (exit 1).
    assert_eq!(
        code(
            &h,
            &[
                "enroll",
                "group",
                "update",
                "fleet",
                "--secondary-ca",
                p(&h.join("certs/old-1.cert.pem"))
            ]
        ),
        1
    );
    // A root cannot be rolled over; a second rollover makes -3 and G3.
    assert_eq!(code(&h, &["ca", "rollover", "root"]), 2);
    ok(&h, &["ca", "rollover", "intermediate-2"]);
    let subj = String::from_utf8_lossy(
        &openssl(&[
            "x509",
            "-in",
            p(&h.join("certs/intermediate-3.cert.pem")),
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ])
        .stdout,
    )
    .into_owned();
    assert!(subj.contains("Test Only G3"), "{subj}");
}

// ------------------------------------------ against `dps serve`, Python SDK

struct ServerGuard {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl ServerGuard {
    fn start(home: &Path) -> ServerGuard {
        let stderr = home.join("dps-serve.log");
        let mut child = Command::new(bin())
            .arg("--home")
            .arg(home)
            .args([
                "dps",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--id-scope",
                SCOPE,
            ])
            .env_remove("IOTCA_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let mut g = ServerGuard {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line: {}", g.log()));
        g.addr = line
            .split_whitespace()
            .skip_while(|w| *w != "on")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        g
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sdk_python() -> Option<PathBuf> {
    let py = match std::env::var_os("IOTCA_DPS_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv-dps/bin/python"),
    };
    let usable = Command::new(&py)
        .args(["-c", "import azure.iot.device"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(py);
    }
    if std::env::var("IOTCA_DPS_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!(
            "{} has no azure-iot-device (scripts/dps-test-env.sh)",
            py.display()
        );
    }
    skip(&format!(
        "the Python device SDK rollover test: {} has no azure-iot-device; run scripts/dps-test-env.sh",
        py.display()
    ));
    None
}

fn sdk_register(py: &Path, server: &ServerGuard, home: &Path, ids: &[&str]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dps/register.py");
    let input: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"registration_id": id, "cert": chain(home, id),
                   "key": home.join(format!("private/{id}.key.pem"))})
        })
        .collect();
    let mut child = Command::new(py)
        .arg(&script)
        .args([
            "--host",
            "localhost",
            "--id-scope",
            SCOPE,
            "--timeout",
            "60",
            "--port",
        ])
        .arg(server.addr.port().to_string())
        .arg("--trust")
        .arg(home.join("certs/iotca-dps-server-ca.cert.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SDK driver hung; server log:\n{}", server.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    // register.py exits 0 when every device is assigned, 1 when one is not
    // (a refusal this test may expect), 2 when it could not run.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}\nserver log:\n{}",
        text(&o),
        server.log()
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn rollover_walkthrough_with_the_python_device_sdk() {
    let Some(py) = sdk_python() else { return };
    let t = tempfile::tempdir().unwrap();
    let h = rollover_home(t.path());
    let server = ServerGuard::start(&h);
    // Both generations provision while the group holds both certificates.
    let r = sdk_register(&py, &server, &h, &["old-1", "old-2", "new-1"]);
    for (res, id) in r.iter().zip(["old-1", "old-2", "new-1"]) {
        assert_eq!(res["ok"], true, "{id}: {res}\n{}", server.log());
        assert_eq!(res["status"], "assigned", "{id}: {res}");
        assert_eq!(res["device_id"], id);
    }
    // Re-issue old-1 under the new CA, promote (old-2 left behind on purpose).
    ok(&h, &["device", "renew", "old-1", "--ca", "intermediate-2"]);
    ok(
        &h,
        &[
            "enroll",
            "group",
            "update",
            "fleet",
            "--promote-secondary",
            "--force",
        ],
    );
    let r = sdk_register(&py, &server, &h, &["old-1", "old-2", "new-1"]);
    assert_eq!(r[0]["status"], "assigned", "{}", r[0]);
    assert_eq!(r[2]["status"], "assigned", "{}", r[2]);
    assert_ne!(
        r[1]["status"], "assigned",
        "old-2 must be refused: {}",
        r[1]
    );
    // The SDK reports the refusal: a failed registration, or an error.
    assert!(
        r[1]["status"] == "failed" || r[1]["ok"] == false,
        "old-2: {}",
        r[1]
    );
}
