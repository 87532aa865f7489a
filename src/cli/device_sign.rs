//! `iotca device sign CSR...`: device certificates for CSRs; the key stays on the device.

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use iotca::home::{self, Home};
use iotca::lifecycle::sign::{self, SignOptions};
use iotca::profile::Profile;

use super::{CmdResult, Global, passphrase_from, print_json};

const HELP: &str = "\
For devices whose key never leaves them (a secure element, a TPM): the
device makes a PKCS#10 CSR, iotca certifies its public key. The CSR's own
signature must verify; its CN is the device ID (DPS registration ID rules,
and equal to --id when given). The certificate follows the device profile
whatever the CSR asks for: requested extensions (CA:TRUE, subjectAltName,
keyUsage...) and subject attributes other than the CN are not copied, and a
warning on stderr names them. P-256, P-384 and RSA (2048 to 8192) keys.

FILES (per CSR; no key is written):
  certs/<id>.cert.pem              the device certificate, CN = <id>
  certs/<id>-full-chain.cert.pem   the certificate, then every CA up to and including the root

EXIT CODES:
  0  every CSR was signed
  2  nothing was signed (a CSR that does not verify, a bad CN, an existing device, a missing CA)

EXAMPLES:
  One CSR made on the device:
    openssl req -new -key device.key -subj /CN=sensor-se-001 -out sensor-se-001.csr
    iotca --home pki device sign sensor-se-001.csr
  A directory of CSRs (.csr, .pem, .der), signed on every core:
    iotca --home pki device sign csrs/
  Check the CN is the device you expect, and sign with another CA:
    iotca --home pki device sign req.der --id line7-0001 --ca line-7
  Replace a device's certificate (its old files, key included, move under archive/):
    iotca --home pki device sign sensor-se-001.csr --force";

/// `device sign` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct SignArgs {
    /// CSR files (PEM or DER), or directories of them.
    #[arg(required = true, value_name = "CSR")]
    pub csrs: Vec<PathBuf>,
    /// The signing CA: intermediate (default), root, or a NAME made with `ca intermediate`.
    #[arg(long, value_name = "NAME")]
    pub ca: Option<String>,
    /// Validity in days [default: 365]; never beyond the CA's own notAfter.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// The device ID the CSR's CN must equal (one CSR only).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Accept CNs that are not valid DPS registration IDs (still safe file names).
    #[arg(long)]
    pub allow_any_cn: bool,
    /// Move existing files of these devices to archive/<timestamp>/ and sign anew.
    #[arg(long)]
    pub force: bool,
    /// Passphrase for an encrypted CA key: first line of FILE (or set IOTCA_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Device profile (TOML) instead of the built-in `device`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Runs `device sign`.
pub fn run(a: &SignArgs, g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let csrs = sign::read_csrs(&a.csrs)?;
    let opts = SignOptions {
        ca: a
            .ca
            .clone()
            .unwrap_or_else(|| home::default_device_ca(&home).to_string()),
        days: a.days,
        id: a.id.clone(),
        allow_any_cn: a.allow_any_cn,
        force: a.force,
        passphrase: passphrase_from(a.passphrase_file.as_deref())?,
        profile: Profile::builtin_or_file("device", a.template.as_deref())?,
    };
    let bar = super::device::progress_bar(csrs.len() as u64, g.quiet);
    let tick = || bar.inc(1);
    let report = sign::sign_csrs(&home, &csrs, &opts, OffsetDateTime::now_utc(), &tick);
    bar.finish_and_clear();
    let report = report?;
    for w in &report.report.warnings {
        eprintln!("warning: {}", iotca::text::escape(w));
    }
    if g.json {
        print_json(&report)?;
    } else if !g.quiet {
        if let Some(a) = &report.report.archived_to {
            println!("archived the previous files to {}", a.display());
        }
        let n = report.devices.len();
        for d in report.devices.iter().take(20) {
            println!(
                "signed {} ({}, from {}): {}",
                d.id,
                d.key_algorithm,
                d.csr.display(),
                d.full_chain.display()
            );
        }
        if n > 20 {
            println!(
                "... and {} more: {n} devices signed, no key written",
                n - 20
            );
        }
    }
    Ok(0)
}
