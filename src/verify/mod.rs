//! Chain verification with DPS semantics: does a device's chain reach an
//! enrollment group's CA, and if not, why.
//!
//! Pure functions over DER certificates (no file I/O): certificates in,
//! [`Verdict`] out. The group CAs are prepared once ([`GroupCas`], holding
//! each CA's parsed data in an [`Anchor`]), are `Send + Sync`, and verify any
//! number of presented chains without re-parsing the CAs, so `audit` can
//! share one `GroupCas` across all cores and `enroll check` can ask "does
//! this leaf chain to group CA X".
//!
//! # What holds
//!
//! A path holds when, for every link from the leaf to a certificate that is
//! a group CA (same subject and same public key), the issuer's signature
//! verifies, every issuer is a CA (critical basicConstraints CA:TRUE,
//! keyCertSign if keyUsage is present, pathlen respected), every
//! certificate on the path including the group CA is valid at the
//! verification time (compared to the second), the leaf is not a CA, has
//! exactly one CN and, when it has an EKU, includes clientAuth itself
//! (anyExtendedKeyUsage alone does not do), and no certificate on the path
//! has a critical extension iotca does not process (AKI and SKI, which RFC
//! 5280 says are non-critical, included). An empty issuer name links to
//! nothing.
//! Links are found by name (RFC 5280 section 6.1.3 (a)(4)) and decided by
//! signature: a CA with the group CA's name but another key is not the group
//! CA; AKI/SKI only order the candidates.
//!
//! # What is not checked
//!
//! Revocation, name constraints and policies (a critical name constraints or
//! policy extension fails as unsupported), the leaf's keyUsage, and EKUs on
//! CA certificates. The group CA's own signature is not checked: it is the
//! trust anchor.
//!
//! # Layout
//!
//! - `mod.rs`: the public API ([`GroupCas`], [`Anchor`], [`VerifyOptions`],
//!   [`verify_chain`]) and the limits.
//! - [`problem`]: the stable problem and warning codes.
//! - `verdict.rs`: the public verdict types ([`Verdict`], [`PathCert`], [`Source`]).
//! - `facts.rs`: what the rules need to know about one certificate.
//! - `name.rs`: name canonicalisation for issuer/subject matching.
//! - `rules.rs`: one function per rule, each headed by its RFC 5280 section.
//! - `signature.rs`: the algorithm table and the signature check.
//! - `search.rs`: path search, its budget, and the ranking of failures.

mod facts;
mod name;
pub mod problem;
mod rules;
mod search;
mod signature;
mod verdict;

#[cfg(test)]
mod tests;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::cert::{self, CertSummary, ParseError};
use facts::Facts;
use name::canonical_name;

pub use verdict::{PathCert, Source, Verdict};

/// Longest path considered, leaf and group CA included.
pub const MAX_DEPTH: usize = 16;

/// Most signature checks one verification may spend before it gives up
/// (hostile inputs: thousands of certificates with one name).
pub const MAX_SIGNATURE_CHECKS: usize = 256;

/// Default window for the "leaf expires soon" warning, in days.
pub const EXPIRING_SOON_DAYS: i64 = 30;

/// How to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// The time every certificate must be valid at.
    pub at: OffsetDateTime,
    /// Warn when the leaf expires within this many days.
    pub expiring_within_days: i64,
}

impl VerifyOptions {
    /// Verify at `at`, warning about leaves expiring within 30 days.
    pub fn at(at: OffsetDateTime) -> Self {
        VerifyOptions {
            at,
            expiring_within_days: EXPIRING_SOON_DAYS,
        }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions::at(OffsetDateTime::now_utc())
    }
}

/// A group CA prepared for verification: parsed once, owned, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Anchor {
    der: Vec<u8>,
    facts: Facts<'static>,
    canon_subject: Vec<u8>,
    summary: CertSummary,
}

impl Anchor {
    /// Parses one DER certificate as a group CA.
    pub fn new(der: &[u8]) -> Result<Anchor, ParseError> {
        let x = cert::parse_exact(der, 1)?;
        let facts = Facts::new(&x, der).into_owned();
        let canon_subject = canonical_name(&facts.subject_raw);
        Ok(Anchor {
            der: der.to_vec(),
            summary: CertSummary::new(&x, der),
            facts,
            canon_subject,
        })
    }

    /// The CA's subject (`CN=...`).
    pub fn subject(&self) -> &str {
        &self.facts.subject
    }

    /// The CA's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CA described like a leaf (subject, serial, validity, thumbprints).
    pub fn summary(&self) -> &CertSummary {
        &self.summary
    }

    /// True when `der` is this CA: same subject and same public key
    /// (validity, serial and extensions may differ, as in a renewal).
    pub fn is_same_ca(&self, der: &[u8]) -> bool {
        match X509Certificate::from_der(der) {
            Ok((_, x)) => {
                x.tbs_certificate.subject.as_raw() == &self.facts.subject_raw[..]
                    && x.tbs_certificate.subject_pki.raw == &self.facts.spki_raw[..]
            }
            Err(_) => false,
        }
    }
}

/// The CAs of one or more enrollment groups: a chain holds when it reaches
/// any of them. Build once, verify many chains (from many threads).
#[derive(Debug, Clone)]
pub struct GroupCas {
    anchors: Vec<Anchor>,
}

impl GroupCas {
    /// Prepares the group CAs from DER certificates.
    ///
    /// On a certificate that does not parse, the error's `index` is its
    /// 1-based position in `ders`.
    pub fn new<D: AsRef<[u8]>>(ders: &[D]) -> Result<GroupCas, ParseError> {
        let anchors = ders
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Anchor::new(d.as_ref()).map_err(|e| match e {
                    ParseError::Malformed { reason, .. } => ParseError::Malformed {
                        index: i + 1,
                        reason,
                    },
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GroupCas { anchors })
    }

    /// Group CAs already prepared.
    pub fn from_anchors(anchors: Vec<Anchor>) -> GroupCas {
        GroupCas { anchors }
    }

    /// The group CAs, in the order given.
    pub fn anchors(&self) -> &[Anchor] {
        &self.anchors
    }

    /// Verifies a presented chain (leaf first, then intermediates in any
    /// order, the root optionally included) at `at`, with no `--untrusted`
    /// certificates. The fast path, a leaf signed directly by a group CA,
    /// parses the leaf once and checks one signature.
    pub fn verify<D: AsRef<[u8]>>(&self, presented: &[D], at: OffsetDateTime) -> Verdict {
        self.verify_with(presented, &[] as &[&[u8]], &VerifyOptions::at(at))
    }

    /// Verifies a presented chain with extra `untrusted` certificates that
    /// may complete the path (a path that needs one fails with
    /// `chain_incomplete`, naming the certificate the device must add).
    pub fn verify_with<D: AsRef<[u8]>, U: AsRef<[u8]>>(
        &self,
        presented: &[D],
        untrusted: &[U],
        options: &VerifyOptions,
    ) -> Verdict {
        search::verify_inner(self, presented, untrusted, options)
    }
}

/// One-shot convenience: verifies `presented` against the group CAs in
/// `group_cas` (DER), with `untrusted` helpers, at `at`.
pub fn verify_chain<D: AsRef<[u8]>, G: AsRef<[u8]>, U: AsRef<[u8]>>(
    presented: &[D],
    group_cas: &[G],
    untrusted: &[U],
    at: OffsetDateTime,
) -> Result<Verdict, ParseError> {
    let cas = GroupCas::new(group_cas)?;
    Ok(cas.verify_with(presented, untrusted, &VerifyOptions::at(at)))
}
