//! The pre-flight: will an individual enrollment with this ID do what the
//! operator means for the device presenting this certificate?
//!
//! DPS itself checks none of this when an enrollment is created: an ID that
//! differs from the certificate's CN yields an enrollment that never matches
//! the device, so a "disabled" enrollment silently blocks nothing.
//!
//! What is not checked here: that the certificate is trusted by DPS (only
//! with a group CA, through [`crate::verify`]), revocation, or the key.

use std::fmt;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::cert::{self, ParseError};
use crate::ids;
use crate::problem::Problem;
use crate::verify::GroupCas;

/// Why the pre-flight refuses an enrollment. Stable names (DESIGN section
/// 6): scripts match on [`CheckCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CheckCode {
    /// The certificate is a CA certificate (basicConstraints CA:TRUE); an
    /// individual enrollment needs the device's leaf. What to do: pass the
    /// device certificate, or use `enroll group create` for a CA.
    CertificateIsCa,
    /// The certificate's notAfter is in the past; DPS refuses the device at
    /// the TLS handshake. What to do: renew the device certificate.
    CertificateExpired,
    /// For an enrollment group: the certificate is not a CA, so it cannot
    /// sign device certificates. What to do: pass the group's root or
    /// intermediate CA certificate.
    CertificateNotCa,
    /// The CN equals the enrollment ID except for letter case. DPS may match
    /// it, but the IoT hub device ID is case-sensitive, so iotca refuses
    /// rather than guess. What to do: use the CN exactly as the ID.
    CnCaseMismatch,
    /// The CN differs from the enrollment ID: the enrollment would never
    /// match this device. What to do: use the certificate's CN as the ID, or
    /// the certificate of the device you mean.
    CnMismatch,
    /// The certificate does not chain to the `--group-ca` (the verify
    /// problems say why). What to do: check this device belongs to that group.
    DoesNotChain,
    /// The enrollment ID is not a valid DPS registration ID (1-64 of ASCII
    /// letters, digits and `- . _ :`, alphanumeric at both ends, when it is
    /// an X.509 CN). What to do: fix the ID.
    InvalidRegistrationId,
    /// The certificate's subject has no CN, so DPS has no registration ID.
    /// What to do: re-issue it with CN = the device ID.
    MissingCn,
    /// The certificate's subject has more than one CN. What to do: re-issue
    /// it with exactly one CN.
    MultipleCn,
}

impl CheckCode {
    /// The codes of `enroll check`, in DESIGN's order.
    pub const ENROLLMENT: [CheckCode; 8] = [
        CheckCode::InvalidRegistrationId,
        CheckCode::MissingCn,
        CheckCode::MultipleCn,
        CheckCode::CnMismatch,
        CheckCode::CnCaseMismatch,
        CheckCode::CertificateIsCa,
        CheckCode::CertificateExpired,
        CheckCode::DoesNotChain,
    ];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckCode::CertificateIsCa => "certificate_is_ca",
            CheckCode::CertificateExpired => "certificate_expired",
            CheckCode::CertificateNotCa => "certificate_not_ca",
            CheckCode::CnCaseMismatch => "cn_case_mismatch",
            CheckCode::CnMismatch => "cn_mismatch",
            CheckCode::DoesNotChain => "does_not_chain",
            CheckCode::InvalidRegistrationId => "invalid_registration_id",
            CheckCode::MissingCn => "missing_cn",
            CheckCode::MultipleCn => "multiple_cn",
        }
    }
}

impl fmt::Display for CheckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CheckCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One reason the pre-flight refuses: `{"code", "message"}`, plus the
/// verify problems for `does_not_chain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckProblem {
    /// The stable code.
    pub code: CheckCode,
    /// What exactly is wrong, for people.
    pub message: String,
    /// For `does_not_chain`: why, as `verify` reports it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl CheckProblem {
    fn new(code: CheckCode, message: impl Into<String>) -> Self {
        CheckProblem {
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }
}

/// The pre-flight's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// True when no problem applies: the enrollment will match this device.
    pub ok: bool,
    /// The enrollment ID checked.
    pub enrollment_id: String,
    /// The certificate's CN when it has exactly one.
    pub cn: Option<String>,
    /// Every problem that applies, in DESIGN's order.
    pub problems: Vec<CheckProblem>,
    /// Where the ID and the CN first differ (0-based character index), when they differ.
    pub first_difference: Option<usize>,
}

impl Preflight {
    /// True when some problem has `code`.
    pub fn has(&self, code: CheckCode) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }
}

/// The 0-based index of the first character where `a` and `b` differ
/// (case-sensitively), or None when they are equal.
pub fn first_difference(a: &str, b: &str) -> Option<usize> {
    let mut ai = a.chars();
    let mut bi = b.chars();
    let mut i = 0;
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return None,
            (Some(x), Some(y)) if x == y => i += 1,
            _ => return Some(i),
        }
    }
}

/// How the enrollment ID compares with the CN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnComparison {
    /// Byte for byte equal.
    Equal,
    /// Equal ignoring ASCII letter case only.
    CaseOnly,
    /// Different.
    Different,
}

/// Compares an enrollment ID with a certificate CN the way the pre-flight does.
pub fn compare_cn(enrollment_id: &str, cn: &str) -> CnComparison {
    if enrollment_id == cn {
        CnComparison::Equal
    } else if ids::registration_ids_match(enrollment_id, cn) {
        CnComparison::CaseOnly
    } else {
        CnComparison::Different
    }
}

fn is_ca(x: &X509Certificate<'_>) -> bool {
    matches!(x.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// The pre-flight for an individual enrollment `enrollment_id` of the
/// device presenting `chain` (its leaf first; only the leaf is enrolled,
/// the rest may complete the path to `group_cas`), at time `now`.
///
/// Lists every problem that applies. Errors only when the leaf cannot be
/// parsed at all (or `chain` is empty).
pub fn check_enrollment<D: AsRef<[u8]>>(
    enrollment_id: &str,
    chain: &[D],
    group_cas: Option<&GroupCas>,
    now: OffsetDateTime,
) -> Result<Preflight, ParseError> {
    let leaf_der = chain.first().ok_or(ParseError::Empty)?.as_ref();
    let leaf = cert::parse_der(leaf_der)?;
    let mut problems = Vec::new();
    if let Err(e) = ids::check_x509_registration_id(enrollment_id) {
        problems.push(CheckProblem::new(
            CheckCode::InvalidRegistrationId,
            e.to_string(),
        ));
    }
    let cns = cert::common_names(&leaf);
    let subject = cert::name_string(leaf.subject());
    let mut first_diff = None;
    let cn = match cns.len() {
        0 => {
            problems.push(CheckProblem::new(
                CheckCode::MissingCn,
                format!("the certificate's subject ({subject}) has no CN; DPS takes the registration ID from the CN"),
            ));
            None
        }
        1 => Some(cns[0].clone()),
        n => {
            problems.push(CheckProblem::new(
                CheckCode::MultipleCn,
                format!(
                    "the certificate's subject has {n} CNs ({}); the registration ID is ambiguous",
                    cns.iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            None
        }
    };
    if let Some(cn) = &cn {
        first_diff = first_difference(enrollment_id, cn);
        match compare_cn(enrollment_id, cn) {
            CnComparison::Equal => {}
            CnComparison::CaseOnly => problems.push(CheckProblem::new(
                CheckCode::CnCaseMismatch,
                format!(
                    "the enrollment ID '{enrollment_id}' and the certificate's CN '{cn}' differ only in letter case (first at character {}); DPS may match them, but IoT hub device IDs are case-sensitive",
                    first_diff.unwrap_or(0) + 1
                ),
            )),
            CnComparison::Different => problems.push(CheckProblem::new(
                CheckCode::CnMismatch,
                format!(
                    "the enrollment ID '{enrollment_id}' differs from the certificate's CN '{cn}' (first at character {}); the enrollment would never match this device",
                    first_diff.unwrap_or(0) + 1
                ),
            )),
        }
    }
    if is_ca(&leaf) {
        problems.push(CheckProblem::new(
            CheckCode::CertificateIsCa,
            format!(
                "{subject} is a CA certificate (basicConstraints CA:TRUE), not a device certificate"
            ),
        ));
    }
    let not_after = leaf.validity().not_after.to_datetime();
    if not_after < now {
        problems.push(CheckProblem::new(
            CheckCode::CertificateExpired,
            format!("the certificate expired at {}", cert::rfc3339(not_after)),
        ));
    }
    if let Some(cas) = group_cas {
        let verdict = cas.verify(chain, now);
        if !verdict.chains {
            let names: Vec<&str> = cas.anchors().iter().map(|a| a.subject()).collect();
            let first = verdict
                .problems
                .first()
                .map(|p| format!(" ({}: {})", p.code, p.message))
                .unwrap_or_default();
            problems.push(CheckProblem {
                code: CheckCode::DoesNotChain,
                message: format!(
                    "the certificate does not chain to the group CA {}{first}",
                    names.join(", ")
                ),
                problems: verdict.problems,
            });
        }
    }
    Ok(Preflight {
        ok: problems.is_empty(),
        enrollment_id: enrollment_id.to_string(),
        cn,
        problems,
        first_difference: first_diff,
    })
}

/// The pre-flight for an enrollment group `group_id` whose signing
/// certificate is `ca_der`: the ID is a registration ID, and the
/// certificate is a CA that has not expired.
pub fn check_group(
    group_id: &str,
    ca_der: &[u8],
    now: OffsetDateTime,
) -> Result<Vec<CheckProblem>, ParseError> {
    let ca = cert::parse_der(ca_der)?;
    let mut problems = Vec::new();
    if let Err(e) = ids::check_registration_id(group_id) {
        problems.push(CheckProblem::new(
            CheckCode::InvalidRegistrationId,
            e.to_string(),
        ));
    }
    let subject = cert::name_string(ca.subject());
    if !is_ca(&ca) {
        problems.push(CheckProblem::new(
            CheckCode::CertificateNotCa,
            format!("{subject} is not a CA certificate; an enrollment group needs the root or intermediate CA that signs the devices"),
        ));
    }
    let not_after = ca.validity().not_after.to_datetime();
    if not_after < now {
        problems.push(CheckProblem::new(
            CheckCode::CertificateExpired,
            format!("{subject} expired at {}", cert::rfc3339(not_after)),
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_equal_design() {
        let names: Vec<&str> = CheckCode::ENROLLMENT.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "invalid_registration_id",
                "missing_cn",
                "multiple_cn",
                "cn_mismatch",
                "cn_case_mismatch",
                "certificate_is_ca",
                "certificate_expired",
                "does_not_chain"
            ]
        );
        let mut all: HashSet<&str> = names.into_iter().collect();
        assert!(all.insert(CheckCode::CertificateNotCa.as_str()));
    }

    #[test]
    fn first_difference_marks_the_first_char() {
        assert_eq!(first_difference("sensor-thl-002", "sensor-thl-002"), None);
        assert_eq!(
            first_difference("sensor-thl-002", "sensor-thl-003"),
            Some(13)
        );
        assert_eq!(first_difference("Sensor", "sensor"), Some(0));
        assert_eq!(first_difference("abc", "abcd"), Some(3));
        assert_eq!(first_difference("", "a"), Some(0));
        assert_eq!(first_difference("é1", "é2"), Some(1));
    }

    #[test]
    fn comparison_separates_case_from_content() {
        assert_eq!(compare_cn("a-1", "a-1"), CnComparison::Equal);
        assert_eq!(
            compare_cn("Sensor-THL-002", "sensor-thl-002"),
            CnComparison::CaseOnly
        );
        assert_eq!(
            compare_cn("sensor-thl-02", "sensor-thl-002"),
            CnComparison::Different
        );
    }

    #[test]
    fn an_empty_chain_is_an_error_not_a_panic() {
        let none: [&[u8]; 0] = [];
        assert!(check_enrollment("a", &none, None, OffsetDateTime::now_utc()).is_err());
        assert!(
            check_enrollment("a", &[b"junk".as_slice()], None, OffsetDateTime::now_utc()).is_err()
        );
    }
}
