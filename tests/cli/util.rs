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
