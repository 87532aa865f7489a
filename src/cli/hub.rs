//! `iotca hub device ...`: the local IoT hub identity registry.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use iotca::cert;
use iotca::home::Home;
use iotca::hub::{DEVICE_NOT_FOUND, Device, Registry};

use super::{CmdResult, Global, print_json};

/// IoT hub registry commands.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Device identities in the local hub registry (hub/devices/<id>.json).
    #[command(
        subcommand,
        after_help = super::HUB_DEVICE_HELP
    )]
    Device(DeviceCommand),
    /// The telemetry the local hub received (hub/messages/<id>.jsonl), oldest first.
    #[command(after_help = super::hub_messages::MESSAGES_HELP)]
    Messages(super::hub_messages::MessagesArgs),
}

/// `hub device` commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add a device identity (X.509: by thumbprint with --cert, else CA-signed).
    #[command(after_help = ADD_HELP)]
    Add(AddArgs),
    /// Show a device identity; a missing device exits 1 with DeviceNotFound, as IoT Hub answers.
    #[command(after_help = SHOW_HELP)]
    Show(IdArg),
    /// Delete a device identity (its record moves under archive/).
    #[command(after_help = DELETE_HELP)]
    Delete(IdArg),
    /// Set a device identity's status: enabled or disabled.
    #[command(after_help = super::hub_update::HELP)]
    Update(super::hub_update::UpdateArgs),
    /// List the device identities.
    #[command(after_help = LIST_HELP)]
    List(super::azure_args::HubRemoteArgs),
    /// Disable a device identity on an IoT hub (--azure only).
    #[command(after_help = STATUS_HELP)]
    Disable(IdArg),
    /// Enable a device identity on an IoT hub (--azure only).
    #[command(after_help = STATUS_HELP)]
    Enable(IdArg),
}

const ADD_HELP: &str = "\
Device IDs are case-sensitive: 1-128 of A-Z a-z 0-9 and - . % _ * ? ! ( ) , : = @ $ '
(not starting with '.' in the local registry).

EXIT CODES:
  0  added
  2  could not add (invalid ID, the device exists, unreadable certificate)

EXAMPLES:
  A device that authenticates with a CA-signed certificate (as DPS registers group devices):
    iotca hub device add sensor-thl-002
  A device registered by its certificate's thumbprint:
    iotca hub device add sensor-thl-002 --cert certs/sensor-thl-002.cert.pem";

const SHOW_HELP: &str = "\
EXIT CODES:
  0  the device exists (its identity is printed as JSON)
  1  DeviceNotFound
  2  the ID is invalid or the record could not be read

EXAMPLES:
  Is the device still registered after deprovisioning?
    iotca hub device show sensor-thl-002
  The same on an IoT hub (connection strings from a file, or IOTCA_HUB_CONNECTION_STRING):
    iotca hub device show sensor-thl-002 --azure --hub-connection-string-file hubs.cs";

const DELETE_HELP: &str = "\
EXIT CODES:
  0  deleted
  1  DeviceNotFound
  2  the ID is invalid or the file could not be moved

EXAMPLES:
  Remove a device from the hub (the record moves under archive/):
    iotca hub device delete sensor-thl-002";

const STATUS_HELP: &str = "\
Reads the device, PUTs it back with the new status and its etag (If-Match),
then reads it back.

EXIT CODES:
  0  the device reads back with the new status
  1  DeviceNotFound
  2  could not run (no connection string, a request failed, a 412 race)

EXAMPLES:
  Keep the identity but refuse its connections:
    iotca hub device disable sensor-thl-002 --azure --hub-connection-string-file hubs.cs";

const LIST_HELP: &str = "\
EXIT CODES:
  0  every record was read
  2  some record could not be read (each is named on stderr; the others are listed)

EXAMPLES:
  Every registered device:
    iotca hub device list
  As JSON:
    iotca hub device list --json";

/// `hub device add` arguments.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The device ID (case-sensitive).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The device's certificate: register it by its thumbprint (selfSigned).
    #[arg(long, value_name = "CERT")]
    pub cert: Option<PathBuf>,
}

/// A device ID argument.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The device ID (case-sensitive).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub remote: super::azure_args::HubRemoteArgs,
}

/// Runs `hub`.
pub fn run(c: &HubCommand, g: &Global) -> CmdResult {
    let c = match c {
        HubCommand::Device(c) => c,
        HubCommand::Messages(a) => return super::hub_messages::run(a, g),
    };
    use super::hub_azure as az;
    match c {
        DeviceCommand::Show(a) if a.remote.azure => az::show(&a.id, &a.remote, g),
        DeviceCommand::Delete(a) if a.remote.azure => az::delete(&a.id, &a.remote, g),
        DeviceCommand::Disable(a) | DeviceCommand::Enable(a) if !a.remote.azure => {
            anyhow::bail!("hub device disable/enable act on an IoT hub: add --azure")
        }
        DeviceCommand::Disable(a) => az::set_status(&a.id, "disabled", &a.remote, g),
        DeviceCommand::Enable(a) => az::set_status(&a.id, "enabled", &a.remote, g),
        DeviceCommand::List(r) if r.azure => az::list(r, g),
        DeviceCommand::Add(a) => add(a, g),
        DeviceCommand::Show(a) => show(a, g),
        DeviceCommand::Delete(a) => delete(a, g),
        DeviceCommand::Update(a) => super::hub_update::run(a, g),
        DeviceCommand::List(_) => list(g),
    }
}

fn registry(g: &Global) -> anyhow::Result<(Home, Registry)> {
    let home = Home::open(&g.home_dir())?;
    Ok((home.clone(), Registry::new(home)))
}

fn out(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// What IoT Hub answers for a missing device, as JSON.
#[derive(Serialize)]
struct JsonNotFound<'a> {
    found: bool,
    device_id: &'a str,
    error: &'static str,
}

fn not_found(id: &str, g: &Global) -> CmdResult {
    if g.json {
        print_json(&JsonNotFound {
            found: false,
            device_id: id,
            error: DEVICE_NOT_FOUND,
        })?;
    } else {
        out(&format!(
            "{DEVICE_NOT_FOUND}: device '{id}' is not in the local hub registry\n"
        ))?;
    }
    Ok(1)
}

fn add(a: &AddArgs, g: &Global) -> CmdResult {
    let (home, reg) = registry(g)?;
    reg.path(&a.id)?;
    let now = OffsetDateTime::now_utc();
    let device = match &a.cert {
        Some(p) => {
            let ders = cert::read_certificates(p)?;
            Device::with_thumbprint(&a.id, &ders[0], now)
        }
        None => Device::ca_signed(&a.id, now),
    };
    let lock = home.lock()?;
    let path = reg.add(&lock, &device)?;
    if g.json {
        print_json(&device)?;
    } else if !g.quiet {
        out(&format!(
            "added device '{}' ({}) to the hub registry: {}\n",
            a.id,
            device.authentication.kind,
            path.display()
        ))?;
    }
    Ok(0)
}

fn show(a: &IdArg, g: &Global) -> CmdResult {
    let (_, reg) = registry(g)?;
    match reg.get(&a.id)? {
        Some(d) => {
            print_json(&d)?;
            Ok(0)
        }
        None => not_found(&a.id, g),
    }
}

fn delete(a: &IdArg, g: &Global) -> CmdResult {
    let (home, reg) = registry(g)?;
    reg.path(&a.id)?;
    let lock = home.lock()?;
    match reg.delete(&lock, &a.id)? {
        Some(dir) => {
            if g.json {
                print_json(
                    &serde_json::json!({"deleted": true, "device_id": a.id, "archived_to": dir.display().to_string()}),
                )?;
            } else if !g.quiet {
                out(&format!(
                    "deleted device '{}' from the hub registry (the record moved to {})\n",
                    a.id,
                    dir.display()
                ))?;
            }
            Ok(0)
        }
        None => not_found(&a.id, g),
    }
}

fn list(g: &Global) -> CmdResult {
    let (home, reg) = registry(g)?;
    let listing = reg.list();
    for e in &listing.errors {
        eprintln!("iotca: error: {e}");
    }
    if g.json {
        let devices: Vec<&Device> = listing.records.iter().map(|(_, d)| d).collect();
        print_json(&serde_json::json!({
            "devices": devices,
            "errors": listing.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        let mut s = String::new();
        if listing.records.is_empty() {
            s.push_str(&format!(
                "no devices in the hub registry of {}\n",
                home.root().display()
            ));
        }
        for (_, d) in &listing.records {
            s.push_str(&format!(
                "{:<40} {:<8} {}\n",
                d.device_id, d.status, d.authentication.kind
            ));
        }
        out(&s)?;
    }
    Ok(if listing.errors.is_empty() { 0 } else { 2 })
}
