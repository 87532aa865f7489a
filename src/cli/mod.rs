//! Command-line front end: one file per command, each an args struct and a
//! `run` function returning the exit code (0 yes, 1 no) or an error (exit 2).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod audit;
mod audit_known;
pub mod azure_args;
pub mod ca;
mod ca_arg;
pub mod ca_list;
mod ca_replace;
pub mod ca_rollover;
pub mod deprovision;
pub mod deprovision_azure;
pub mod device;
pub mod device_renew;
pub mod device_sign;
pub mod dps;
pub mod dps_azure;
pub mod enroll;
mod enroll_check;
mod enroll_group;
pub mod enroll_group_update;
mod enroll_preflight;
pub mod enroll_update;
mod help_cmd;
mod home_check;
pub mod hub;
pub mod hub_azure;
pub mod hub_messages;
mod hub_update;
pub mod inspect;
mod json_error;
pub use json_error::Usage;
pub mod provision;
pub mod template;
pub mod verification_cert;
pub mod verify;
pub mod wire;

/// Result of a command: `Ok(0)` success/yes, `Ok(1)` the answer is no,
/// `Err` could not run (exit 2).
pub type CmdResult = anyhow::Result<u8>;

const AFTER_HELP: &str = "\
EXIT CODES:
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to overwrite)

EXAMPLES:
  Make a lab PKI (P-256 root and intermediate) in ./pki and three devices:
    iotca --home pki ca init
    iotca --home pki device create sensor-thl-001 sensor-thl-002 sensor-thl-003

  Does a device's chain reach the group's CA?
    iotca verify pki/certs/sensor-thl-002-full-chain.cert.pem --ca pki/certs/azure-iot-test-only.intermediate.cert.pem";

const CA_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca --home pki ca init                              root + intermediate (P-256)
  iotca --home pki ca intermediate factory-a --pathlen 0
  iotca --home pki ca list";

const DEVICE_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca --home pki device create sensor-thl-001 sensor-thl-002
  iotca --home pki device create --ids-file fleet.txt --skip-existing";

const ENROLL_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca enroll check --enrollment-id sensor-thl-002 --cert pki/certs/sensor-thl-002.cert.pem
  iotca --home pki enroll group create fleet --ca pki/certs/azure-iot-test-only.intermediate.cert.pem
  iotca --home pki enroll create --enrollment-id sensor-thl-002 --cert pki/certs/sensor-thl-002.cert.pem --status disabled
  iotca --home pki enroll list";

/// `enroll group`'s help.
pub(crate) const ENROLL_GROUP_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca --home pki enroll group create fleet --ca pki/certs/azure-iot-test-only.intermediate.cert.pem --iot-hub hub.azure-devices.net
  iotca --home pki enroll group list
  iotca --home pki enroll group show fleet";

/// `hub device`'s help.
pub(crate) const HUB_DEVICE_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca --home pki hub device add sensor-thl-001
  iotca --home pki hub device show sensor-thl-001
  iotca --home pki hub device update sensor-thl-001 --status disabled
  iotca --home pki hub device delete sensor-thl-001";

const HUB_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca --home pki hub device list
  iotca --home pki hub device show sensor-thl-001       exit 1 and DeviceNotFound when missing";

const TEMPLATE_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca template list
  iotca template show device > my-device.toml";

const DPS_HELP: &str = "\
EXIT CODES (as every iotca command; each subcommand's help says what 1 means for it):
  0  success, or the check holds
  1  the check ran and the answer is no
  2  the command could not run (bad arguments, unreadable input, refusing to
     overwrite; also this parent command given without a subcommand)

EXAMPLES:
  iotca --home pki dps serve                            127.0.0.1:8883, as the device SDKs expect
  iotca --home pki dps trust > dps-server-ca.pem        the server verification certificate for devices
  iotca --home pki dps registrations";

/// iotca: X.509 certificates for Azure IoT device provisioning.
///
/// Creates lab and fleet PKIs (root CA, intermediates, device certificates
/// with CN = device ID), checks that a device's chain reaches a DPS group's
/// CA, guards DPS enrollments against CN mismatches, and audits fleets.
#[derive(Debug, Parser)]
#[command(
    name = "iotca",
    version,
    after_help = AFTER_HELP,
    propagate_version = true,
    disable_help_subcommand = true,
    term_width = 0
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The PKI home directory [default: $IOTCA_HOME, else the current directory].
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub home: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print nothing but errors (and JSON when asked for).
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
}

impl Global {
    /// The home directory: `--home`, else `$IOTCA_HOME`, else `.`.
    pub fn home_dir(&self) -> PathBuf {
        if let Some(h) = &self.home {
            return h.clone();
        }
        match std::env::var_os("IOTCA_HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h),
            _ => PathBuf::from("."),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and list certificate authorities (root, intermediates).
    #[command(subcommand, after_help = CA_HELP)]
    Ca(ca::CaCommand),
    /// Issue device (leaf) certificates with CN = device ID.
    #[command(subcommand, after_help = DEVICE_HELP)]
    Device(device::DeviceCommand),
    /// Issue a proof-of-possession (verification) certificate for a CA.
    VerificationCert(verification_cert::VerificationCertArgs),
    /// Check whether a device's chain reaches a group's CA, and say why not.
    Verify(verify::VerifyArgs),
    /// Describe certificates: subject, validity, keys, extensions, thumbprints.
    Inspect(inspect::InspectArgs),
    /// DPS enrollments: the pre-flight check, create, list, show, delete, groups.
    #[command(subcommand, after_help = ENROLL_HELP)]
    Enroll(enroll::EnrollCommand),
    /// Simulate the DPS decision for a device presenting CERT (a full-chain PEM).
    Provision(provision::ProvisionArgs),
    /// The local IoT hub identity registry.
    #[command(subcommand, after_help = HUB_HELP)]
    Hub(hub::HubCommand),
    /// Take one device out of its enrollment group: disabled individual enrollment + hub deletion.
    Deprovision(deprovision::DeprovisionArgs),
    /// Check thousands of device certificates against a group CA.
    Audit(audit::AuditArgs),
    /// Show the built-in certificate profiles.
    #[command(subcommand, after_help = TEMPLATE_HELP)]
    Template(template::TemplateCommand),
    /// Run a local DPS endpoint the Azure IoT device SDKs provision against.
    #[command(subcommand, after_help = DPS_HELP)]
    Dps(dps::DpsCommand),
    /// Print the help of iotca or of the given command.
    #[command(after_help = help_cmd::HELP)]
    Help(help_cmd::HelpArgs),
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match &cli.command {
        Command::Ca(c) => ca::run(c, &cli.global),
        Command::Device(c) => device::run(c, &cli.global),
        Command::VerificationCert(a) => verification_cert::run(a, &cli.global),
        Command::Verify(a) => verify::run(a, &cli.global),
        Command::Inspect(a) => inspect::run(a, &cli.global),
        Command::Enroll(c) => enroll::run(c, &cli.global),
        Command::Provision(a) => provision::run(a, &cli.global),
        Command::Hub(c) => hub::run(c, &cli.global),
        Command::Deprovision(a) => deprovision::run(a, &cli.global),
        Command::Audit(a) => audit::run(a, &cli.global),
        Command::Template(c) => template::run(c, &cli.global),
        Command::Dps(c) => dps::run(c, &cli.global),
        Command::Help(a) => help_cmd::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::from(0);
            }
            let sentence = one_sentence(&e);
            let _ = writeln!(std::io::stderr(), "iotca: error: {sentence}");
            if cli.global.json {
                json_error::print(&e, &sentence);
            }
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// Joins an error and its context into one line.
fn one_sentence(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Reads a passphrase from `--passphrase-file` (first line, line ending
/// stripped, as `openssl -passin file:` does) or `$IOTCA_PASSPHRASE`.
pub fn passphrase_from(
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<iotca::keys::Secret>> {
    if let Some(path) = file {
        let secret = iotca::keys::Secret::from_file_first_line(path)?;
        if secret.expose().is_empty() {
            anyhow::bail!(
                "{}: the first line is empty; iotca does not use an empty passphrase",
                path.display()
            );
        }
        return Ok(Some(secret));
    }
    match std::env::var("IOTCA_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(Some(iotca::keys::Secret::new(p))),
        _ => Ok(None),
    }
}

/// Prints what a command wrote (text or JSON) and its warnings on stderr.
pub fn print_report(report: &iotca::home::Report, g: &Global) -> anyhow::Result<()> {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        return print_json(&wire::JsonReport::from(report));
    }
    if g.quiet {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if let Some(a) = &report.archived_to {
        writeln!(out, "archived the previous files to {}", a.display())?;
    }
    let n = report.written.len();
    if n > 40 {
        writeln!(out, "wrote {n} files; first and last:")?;
        for w in report
            .written
            .iter()
            .take(3)
            .chain(report.written.iter().skip(n - 3))
        {
            writeln!(out, "  {:<28} {}", w.what, w.path.display())?;
        }
    } else {
        for w in &report.written {
            writeln!(out, "wrote {:<28} {}", w.what, w.path.display())?;
        }
    }
    if !report.skipped.is_empty() {
        writeln!(
            out,
            "skipped {} device(s) that already exist",
            report.skipped.len()
        )?;
    }
    Ok(())
}

/// The local DPS store of the home, as an audit lookup, when the home has one.
pub fn enrollment_lookup(
    g: &Global,
) -> anyhow::Result<Option<Box<dyn iotca::audit::EnrollmentLookup>>> {
    let dir = g.home_dir();
    if !dir.join("dps").is_dir() {
        return Ok(None);
    }
    let home = iotca::home::Home::open(&dir)?;
    let snapshot = iotca::provision::Snapshot::load(&iotca::enroll::EnrollmentStore::new(home));
    Ok(Some(Box::new(snapshot)))
}
