//! `iotca deprovision ID --cert CERT`: take one device out of its enrollment
//! group in one step — pre-flight, disabled individual enrollment, hub
//! deletion, and both confirmed.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;
use time::OffsetDateTime;

use iotca::cert;
use iotca::enroll::schema::ProvisioningStatus;
use iotca::enroll::{EnrollmentStore, IndividualEnrollment, az};
use iotca::home::Home;
use iotca::hub::Registry;
use iotca::provision::{self, Decision, Status};

use super::azure_args::AzureArgs;
use super::enroll::{leaf_file_for_az, preflight, preflight_json, render_preflight};
use super::{CmdResult, Global, print_json};

const AFTER_HELP: &str = "\
WHAT IT DOES (--to local, the default):
  1. The pre-flight of `enroll check`: the certificate's CN is exactly ID, it
     is a device leaf, not expired, and chains to --group-ca when given. If it
     refuses, nothing changes (exit 1).
  2. Writes a disabled individual enrollment dps/enrollments/<id>.json. An
     existing enrollment for ID that is already disabled with this certificate
     is kept; any other (enabled, or another certificate) is replaced, the old
     record moving under archive/<timestamp>/. Its deviceId is kept.
  3. Deletes the device (the enrollment's deviceId, else ID) from the hub
     registry hub/devices/ (the record moves under archive/).
  4. Confirms: the enrollment reads back disabled, the hub answers
     DeviceNotFound, and the provisioning decision for CERT is `disabled`.
With --to azure it does the same on a real DPS and IoT hub (see below).
With --to az it prints the two az commands instead (\"$DPS_NAME\" and
\"$HUB_NAME\" stand in for names not given).

WITH --to azure:
  1. The same pre-flight, before any request.
  2. A disabled individual enrollment: created, or the existing one under ID
     updated with If-Match; read back: provisioningStatus disabled.
  3. The device's hub from its registration state (assignedHub, deviceId);
     a device that never registered has no hub entry to remove.
  4. The device deleted (or disabled, --hub-action disable) in that hub; read
     back: DeviceNotFound (or status disabled). A hub with no connection
     string given is exit 2, the DPS step kept.
  Running it again changes nothing and exits 0.
  With --ids-file F --certs-dir DIR every device's pre-flight runs first (one
  refusal: exit 1, nothing written), then up to 8 devices at a time.
  Connection strings come from --dps-connection-string-file /
  --hub-connection-string-file or IOTCA_DPS_CONNECTION_STRING /
  IOTCA_HUB_CONNECTION_STRING, never from the command line.

EXIT CODES:
  0  deprovisioned and confirmed (or the commands printed)
  1  the pre-flight refused; nothing changed
  2  could not run (unreadable file, bad flags), or a step did not confirm

EXAMPLES:
  Take sensor-thl-002 out of its group:
    iotca deprovision sensor-thl-002 --cert certs/sensor-thl-002.cert.pem
  Also make sure it is a device of the group over the intermediate:
    iotca deprovision sensor-thl-002 --cert certs/sensor-thl-002-full-chain.cert.pem \\
        --group-ca certs/azure-iot-test-only.intermediate.cert.pem
  The same against Azure:
    iotca deprovision sensor-thl-002 --cert certs/sensor-thl-002.cert.pem --to az --dps-name dps-X --hub-name hub-X
  Do it on Azure:
    iotca deprovision sensor-thl-002 --cert certs/sensor-thl-002.cert.pem --to azure \\
        --dps-connection-string-file dps.cs --hub-connection-string-file hubs.cs
  Many devices on Azure:
    iotca deprovision --ids-file retired.txt --certs-dir certs --to azure \\
        --dps-connection-string-file dps.cs --hub-connection-string-file hubs.cs --json";

/// Where the deprovisioning happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// In the home's local DPS store and hub registry.
    Local,
    /// Print the az commands.
    Az,
    /// Act on the DPS and IoT hub named by the connection strings.
    Azure,
}

/// `--hub-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HubActionArg {
    /// Delete the device identity.
    Delete,
    /// Disable it.
    Disable,
}

/// Take one device out of its enrollment group: disabled individual enrollment + hub deletion.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct DeprovisionArgs {
    /// The device's registration ID (= its certificate's CN).
    #[arg(
        value_name = "ID",
        required_unless_present = "ids_file",
        conflicts_with = "ids_file"
    )]
    pub id: Option<String>,
    /// The device's certificate: leaf, or full chain with the leaf first.
    #[arg(
        long,
        value_name = "CERT",
        required_unless_present = "ids_file",
        conflicts_with = "ids_file"
    )]
    pub cert: Option<PathBuf>,
    /// Many devices (with --to azure): a file of registration IDs, one a line.
    #[arg(long, value_name = "F", requires = "certs_dir")]
    pub ids_file: Option<PathBuf>,
    /// With --ids-file: DIR/<id>.cert.pem, else DIR/<id>-full-chain.cert.pem.
    #[arg(long, value_name = "DIR", requires = "ids_file")]
    pub certs_dir: Option<PathBuf>,
    /// The enrollment group's CA: also check the chain reaches it.
    #[arg(long, value_name = "CA")]
    pub group_ca: Option<PathBuf>,
    /// Act on the local store, or print the az commands.
    #[arg(long, value_enum, default_value = "local")]
    pub to: Target,
    /// The DPS instance name, for --to az [default: "$DPS_NAME"].
    #[arg(long, value_name = "NAME")]
    pub dps_name: Option<String>,
    /// The IoT hub name, for --to az [default: "$HUB_NAME"].
    #[arg(long, value_name = "NAME")]
    pub hub_name: Option<String>,
    /// With --to azure: delete the device in its hub, or disable it.
    #[arg(long, value_enum, default_value = "delete")]
    pub hub_action: HubActionArg,
    #[command(flatten)]
    pub azure: AzureArgs,
}

/// The enrollment step's outcome.
#[derive(Serialize)]
struct JsonEnrollment {
    path: String,
    #[serde(rename = "provisioningStatus")]
    provisioning_status: ProvisioningStatus,
    /// `created`, `replaced` or `unchanged`.
    action: &'static str,
    archived_to: Option<String>,
}

/// The hub step's outcome.
#[derive(Serialize)]
struct JsonHub {
    device_id: String,
    /// `deleted` or `not_found` (there was nothing to delete).
    action: &'static str,
    archived_to: Option<String>,
}

/// `deprovision --json`.
#[derive(Serialize)]
struct JsonDeprovision {
    ok: bool,
    enrollment_id: String,
    enrollment: JsonEnrollment,
    hub: JsonHub,
    confirmed: Confirmed,
    provision: Decision,
}

#[derive(Serialize)]
struct Confirmed {
    enrollment_disabled: bool,
    device_not_found: bool,
}

/// Runs `deprovision`.
pub fn run(a: &DeprovisionArgs, g: &Global) -> CmdResult {
    if let (Some(ids), Some(dir)) = (&a.ids_file, &a.certs_dir) {
        if a.to != Target::Azure {
            anyhow::bail!("--ids-file works with --to azure only");
        }
        return super::deprovision_azure::run_many(a, g, ids, dir);
    }
    let (Some(id), Some(cert)) = (a.id.as_deref(), a.cert.as_deref()) else {
        anyhow::bail!("give ID and --cert CERT, or --ids-file F --certs-dir DIR");
    };
    // An ID that cannot be one is an unusable argument (exit 2), not a refusal.
    iotca::ids::check_registration_id(id)?;
    let home = if a.to == Target::Local {
        Some(Home::open(&g.home_dir())?)
    } else {
        None
    };
    let (p, chain) = preflight(id, cert, a.group_ca.as_deref())?;
    if !p.ok {
        if g.json {
            print_json(&preflight_json(&p))?;
        } else {
            eprint!("{}", render_preflight(&p));
        }
        eprintln!("nothing was changed.");
        return Ok(1);
    }
    let leaf = &chain[0];
    if a.to == Target::Azure {
        return super::deprovision_azure::run_one(a, g, id, leaf);
    }
    if a.to == Target::Az {
        let home = Home::open(&g.home_dir()).ok();
        let path = leaf_file_for_az(cert, &chain, home.as_ref(), p.cn.as_deref())?;
        let e = IndividualEnrollment::x509(id, String::new(), ProvisioningStatus::Disabled);
        let cmds = [
            az::enrollment_create(a.dps_name.as_deref(), &e, &path),
            az::hub_device_delete(a.hub_name.as_deref(), id),
        ];
        if g.json {
            print_json(&serde_json::json!({"commands": cmds}))?;
        } else {
            let mut s = String::new();
            for c in &cmds {
                s.push_str(c);
                s.push('\n');
            }
            std::io::stdout().lock().write_all(s.as_bytes())?;
        }
        return Ok(0);
    }

    let home = home.expect("opened above for --to local");
    let store = EnrollmentStore::new(home.clone());
    let registry = Registry::new(home.clone());
    let lock = home.lock()?;

    // The disabled individual enrollment.
    let existing = store.individual(id)?;
    let mut e = IndividualEnrollment::x509(id, cert::to_pem(leaf), ProvisioningStatus::Disabled);
    if let Some(old) = &existing {
        e.device_id = old.enrollment.device_id.clone();
        e.iot_hubs = old.enrollment.iot_hubs.clone();
        e.allocation_policy = old.enrollment.allocation_policy;
    }
    let device_id = e.device_id.clone().unwrap_or_else(|| id.to_string());
    registry.path(&device_id)?;
    let (action, written) = match &existing {
        Some(old)
            if old.enrollment.provisioning_status == ProvisioningStatus::Disabled
                && old.certificates.first().is_some_and(|c| c == leaf) =>
        {
            ("unchanged", None)
        }
        Some(_) => ("replaced", Some(store.replace_individual(&lock, &e)?)),
        None => ("created", Some(store.create_individual(&lock, &e)?)),
    };
    let path = store.individual_path(id)?;

    // The hub identity.
    let hub_archive = registry.delete(&lock, &device_id)?;

    // Confirm both, and what DPS now decides.
    let back = store.individual(id)?;
    let enrollment_disabled = back.as_ref().is_some_and(|b| {
        b.enrollment.provisioning_status == ProvisioningStatus::Disabled
            && b.certificates.first().is_some_and(|c| c == leaf)
    });
    let device_not_found = registry.get(&device_id)?.is_none();
    let decision = provision::decide(&store, &chain, OffsetDateTime::now_utc())?;
    if !enrollment_disabled {
        anyhow::bail!("{} does not read back as disabled", path.display());
    }
    if !device_not_found {
        anyhow::bail!("device '{device_id}' is still in the hub registry");
    }
    if decision.status != Status::Disabled {
        anyhow::bail!(
            "the provisioning decision for {} is still '{}': {}",
            cert.display(),
            decision.status.as_str(),
            decision.message
        );
    }
    let archived_to = written
        .as_ref()
        .and_then(|w| w.archived_to.as_ref())
        .map(|p| p.display().to_string());
    if g.json {
        print_json(&JsonDeprovision {
            ok: true,
            enrollment_id: id.to_string(),
            enrollment: JsonEnrollment {
                path: path.display().to_string(),
                provisioning_status: ProvisioningStatus::Disabled,
                action,
                archived_to,
            },
            hub: JsonHub {
                device_id: device_id.clone(),
                action: if hub_archive.is_some() {
                    "deleted"
                } else {
                    "not_found"
                },
                archived_to: hub_archive.as_ref().map(|p| p.display().to_string()),
            },
            confirmed: Confirmed {
                enrollment_disabled,
                device_not_found,
            },
            provision: decision,
        })?;
    } else if !g.quiet {
        let mut s = String::new();
        s.push_str(&format!(
            "pre-flight: certificate CN '{}' matches the enrollment ID{}\n",
            p.cn.as_deref().unwrap_or(""),
            if a.group_ca.is_some() {
                " and chains to the group CA"
            } else {
                ""
            }
        ));
        match action {
            "unchanged" => s.push_str(&format!(
                "enrollment: '{}' was already a disabled individual enrollment for this certificate ({})\n",
                id,
                path.display()
            )),
            "replaced" => s.push_str(&format!(
                "enrollment: replaced the existing individual enrollment '{}' with a disabled one ({}; the old record moved to {})\n",
                id,
                path.display(),
                archived_to.as_deref().unwrap_or("archive/")
            )),
            _ => s.push_str(&format!(
                "enrollment: created disabled individual enrollment '{}' ({})\n",
                id,
                path.display()
            )),
        }
        match &hub_archive {
            Some(dir) => s.push_str(&format!(
                "hub: deleted device '{device_id}' (the record moved to {})\n",
                dir.display()
            )),
            None => s.push_str(&format!(
                "hub: device '{device_id}' was not in the registry; nothing to delete\n"
            )),
        }
        s.push_str(&format!(
            "confirmed: the enrollment reads back disabled; the hub answers DeviceNotFound for '{device_id}'; DPS would answer: {}\n",
            decision.message
        ));
        std::io::stdout().lock().write_all(s.as_bytes())?;
    }
    Ok(0)
}
