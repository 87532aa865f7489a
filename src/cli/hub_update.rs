//! `iotca hub device update ID --status enabled|disabled`, as
//! `az iot hub device-identity update --status`.

use std::io::Write as _;

use clap::Args;

use iotca::home::{FileKind, Home};
use iotca::hub::{DEVICE_NOT_FOUND, Registry};
use iotca::text::escape;

use super::{CmdResult, Global, print_json};

pub(super) const HELP: &str = "\
Sets the device identity's status in the local hub registry: a disabled
device may not connect. The record is rewritten in place, atomically.

EXIT CODES:
  0  updated (or already in that state)
  1  no such device (DeviceNotFound, as IoT Hub answers)
  2  the ID is invalid, or the record could not be read or written

EXAMPLES:
  Stop a device connecting:
    iotca --home pki hub device update sensor-thl-001 --status disabled
  And let it back in:
    iotca --home pki hub device update sensor-thl-001 --status enabled";

/// `hub device update` arguments.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The device ID (case-sensitive).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The new status.
    #[arg(long, value_parser = ["enabled", "disabled"], value_name = "enabled|disabled")]
    pub status: String,
}

/// Runs `hub device update`.
pub fn run(a: &UpdateArgs, g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let reg = Registry::new(home.clone());
    let path = reg.path(&a.id)?;
    let lock = home.lock()?;
    let Some(mut device) = reg.get(&a.id)? else {
        if g.json {
            print_json(
                &serde_json::json!({"found": false, "device_id": a.id, "error": DEVICE_NOT_FOUND}),
            )?;
        } else {
            println!(
                "{DEVICE_NOT_FOUND}: device '{}' is not in the local hub registry",
                escape(&a.id)
            );
        }
        return Ok(1);
    };
    let before = std::mem::replace(&mut device.status, a.status.clone());
    let mut bytes = serde_json::to_vec_pretty(&device)?;
    bytes.push(b'\n');
    lock.write_replace(&path, &bytes, FileKind::Public)?;
    drop(lock);
    if g.json {
        print_json(&device)?;
    } else if !g.quiet {
        writeln!(
            std::io::stdout().lock(),
            "device '{}': status {before} -> {} ({})",
            escape(&a.id),
            device.status,
            path.display()
        )?;
    }
    Ok(0)
}
