//! The `--json` wire types: what scripts read, fixed by DESIGN.md. Each is
//! a Serialize-only struct of borrowed fields built from a library result,
//! so a change to an internal type never changes the JSON by accident.

use std::path::Path;

use serde::Serialize;

use iotca::cert::{CertDetails, CertSummary};
use iotca::home::Report;
use iotca::provision::Decision;

/// A certificate as `verify` and `inspect` print it (DESIGN section 5):
/// ```json
/// {"subject": "CN=sensor-thl-002", "cn": "sensor-thl-002", "serial": "hex",
///  "not_before": "RFC3339", "not_after": "RFC3339", "sha256": "HEX", "sha1": "HEX"}
/// ```
#[derive(Serialize)]
pub struct JsonLeaf<'a> {
    subject: &'a str,
    cn: Option<&'a str>,
    serial: &'a str,
    not_before: &'a str,
    not_after: &'a str,
    sha256: &'a str,
    sha1: &'a str,
}

impl<'a> From<&'a CertSummary> for JsonLeaf<'a> {
    fn from(s: &'a CertSummary) -> Self {
        JsonLeaf {
            subject: &s.subject,
            cn: s.cn.as_deref(),
            serial: &s.serial,
            not_before: &s.not_before,
            not_after: &s.not_after,
            sha256: &s.sha256,
            sha1: &s.sha1,
        }
    }
}

/// One certificate of `inspect --json`: the [`JsonLeaf`] keys plus
/// `issuer`, `is_ca`, `pathlen`, `key_usage`, `extended_key_usage`,
/// `key_algorithm` (and a few more for people: signature algorithm, key
/// identifiers, alternative names, days left, self-issued).
#[derive(Serialize)]
pub struct JsonCertDetails<'a> {
    #[serde(flatten)]
    leaf: JsonLeaf<'a>,
    issuer: &'a str,
    is_ca: bool,
    pathlen: Option<u32>,
    key_usage: &'a [String],
    extended_key_usage: &'a [String],
    key_algorithm: &'a str,
    signature_algorithm: &'a str,
    subject_key_id: Option<&'a str>,
    authority_key_id: Option<&'a str>,
    subject_alt_names: &'a [String],
    days_left: i64,
    self_issued: bool,
}

impl<'a> From<&'a CertDetails> for JsonCertDetails<'a> {
    fn from(d: &'a CertDetails) -> Self {
        JsonCertDetails {
            leaf: (&d.summary).into(),
            issuer: &d.issuer,
            is_ca: d.is_ca,
            pathlen: d.pathlen,
            key_usage: &d.key_usage,
            extended_key_usage: &d.extended_key_usage,
            key_algorithm: &d.key_algorithm,
            signature_algorithm: &d.signature_algorithm,
            subject_key_id: d.subject_key_id.as_deref(),
            authority_key_id: d.authority_key_id.as_deref(),
            subject_alt_names: &d.subject_alt_names,
            days_left: d.days_left,
            self_issued: d.self_issued,
        }
    }
}

/// `provision --json` (DESIGN section 6):
/// ```json
/// {"status": "assigned|disabled|failed", "registration_id": "...", "device_id": "...",
///  "assigned_hub": "...", "enrollment": {"kind": "individual|group", "id": "..."},
///  "message": "..."}
/// ```
#[derive(Serialize)]
pub struct JsonDecision<'a> {
    status: &'static str,
    registration_id: Option<&'a str>,
    device_id: Option<&'a str>,
    assigned_hub: Option<&'a str>,
    enrollment: Option<JsonEnrollmentRef<'a>>,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    registered: Option<&'a Path>,
}

/// `{"kind": "individual|group", "id": "..."}`.
#[derive(Serialize)]
pub struct JsonEnrollmentRef<'a> {
    kind: &'static str,
    id: &'a str,
}

impl<'a> JsonDecision<'a> {
    /// The decision, and the hub record written when `--register` added one.
    pub fn new(d: &'a Decision, registered: Option<&'a Path>) -> Self {
        JsonDecision {
            status: d.status.as_str(),
            registration_id: d.registration_id.as_deref(),
            device_id: d.device_id.as_deref(),
            assigned_hub: d.assigned_hub.as_deref(),
            enrollment: d.enrollment.as_ref().map(|e| JsonEnrollmentRef {
                kind: match e.kind {
                    iotca::enroll::EnrollmentKind::Individual => "individual",
                    iotca::enroll::EnrollmentKind::Group => "group",
                },
                id: &e.id,
            }),
            message: &d.message,
            warnings: &d.warnings,
            registered,
        }
    }
}

/// What an issuing command wrote:
/// ```json
/// {"written": [{"what": "device certificate", "path": "..."}],
///  "archived_to": null, "warnings": [], "skipped": []}
/// ```
#[derive(Serialize)]
pub struct JsonReport<'a> {
    written: Vec<JsonWritten<'a>>,
    archived_to: Option<&'a Path>,
    warnings: &'a [String],
    skipped: &'a [String],
}

/// One file written.
#[derive(Serialize)]
pub struct JsonWritten<'a> {
    what: &'a str,
    path: &'a Path,
}

impl<'a> From<&'a Report> for JsonReport<'a> {
    fn from(r: &'a Report) -> Self {
        JsonReport {
            written: r
                .written
                .iter()
                .map(|w| JsonWritten {
                    what: &w.what,
                    path: &w.path,
                })
                .collect(),
            archived_to: r.archived_to.as_deref(),
            warnings: &r.warnings,
            skipped: &r.skipped,
        }
    }
}
