//! `iotca enroll ...`: the pre-flight guard, creating individual enrollments
//! and enrollment groups (local store, DPS REST body, or `az` command), and
//! listing, showing and deleting them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use time::OffsetDateTime;

use iotca::cert;
use iotca::enroll::schema::{AllocationPolicy, ProvisioningStatus};
use iotca::enroll::{self, EnrollmentGroup, EnrollmentStore, IndividualEnrollment, az};
use iotca::error::Error;
use iotca::home::{self, Home};
use iotca::ids;

use super::{CmdResult, Global, print_json};

/// Enrollment commands.
#[derive(Debug, Subcommand)]
pub enum EnrollCommand {
    /// The pre-flight: does an enrollment ID match the device certificate's CN (and chain to the group CA)?
    #[command(after_help = super::enroll_check::CHECK_HELP)]
    Check(super::enroll_check::CheckCmd),
    /// Create an individual X.509 enrollment after the pre-flight passes.
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// Enrollment groups (X.509, the group's CA as signing certificate).
    #[command(
        subcommand,
        after_help = super::ENROLL_GROUP_HELP
    )]
    Group(GroupCommand),
    /// List the local enrollments and enrollment groups.
    #[command(after_help = LIST_HELP)]
    List(super::azure_args::DpsRemoteArgs),
    /// Show one local enrollment (or enrollment group) as its DPS JSON.
    #[command(after_help = SHOW_HELP)]
    Show(IdArgs),
    /// Delete one local enrollment (or enrollment group); the record moves under archive/.
    #[command(after_help = DELETE_HELP)]
    Delete(IdArgs),
    /// Change an individual enrollment's status or certificate (the pre-flight runs again).
    Update(super::enroll_update::UpdateArgs),
}

/// Enrollment group commands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create an X.509 enrollment group whose signing certificate is the CA.
    #[command(after_help = GROUP_CREATE_HELP)]
    Create(GroupCreateArgs),
    /// Change a group: secondary certificate (CA rollover), promotion, status.
    Update(super::enroll_group_update::GroupUpdateArgs),
    /// List the local enrollment groups.
    #[command(after_help = super::enroll_group::LIST_HELP)]
    List,
    /// Show one local enrollment group as its DPS JSON.
    #[command(after_help = super::enroll_group::SHOW_HELP)]
    Show(super::enroll_group::GroupIdArgs),
    /// Delete one local enrollment group; the record moves under archive/.
    #[command(after_help = super::enroll_group::DELETE_HELP)]
    Delete(super::enroll_group::GroupIdArgs),
}

const CREATE_HELP: &str = "\
TARGETS (--to):
  local  write dps/enrollments/<id lower-cased>.json in the home and read it back (default)
  json   print the DPS REST body (PUT /enrollments/{id}?api-version=2021-10-01)
  az     print the `az iot dps enrollment create` command (needs --dps-name)
When the pre-flight refuses, nothing is written or printed on stdout; the
problems go to stderr.

EXIT CODES:
  0  the enrollment was written (or printed)
  1  the pre-flight refused it (see `iotca enroll check --help` for the codes)
  2  the command could not run (unreadable file, an enrollment with that ID exists, bad flags)

EXAMPLES:
  Block one device of a group with a disabled individual enrollment:
    iotca enroll create --enrollment-id sensor-thl-002 --cert certs/sensor-thl-002.cert.pem --status disabled
  The same for the real DPS, as an az command:
    iotca enroll create --enrollment-id sensor-thl-002 --cert certs/sensor-thl-002.cert.pem \\
        --status disabled --to az --dps-name dps-X
  The REST body, for curl or a script:
    iotca enroll create --enrollment-id sensor-thl-001 --cert certs/sensor-thl-001.cert.pem --to json
  Replace an existing local enrollment (the old record moves under archive/):
    iotca enroll create --enrollment-id sensor-thl-002 --cert certs/sensor-thl-002.cert.pem --force";

const GROUP_CREATE_HELP: &str = "\
The CA file's first certificate becomes the group's signing certificate; it
must be a CA (root or intermediate) that has not expired.

EXIT CODES:
  0  the group was written (or printed)
  1  refused: invalid_registration_id (the group ID), certificate_not_ca, certificate_expired
  2  the command could not run (unreadable file, a group with that ID exists, bad flags)

EXAMPLES:
  A group over the default intermediate:
    iotca enroll group create fleet --ca certs/azure-iot-test-only.intermediate.cert.pem
  A group over the root, for the real DPS:
    iotca enroll group create fleet --ca certs/azure-iot-test-only.root.ca.cert.pem --to az --dps-name dps-X
  A disabled group assigning to a given hub, as a REST body:
    iotca enroll group create fleet --ca ca.pem --status disabled --iot-hub hub-X.azure-devices.net --to json";

const LIST_HELP: &str = "\
EXIT CODES:
  0  every record was read
  2  some record could not be read (each is named on stderr; the others are listed)

EXAMPLES:
  What is enrolled locally:
    iotca --home pki enroll list
  As JSON (the DPS records):
    iotca --home pki enroll list --json";

const SHOW_HELP: &str = "\
The individual enrollment with that registration ID (case-insensitive) is
shown; else the enrollment group with that ID. --group looks only at groups.

EXIT CODES:
  0  shown
  1  no such enrollment (EnrollmentNotFound)
  2  the record could not be read, or the ID is invalid

EXAMPLES:
  The record of one device:
    iotca enroll show sensor-thl-002
  A group:
    iotca enroll show fleet --group";

const DELETE_HELP: &str = "\
The record moves under archive/<timestamp>/ (as DPS, the device may then
provision again through its group).

EXIT CODES:
  0  deleted
  1  no such enrollment (EnrollmentNotFound)
  2  the ID is invalid or the file could not be moved

EXAMPLES:
  Let a blocked device back in through its group:
    iotca enroll delete sensor-thl-002
  Delete a group:
    iotca enroll delete fleet --group";

/// Where an enrollment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Write it to the home's local DPS store and read it back.
    Local,
    /// Print the DPS REST body.
    Json,
    /// Print the `az` command.
    Az,
    /// PUT it to the DPS of the DPS connection string and read it back.
    Azure,
}

fn parse_status(s: &str) -> Result<ProvisioningStatus, String> {
    s.parse()
}

fn parse_policy(s: &str) -> Result<AllocationPolicy, String> {
    s.parse()
}

/// `enroll check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The enrollment (registration) ID you intend to create.
    #[arg(long, value_name = "ID")]
    pub enrollment_id: String,
    /// The device's certificate: a leaf, or a full-chain PEM with the leaf first.
    #[arg(long, value_name = "CERT")]
    pub cert: PathBuf,
    /// The enrollment group's CA: also check the chain reaches it.
    #[arg(long, value_name = "CA")]
    pub group_ca: Option<PathBuf>,
}

/// `enroll create` flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// provisioningStatus: enabled (the DPS default) or disabled (blocks the device).
    #[arg(long, default_value = "enabled", value_parser = parse_status, value_name = "enabled|disabled")]
    pub status: ProvisioningStatus,
    /// The IoT hub device ID to create [default: the registration ID].
    #[arg(long, value_name = "ID")]
    pub device_id: Option<String>,
    /// The IoT hub host name(s) the enrollment assigns to (iotHubs); repeatable.
    #[arg(long = "iot-hub", value_name = "HOST")]
    pub iot_hub: Vec<String>,
    /// allocationPolicy: hashed, geoLatency, static or custom [default: the DPS instance's].
    #[arg(long, value_parser = parse_policy, value_name = "POLICY")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// Where the enrollment goes.
    #[arg(long, value_enum, default_value = "local")]
    pub to: Target,
    /// The DPS instance name, for --to az.
    #[arg(long, value_name = "NAME")]
    pub dps_name: Option<String>,
    /// With --to local: replace an existing enrollment (the old record moves under archive/).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub azure: super::azure_args::AzureArgs,
}

/// `enroll group create` flags.
#[derive(Debug, Args)]
pub struct GroupCreateArgs {
    /// The enrollment group ID (registration ID rules).
    #[arg(value_name = "GROUP_ID")]
    pub group_id: String,
    /// The group's CA certificate (root or intermediate): a file, or a CA name of the home; its first certificate is used.
    #[arg(long, value_name = "CERT")]
    pub ca: PathBuf,
    /// provisioningStatus: enabled (the DPS default) or disabled.
    #[arg(long, default_value = "enabled", value_parser = parse_status, value_name = "enabled|disabled")]
    pub status: ProvisioningStatus,
    /// The IoT hub host name(s) the group assigns to (iotHubs); repeatable.
    #[arg(long = "iot-hub", value_name = "HOST")]
    pub iot_hub: Vec<String>,
    /// allocationPolicy: hashed, geoLatency, static or custom.
    #[arg(long, value_parser = parse_policy, value_name = "POLICY")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// Where the group goes.
    #[arg(long, value_enum, default_value = "local")]
    pub to: Target,
    /// The DPS instance name, for --to az.
    #[arg(long, value_name = "NAME")]
    pub dps_name: Option<String>,
    /// With --to local: replace an existing group (the old record moves under archive/).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub azure: super::azure_args::AzureArgs,
}

/// `enroll show|delete` arguments.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The registration ID or enrollment group ID (case-insensitive).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Only look at enrollment groups.
    #[arg(long)]
    pub group: bool,
    #[command(flatten)]
    pub remote: super::azure_args::DpsRemoteArgs,
}

/// Runs `enroll`.
pub fn run(cmd: &EnrollCommand, g: &Global) -> CmdResult {
    match cmd {
        EnrollCommand::Check(a) => super::enroll_check::run(a, g),
        EnrollCommand::Create(a) => create(a, g),
        EnrollCommand::Group(GroupCommand::Create(a)) => group_create(a, g),
        EnrollCommand::Group(GroupCommand::List) => super::enroll_group::list(g),
        EnrollCommand::Group(GroupCommand::Show(a)) => super::enroll_group::show(a, g),
        EnrollCommand::Group(GroupCommand::Delete(a)) => super::enroll_group::delete(a, g),
        EnrollCommand::List(r) if r.azure => super::dps_azure::list(r, g),
        EnrollCommand::Show(a) if a.remote.azure => {
            super::dps_azure::show(&a.id, a.group, &a.remote, g)
        }
        EnrollCommand::Delete(a) if a.remote.azure => {
            super::dps_azure::delete(&a.id, a.group, &a.remote, g)
        }
        EnrollCommand::List(_) => list(g),
        EnrollCommand::Show(a) => show(a, g),
        EnrollCommand::Delete(a) => delete(a, g),
        EnrollCommand::Update(a) => super::enroll_update::run(a, g),
        EnrollCommand::Group(GroupCommand::Update(a)) => super::enroll_group_update::run(a, g),
    }
}

// The pre-flight, shared with `deprovision` and `enroll update`, lives in
// enroll_preflight.rs.
pub(super) use super::enroll_preflight::{
    preflight, preflight_json, read_certs, read_group_cas, render_preflight, shown,
};

/// Prints an az command: the line itself, or `{"commands": [...]}` with --json.
fn print_az(cmd: &str, g: &Global) -> anyhow::Result<()> {
    if g.json {
        print_json(&JsonAz {
            commands: vec![cmd],
        })
    } else {
        out(&format!("{cmd}\n"))
    }
}

fn out(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn check_hubs(hubs: &[String]) -> anyhow::Result<()> {
    for h in hubs {
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !h.starts_with(['.', '-']);
        if !ok {
            anyhow::bail!(
                "--iot-hub '{}' is not a host name such as hub-X.azure-devices.net",
                shown(h)
            );
        }
    }
    Ok(())
}

/// The file whose path goes into `--certificate-path`: az sends the whole
/// file, so it must hold the leaf alone.
pub(super) fn leaf_file_for_az(
    cert_path: &Path,
    chain: &[Vec<u8>],
    home: Option<&Home>,
    cn: Option<&str>,
) -> anyhow::Result<String> {
    let mut path = cert_path.to_path_buf();
    if chain.len() > 1 {
        let candidate = match (home, cn) {
            (Some(h), Some(cn)) => h.device_files(cn).ok().map(|f| f.cert),
            _ => None,
        };
        match candidate {
            Some(c)
                if cert::read_certificates(&c).is_ok_and(|d| d.len() == 1 && d[0] == chain[0]) =>
            {
                path = c;
            }
            _ => eprintln!(
                "warning: {} holds {} certificates and az sends the whole file; give a file with the leaf alone (openssl x509 -in {} -out leaf.pem)",
                cert_path.display(),
                chain.len(),
                az::shell_quote(&cert_path.to_string_lossy())
            ),
        }
    }
    path.to_str().map(str::to_string).ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not a UTF-8 path; az cannot be given it",
            path.display()
        )
    })
}

// ---------------------------------------------------------------------------

/// `enroll create --json` with `--to local`.
#[derive(Serialize)]
struct JsonCreated<'a> {
    ok: bool,
    kind: &'static str,
    id: &'a str,
    path: String,
    #[serde(rename = "provisioningStatus")]
    provisioning_status: ProvisioningStatus,
    archived_to: Option<String>,
    enrollment: serde_json::Value,
}

/// `--json` with `--to az`.
#[derive(Serialize)]
struct JsonAz<'a> {
    commands: Vec<&'a str>,
}

fn create(a: &CreateArgs, g: &Global) -> CmdResult {
    // Flags first: nothing is read or written when they are wrong.
    if a.to == Target::Az && a.dps_name.is_none() {
        anyhow::bail!("--to az needs --dps-name NAME (the DPS instance)");
    }
    // An ID that cannot be one is an unusable argument (exit 2), not a refusal.
    ids::check_registration_id(&a.check.enrollment_id)?;
    if let Some(d) = &a.device_id {
        ids::check_device_id(d)?;
    }
    check_hubs(&a.iot_hub)?;
    let home = if a.to == Target::Local {
        Some(Home::open(&g.home_dir())?)
    } else {
        None
    };
    let c = &a.check;
    let (p, chain) = preflight(&c.enrollment_id, &c.cert, c.group_ca.as_deref())?;
    if !p.ok {
        eprint!("{}", render_preflight(&p));
        eprintln!("nothing was written.");
        return Ok(1);
    }
    let mut e = IndividualEnrollment::x509(&c.enrollment_id, cert::to_pem(&chain[0]), a.status);
    e.device_id = a.device_id.clone();
    if !a.iot_hub.is_empty() {
        e.iot_hubs = Some(a.iot_hub.clone());
    }
    e.allocation_policy = a.allocation_policy;
    match a.to {
        Target::Azure => {
            let body = serde_json::to_value(&e)?;
            return super::dps_azure::create(
                &e.registration_id,
                false,
                &body,
                a.force,
                &a.azure,
                g,
            );
        }
        Target::Json => print_json(&e)?,
        Target::Az => {
            let home = Home::open(&g.home_dir()).ok();
            let path = leaf_file_for_az(&c.cert, &chain, home.as_ref(), p.cn.as_deref())?;
            print_az(&az::enrollment_create(a.dps_name.as_deref(), &e, &path), g)?;
        }
        Target::Local => {
            let home = home.expect("opened above for --to local");
            let store = EnrollmentStore::new(home);
            let (written, back) = store.store_individual(&e, a.force)?;
            if g.json {
                print_json(&JsonCreated {
                    ok: true,
                    kind: "individual",
                    id: &e.registration_id,
                    path: written.path.display().to_string(),
                    provisioning_status: back.enrollment.provisioning_status,
                    archived_to: written.archived_to.map(|p| p.display().to_string()),
                    enrollment: serde_json::to_value(&back.enrollment)?,
                })?;
            } else if !g.quiet {
                if let Some(arch) = &written.archived_to {
                    out(&format!(
                        "archived the previous enrollment to {}\n",
                        arch.display()
                    ))?;
                }
                out(&format!(
                    "wrote individual enrollment '{}' ({}) to {}; read back: provisioningStatus {}\n",
                    e.registration_id,
                    a.status,
                    written.path.display(),
                    back.enrollment.provisioning_status
                ))?;
            }
        }
    }
    Ok(0)
}

fn group_create(a: &GroupCreateArgs, g: &Global) -> CmdResult {
    let ca = super::ca_arg::ca_file(&a.ca, g)?;
    if a.to == Target::Az && a.dps_name.is_none() {
        anyhow::bail!("--to az needs --dps-name NAME (the DPS instance)");
    }
    ids::check_registration_id(&a.group_id)?;
    check_hubs(&a.iot_hub)?;
    let home = if a.to == Target::Local {
        Some(Home::open(&g.home_dir())?)
    } else {
        None
    };
    let ders = read_certs(&ca)?;
    let problems = enroll::check_group(&a.group_id, &ders[0], OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
    if !problems.is_empty() {
        eprintln!("REFUSED:");
        for p in &problems {
            eprintln!("  ✗ {}: {}", p.code, p.message);
        }
        eprintln!("nothing was written.");
        return Ok(1);
    }
    if ders.len() > 1 {
        eprintln!(
            "note: {} holds {} certificates; the first ({}) is the group's signing certificate",
            ca.display(),
            ders.len(),
            cert::parse_der(&ders[0])
                .map(|x| cert::name_string(x.subject()))
                .unwrap_or_default()
        );
    }
    let mut grp = EnrollmentGroup::x509(&a.group_id, cert::to_pem(&ders[0]), a.status);
    if !a.iot_hub.is_empty() {
        grp.iot_hubs = Some(a.iot_hub.clone());
    }
    grp.allocation_policy = a.allocation_policy;
    match a.to {
        Target::Azure => {
            let body = serde_json::to_value(&grp)?;
            return super::dps_azure::create(
                &grp.enrollment_group_id,
                true,
                &body,
                a.force,
                &a.azure,
                g,
            );
        }
        Target::Json => print_json(&grp)?,
        Target::Az => {
            if ders.len() > 1 {
                eprintln!(
                    "warning: az sends the whole file {}; give a file with the CA alone",
                    ca.display()
                );
            }
            let path = ca.to_str().ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is not a UTF-8 path; az cannot be given it",
                    ca.display()
                )
            })?;
            print_az(&az::group_create(a.dps_name.as_deref(), &grp, path), g)?;
        }
        Target::Local => {
            let home = home.expect("opened above for --to local");
            let store = EnrollmentStore::new(home);
            let (written, back) = store.store_group(&grp, a.force)?;
            if g.json {
                print_json(&JsonCreated {
                    ok: true,
                    kind: "group",
                    id: &grp.enrollment_group_id,
                    path: written.path.display().to_string(),
                    provisioning_status: back.group.provisioning_status,
                    archived_to: written.archived_to.map(|p| p.display().to_string()),
                    enrollment: serde_json::to_value(&back.group)?,
                })?;
            } else if !g.quiet {
                out(&format!(
                    "wrote enrollment group '{}' ({}) to {}; read back: provisioningStatus {}\n",
                    grp.enrollment_group_id,
                    a.status,
                    written.path.display(),
                    back.group.provisioning_status
                ))?;
            }
        }
    }
    Ok(0)
}

/// One record's error in `enroll list --json`.
#[derive(Serialize)]
struct JsonError {
    error: String,
}

/// `enroll list --json`.
#[derive(Serialize)]
struct JsonList {
    enrollments: Vec<IndividualEnrollment>,
    enrollment_groups: Vec<EnrollmentGroup>,
    errors: Vec<JsonError>,
}

fn subject_of(ders: &[Vec<u8>]) -> String {
    ders.first()
        .and_then(|d| cert::parse_der(d).ok())
        .map(|x| cert::name_string(x.subject()))
        .unwrap_or_default()
}

fn list(g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let store = EnrollmentStore::new(home);
    let ind = store.individuals();
    let grp = store.groups();
    let errors: Vec<&Error> = ind.errors.iter().chain(grp.errors.iter()).collect();
    for e in &errors {
        eprintln!("iotca: error: {e}");
    }
    if g.json {
        print_json(&JsonList {
            enrollments: ind.records.iter().map(|r| r.enrollment.clone()).collect(),
            enrollment_groups: grp.records.iter().map(|r| r.group.clone()).collect(),
            errors: errors
                .iter()
                .map(|e| JsonError {
                    error: e.to_string(),
                })
                .collect(),
        })?;
    } else if !g.quiet {
        let mut s = String::new();
        if ind.records.is_empty() && grp.records.is_empty() {
            let _ = writeln!(s, "no enrollments in {}", store.home().root().display());
        }
        for r in &ind.records {
            let e = &r.enrollment;
            let _ = writeln!(
                s,
                "individual  {:<32} {:<8}  {}{}",
                e.registration_id,
                e.provisioning_status,
                subject_of(&r.certificates),
                e.device_id
                    .as_ref()
                    .map(|d| format!("  deviceId={d}"))
                    .unwrap_or_default()
            );
        }
        for r in &grp.records {
            let e = &r.group;
            let _ = writeln!(
                s,
                "group       {:<32} {:<8}  CA {}",
                e.enrollment_group_id,
                e.provisioning_status,
                subject_of(&r.certificates)
            );
        }
        out(&s)?;
    }
    Ok(if errors.is_empty() { 0 } else { 2 })
}

fn not_found(id: &str, g: &Global) -> CmdResult {
    if g.json {
        print_json(&serde_json::json!({"found": false, "id": id, "error": "EnrollmentNotFound"}))?;
    } else {
        out(&format!(
            "EnrollmentNotFound: no enrollment or enrollment group '{id}' in the local store\n"
        ))?;
    }
    Ok(1)
}

pub(super) fn show(a: &IdArgs, g: &Global) -> CmdResult {
    let store = EnrollmentStore::new(Home::open(&g.home_dir())?);
    if !a.group
        && let Some(r) = store.individual(&a.id)?
    {
        print_json(&r.enrollment)?;
        return Ok(0);
    }
    if let Some(r) = store.group(&a.id)? {
        print_json(&r.group)?;
        return Ok(0);
    }
    not_found(&a.id, g)
}

pub(super) fn delete(a: &IdArgs, g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let store = EnrollmentStore::new(home.clone());
    store.individual_path(&a.id)?;
    let lock = home.lock()?;
    let (kind, archived) = if !a.group && home::exists(&store.individual_path(&a.id)?) {
        (
            enroll::EnrollmentKind::Individual,
            store.delete_individual(&lock, &a.id)?,
        )
    } else {
        (
            enroll::EnrollmentKind::Group,
            store.delete_group(&lock, &a.id)?,
        )
    };
    let Some(dir) = archived else {
        return not_found(&a.id, g);
    };
    if g.json {
        print_json(
            &serde_json::json!({"deleted": true, "kind": kind.as_str(), "id": a.id, "archived_to": dir.display().to_string()}),
        )?;
    } else if !g.quiet {
        out(&format!(
            "deleted {} enrollment '{}' (the record moved to {})\n",
            kind.as_str(),
            a.id,
            dir.display()
        ))?;
    }
    Ok(0)
}
