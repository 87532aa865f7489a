//! `iotca enroll update ID`: change an individual enrollment's status or
//! certificate, with the pre-flight run again.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use iotca::cert;
use iotca::enroll::schema::ProvisioningStatus;
use iotca::enroll::{self, EnrollmentStore, az};
use iotca::home::Home;

use super::enroll::{preflight_json, render_preflight};
use super::{CmdResult, Global, print_json};

const HELP: &str = "\
Like `az iot dps enrollment update --provisioning-status`: the enrollment's
status and/or its certificate (--cert, e.g. after `device renew`) change,
after the pre-flight of `enroll check` passes again for the certificate the
enrollment will hold: CN == ID, not a CA, not expired (and chains to
--group-ca when given). When it refuses, nothing is changed.

EXIT CODES:
  0  the enrollment was changed (or the body/command printed)
  1  the pre-flight refused it
  2  the command could not run (no such enrollment, unreadable file)

EXAMPLES:
  Let a blocked device back in:
    iotca --home pki enroll update sensor-thl-002 --status enabled
  After `device renew sensor-thl-002`, point the enrollment at the new certificate:
    iotca --home pki enroll update sensor-thl-002 --cert pki/certs/sensor-thl-002.cert.pem
  On the real DPS:
    iotca --home pki enroll update sensor-thl-002 --status disabled --to az --dps-name dps-X";

/// Where the change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The home's local DPS store.
    Local,
    /// Print the DPS REST body after the change, from the local record.
    Json,
    /// Print the az command.
    Az,
}

fn parse_status(s: &str) -> Result<ProvisioningStatus, String> {
    s.parse()
}

/// `enroll update` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct UpdateArgs {
    /// The registration ID (case-insensitive).
    #[arg(value_name = "ID")]
    pub id: String,
    /// provisioningStatus: enabled or disabled.
    #[arg(long, value_parser = parse_status, value_name = "enabled|disabled")]
    pub status: Option<ProvisioningStatus>,
    /// The device's new certificate (a leaf, or a full chain with the leaf first).
    #[arg(long, value_name = "CERT")]
    pub cert: Option<PathBuf>,
    /// The enrollment group's CA: the pre-flight also checks the chain reaches it.
    #[arg(long, value_name = "CA")]
    pub group_ca: Option<PathBuf>,
    /// Where the change goes.
    #[arg(long, value_enum, default_value = "local")]
    pub to: Target,
    /// The DPS instance name, for --to az.
    #[arg(long, value_name = "NAME")]
    pub dps_name: Option<String>,
}

/// Runs `enroll update`.
pub fn run(a: &UpdateArgs, g: &Global) -> CmdResult {
    if a.status.is_none() && a.cert.is_none() {
        anyhow::bail!("nothing to change: give --status enabled|disabled and/or --cert CERT");
    }
    iotca::ids::check_registration_id(&a.id)?;
    if a.to == Target::Az && a.dps_name.is_none() {
        anyhow::bail!("--to az needs --dps-name NAME (the DPS instance)");
    }
    let now = OffsetDateTime::now_utc();
    let home = Home::open(&g.home_dir());
    let local = match &home {
        Ok(h) => EnrollmentStore::new(h.clone()).individual(&a.id)?,
        Err(_) => None,
    };
    // The certificate the enrollment will hold: the new one, else the stored one.
    let chain = match (&a.cert, &local) {
        (Some(p), _) => cert::read_certificates(p)?,
        (None, Some(l)) => l.certificates.clone(),
        (None, None) => anyhow::bail!(
            "no individual enrollment '{}' in the local store; give --cert CERT so the pre-flight can run",
            a.id
        ),
    };
    let cas = super::enroll::read_group_cas(a.group_ca.as_deref())?;
    let p = enroll::check_enrollment(&a.id, &chain, cas.as_ref(), now)?;
    if !p.ok {
        if g.json {
            print_json(&preflight_json(&p))?;
        }
        eprint!("{}", render_preflight(&p));
        eprintln!("nothing was changed.");
        return Ok(1);
    }
    let new_pem = a.cert.as_ref().map(|_| cert::to_pem(&chain[0]));
    let apply = |e: &mut enroll::IndividualEnrollment| -> iotca::Result<()> {
        if let Some(pem) = &new_pem {
            match e.client_certificates_mut() {
                Some(c) => {
                    c.primary.certificate = pem.clone();
                    c.primary.other.clear();
                }
                None => {
                    return Err(iotca::Error::Invalid(format!(
                        "enrollment '{}' has no X.509 client certificates to replace",
                        a.id
                    )));
                }
            }
        }
        if let Some(s) = a.status {
            e.provisioning_status = s;
        }
        Ok(())
    };
    match a.to {
        Target::Az => {
            let path = a
                .cert
                .as_ref()
                .map(|p| {
                    p.to_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow::anyhow!("{} is not a UTF-8 path", p.display()))
                })
                .transpose()?;
            let u = az::Update {
                certificate_path: path.as_deref(),
                status: a.status,
                ..az::Update::default()
            };
            let cmd = az::enrollment_update(a.dps_name.as_deref(), &a.id, &u);
            if g.json {
                print_json(&serde_json::json!({"commands": [cmd]}))?;
            } else {
                println!("{cmd}");
            }
            Ok(0)
        }
        Target::Json => {
            let Some(l) = local else {
                anyhow::bail!(
                    "no individual enrollment '{}' in the local store to base the body on; use `enroll create --to json`",
                    a.id
                );
            };
            let mut e = l.enrollment;
            apply(&mut e)?;
            print_json(&e)?;
            Ok(0)
        }
        Target::Local => {
            let home = home?;
            let store = EnrollmentStore::new(home);
            let (written, before, back) = store.update_individual(&a.id, |_, e| apply(e))?;
            if g.json {
                print_json(&serde_json::json!({
                    "ok": true,
                    "id": back.enrollment.registration_id,
                    "path": written.path.display().to_string(),
                    "archived_to": written.archived_to.map(|p| p.display().to_string()),
                    "provisioningStatus": back.enrollment.provisioning_status,
                    "certificate_changed": before.certificates.first() != back.certificates.first(),
                    "enrollment": back.enrollment,
                }))?;
            } else if !g.quiet {
                println!(
                    "updated individual enrollment '{}' ({}); read back: provisioningStatus {}{}",
                    back.enrollment.registration_id,
                    written.path.display(),
                    back.enrollment.provisioning_status,
                    if before.certificates.first() != back.certificates.first() {
                        ", certificate replaced"
                    } else {
                        ""
                    }
                );
            }
            Ok(0)
        }
    }
}
