//! The rules: one function each, headed by the RFC 5280 section it
//! implements; certificate facts in, problem (or warning) out.

use time::OffsetDateTime;

use super::facts::{Facts, KU_KEY_CERT_SIGN, Key, SigAlg};
use super::{Source, VerifyOptions};
use crate::cert;
use crate::problem::{Problem, ProblemCode, Warning, WarningCode};

/// RFC 5280 section 4.1.2.5 and 6.1.3 (a)(2): the certificate must be valid
/// at the verification time, notBefore and notAfter inclusive. Validity
/// dates have one-second resolution (section 4.1.2.5.1 and 4.1.2.5.2), so
/// the time is compared with its fraction of a second dropped: a
/// certificate is valid throughout the second its notAfter names.
pub(super) fn check_validity(f: &Facts<'_>, at: OffsetDateTime) -> Option<Problem> {
    let at = whole_second(at);
    if at < f.not_before {
        return Some(Problem::new(
            ProblemCode::NotYetValid,
            &f.subject,
            format!(
                "{} is not valid until {} (checked at {})",
                f.subject,
                cert::rfc3339(f.not_before),
                cert::rfc3339(at)
            ),
        ));
    }
    if at > f.not_after {
        return Some(Problem::new(
            ProblemCode::Expired,
            &f.subject,
            format!(
                "{} expired on {} (checked at {})",
                f.subject,
                cert::rfc3339(f.not_after),
                cert::rfc3339(at)
            ),
        ));
    }
    None
}

/// RFC 5280 section 4.2.1.9 and 6.1.4 (k): an issuer must assert CA:TRUE in
/// basicConstraints.
pub(super) fn check_issuer_is_ca(f: &Facts<'_>) -> Option<Problem> {
    let why = match f.basic {
        Some((true, _)) => return None,
        Some((false, _)) => "its basicConstraints says CA:FALSE",
        None => "it has no basicConstraints extension",
    };
    Some(Problem::new(
        ProblemCode::IssuerNotCa,
        &f.subject,
        format!(
            "{} signs a certificate on the path but is not a CA: {why}",
            f.subject
        ),
    ))
}

/// RFC 5280 section 4.2.1.9: "Conforming CAs MUST include this extension
/// in all CA certificates that contain public keys used to validate digital
/// signatures on certificates and MUST mark the extension as critical in
/// such certificates." An issuer whose basicConstraints is not critical is
/// refused, as `openssl verify -x509_strict` and rustls-webpki's limbo
/// results do; iotca's own CAs (and Azure's certGen.sh ones) mark it
/// critical.
pub(super) fn check_basic_constraints_critical(f: &Facts<'_>) -> Option<Problem> {
    match f.basic {
        Some((true, _)) if !f.basic_critical => Some(Problem::new(
            ProblemCode::IssuerNotCa,
            &f.subject,
            format!(
                "{} signs a certificate on the path but its basicConstraints (CA:TRUE) is not marked critical, as RFC 5280 section 4.2.1.9 requires in a CA certificate",
                f.subject
            ),
        )),
        _ => None,
    }
}

/// `--ca` takes the group's CA certificate (DESIGN section 5): when a group
/// CA is not a CA certificate (basicConstraints missing or CA:FALSE), the
/// sentence that says so, to add to the problem it causes.
pub(super) fn group_ca_not_ca(f: &Facts<'_>) -> Option<String> {
    let why = match f.basic {
        Some((true, _)) => return None,
        Some((false, _)) => "basicConstraints CA:FALSE",
        None => "no basicConstraints",
    };
    Some(format!(
        "the group CA given with --ca, {}, is not a CA certificate ({why}): --ca takes the group's root or intermediate CA certificate, not a device certificate",
        f.subject
    ))
}

/// The device's leaf comes first in its chain file (DESIGN section 5). When
/// the first certificate is a CA and a later presented one is an end
/// entity, the file is out of order: the leaf_is_ca problem says so, and a
/// chain_out_of_order warning names the certificate that looks like the
/// leaf. `later` holds the presented certificates after the first, with
/// their 1-based positions.
pub(super) fn check_leaf_order<'f>(
    leaf: &Facts<'_>,
    later: impl IntoIterator<Item = (usize, &'f Facts<'f>)>,
) -> Option<(Problem, Warning)> {
    if !leaf.is_ca() {
        return None;
    }
    let (position, end_entity) = later.into_iter().find(|(_, f)| !f.is_ca())?;
    let problem = Problem::new(
        ProblemCode::LeafIsCa,
        &leaf.subject,
        format!(
            "the first certificate in the chain file, {}, is a CA certificate, and {} (certificate #{position}) is an end-entity certificate: the file is out of order; put the device's leaf first, then its intermediates",
            leaf.subject, end_entity.subject
        ),
    );
    let warning = Warning::new(
        WarningCode::ChainOutOfOrder,
        &end_entity.subject,
        format!(
            "{} (certificate #{position}) looks like the device's leaf but is not first in the chain file",
            end_entity.subject
        ),
    );
    Some((problem, warning))
}

/// RFC 5280 section 4.2.1.3 and 6.1.4 (n): when an issuer has keyUsage, it
/// must include keyCertSign.
pub(super) fn check_key_cert_sign(f: &Facts<'_>) -> Option<Problem> {
    match f.key_usage {
        Some(flags) if flags & KU_KEY_CERT_SIGN == 0 => Some(Problem::new(
            ProblemCode::IssuerMissingKeycertsign,
            &f.subject,
            format!(
                "{} signs a certificate on the path but its keyUsage lacks keyCertSign",
                f.subject
            ),
        )),
        _ => None,
    }
}

/// RFC 5280 section 4.2.1.9 and 6.1.4 (l)(m): a CA's pathLenConstraint
/// bounds the non-self-issued intermediate CAs between it and the leaf.
/// `path` runs leaf first; returns (index, problem) for each CA exceeded.
pub(super) fn check_pathlen(path: &[&Facts<'_>]) -> Vec<(usize, Problem)> {
    let mut out = Vec::new();
    let mut below = 0u32;
    for (i, f) in path.iter().enumerate().skip(1) {
        if let Some((true, Some(max))) = f.basic
            && below > max
        {
            out.push((
                i,
                Problem::new(
                    ProblemCode::PathlenExceeded,
                    &f.subject,
                    format!(
                        "{} allows {max} intermediate CA(s) below it (pathlen:{max}) but the path has {below}",
                        f.subject
                    ),
                ),
            ));
        }
        if !f.self_issued {
            below += 1;
        }
    }
    out
}

/// RFC 5280 section 4.2.1.9: a device certificate is an end entity; DPS
/// device certificates must not assert CA:TRUE.
pub(super) fn check_leaf_not_ca(f: &Facts<'_>) -> Option<Problem> {
    f.is_ca().then(|| {
        Problem::new(
            ProblemCode::LeafIsCa,
            &f.subject,
            format!(
                "{} is a CA certificate (basicConstraints CA:TRUE), not a device certificate",
                f.subject
            ),
        )
    })
}

/// RFC 5280 section 4.1.2.6 (subject) with DPS's rule that the
/// registration ID is the leaf's CN: exactly one CN.
pub(super) fn check_leaf_cn(f: &Facts<'_>) -> Option<Problem> {
    match f.cn_count {
        1 => None,
        0 => Some(Problem::new(
            ProblemCode::LeafMissingCn,
            &f.subject,
            format!(
                "the leaf's subject ({}) has no CN, so DPS has no registration ID for it",
                if f.subject.is_empty() {
                    "empty"
                } else {
                    &f.subject
                }
            ),
        )),
        n => Some(Problem::new(
            ProblemCode::LeafMultipleCn,
            &f.subject,
            format!("the leaf's subject has {n} CNs; the registration ID must be exactly one CN"),
        )),
    }
}

/// RFC 5280 section 4.2.1.12: when the leaf has extendedKeyUsage, it must
/// include id-kp-clientAuth for TLS client authentication.
///
/// A leaf whose only purpose is anyExtendedKeyUsage fails too: section
/// 4.2.1.12 lets an application that needs a particular purpose reject a
/// certificate with anyExtendedKeyUsage but not that purpose, and the TLS
/// stacks a device meets do (openssl's `sslclient` purpose, rustls-webpki),
/// so DPS may refuse it; the safe answer of a pre-flight check is no.
pub(super) fn check_leaf_eku(f: &Facts<'_>) -> Option<Problem> {
    (f.eku_client_auth == Some(false)).then(|| {
        let message = if f.eku_only_any {
            format!(
                "{} has extendedKeyUsage anyExtendedKeyUsage only, without clientAuth; TLS clients are checked for clientAuth itself (openssl's sslclient purpose and rustls-webpki reject it)",
                f.subject
            )
        } else {
            format!(
                "{} has extendedKeyUsage without clientAuth, so it cannot authenticate a TLS client",
                f.subject
            )
        };
        Problem::new(ProblemCode::LeafEkuLacksClientAuth, &f.subject, message)
    })
}

/// RFC 5280 section 4.2: a certificate with a critical extension the
/// verifier does not process must be rejected; a processed extension that
/// does not decode (or appears twice) is malformed.
pub(super) fn check_critical_extensions(f: &Facts<'_>) -> Option<Problem> {
    if let Some(bad) = &f.bad_extension {
        return Some(Problem::new(
            ProblemCode::Malformed,
            &f.subject,
            format!("{}: {bad}", f.subject),
        ));
    }
    if f.unknown_critical.is_empty() {
        return None;
    }
    Some(Problem::new(
        ProblemCode::UnsupportedCriticalExtension,
        &f.subject,
        format!(
            "{} has critical extension(s) iotca does not process: {}",
            f.subject,
            f.unknown_critical.join(", ")
        ),
    ))
}

/// RFC 5280 section 4.1.2.7 with RFC 3279, 4055 and 5480: the subject key
/// must be RSA (1024 to 8192 bits; below 2048 only warns) or ECDSA
/// P-256/P-384.
pub(super) fn check_key_algorithm(f: &Facts<'_>) -> Option<Problem> {
    let what = match &f.key {
        Key::P256 | Key::P384 => return None,
        Key::Rsa(bits) if (1024..=8192).contains(bits) => return None,
        Key::Rsa(bits) => format!("an RSA {bits}-bit key"),
        Key::Other(name) => format!("a {name} key"),
    };
    Some(Problem::new(
        ProblemCode::UnsupportedAlgorithm,
        &f.subject,
        format!(
            "{} has {what}; DPS devices use RSA 2048-4096 or ECDSA P-256/P-384",
            f.subject
        ),
    ))
}

/// DPS only sees the certificates the device sends: a path through a
/// certificate given with `--untrusted` does not hold for DPS.
pub(super) fn check_presented(f: &Facts<'_>, source: Source, position: usize) -> Option<Problem> {
    (source == Source::Untrusted).then(|| {
        Problem::new(
            ProblemCode::ChainIncomplete,
            &f.subject,
            format!(
                "the path needs {} (untrusted certificate #{position}), which the device does not present; add it to the device's chain file",
                f.subject
            ),
        )
    })
}

/// Warning: the leaf expires within the window (only while still valid).
pub(super) fn warn_expiring(f: &Facts<'_>, options: &VerifyOptions) -> Option<Warning> {
    let at = whole_second(options.at);
    if at < f.not_before || at > f.not_after {
        return None;
    }
    let days = cert::days_between(at, f.not_after);
    (days < options.expiring_within_days).then(|| {
        Warning::new(
            WarningCode::LeafExpiringSoon,
            &f.subject,
            format!(
                "{} expires in {days} day(s), on {}",
                f.subject,
                cert::rfc3339(f.not_after)
            ),
        )
    })
}

/// Warning: RSA keys below 2048 bits (NIST SP 800-131A).
pub(super) fn warn_weak_rsa(f: &Facts<'_>) -> Option<Warning> {
    match f.key {
        Key::Rsa(bits) if bits < 2048 => Some(Warning::new(
            WarningCode::WeakRsaKey,
            &f.subject,
            format!(
                "{} has an RSA {bits}-bit key; use 2048 bits or more",
                f.subject
            ),
        )),
        _ => None,
    }
}

/// Warning: SHA-1 signatures (RFC 9155 deprecates them).
pub(super) fn warn_sha1(f: &Facts<'_>) -> Option<Warning> {
    (f.sig_alg == SigAlg::RsaSha1).then(|| {
        Warning::new(
            WarningCode::Sha1Signature,
            &f.subject,
            format!(
                "{} is signed with SHA-1; re-issue it with SHA-256",
                f.subject
            ),
        )
    })
}

/// `at` without its fraction of a second (X.509 times have whole seconds).
fn whole_second(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}
