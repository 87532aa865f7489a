//! `enroll check --azure`: what a DPS holds now for one device, read-only.
//!
//! Three questions, each a request or a query of the DPS service API:
//! - the individual enrollment under exactly the enrollment ID
//!   (`GET /enrollments/{id}`);
//! - individual enrollments under the same ID in another letter case
//!   (`POST /enrollments/query`): DPS matches registration IDs
//!   case-insensitively, so such a record is the one DPS uses for the device;
//! - the enrollment groups whose CA, primary or secondary, is on this
//!   device's chain (`POST /enrollmentGroups/query`). DPS returns a group's
//!   certificate only as `info`, so a group is matched by the SHA-256 (else
//!   SHA-1) thumbprint of a certificate known here: those the device
//!   presents, and the other CAs the caller knows (the home's, `--group-ca`).
//!   A match is then verified as DPS would (section 5 rules): the device
//!   must present the path up to that CA.
//!
//! From these, the decision DPS would make now (DESIGN section 6, step by
//! step). Nothing here writes; a CA that DPS holds but that is not known here
//! cannot be recognised (said in the docs of [`Holdings::groups`]).

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::dps::Dps;
use super::http::AzureError;
use crate::cert;
use crate::enroll::EnrollmentKind;
use crate::ids;
use crate::provision::{EnrollmentRef, Status};
use crate::verify::problem::Problem;
use crate::verify::{GroupCas, VerifyOptions};

/// An individual enrollment as DPS holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldEnrollment {
    /// Its registration ID, as DPS returns it.
    pub registration_id: String,
    /// `enabled` or `disabled` (as DPS says; `None` when it says nothing).
    pub provisioning_status: Option<String>,
    /// The hub device ID it creates, when it names one.
    pub device_id: Option<String>,
    /// Whether its primary or secondary certificate is this device's leaf,
    /// by thumbprint; `None` when DPS returned no thumbprint.
    pub certificate_matches: Option<bool>,
}

/// An enrollment group whose CA is on this device's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOnChain {
    /// The group ID.
    pub enrollment_group_id: String,
    /// `enabled` or `disabled`.
    pub provisioning_status: Option<String>,
    /// `primary` or `secondary`: which of the group's certificates it is.
    pub certificate: &'static str,
    /// That CA's subject.
    pub ca_subject: String,
    /// That CA's SHA-256 thumbprint (upper-case hex).
    pub ca_sha256: String,
    /// The chain the device presents verifies to that CA.
    pub chains: bool,
    /// Why it does not, as `verify` says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl GroupOnChain {
    /// Enabled, and the chain verifies to it: DPS would assign the device
    /// through it when no individual enrollment stops it.
    pub fn admits(&self) -> bool {
        self.chains && self.provisioning_status.as_deref() == Some("enabled")
    }
}

/// What DPS would decide for this device now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `assigned`, `disabled` or `failed`.
    pub status: Status,
    /// The enrollment that decides, when one does.
    pub enrollment: Option<EnrollmentRef>,
    /// One sentence, for people.
    pub message: String,
}

/// What DPS holds for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// The DPS asked (`HostName`).
    pub host: String,
    /// The individual enrollment under exactly the enrollment ID.
    pub enrollment: Option<HeldEnrollment>,
    /// Individual enrollments whose ID differs from the enrollment ID only in letter case.
    pub other_case: Vec<HeldEnrollment>,
    /// The individual enrollment under the certificate's CN (any case),
    /// when the CN is not the enrollment ID in any case: the one DPS uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_cn: Option<HeldEnrollment>,
    /// Enrollment groups (enabled or not) whose CA is a certificate known
    /// here on this device's chain, nearest the leaf first. A group whose
    /// CA is neither presented by the device nor among the known CAs is
    /// not recognised.
    pub groups: Vec<GroupOnChain>,
    /// The decision DPS would make now.
    pub decision: Decision,
}

fn held(v: &Value, leaf: &[u8]) -> HeldEnrollment {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let (sha256, sha1) = (cert::sha256_thumbprint(leaf), cert::sha1_thumbprint(leaf));
    let mut matches = None;
    for which in ["primary", "secondary"] {
        let info = format!("/attestation/x509/clientCertificates/{which}/info");
        let t256 = s(&format!("{info}/sha256Thumbprint"));
        let t1 = s(&format!("{info}/sha1Thumbprint"));
        let hit = match (t256, t1) {
            (Some(t), _) => Some(t.eq_ignore_ascii_case(&sha256)),
            (None, Some(t)) => Some(t.eq_ignore_ascii_case(&sha1)),
            (None, None) => None,
        };
        matches = match (matches, hit) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (m, None) => m,
            (_, h) => h,
        };
    }
    HeldEnrollment {
        registration_id: s("/registrationId").unwrap_or_default(),
        provisioning_status: s("/provisioningStatus"),
        device_id: s("/deviceId"),
        certificate_matches: matches,
    }
}

/// Which of `group`'s certificates, by thumbprint, is `der`.
fn group_certificate(group: &Value, der: &[u8]) -> Option<&'static str> {
    let (sha256, sha1) = (cert::sha256_thumbprint(der), cert::sha1_thumbprint(der));
    ["primary", "secondary"].into_iter().find(|which| {
        let info = format!("/attestation/x509/signingCertificates/{which}/info");
        let t = |n: &str| {
            group
                .pointer(&format!("{info}/{n}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match (t("sha256Thumbprint"), t("sha1Thumbprint")) {
            (Some(t), _) => t.eq_ignore_ascii_case(&sha256),
            (None, Some(t)) => t.eq_ignore_ascii_case(&sha1),
            (None, None) => false,
        }
    })
}

/// Asks `dps` what it holds for a device presenting `chain` (leaf first)
/// that is to be enrolled as `enrollment_id`; `known_cas` are further CA
/// certificates (DER) that may be a group's CA (the home's, `--group-ca`).
pub fn holdings<D: AsRef<[u8]>>(
    dps: &Dps,
    enrollment_id: &str,
    chain: &[D],
    known_cas: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Holdings, AzureError> {
    let leaf: &[u8] = chain.first().map(AsRef::as_ref).unwrap_or_default();
    let exact = if ids::check_registration_id(enrollment_id).is_ok() {
        dps.enrollment(enrollment_id)?.map(|r| held(&r.json, leaf))
    } else {
        None
    };
    let all: Vec<HeldEnrollment> = dps.enrollments()?.iter().map(|v| held(v, leaf)).collect();
    let groups = dps.groups()?;

    // GET matched case-insensitively on a real DPS: what it returned may be another case.
    let (enrollment, mut other_case) = match exact {
        Some(e) if e.registration_id == enrollment_id => (Some(e), vec![]),
        Some(e) => (None, vec![e]),
        None => (None, vec![]),
    };
    for e in &all {
        if e.registration_id != enrollment_id
            && ids::registration_ids_match(&e.registration_id, enrollment_id)
            && !other_case.contains(e)
        {
            other_case.push(e.clone());
        }
    }
    let cn = cert::parse_der(leaf)
        .ok()
        .and_then(|x| match cert::common_names(&x).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        });
    let for_cn = cn
        .as_deref()
        .filter(|cn| !ids::registration_ids_match(cn, enrollment_id))
        .and_then(|cn| {
            all.iter()
                .find(|e| ids::registration_ids_match(&e.registration_id, cn))
                .cloned()
        });

    let on_chain = groups_on_chain(&groups, chain, known_cas, now);
    let individual = match &cn {
        Some(cn) if ids::registration_ids_match(cn, enrollment_id) => {
            enrollment.clone().or_else(|| other_case.first().cloned())
        }
        Some(_) => for_cn.clone(),
        None => None,
    };
    let decision = decide(cn.as_deref(), individual.as_ref(), &on_chain);
    Ok(Holdings {
        host: dps.host_name().to_string(),
        enrollment,
        other_case,
        for_cn,
        groups: on_chain,
        decision,
    })
}

/// The groups whose CA is a known certificate, verified, nearest the leaf first.
fn groups_on_chain<D: AsRef<[u8]>>(
    groups: &[Value],
    chain: &[D],
    known_cas: &[Vec<u8>],
    now: OffsetDateTime,
) -> Vec<GroupOnChain> {
    // Candidates: what the device presents above its leaf, then the other known CAs.
    let mut candidates: Vec<&[u8]> = chain.iter().skip(1).map(AsRef::as_ref).collect();
    for k in known_cas {
        if !candidates.contains(&k.as_slice()) {
            candidates.push(k);
        }
    }
    let untrusted: Vec<&[u8]> = known_cas.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    for der in candidates {
        let Ok(cas) = GroupCas::new(&[der]) else {
            continue;
        };
        let mut verdict = None;
        for g in groups {
            let Some(which) = group_certificate(g, der) else {
                continue;
            };
            let id = g
                .get("enrollmentGroupId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if out
                .iter()
                .any(|o: &GroupOnChain| o.enrollment_group_id == id)
            {
                continue;
            }
            let v = verdict
                .get_or_insert_with(|| cas.verify_with(chain, &untrusted, &VerifyOptions::at(now)));
            out.push(GroupOnChain {
                enrollment_group_id: id.to_string(),
                provisioning_status: g
                    .get("provisioningStatus")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                certificate: which,
                ca_subject: cas.anchors()[0].subject().to_string(),
                ca_sha256: cert::sha256_thumbprint(der),
                chains: v.chains,
                problems: v.problems.clone(),
            });
        }
    }
    out
}

/// DESIGN section 6's decision, on what DPS holds.
fn decide(
    cn: Option<&str>,
    individual: Option<&HeldEnrollment>,
    groups: &[GroupOnChain],
) -> Decision {
    let by = |kind: EnrollmentKind, id: &str| {
        Some(EnrollmentRef {
            kind,
            id: id.to_string(),
        })
    };
    let Some(cn) = cn else {
        return Decision {
            status: Status::Failed,
            enrollment: None,
            message: "the certificate has no single CN, so DPS has no registration ID for it"
                .into(),
        };
    };
    if let Some(e) = individual {
        let id = &e.registration_id;
        let (status, message) = match (e.provisioning_status.as_deref(), e.certificate_matches) {
            (Some("disabled"), _) => (
                Status::Disabled,
                format!(
                    "the disabled individual enrollment '{id}' blocks the device, whatever its groups say"
                ),
            ),
            (_, Some(false)) => (
                Status::Failed,
                format!(
                    "the individual enrollment '{id}' names another certificate, and DPS then tries no group"
                ),
            ),
            _ => (
                Status::Assigned,
                format!("the individual enrollment '{id}' admits the device"),
            ),
        };
        return Decision {
            status,
            enrollment: by(EnrollmentKind::Individual, id),
            message,
        };
    }
    match groups.iter().find(|g| g.chains) {
        Some(g) if g.admits() => Decision {
            status: Status::Assigned,
            enrollment: by(EnrollmentKind::Group, &g.enrollment_group_id),
            message: format!(
                "no individual enrollment for '{cn}': the enabled group '{}' admits the device; only a disabled individual enrollment '{cn}' would block it",
                g.enrollment_group_id
            ),
        },
        Some(g) => Decision {
            status: Status::Disabled,
            enrollment: by(EnrollmentKind::Group, &g.enrollment_group_id),
            message: format!(
                "no individual enrollment for '{cn}': the group '{}' on its chain is not enabled",
                g.enrollment_group_id
            ),
        },
        None => Decision {
            status: Status::Failed,
            enrollment: None,
            message: format!(
                "no individual enrollment for '{cn}' and no enrollment group known here that its chain reaches"
            ),
        },
    }
}

#[cfg(test)]
#[path = "holds_tests.rs"]
mod tests;
