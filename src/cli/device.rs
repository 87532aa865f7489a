//! `iotca device create`: device (leaf) certificates with CN = device ID.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use iotca::home::Home;
use iotca::home::{self, DeviceOptions, Existing, PfxOptions};
use iotca::keys::{KeyAlgorithm, Secret};
use iotca::profile::Profile;

use super::{CmdResult, Global, passphrase_from, print_report};

/// Device commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Issue a key, a certificate (CN = ID) and a full-chain file for each device ID.
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// Sign CSRs (PKCS#10): certificates for keys that never leave the device.
    Sign(super::device_sign::SignArgs),
    /// Renew devices' certificates: the same key by default, a new one with --rekey.
    Renew(super::device_renew::RenewArgs),
}

const CREATE_HELP: &str = "\
FILES (per device ID):
  private/<id>.key.pem             PKCS#8 key, mode 0600
  certs/<id>.cert.pem              the device certificate, CN = <id>
  certs/<id>-full-chain.cert.pem   the certificate, then every CA up to and including the root
  certs/<id>.cert.pfx              with --pfx: key, certificate and CA chain (PKCS#12)

EXIT CODES:
  0  every device was issued
  2  nothing could be issued (an invalid ID, existing devices, a missing CA, a wrong passphrase)

EXAMPLES:
  Three devices signed by the default intermediate:
    iotca --home pki device create sensor-thl-001 sensor-thl-002 sensor-thl-003
  A fleet from a file of IDs (one per line, # comments), resumable after an interruption:
    iotca --home pki device create --ids-file fleet.txt --skip-existing
  An RSA device with a PFX for the .NET sample (password from a file):
    iotca --home pki device create dotnet-01 --algorithm rsa2048 --pfx --pfx-password-file pfx.txt
  Re-issue a device (the old files are moved under archive/):
    iotca --home pki device create sensor-thl-002 --force
  A device signed by another CA:
    iotca --home pki device create line7-0001 --ca line-7";

fn parse_algorithm(s: &str) -> Result<KeyAlgorithm, String> {
    s.parse()
}

/// `device create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Device IDs: each becomes the certificate's CN and must be a valid DPS registration ID.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Read more device IDs from FILE, one per line (blank lines and # comments ignored; - for stdin).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,
    /// The signing CA: intermediate (default), root, or a NAME made with `ca intermediate` (a file holding one of them is mapped to its name).
    #[arg(long, value_name = "NAME")]
    pub ca: Option<String>,
    /// Key algorithm: p256 (default), p384, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p256", value_parser = parse_algorithm, value_name = "A")]
    pub algorithm: KeyAlgorithm,
    /// Validity in days [default: 365]; never beyond the CA's own notAfter.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// Also write certs/<id>.cert.pfx (PKCS#12: key, certificate and CA chain).
    #[arg(long)]
    pub pfx: bool,
    /// The PFX password: the first line of FILE. Without it, iotca asks on the terminal.
    #[arg(long, value_name = "FILE", requires = "pfx")]
    pub pfx_password_file: Option<PathBuf>,
    /// Encrypt the PFX with PBE-SHA1-3DES and a SHA-1 MAC, for older Windows imports.
    #[arg(long, requires = "pfx")]
    pub pfx_legacy: bool,
    /// Passphrase for an encrypted CA key: first line of FILE (or set IOTCA_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Move existing files of these devices to archive/<timestamp>/ and issue anew.
    #[arg(long, conflicts_with = "skip_existing")]
    pub force: bool,
    /// Leave devices that already exist alone (and finish any a killed run left half-written).
    #[arg(long)]
    pub skip_existing: bool,
    /// Accept IDs that are not valid DPS registration IDs (still safe file names).
    #[arg(long)]
    pub allow_any_cn: bool,
    /// Device profile (TOML) instead of the built-in `device`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Runs `device`.
pub fn run(cmd: &DeviceCommand, g: &Global) -> CmdResult {
    match cmd {
        DeviceCommand::Create(a) => create(a, g),
        DeviceCommand::Sign(a) => super::device_sign::run(a, g),
        DeviceCommand::Renew(a) => super::device_renew::run(a, g),
    }
}

fn read_ids(a: &CreateArgs) -> anyhow::Result<Vec<String>> {
    let mut ids = a.ids.clone();
    if let Some(f) = &a.ids_file {
        let lines = if f.as_os_str() == "-" {
            iotca::home::fs::read_lines(std::io::stdin().lock(), "standard input")?
        } else {
            let file = std::fs::File::open(f).map_err(|e| iotca::Error::io(f, e))?;
            iotca::home::fs::read_lines(file, &f.display().to_string())?
        };
        ids.extend(lines);
    }
    if ids.is_empty() {
        anyhow::bail!("give at least one device ID, or --ids-file FILE");
    }
    Ok(ids)
}

fn pfx_password(a: &CreateArgs) -> anyhow::Result<Option<PfxOptions>> {
    if !a.pfx {
        return Ok(None);
    }
    let password = match &a.pfx_password_file {
        Some(f) => Secret::from_file_first_line(f)?,
        None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            let p = Secret::new(rpassword::prompt_password("PFX password: ")?);
            let again = Secret::new(rpassword::prompt_password("PFX password again: ")?);
            if p.expose() != again.expose() {
                anyhow::bail!("the two PFX passwords differ");
            }
            p
        }
        None => anyhow::bail!(
            "--pfx needs a password: give --pfx-password-file FILE (no terminal to ask on)"
        ),
    };
    if password.expose().is_empty() {
        anyhow::bail!("the PFX password is empty; iotca does not write unprotected PFX files");
    }
    Ok(Some(PfxOptions {
        password,
        legacy: a.pfx_legacy,
    }))
}

fn create(a: &CreateArgs, g: &Global) -> CmdResult {
    let ids = read_ids(a)?;
    home::check_device_ids(&ids, a.allow_any_cn)?;
    let home = Home::open(&g.home_dir())?;
    let opts = DeviceOptions {
        ca: match &a.ca {
            Some(c) => super::ca_arg::ca_name(c, g)?,
            None => home::default_device_ca(&home).to_string(),
        },
        algorithm: a.algorithm,
        days: a.days,
        existing: if a.force {
            Existing::Archive
        } else if a.skip_existing {
            Existing::Skip
        } else {
            Existing::Refuse
        },
        allow_any_cn: a.allow_any_cn,
        passphrase: passphrase_from(a.passphrase_file.as_deref())?,
        pfx: pfx_password(a)?,
        profile: Profile::builtin_or_file("device", a.template.as_deref())?,
        ids,
    };
    let bar = progress_bar(opts.ids.len() as u64, g.quiet);
    let tick = || bar.inc(1);
    let report = home::create_devices(&home, &opts, OffsetDateTime::now_utc(), &tick);
    bar.finish_and_clear();
    let report = report?;
    if opts.pfx.is_some() && !g.quiet {
        eprintln!("note: the PFX files hold the device keys; keep them as private as private/");
    }
    print_report(&report, g)?;
    Ok(0)
}

/// A progress bar on stderr, only when it is a terminal and the run is long.
pub fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || len < 200 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {wide_bar} {pos}/{len} devices ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}
