//! `enroll group update --to azure`: a group's signing certificates changed
//! on a real DPS (the CA rollover of DESIGN section 13).
//!
//! DPS answers `GET /enrollmentGroups/{id}` with each certificate's `info`
//! (thumbprints, subject) and not the certificate itself, so the body that
//! goes back is rebuilt from certificates iotca knows: the local group
//! record, the home's CAs and the new secondary, matched by SHA-256
//! thumbprint. [`plan`] reads and rebuilds (no write), [`apply`] PUTs with
//! `If-Match` and reads back.

use serde_json::{Value, json};

use super::dps::{Dps, Record};
use super::http::AzureError;
use crate::cert;
use crate::enroll::schema::ProvisioningStatus;

/// What to change.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    /// The new secondary certificate (DER).
    pub secondary: Option<Vec<u8>>,
    /// The secondary becomes the primary; the old primary leaves.
    pub promote: bool,
    /// The secondary leaves.
    pub remove: bool,
    /// The new `provisioningStatus`.
    pub status: Option<ProvisioningStatus>,
}

/// Why the change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GroupUpdateError {
    /// A request failed.
    #[error(transparent)]
    Azure(Box<AzureError>),
    /// DPS has no such group.
    #[error("no enrollment group '{id}' in {host}")]
    NotFound {
        /// The group ID.
        id: String,
        /// The DPS.
        host: String,
    },
    /// The group has no X.509 signing certificates.
    #[error("enrollment group '{id}' in {host} has no X.509 signing certificates")]
    NotX509 {
        /// The group ID.
        id: String,
        /// The DPS.
        host: String,
    },
    /// DPS returned only the thumbprint of a certificate iotca does not have.
    #[error(
        "the {which} certificate of enrollment group '{id}' in {host} ({subject}, SHA-256 {thumbprint}) is neither a CA of this home nor in its local record; DPS returns only its thumbprint, so give that CA with --secondary-ca or use --to az"
    )]
    Unknown {
        /// `primary` or `secondary`.
        which: &'static str,
        /// The group ID.
        id: String,
        /// The DPS.
        host: String,
        /// The certificate's subject as DPS reports it.
        subject: String,
        /// Its SHA-256 thumbprint.
        thumbprint: String,
    },
    /// `--promote-secondary` or `--remove-secondary` without a secondary.
    #[error("enrollment group '{id}' in {host} has no secondary certificate to {verb}")]
    NoSecondary {
        /// The group ID.
        id: String,
        /// The DPS.
        host: String,
        /// `promote` or `remove`.
        verb: &'static str,
    },
    /// Someone changed the group between the read and the write.
    #[error(
        "enrollment group '{id}' changed in {host} after iotca read it (HTTP 412); nothing was written, run the command again"
    )]
    Race {
        /// The group ID.
        id: String,
        /// The DPS.
        host: String,
    },
    /// The read-back differs from what was written.
    #[error("enrollment group '{id}' does not read back from {host} as written: {what}")]
    NotConfirmed {
        /// The group ID.
        id: String,
        /// The DPS.
        host: String,
        /// What differs.
        what: String,
    },
}

impl From<AzureError> for GroupUpdateError {
    fn from(e: AzureError) -> Self {
        GroupUpdateError::Azure(Box::new(e))
    }
}

/// A group's body with the change applied, and its certificates before and after.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The body to PUT.
    pub body: Value,
    /// Primary, then secondary (DER), as DPS holds them now.
    pub before: Vec<Vec<u8>>,
    /// After the change.
    pub after: Vec<Vec<u8>>,
}

/// The change, ready to write.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The group ID.
    pub id: String,
    /// The group's certificates now: primary, then secondary (DER).
    pub before: Vec<Vec<u8>>,
    /// After the change.
    pub after: Vec<Vec<u8>>,
    /// `provisioningStatus` after the change.
    pub status: String,
    etag: Option<String>,
    body: Value,
}

/// The group as DPS holds it after [`apply`].
#[derive(Debug, Clone)]
pub struct Updated {
    /// The record read back.
    pub record: Record,
    /// The certificates it holds (primary, secondary), as written.
    pub certificates: Vec<Vec<u8>>,
    /// `provisioningStatus` read back.
    pub status: String,
}

const CERTS: &str = "/attestation/x509/signingCertificates";

/// One of DPS's certificates as DER: its `certificate` when DPS sent it, else
/// the known certificate with the SHA-256 thumbprint of its `info`.
fn resolve(entry: &Value, known: &[Vec<u8>]) -> Result<Vec<u8>, (String, String)> {
    if let Some(der) = entry
        .get("certificate")
        .and_then(Value::as_str)
        .and_then(|p| cert::split_certificates(p.as_bytes()).ok())
        .and_then(|d| d.into_iter().next())
    {
        return Ok(der);
    }
    let info = |k: &str| {
        entry
            .pointer(&format!("/info/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let thumbprint = info("sha256Thumbprint");
    known
        .iter()
        .find(|d| cert::sha256_thumbprint(d).eq_ignore_ascii_case(&thumbprint))
        .cloned()
        .ok_or_else(|| (info("subjectName"), thumbprint))
}

/// Rebuilds the body of `current` (a group as DPS returned it) with the
/// change applied and every certificate as PEM. Pure; [`plan`] calls it.
pub fn rebuild(
    current: &Value,
    host: &str,
    known: &[Vec<u8>],
    change: &GroupChange,
) -> Result<Rebuilt, GroupUpdateError> {
    let id = current
        .get("enrollmentGroupId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let certs = current.pointer(CERTS).filter(|c| c.is_object());
    let primary = certs
        .and_then(|c| c.get("primary"))
        .filter(|p| p.is_object());
    let Some(primary) = primary else {
        return Err(GroupUpdateError::NotX509 {
            id,
            host: host.into(),
        });
    };
    let unknown = |which, (subject, thumbprint)| GroupUpdateError::Unknown {
        which,
        id: id.clone(),
        host: host.into(),
        subject,
        thumbprint,
    };
    let mut before = vec![resolve(primary, known).map_err(|e| unknown("primary", e))?];
    if let Some(s) = certs
        .and_then(|c| c.get("secondary"))
        .filter(|s| s.is_object())
    {
        before.push(resolve(s, known).map_err(|e| unknown("secondary", e))?);
    }
    let mut after = before.clone();
    if let Some(der) = &change.secondary {
        after.truncate(1);
        after.push(der.clone());
    }
    let no_secondary = |verb| GroupUpdateError::NoSecondary {
        id: id.clone(),
        host: host.into(),
        verb,
    };
    if change.promote {
        if after.len() < 2 {
            return Err(no_secondary("promote"));
        }
        after.remove(0);
    }
    if change.remove {
        if after.len() < 2 {
            return Err(no_secondary("remove"));
        }
        after.truncate(1);
    }
    let mut body = current.clone();
    let mut signing = json!({"primary": {"certificate": cert::to_pem(&after[0])}});
    if let Some(s) = after.get(1) {
        signing["secondary"] = json!({"certificate": cert::to_pem(s)});
    }
    if let Some(slot) = body.pointer_mut(CERTS) {
        *slot = signing;
    }
    if let Some(s) = change.status {
        body["provisioningStatus"] = json!(s.to_string());
    }
    Ok(Rebuilt {
        body,
        before,
        after,
    })
}

/// Reads group `id` from DPS and prepares the change; nothing is written.
/// `known` are the certificates iotca can send back for DPS's thumbprints.
pub fn plan(
    dps: &Dps,
    id: &str,
    known: &[Vec<u8>],
    change: &GroupChange,
) -> Result<Plan, GroupUpdateError> {
    let host = dps.host_name().to_string();
    let Some(rec) = dps.group(id)? else {
        return Err(GroupUpdateError::NotFound {
            id: id.into(),
            host,
        });
    };
    let Rebuilt {
        body,
        before,
        after,
    } = rebuild(&rec.json, &host, known, change)?;
    let status = body
        .get("provisioningStatus")
        .and_then(Value::as_str)
        .unwrap_or("enabled")
        .to_string();
    Ok(Plan {
        id: id.into(),
        before,
        after,
        status,
        etag: rec.etag,
        body,
    })
}

/// The SHA-256 thumbprint DPS reports (or of the certificate it sent back).
fn thumbprint_of(entry: Option<&Value>) -> Option<String> {
    let e = entry.filter(|e| e.is_object())?;
    if let Some(t) = e.pointer("/info/sha256Thumbprint").and_then(Value::as_str) {
        return Some(t.to_ascii_uppercase());
    }
    let pem = e.get("certificate")?.as_str()?;
    let der = cert::split_certificates(pem.as_bytes())
        .ok()?
        .into_iter()
        .next()?;
    Some(cert::sha256_thumbprint(&der))
}

/// Writes the plan (`PUT` with `If-Match`) and reads the group back: the
/// primary and secondary thumbprints and `provisioningStatus` must be as written.
pub fn apply(dps: &Dps, plan: &Plan) -> Result<Updated, GroupUpdateError> {
    let host = dps.host_name().to_string();
    let path_id = plan.id.clone();
    match dps.put_group_json(&plan.id, &plan.body, plan.etag.as_deref().or(Some("*"))) {
        Ok(_) => {}
        Err(e) if e.status() == Some(412) => {
            return Err(GroupUpdateError::Race { id: path_id, host });
        }
        Err(e) => return Err(e.into()),
    }
    let not_confirmed = |what: String| GroupUpdateError::NotConfirmed {
        id: plan.id.clone(),
        host: host.clone(),
        what,
    };
    let back = dps
        .group(&plan.id)?
        .ok_or_else(|| not_confirmed("it is gone".into()))?;
    let certs = back.json.pointer(CERTS);
    for (i, which) in ["primary", "secondary"].into_iter().enumerate() {
        let want = plan.after.get(i).map(|d| cert::sha256_thumbprint(d));
        let got = thumbprint_of(certs.and_then(|c| c.get(which)));
        if want != got {
            return Err(not_confirmed(format!(
                "its {which} certificate is {} (expected {})",
                got.as_deref().unwrap_or("none"),
                want.as_deref().unwrap_or("none")
            )));
        }
    }
    let status = back.provisioning_status().unwrap_or("enabled").to_string();
    if status != plan.status {
        return Err(not_confirmed(format!(
            "provisioningStatus is {status} (expected {})",
            plan.status
        )));
    }
    Ok(Updated {
        record: back,
        certificates: plan.after.clone(),
        status,
    })
}

#[cfg(test)]
#[path = "group_update_tests.rs"]
mod tests;
