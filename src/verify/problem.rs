//! Stable problem and warning codes for chain verification.
//!
//! The string names ([`ProblemCode::as_str`]) are part of iotca's contract
//! (DESIGN section 5, "verify"): scripts match on them, so a name never
//! changes once released. New codes may be added, hence `#[non_exhaustive]`.
//!
//! Modelled on rustls-webpki's `error.rs`: one enum, variants in
//! alphabetical order, each saying what it means and what to do, and a
//! [`ProblemCode::rank`] that picks the most specific problem when every
//! candidate path fails.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a device's chain does not reach the group CA.
///
/// Every failing [`crate::verify::Verdict`] carries at least one of these,
/// the first one naming the actual defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProblemCode {
    /// The path to the group CA exists only through a certificate given
    /// with `--untrusted`, which the device does not present. DPS only sees
    /// what the device sends, so it rejects the device.
    /// What to do: append the named certificate to the device's chain file
    /// (leaf first, then intermediates).
    ChainIncomplete,
    /// A certificate on the path is past its notAfter date (RFC 5280
    /// section 4.1.2.5). What to do: renew it (for a CA, re-issue the
    /// certificates below it too if the key changes).
    Expired,
    /// An issuer has a keyUsage extension without keyCertSign (RFC 5280
    /// section 4.2.1.3). What to do: re-issue the issuer with keyCertSign.
    IssuerMissingKeycertsign,
    /// An issuer on the path is not a CA: basicConstraints is missing, says
    /// CA:FALSE, or is not marked critical (RFC 5280 section 4.2.1.9: a CA
    /// certificate MUST mark it critical). When the issuer is the group CA
    /// itself, the `--ca` file is not a CA certificate. What to do: re-issue
    /// the issuer as a CA certificate (critical CA:TRUE), issue the device
    /// from a real CA, or pass the group's CA certificate with `--ca`.
    IssuerNotCa,
    /// No certificate that issued the named one could be found: not among
    /// the presented certificates, the `--untrusted` ones, nor the group
    /// CAs (an empty issuer name names no CA at all; the message says when a
    /// `--ca` file is not a CA certificate). What to do: check that the device belongs to this group's PKI
    /// and that its chain file holds its intermediates.
    IssuerNotFound,
    /// The leaf has an extendedKeyUsage extension that does not include
    /// clientAuth (RFC 5280 section 4.2.1.12), so it cannot authenticate a
    /// TLS client. What to do: re-issue it with clientAuth, or without EKU.
    LeafEkuLacksClientAuth,
    /// The device's leaf is a CA certificate (basicConstraints CA:TRUE).
    /// DPS device certificates must be end-entity certificates. When a later
    /// certificate in the chain file is an end entity, the file is out of
    /// order and the message says so. What to do: issue the device a leaf
    /// certificate (CA:FALSE), or put the leaf first in its chain file.
    LeafIsCa,
    /// The leaf's subject has no CN. DPS takes the registration ID from the
    /// CN. What to do: re-issue it with CN = the device ID.
    LeafMissingCn,
    /// The leaf's subject has more than one CN, so the registration ID is
    /// ambiguous. What to do: re-issue it with exactly one CN.
    LeafMultipleCn,
    /// A certificate could not be parsed. What to do: check the file is a
    /// certificate (PEM or DER) and was not truncated.
    Malformed,
    /// There is no certificate to verify. What to do: pass the device's
    /// certificate file.
    NoCertificate,
    /// A certificate appears before it is valid (notBefore is in the
    /// future, RFC 5280 section 4.1.2.5). What to do: check the device's
    /// clock or the issuing machine's clock, or wait.
    NotYetValid,
    /// A CA's pathLenConstraint allows fewer intermediate CAs below it than
    /// the path has (RFC 5280 section 4.2.1.9). What to do: shorten the
    /// path or re-issue the CA with a larger (or no) pathlen.
    PathlenExceeded,
    /// A signature does not verify with the issuer's public key: the
    /// certificate was altered, or it was issued by another CA with the same
    /// name. What to do: re-issue it from the right CA.
    SignatureInvalid,
    /// A key or signature algorithm outside what DPS devices use: RSA
    /// (PKCS#1 v1.5 with SHA-256/384/512) or ECDSA P-256/P-384. What to do:
    /// re-issue with one of those.
    UnsupportedAlgorithm,
    /// A certificate has a critical extension iotca does not process (RFC
    /// 5280 section 4.2: it must then be rejected). What to do: re-issue it
    /// without that extension, or mark it non-critical.
    UnsupportedCriticalExtension,
}

impl ProblemCode {
    /// Every problem code, in the order DESIGN lists them.
    pub const ALL: [ProblemCode; 16] = [
        ProblemCode::Malformed,
        ProblemCode::NoCertificate,
        ProblemCode::IssuerNotFound,
        ProblemCode::SignatureInvalid,
        ProblemCode::Expired,
        ProblemCode::NotYetValid,
        ProblemCode::IssuerNotCa,
        ProblemCode::IssuerMissingKeycertsign,
        ProblemCode::PathlenExceeded,
        ProblemCode::LeafIsCa,
        ProblemCode::LeafEkuLacksClientAuth,
        ProblemCode::LeafMissingCn,
        ProblemCode::LeafMultipleCn,
        ProblemCode::UnsupportedCriticalExtension,
        ProblemCode::UnsupportedAlgorithm,
        ProblemCode::ChainIncomplete,
    ];

    /// The stable snake_case name used in JSON and text output.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemCode::ChainIncomplete => "chain_incomplete",
            ProblemCode::Expired => "expired",
            ProblemCode::IssuerNotCa => "issuer_not_ca",
            ProblemCode::IssuerNotFound => "issuer_not_found",
            ProblemCode::IssuerMissingKeycertsign => "issuer_missing_keycertsign",
            ProblemCode::LeafIsCa => "leaf_is_ca",
            ProblemCode::LeafEkuLacksClientAuth => "leaf_eku_lacks_client_auth",
            ProblemCode::LeafMissingCn => "leaf_missing_cn",
            ProblemCode::LeafMultipleCn => "leaf_multiple_cn",
            ProblemCode::Malformed => "malformed",
            ProblemCode::NoCertificate => "no_certificate",
            ProblemCode::NotYetValid => "not_yet_valid",
            ProblemCode::PathlenExceeded => "pathlen_exceeded",
            ProblemCode::SignatureInvalid => "signature_invalid",
            ProblemCode::UnsupportedCriticalExtension => "unsupported_critical_extension",
            ProblemCode::UnsupportedAlgorithm => "unsupported_algorithm",
        }
    }

    /// The code with this stable name, if any.
    pub fn from_name(name: &str) -> Option<ProblemCode> {
        ProblemCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// What to do about it, in one sentence for people.
    pub const fn advice(self) -> &'static str {
        match self {
            ProblemCode::ChainIncomplete => {
                "append the named certificate to the device's chain file (leaf first, then intermediates): DPS only sees what the device sends"
            }
            ProblemCode::Expired => {
                "renew the certificate; a renewed CA must re-issue what it signed if its key changes"
            }
            ProblemCode::IssuerNotCa => {
                "issue the device from a CA certificate (basicConstraints CA:TRUE)"
            }
            ProblemCode::IssuerNotFound => {
                "check that the device belongs to this group's PKI and that its chain file holds its intermediates"
            }
            ProblemCode::IssuerMissingKeycertsign => "re-issue the CA with keyUsage keyCertSign",
            ProblemCode::LeafIsCa => {
                "issue the device an end-entity certificate (basicConstraints CA:FALSE)"
            }
            ProblemCode::LeafEkuLacksClientAuth => {
                "re-issue the device certificate with extendedKeyUsage clientAuth (or without extendedKeyUsage)"
            }
            ProblemCode::LeafMissingCn => {
                "re-issue the device certificate with CN = the device's registration ID"
            }
            ProblemCode::LeafMultipleCn => {
                "re-issue the device certificate with exactly one CN, the registration ID"
            }
            ProblemCode::Malformed => {
                "check that the file holds PEM or DER certificates and was not truncated"
            }
            ProblemCode::NoCertificate => "pass the device's certificate file",
            ProblemCode::NotYetValid => {
                "check the clock of the machine that issued it (and the device's), or wait until notBefore"
            }
            ProblemCode::PathlenExceeded => {
                "shorten the path or re-issue the CA with a larger pathlen (or none)"
            }
            ProblemCode::SignatureInvalid => {
                "re-issue the certificate from the right CA: it was altered, or signed by another key with the same CA name"
            }
            ProblemCode::UnsupportedCriticalExtension => {
                "re-issue the certificate without that extension, or with it non-critical"
            }
            ProblemCode::UnsupportedAlgorithm => {
                "re-issue with RSA 2048-4096 (PKCS#1 v1.5, SHA-256/384/512) or ECDSA P-256/P-384"
            }
        }
    }

    /// How specific the problem is: when every candidate path fails, the
    /// path whose problems rank highest is reported, and problems are listed
    /// highest rank first. A problem on a path that reaches the group CA
    /// outranks "the issuer was not found".
    pub const fn rank(self) -> u32 {
        match self {
            // The path is sound; only the presentation is wrong.
            ProblemCode::ChainIncomplete => 300,
            // Sound path, a date defect.
            ProblemCode::Expired | ProblemCode::NotYetValid => 290,
            // DPS-specific leaf rules.
            ProblemCode::LeafMissingCn | ProblemCode::LeafMultipleCn => 280,
            ProblemCode::LeafEkuLacksClientAuth => 270,
            ProblemCode::LeafIsCa => 260,
            // CA constraints.
            ProblemCode::PathlenExceeded => 250,
            ProblemCode::IssuerMissingKeycertsign => 240,
            ProblemCode::IssuerNotCa => 230,
            ProblemCode::UnsupportedCriticalExtension => 220,
            // The link itself.
            ProblemCode::SignatureInvalid => 200,
            ProblemCode::UnsupportedAlgorithm => 180,
            // No link at all.
            ProblemCode::IssuerNotFound => 100,
            ProblemCode::Malformed => 50,
            ProblemCode::NoCertificate => 40,
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProblemCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Something worth knowing that does not stop the path from holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum WarningCode {
    /// A certificate the device presents is not needed to reach the group
    /// CA (and is not above it). DPS ignores it; it may be a stale
    /// intermediate. What to do: drop it from the chain file.
    CertificateNotOnPath,
    /// The chain file is out of order: its first certificate is a CA and a
    /// later one is an end-entity certificate, which is probably the
    /// device's leaf (the verdict's `leaf_is_ca` says the same). What to do:
    /// put the device's leaf first, then its intermediates.
    ChainOutOfOrder,
    /// The leaf expires within 30 days (or the window asked for). What to
    /// do: renew it before it lapses.
    LeafExpiringSoon,
    /// A certificate is signed with SHA-1, which is broken for collision
    /// resistance. What to do: re-issue it with SHA-256.
    Sha1Signature,
    /// An RSA key shorter than 2048 bits. What to do: re-issue with RSA 2048
    /// or more, or ECDSA P-256.
    WeakRsaKey,
}

impl WarningCode {
    /// Every warning code.
    pub const ALL: [WarningCode; 5] = [
        WarningCode::CertificateNotOnPath,
        WarningCode::ChainOutOfOrder,
        WarningCode::LeafExpiringSoon,
        WarningCode::Sha1Signature,
        WarningCode::WeakRsaKey,
    ];

    /// The stable snake_case name used in JSON and text output.
    pub const fn as_str(self) -> &'static str {
        match self {
            WarningCode::CertificateNotOnPath => "certificate_not_on_path",
            WarningCode::ChainOutOfOrder => "chain_out_of_order",
            WarningCode::LeafExpiringSoon => "leaf_expiring_soon",
            WarningCode::Sha1Signature => "sha1_signature",
            WarningCode::WeakRsaKey => "weak_rsa_key",
        }
    }
}

impl fmt::Display for WarningCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WarningCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One defect found on a certificate, as printed in `problems`:
/// `{"code": "expired", "subject": "CN=...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The stable code.
    pub code: ProblemCode,
    /// Subject of the certificate that carries the defect (`CN=...`).
    pub subject: String,
    /// What exactly is wrong, for people.
    pub message: String,
}

impl Problem {
    /// A problem with `code` on the certificate named `subject`.
    pub fn new(code: ProblemCode, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            code,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// One warning, as printed in `warnings` (same shape as [`Problem`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The stable code.
    pub code: WarningCode,
    /// Subject of the certificate concerned.
    pub subject: String,
    /// What exactly is worth knowing.
    pub message: String,
}

impl Warning {
    /// A warning with `code` about the certificate named `subject`.
    pub fn new(code: WarningCode, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Warning {
            code,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// DESIGN section 5, "verify": the problem codes, in its order.
    const DESIGN_CODES: [&str; 16] = [
        "malformed",
        "no_certificate",
        "issuer_not_found",
        "signature_invalid",
        "expired",
        "not_yet_valid",
        "issuer_not_ca",
        "issuer_missing_keycertsign",
        "pathlen_exceeded",
        "leaf_is_ca",
        "leaf_eku_lacks_client_auth",
        "leaf_missing_cn",
        "leaf_multiple_cn",
        "unsupported_critical_extension",
        "unsupported_algorithm",
        "chain_incomplete",
    ];

    #[test]
    fn names_are_unique_and_equal_design() {
        let names: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, DESIGN_CODES);
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len());
        for c in ProblemCode::ALL {
            assert_eq!(ProblemCode::from_name(c.as_str()), Some(c));
            assert!(!c.advice().is_empty());
        }
        let warnings: HashSet<&str> = WarningCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(warnings.len(), WarningCode::ALL.len());
        assert!(warnings.is_disjoint(&unique));
    }

    #[test]
    fn serializes_to_stable_shape() {
        let p = Problem::new(ProblemCode::Expired, "CN=a", "expired yesterday");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"code":"expired","subject":"CN=a","message":"expired yesterday"}"#
        );
        let w = Warning::new(WarningCode::Sha1Signature, "CN=b", "m");
        assert_eq!(
            serde_json::to_value(&w).unwrap()["code"],
            serde_json::json!("sha1_signature")
        );
    }

    #[test]
    fn rank_prefers_specific_over_not_found() {
        assert!(ProblemCode::Expired.rank() > ProblemCode::IssuerNotFound.rank());
        assert!(ProblemCode::SignatureInvalid.rank() > ProblemCode::IssuerNotFound.rank());
        assert!(ProblemCode::ChainIncomplete.rank() > ProblemCode::SignatureInvalid.rank());
        assert!(ProblemCode::IssuerNotFound.rank() > ProblemCode::Malformed.rank());
    }
}
