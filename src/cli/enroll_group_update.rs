//! `iotca enroll group update GROUP_ID`: the group's secondary certificate
//! (CA rollover), promotion, removal, status.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;
use time::OffsetDateTime;

use iotca::cert;
use iotca::enroll::schema::ProvisioningStatus;
use iotca::enroll::{self, EnrollmentStore, az};
use iotca::home::Home;
use iotca::lifecycle::rollover::stranded_devices;

use super::{CmdResult, Global, print_json};

const HELP: &str = "\
The rollover of a group's CA, as DPS does it: --secondary-ca adds the new
CA beside the primary (devices chaining to either provision); once the
devices carry the new chain, --promote-secondary makes it the primary and
the old primary leaves the group. --remove-secondary drops a secondary.

Before a change that would leave devices of this home unable to provision
(their chain reaches the group now and would not after it), iotca refuses
and names them; --force makes the change anyway, with a warning.

TARGETS (--to):
  local  change dps/enrollmentGroups/<id>.json in the home and read it back (default)
  json   print the DPS REST body after the change (PUT /enrollmentGroups/{id}), from the local record
  az     print the `az iot dps enrollment-group update` command (needs --dps-name)
  azure  change the group on DPS itself: GET it, PUT the new certificates with
         If-Match, read back (needs --dps-connection-string-file or
         $IOTCA_DPS_CONNECTION_STRING). DPS returns only the thumbprints of a
         group's certificates, so iotca sends back the certificates it knows
         by thumbprint: this home's CAs, its local record of the group, and
         --secondary-ca. The stranded-devices check looks at this home's devices.

EXIT CODES:
  0  the group was changed (or the body/command printed)
  1  refused: the new CA is not a CA or has expired, or devices would be stranded (without --force)
  2  the command could not run (no such group, no secondary to promote, unreadable
     file, a request failed, a certificate DPS holds is unknown here, the read-back differs)

EXAMPLES:
  After `iotca ca rollover intermediate`:
    iotca --home pki enroll group update fleet --secondary-ca pki/certs/intermediate-2.cert.pem
  Once the devices are re-issued under intermediate-2:
    iotca --home pki enroll group update fleet --promote-secondary
  The same on the real DPS:
    iotca --home pki enroll group update fleet --secondary-ca pki/certs/intermediate-2.cert.pem --to az --dps-name dps-X
  Do it on the real DPS:
    iotca --home pki enroll group update fleet --secondary-ca pki/certs/intermediate-2.cert.pem \\
        --to azure --dps-connection-string-file dps.cs";

/// Where the change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The home's local DPS store.
    Local,
    /// Print the DPS REST body.
    Json,
    /// Print the az command.
    Az,
    /// The DPS service API: write and read back.
    Azure,
}

fn parse_status(s: &str) -> Result<ProvisioningStatus, String> {
    s.parse()
}

/// `enroll group update` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct GroupUpdateArgs {
    /// The enrollment group ID.
    #[arg(value_name = "GROUP_ID")]
    pub group_id: String,
    /// Set the group's secondary signing certificate (a CA certificate file; its first certificate).
    #[arg(long, value_name = "CERT")]
    pub secondary_ca: Option<PathBuf>,
    /// The secondary becomes the primary; the old primary leaves the group.
    #[arg(long, conflicts_with = "remove_secondary")]
    pub promote_secondary: bool,
    /// Drop the secondary certificate without promoting it.
    #[arg(long, conflicts_with = "secondary_ca")]
    pub remove_secondary: bool,
    /// provisioningStatus: enabled or disabled.
    #[arg(long, value_parser = parse_status, value_name = "enabled|disabled")]
    pub status: Option<ProvisioningStatus>,
    /// Where the change goes.
    #[arg(long, value_enum, default_value = "local")]
    pub to: Target,
    /// The DPS instance name, for --to az.
    #[arg(long, value_name = "NAME")]
    pub dps_name: Option<String>,
    /// Make the change even when devices of this home would no longer provision.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub azure: super::azure_args::AzureArgs,
}

/// `--json` with `--to local`.
#[derive(Serialize)]
struct JsonUpdated {
    ok: bool,
    id: String,
    path: String,
    archived_to: Option<String>,
    #[serde(rename = "provisioningStatus")]
    provisioning_status: ProvisioningStatus,
    primary: String,
    secondary: Option<String>,
    stranded_devices: Vec<String>,
    enrollment: serde_json::Value,
}

fn subject(der: &[u8]) -> String {
    cert::parse_der(der)
        .map(|c| cert::name_string(c.subject()))
        .unwrap_or_default()
}

/// Reads and checks the new secondary CA: a CA, not expired.
fn read_secondary(path: &Path, group_id: &str) -> anyhow::Result<Result<Vec<u8>, u8>> {
    let ders = cert::read_certificates(path)?;
    let problems = enroll::check_group(group_id, &ders[0], OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !problems.is_empty() {
        eprintln!("REFUSED:");
        for p in &problems {
            eprintln!("  ✗ {}: {}", p.code, p.message);
        }
        eprintln!("nothing was changed.");
        return Ok(Err(1));
    }
    Ok(Ok(ders[0].clone()))
}

/// `primary SUBJECT, secondary SUBJECT|(none)`, escaped for the terminal.
fn certificates_text(primary: &str, secondary: Option<&str>) -> String {
    format!(
        "primary {}, secondary {}",
        iotca::text::escape(primary),
        secondary.map_or("(none)".into(), iotca::text::escape)
    )
}

/// Says which devices the change would strand; true when that refuses it
/// (without `--force`).
fn refuse_stranded(stranded: &[String], group_id: &str, force: bool) -> bool {
    if stranded.is_empty() {
        return false;
    }
    let shown: Vec<&str> = stranded.iter().take(10).map(String::as_str).collect();
    let more = if stranded.len() > 10 {
        format!(" and {} more", stranded.len() - 10)
    } else {
        String::new()
    };
    let msg = format!(
        "{} device(s) of this home chain to enrollment group '{group_id}' now and would not after this change (DPS would refuse them): {}{more}",
        stranded.len(),
        shown.join(", ")
    );
    if !force {
        eprintln!("REFUSED: {msg}");
        eprintln!(
            "re-issue them under the new CA first (`iotca device renew ID... --ca NEW`), or pass --force; nothing was changed."
        );
        return true;
    }
    eprintln!("warning: {msg}");
    false
}

/// `--to azure`: plan against what DPS holds, the stranded check on this
/// home's devices, then write and read back.
fn run_azure(
    a: &GroupUpdateArgs,
    g: &Global,
    secondary: Option<Vec<u8>>,
    home: Option<&Home>,
    local: Option<&enroll::StoredGroup>,
    now: OffsetDateTime,
) -> CmdResult {
    use iotca::azure::group_update::{self, GroupChange};
    let mut known: Vec<Vec<u8>> = secondary.iter().cloned().collect();
    known.extend(local.iter().flat_map(|l| l.certificates.iter().cloned()));
    if let Some(h) = home {
        known.extend(iotca::lifecycle::home_cas(h)?.into_iter().map(|c| c.der));
    }
    let settings = a.azure.settings()?;
    let dps = a.azure.dps(&settings)?;
    let change = GroupChange {
        secondary,
        promote: a.promote_secondary,
        remove: a.remove_secondary,
        status: a.status,
    };
    let plan = group_update::plan(&dps, &a.group_id, &known, &change)?;
    let stranded = match home {
        Some(h) => stranded_devices(h, &plan.before, &plan.after, now)?,
        None => Vec::new(),
    };
    if refuse_stranded(&stranded, &a.group_id, a.force) {
        return Ok(1);
    }
    let up = group_update::apply(&dps, &plan)?;
    let primary = subject(&up.certificates[0]);
    let secondary = up.certificates.get(1).map(|d| subject(d));
    if g.json {
        print_json(&JsonUpdatedAzure {
            ok: true,
            id: &a.group_id,
            dps: dps.host_name(),
            provisioning_status: &up.status,
            primary: &primary,
            secondary: secondary.as_deref(),
            confirmed: true,
            stranded_devices: &stranded,
            enrollment: &up.record.json,
        })?;
    } else if !g.quiet {
        println!(
            "updated enrollment group '{}' in {}; read back: provisioningStatus {}, {}",
            iotca::text::escape(&a.group_id),
            iotca::text::escape(dps.host_name()),
            up.status,
            certificates_text(&primary, secondary.as_deref())
        );
    }
    Ok(0)
}

/// `--json` with `--to azure`.
#[derive(Serialize)]
struct JsonUpdatedAzure<'a> {
    ok: bool,
    id: &'a str,
    dps: &'a str,
    #[serde(rename = "provisioningStatus")]
    provisioning_status: &'a str,
    primary: &'a str,
    secondary: Option<&'a str>,
    confirmed: bool,
    stranded_devices: &'a [String],
    enrollment: &'a serde_json::Value,
}

/// Runs `enroll group update`.
pub fn run(a: &GroupUpdateArgs, g: &Global) -> CmdResult {
    if a.secondary_ca.is_none() && !a.promote_secondary && !a.remove_secondary && a.status.is_none()
    {
        anyhow::bail!(
            "nothing to change: give --secondary-ca CERT, --promote-secondary, --remove-secondary or --status"
        );
    }
    iotca::ids::check_registration_id(&a.group_id)?;
    match a.to {
        Target::Az if a.dps_name.is_none() => {
            anyhow::bail!("--to az needs --dps-name NAME (the DPS instance)")
        }
        _ => {}
    }
    let secondary = match &a.secondary_ca {
        Some(p) => match read_secondary(p, &a.group_id)? {
            Ok(der) => Some(der),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let now = OffsetDateTime::now_utc();
    let home = Home::open(&g.home_dir());
    let store = home.as_ref().ok().map(|h| EnrollmentStore::new(h.clone()));
    let local = match &store {
        Some(s) => s.group(&a.group_id)?,
        None => None,
    };
    // The record after the change, from the local one (local and json).
    let apply = |grp: &mut enroll::EnrollmentGroup| -> iotca::Result<()> {
        let certs = grp.signing_certificates_mut().ok_or_else(|| {
            iotca::Error::Invalid(format!(
                "enrollment group '{}' has no X.509 signing certificates",
                a.group_id
            ))
        })?;
        if let Some(der) = &secondary {
            certs.set_secondary(cert::to_pem(der));
        }
        if a.promote_secondary && !certs.promote_secondary() {
            return Err(iotca::Error::Invalid(format!(
                "enrollment group '{}' has no secondary certificate to promote; add one with --secondary-ca CERT",
                a.group_id
            )));
        }
        if a.remove_secondary && !certs.remove_secondary() {
            return Err(iotca::Error::Invalid(format!(
                "enrollment group '{}' has no secondary certificate to remove",
                a.group_id
            )));
        }
        if let Some(s) = a.status {
            grp.provisioning_status = s;
        }
        Ok(())
    };
    if a.to == Target::Az {
        // A promotion needs the file of the certificate being promoted.
        let promoted_path = if a.promote_secondary {
            match (&a.secondary_ca, &local, home.as_ref().ok()) {
                (Some(p), _, _) => Some(p.clone()),
                (None, Some(l), Some(h)) => l.certificates.get(1).and_then(|der| {
                    iotca::lifecycle::home_cas(h)
                        .ok()?
                        .into_iter()
                        .find(|c| &c.der == der)
                        .map(|c| c.file)
                }),
                _ => None,
            }
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--to az --promote-secondary needs the promoted CA's file: give it with --secondary-ca CERT"
                )
            })
            .map(Some)?
        } else {
            None
        };
        let utf8 = |p: &Path| {
            p.to_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("{} is not a UTF-8 path", p.display()))
        };
        let secondary_path = match (&a.secondary_ca, a.promote_secondary) {
            (Some(p), false) => Some(utf8(p)?),
            _ => None,
        };
        let primary_path = promoted_path.as_deref().map(utf8).transpose()?;
        let u = az::Update {
            certificate_path: primary_path.as_deref(),
            secondary_certificate_path: secondary_path.as_deref(),
            remove_secondary: a.promote_secondary || a.remove_secondary,
            status: a.status,
        };
        let cmd = az::group_update(a.dps_name.as_deref(), &a.group_id, &u);
        if g.json {
            print_json(&serde_json::json!({"commands": [cmd]}))?;
        } else {
            println!("{cmd}");
        }
        return Ok(0);
    }
    if a.to == Target::Azure {
        return run_azure(a, g, secondary, home.ok().as_ref(), local.as_ref(), now);
    }
    let home = home?;
    let store = store.expect("the home opened");
    let Some(local) = local else {
        anyhow::bail!(
            "no enrollment group '{}' in the local store of {}; create it with `iotca enroll group create {} --ca CERT`",
            a.group_id,
            home.root().display(),
            a.group_id
        );
    };
    let mut after = local.group.clone();
    apply(&mut after)?;
    let after_ders: Vec<Vec<u8>> = after
        .signing_certificates()
        .map(|c| {
            c.pems()
                .filter_map(|p| cert::split_certificates(p.as_bytes()).ok())
                .filter_map(|d| d.into_iter().next())
                .collect()
        })
        .unwrap_or_default();
    let stranded = stranded_devices(&home, &local.certificates, &after_ders, now)?;
    if refuse_stranded(&stranded, &a.group_id, a.force) {
        return Ok(1);
    }
    if a.to == Target::Json {
        print_json(&after)?;
        return Ok(0);
    }
    let (written, _before, back) = store.update_group(&a.group_id, |_, grp| apply(grp))?;
    let primary = back
        .certificates
        .first()
        .map(|d| subject(d))
        .unwrap_or_default();
    let secondary = back.certificates.get(1).map(|d| subject(d));
    if g.json {
        print_json(&JsonUpdated {
            ok: true,
            id: back.group.enrollment_group_id.clone(),
            path: written.path.display().to_string(),
            archived_to: written.archived_to.map(|p| p.display().to_string()),
            provisioning_status: back.group.provisioning_status,
            primary,
            secondary,
            stranded_devices: stranded,
            enrollment: serde_json::to_value(&back.group)?,
        })?;
    } else if !g.quiet {
        println!(
            "updated enrollment group '{}' ({}); read back: provisioningStatus {}, {}",
            back.group.enrollment_group_id,
            written.path.display(),
            back.group.provisioning_status,
            certificates_text(&primary, secondary.as_deref())
        );
    }
    Ok(0)
}
