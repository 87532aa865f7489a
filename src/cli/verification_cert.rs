//! `iotca verification-cert CODE`: proof of possession of a CA's key.

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use iotca::home;
use iotca::home::Home;
use iotca::keys::KeyAlgorithm;
use iotca::profile::Profile;

use super::{CmdResult, Global, passphrase_from, print_report};

const HELP: &str = "\
After uploading a CA certificate to IoT Hub or DPS, the portal (or
`az iot dps certificate generate-verification-code`) shows a verification
code. This command issues certs/verification-code.cert.pem with CN = that
code, signed by the CA, which you upload to prove you hold the CA's key.
A previous verification certificate is moved under archive/.

EXIT CODES:
  0  the certificate was written
  2  it could not be (a bad code, a missing CA, a wrong passphrase)

EXAMPLES:
  Prove possession of the root CA:
    iotca --home pki verification-cert 1A2B3C4D5E6F7081
  Of the intermediate (DPS accepts intermediates for enrollment groups):
    iotca --home pki verification-cert 1A2B3C4D5E6F7081 --ca intermediate";

fn parse_algorithm(s: &str) -> Result<KeyAlgorithm, String> {
    s.parse()
}

/// `verification-cert` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct VerificationCertArgs {
    /// The verification code shown by IoT Hub or DPS.
    pub code: String,
    /// The CA whose key is proven: root (default), intermediate, or a NAME.
    #[arg(long, default_value = "root", value_name = "NAME")]
    pub ca: String,
    /// Key algorithm of the (throw-away) verification key.
    #[arg(long, default_value = "p256", value_parser = parse_algorithm, value_name = "A")]
    pub algorithm: KeyAlgorithm,
    /// Passphrase for an encrypted CA key: first line of FILE (or set IOTCA_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Profile (TOML) instead of the built-in `verification`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Runs `verification-cert`.
pub fn run(a: &VerificationCertArgs, g: &Global) -> CmdResult {
    home::check_verification_code(&a.code)?;
    let home = Home::open(&g.home_dir())?;
    let profile = Profile::builtin_or_file("verification", a.template.as_deref())?;
    let pass = passphrase_from(a.passphrase_file.as_deref())?;
    let report = home::create_verification_cert(
        &home,
        &a.code,
        &super::ca_arg::ca_name(&a.ca, g)?,
        a.algorithm,
        pass.as_ref(),
        &profile,
        OffsetDateTime::now_utc(),
    )?;
    print_report(&report, g)?;
    Ok(0)
}
