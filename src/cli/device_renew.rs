//! `iotca device renew ID...`: new certificates for existing devices, the same key by default.

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use iotca::home::Home;
use iotca::lifecycle::renew::{self, RenewOptions};
use iotca::profile::Profile;

use super::{CmdResult, Global, passphrase_from, print_json};

const HELP: &str = "\
The new certificate holds the same public key as the old one, byte for
byte (a key in a secure element cannot be replaced, and no private key is
needed): the device keeps its key file. --rekey makes a new key instead
(only for devices whose key is in the home). The old certificate, full
chain, PFX (and with --rekey the old key) move under archive/<timestamp>/.
Without --ca, the CA that signed the current certificate signs the new one.

A device with an individual enrollment in the local DPS store is reported:
that enrollment names the old certificate, and the command printed
(`iotca enroll update ID --cert ...`) updates it, pre-flight included.

EXIT CODES:
  0  every device was renewed (or none was expiring)
  2  nothing was renewed (a missing device, a key that does not match, a missing CA)

EXAMPLES:
  Renew two devices, same keys:
    iotca --home pki device renew sensor-thl-001 sensor-thl-002
  Every device expiring within 30 days (or already expired):
    iotca --home pki device renew --expiring-within 30
  Re-issue under the successor of a rolled-over intermediate:
    iotca --home pki device renew sensor-thl-001 --ca intermediate-2
  With a new key:
    iotca --home pki device renew sensor-thl-003 --rekey";

/// `device renew` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct RenewArgs {
    /// Device IDs to renew.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Also every device of the home whose certificate expires within DAYS (or has expired).
    #[arg(long, value_name = "DAYS")]
    pub expiring_within: Option<i64>,
    /// Make a new key instead of certifying the current one again.
    #[arg(long)]
    pub rekey: bool,
    /// Validity in days [default: 365]; never beyond the CA's own notAfter.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// The signing CA [default: the CA that signed the current certificate].
    #[arg(long, value_name = "NAME")]
    pub ca: Option<String>,
    /// Passphrase for an encrypted CA key: first line of FILE (or set IOTCA_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Device profile (TOML) instead of the built-in `device`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Runs `device renew`.
pub fn run(a: &RenewArgs, g: &Global) -> CmdResult {
    if a.ids.is_empty() && a.expiring_within.is_none() {
        anyhow::bail!("give device IDs to renew, or --expiring-within DAYS");
    }
    for id in &a.ids {
        iotca::ids::check_file_name(id)?;
    }
    let home = Home::open(&g.home_dir())?;
    let opts = RenewOptions {
        ids: a.ids.clone(),
        expiring_within: a.expiring_within,
        rekey: a.rekey,
        days: a.days,
        ca: a.ca.clone(),
        passphrase: passphrase_from(a.passphrase_file.as_deref())?,
        profile: Profile::builtin_or_file("device", a.template.as_deref())?,
    };
    let report = renew::renew(&home, &opts, OffsetDateTime::now_utc())?;
    for w in &report.report.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        print_json(&report)?;
        return Ok(0);
    }
    let updates: Vec<&str> = report
        .devices
        .iter()
        .filter_map(|d| d.enrollment_update.as_deref())
        .collect();
    if !updates.is_empty() {
        eprintln!(
            "note: {} renewed device(s) have an individual enrollment that names the old certificate; update it (the pre-flight runs again):",
            updates.len()
        );
        for u in &updates {
            eprintln!("  {u}");
        }
        eprintln!("  (for the real DPS: add --to az --dps-name NAME)");
    }
    if g.quiet {
        return Ok(0);
    }
    if report.devices.is_empty() {
        println!("no device expires within the window; nothing to renew");
    }
    if let Some(a) = &report.report.archived_to {
        println!("archived the previous files to {}", a.display());
    }
    for d in &report.devices {
        println!(
            "renewed {} by CA '{}', {}: valid until {} (was {}); {}",
            d.id,
            d.ca,
            if d.same_key { "same key" } else { "new key" },
            d.not_after,
            d.old_not_after,
            d.full_chain.display()
        );
    }
    Ok(0)
}
