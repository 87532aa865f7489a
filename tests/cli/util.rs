//! Helpers every test module may use: the binary, the home's file names,
//! running a command and reading its output.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The iotca binary under test.
pub const IOTCA: &str = env!("CARGO_BIN_EXE_iotca");

/// The home's file names (DESIGN section 3).
pub const ROOT_CERT: &str = "certs/azure-iot-test-only.root.ca.cert.pem";
/// The root CA key.
pub const ROOT_KEY: &str = "private/azure-iot-test-only.root.ca.key.pem";
/// The default intermediate's certificate.
pub const INT_CERT: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
/// The default intermediate's key.
pub const INT_KEY: &str = "private/azure-iot-test-only.intermediate.key.pem";
/// The intermediate-then-root chain.
pub const CHAIN: &str = "certs/azure-iot-test-only.chain.ca.cert.pem";

/// `iotca --home HOME` with a clean environment (no IOTCA_HOME, no
/// passphrase, no standard input).
pub fn iotca_in(home: &Path) -> Command {
    let mut c = Command::new(IOTCA);
    c.arg("--home").arg(home);
    c.env_remove("IOTCA_HOME").env_remove("IOTCA_PASSPHRASE");
    c.stdin(Stdio::null());
    c
}

/// Everything a failed command said, for an assertion message.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// True when the process is a CI run (`CI` set): a test whose tool is
/// missing fails there instead of skipping.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Says (on stderr, visibly) that a test skipped because `what` is missing,
/// or fails the test in CI.
pub fn skip_or_fail(test: &str, what: &str) {
    assert!(!in_ci(), "{test}: {what} is missing, and CI requires it");
    eprintln!("SKIPPED {test}: {what} is missing");
}

/// Runs a command to its end.
pub fn run(c: &mut Command) -> Output {
    c.output().expect("spawn")
}

/// Runs a command that must succeed.
pub fn ok(c: &mut Command) -> Output {
    let o = run(c);
    assert!(o.status.success(), "command failed: {c:?}\n{}", show(&o));
    o
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// iotca on `home`, stdin not a terminal, no passphrase in the environment.
pub fn iotca(home: &Path) -> Command {
    iotca_in(home)
}

/// openssl with `args`, in `dir`.
pub fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl")
}

/// openssl that must succeed; its standard output.
pub fn openssl_ok(args: &[&str], dir: &Path) -> String {
    let o = openssl(args, dir);
    assert!(o.status.success(), "openssl {args:?} failed\n{}", show(&o));
    stdout(&o)
}

/// `CN=...` as openssl prints the subject (RFC 2253).
pub fn subject(dir: &Path, cert: &str) -> String {
    let s = openssl_ok(
        &[
            "x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253",
        ],
        dir,
    );
    s.trim().trim_start_matches("subject=").to_string()
}

/// The issuer as openssl prints it (RFC 2253).
pub fn issuer(dir: &Path, cert: &str) -> String {
    let s = openssl_ok(
        &[
            "x509", "-in", cert, "-noout", "-issuer", "-nameopt", "RFC2253",
        ],
        dir,
    );
    s.trim().trim_start_matches("issuer=").to_string()
}

/// `openssl x509 -text` of a certificate.
pub fn cert_text(dir: &Path, cert: &str) -> String {
    openssl_ok(&["x509", "-in", cert, "-noout", "-text"], dir)
}

/// `openssl verify -CAfile ca [-untrusted u] cert` succeeds.
pub fn verifies(dir: &Path, ca: &str, untrusted: Option<&str>, cert: &str) -> bool {
    let mut args = vec!["verify", "-CAfile", ca];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.push(cert);
    let o = openssl(&args, dir);
    o.status.success() && stdout(&o).contains(": OK")
}
