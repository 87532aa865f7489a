//! `iotca enroll group list | show ID | delete ID`, as
//! `az iot dps enrollment-group list|show|delete`.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::Args;

use iotca::enroll::EnrollmentStore;
use iotca::home::Home;
use iotca::text::escape;

use super::enroll::IdArgs;
use super::{CmdResult, Global, print_json};

pub(super) const LIST_HELP: &str = "\
EXIT CODES:
  0  every group record was read
  2  some record could not be read (each is named on stderr; the others are listed)

EXAMPLES:
  iotca --home pki enroll group list
  iotca --home pki enroll group list --json      {\"enrollment_groups\": [DPS records]}";

pub(super) const SHOW_HELP: &str = "\
EXIT CODES:
  0  shown (the DPS JSON record)
  1  no such group (EnrollmentNotFound)
  2  the record could not be read, or the ID is invalid

EXAMPLES:
  iotca --home pki enroll group show fleet";

pub(super) const DELETE_HELP: &str = "\
The record moves under archive/<timestamp>/.

EXIT CODES:
  0  deleted
  1  no such group (EnrollmentNotFound)
  2  the ID is invalid or the file could not be moved

EXAMPLES:
  iotca --home pki enroll group delete fleet";

/// `enroll group show|delete` arguments.
#[derive(Debug, Args)]
pub struct GroupIdArgs {
    /// The enrollment group ID (case-insensitive).
    #[arg(value_name = "GROUP_ID")]
    pub id: String,
}

impl GroupIdArgs {
    fn as_id_args(&self) -> IdArgs {
        IdArgs {
            id: self.id.clone(),
            group: true,
            remote: Default::default(),
        }
    }
}

#[derive(serde::Serialize)]
struct JsonGroups<'a> {
    enrollment_groups: Vec<&'a iotca::enroll::EnrollmentGroup>,
    errors: Vec<String>,
}

/// `enroll group list`.
pub fn list(g: &Global) -> CmdResult {
    let store = EnrollmentStore::new(Home::open(&g.home_dir())?);
    let grp = store.groups();
    for e in &grp.errors {
        eprintln!("iotca: error: {e}");
    }
    if g.json {
        print_json(&JsonGroups {
            enrollment_groups: grp.records.iter().map(|r| &r.group).collect(),
            errors: grp.errors.iter().map(|e| e.to_string()).collect(),
        })?;
    } else if !g.quiet {
        let mut s = String::new();
        if grp.records.is_empty() {
            let _ = writeln!(
                s,
                "no enrollment groups in {}",
                store.home().root().display()
            );
        }
        for r in &grp.records {
            let subject = r
                .certificates
                .first()
                .and_then(|d| {
                    iotca::cert::parse_der(d)
                        .ok()
                        .map(|c| iotca::cert::name_string(c.subject()))
                })
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "{:<32} {:<8}  CA {}",
                escape(&r.group.enrollment_group_id),
                r.group.provisioning_status,
                escape(&subject)
            );
        }
        std::io::stdout().lock().write_all(s.as_bytes())?;
    }
    Ok(if grp.errors.is_empty() { 0 } else { 2 })
}

/// `enroll group show ID`.
pub fn show(a: &GroupIdArgs, g: &Global) -> CmdResult {
    super::enroll::show(&a.as_id_args(), g)
}

/// `enroll group delete ID`.
pub fn delete(a: &GroupIdArgs, g: &Global) -> CmdResult {
    super::enroll::delete(&a.as_id_args(), g)
}
