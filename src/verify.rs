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
//! verifies, every issuer is a CA (CA:TRUE, keyCertSign if keyUsage is
//! present, pathlen respected), every certificate on the path including
//! the group CA is valid at the verification time, the leaf is not a CA, has
//! exactly one CN and, when it has an EKU, includes clientAuth, and no
//! certificate on the path has a critical extension iotca does not process.
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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

use ring::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::cert::{self, CertSummary, ParseError};
use crate::problem::{Problem, ProblemCode, Warning, WarningCode};

/// Longest path considered, leaf and group CA included.
pub const MAX_DEPTH: usize = 16;

/// Most signature checks one verification may spend before it gives up
/// (hostile inputs: thousands of certificates with one name).
pub const MAX_SIGNATURE_CHECKS: usize = 256;

/// Default window for the "leaf expires soon" warning, in days.
pub const EXPIRING_SOON_DAYS: i64 = 30;

/// Where a certificate on a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The device's leaf (first certificate presented).
    Leaf,
    /// Presented by the device after its leaf.
    Presented,
    /// Given with `--untrusted`: not sent by the device.
    Untrusted,
    /// One of the group CAs.
    GroupCa,
}

impl Source {
    /// A short label for text output.
    pub const fn label(self) -> &'static str {
        match self {
            Source::Leaf => "leaf",
            Source::Presented => "presented",
            Source::Untrusted => "untrusted",
            Source::GroupCa => "group CA",
        }
    }
}

/// One certificate on the verdict's path, with what text output shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCert {
    /// Subject name (`CN=...`).
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Where it came from.
    pub source: Source,
    /// 1-based position in its input (the presented chain, the untrusted
    /// certificates, or the group CAs).
    pub position: usize,
    /// The problems found on this certificate.
    pub problems: Vec<ProblemCode>,
}

/// The answer to "does this chain reach the group CA, and if not, why".
#[derive(Debug, Clone)]
pub struct Verdict {
    /// True when a path holds from the leaf to a group CA.
    pub chains: bool,
    /// The leaf, when it could be read.
    pub leaf: Option<CertSummary>,
    /// The path shown: leaf first, group CA last when `reaches_group_ca`;
    /// otherwise as far as it got.
    pub path: Vec<PathCert>,
    /// True when `path` ends at a group CA (it may still fail other rules).
    pub reaches_group_ca: bool,
    /// Index (into [`GroupCas::anchors`]) of the group CA the path ends at.
    pub group_ca: Option<usize>,
    /// Defects, most specific first; empty exactly when `chains`.
    pub problems: Vec<Problem>,
    /// Things worth knowing that do not fail the path.
    pub warnings: Vec<Warning>,
}

impl Verdict {
    /// The subjects on the path, leaf first (DESIGN's `path`).
    pub fn path_subjects(&self) -> Vec<&str> {
        self.path.iter().map(|p| p.subject.as_str()).collect()
    }

    /// True when some problem has `code`.
    pub fn has(&self, code: ProblemCode) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }

    /// The problem codes, in order.
    pub fn codes(&self) -> Vec<ProblemCode> {
        self.problems.iter().map(|p| p.code).collect()
    }

    fn failed(leaf: Option<CertSummary>, problem: Problem) -> Verdict {
        Verdict {
            chains: false,
            leaf,
            path: Vec::new(),
            reaches_group_ca: false,
            group_ca: None,
            problems: vec![problem],
            warnings: Vec::new(),
        }
    }
}

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
        verify_inner(self, presented, untrusted, options)
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

// ---------------------------------------------------------------------------
// Parsed facts about one certificate.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rsa(usize),
    P256,
    P384,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SigAlg {
    RsaSha1,
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    Other(String),
}

/// What the rules need to know about a certificate, borrowed from its DER
/// (or owned, for an [`Anchor`]).
#[derive(Debug, Clone)]
struct Facts<'a> {
    subject: String,
    issuer: String,
    subject_raw: Cow<'a, [u8]>,
    issuer_raw: Cow<'a, [u8]>,
    spki_raw: Cow<'a, [u8]>,
    key: Key,
    key_bytes: Cow<'a, [u8]>,
    sig_alg: SigAlg,
    /// The TBS signature field differs from signatureAlgorithm.
    sig_alg_mismatch: bool,
    tbs: Cow<'a, [u8]>,
    signature: Cow<'a, [u8]>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// basicConstraints (CA flag, pathlen) when present.
    basic: Option<(bool, Option<u32>)>,
    key_usage: Option<u16>,
    /// extendedKeyUsage present: does it include clientAuth?
    eku_client_auth: Option<bool>,
    cn_count: usize,
    unknown_critical: Vec<String>,
    bad_extension: Option<String>,
    ski: Option<Cow<'a, [u8]>>,
    aki: Option<Cow<'a, [u8]>>,
    self_issued: bool,
}

const KU_KEY_CERT_SIGN: u16 = 1 << 5;

impl<'a> Facts<'a> {
    fn new(x: &X509Certificate<'a>, der: &'a [u8]) -> Facts<'a> {
        let tbs = &x.tbs_certificate;
        let mut basic = None;
        let mut key_usage = None;
        let mut eku_client_auth = None;
        let mut ski = None;
        let mut aki = None;
        let mut unknown_critical = Vec::new();
        let mut bad_extension = None;
        let mut seen: Vec<&[u8]> = Vec::new();
        for ext in x.iter_extensions() {
            let oid = ext.oid.as_bytes();
            if seen.contains(&oid) {
                bad_extension = Some(format!(
                    "extension {} appears twice",
                    ext.oid.to_id_string()
                ));
            }
            seen.push(oid);
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    basic = Some((bc.ca, bc.path_len_constraint))
                }
                ParsedExtension::KeyUsage(ku) => key_usage = Some(ku.flags),
                ParsedExtension::ExtendedKeyUsage(e) => eku_client_auth = Some(e.client_auth),
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(Cow::Borrowed(k.0)),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| Cow::Borrowed(k.0))
                }
                ParsedExtension::SubjectAlternativeName(_) => {}
                ParsedExtension::ParseError { error } => {
                    if ext.critical || is_processed(&ext.oid) {
                        bad_extension = Some(format!(
                            "extension {} does not parse: {error}",
                            ext.oid.to_id_string()
                        ));
                    }
                }
                _ => {
                    if ext.critical {
                        unknown_critical.push(extension_name(&ext.oid));
                    }
                }
            }
        }
        let sig_oid = &x.signature_algorithm.algorithm;
        let sig_alg =
            if *sig_oid == oids::OID_PKCS1_SHA1WITHRSA || *sig_oid == oids::OID_SHA1_WITH_RSA {
                SigAlg::RsaSha1
            } else if *sig_oid == oids::OID_PKCS1_SHA256WITHRSA {
                SigAlg::RsaSha256
            } else if *sig_oid == oids::OID_PKCS1_SHA384WITHRSA {
                SigAlg::RsaSha384
            } else if *sig_oid == oids::OID_PKCS1_SHA512WITHRSA {
                SigAlg::RsaSha512
            } else if *sig_oid == oids::OID_SIG_ECDSA_WITH_SHA256 {
                SigAlg::EcdsaSha256
            } else if *sig_oid == oids::OID_SIG_ECDSA_WITH_SHA384 {
                SigAlg::EcdsaSha384
            } else {
                SigAlg::Other(cert::signature_algorithm_name(x))
            };
        let spki = &tbs.subject_pki;
        let key = if spki.algorithm.algorithm == oids::OID_PKCS1_RSAENCRYPTION {
            Key::Rsa(cert::rsa_bits(x).unwrap_or(0))
        } else if spki.algorithm.algorithm == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
            match spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
            {
                Some(c) if c == oids::OID_EC_P256 => Key::P256,
                Some(c) if c == oids::OID_NIST_EC_P384 => Key::P384,
                _ => Key::Other(cert::key_algorithm(x)),
            }
        } else {
            Key::Other(cert::key_algorithm(x))
        };
        Facts {
            subject: cert::name_string(&tbs.subject),
            issuer: cert::name_string(&tbs.issuer),
            subject_raw: Cow::Borrowed(tbs.subject.as_raw()),
            issuer_raw: Cow::Borrowed(tbs.issuer.as_raw()),
            spki_raw: Cow::Borrowed(spki.raw),
            key,
            key_bytes: spki.subject_public_key.data.clone(),
            sig_alg,
            sig_alg_mismatch: tbs.signature.algorithm != x.signature_algorithm.algorithm,
            tbs: Cow::Borrowed(tbs_slice(der).unwrap_or_default()),
            signature: x.signature_value.data.clone(),
            not_before: x.validity().not_before.to_datetime(),
            not_after: x.validity().not_after.to_datetime(),
            basic,
            key_usage,
            eku_client_auth,
            cn_count: tbs.subject.iter_common_name().count(),
            unknown_critical,
            bad_extension,
            ski,
            aki,
            self_issued: tbs.subject.as_raw() == tbs.issuer.as_raw(),
        }
    }

    fn into_owned(self) -> Facts<'static> {
        fn own(c: Cow<'_, [u8]>) -> Cow<'static, [u8]> {
            Cow::Owned(c.into_owned())
        }
        Facts {
            subject: self.subject,
            issuer: self.issuer,
            subject_raw: own(self.subject_raw),
            issuer_raw: own(self.issuer_raw),
            spki_raw: own(self.spki_raw),
            key: self.key,
            key_bytes: own(self.key_bytes),
            sig_alg: self.sig_alg,
            sig_alg_mismatch: self.sig_alg_mismatch,
            tbs: own(self.tbs),
            signature: own(self.signature),
            not_before: self.not_before,
            not_after: self.not_after,
            basic: self.basic,
            key_usage: self.key_usage,
            eku_client_auth: self.eku_client_auth,
            cn_count: self.cn_count,
            unknown_critical: self.unknown_critical,
            bad_extension: self.bad_extension,
            ski: self.ski.map(own),
            aki: self.aki.map(own),
            self_issued: self.self_issued,
        }
    }

    fn is_ca(&self) -> bool {
        matches!(self.basic, Some((true, _)))
    }

    /// Same subject and same public key: the same CA, whatever else differs.
    fn same_ca(&self, other: &Facts<'_>) -> bool {
        self.subject_raw == other.subject_raw && self.spki_raw == other.spki_raw
    }
}

/// Extensions whose content the rules read, so a broken encoding matters.
fn is_processed(oid: &x509_parser::der_parser::oid::Oid<'_>) -> bool {
    [
        oids::OID_X509_EXT_BASIC_CONSTRAINTS,
        oids::OID_X509_EXT_KEY_USAGE,
        oids::OID_X509_EXT_EXTENDED_KEY_USAGE,
    ]
    .iter()
    .any(|o| o == oid)
}

fn extension_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    match x509_parser::objects::oid_registry().get(oid) {
        Some(e) => format!("{} ({})", e.sn(), oid.to_id_string()),
        None => oid.to_id_string(),
    }
}

/// The DER of the TBSCertificate inside a certificate (RFC 5280 section 4.1).
fn tbs_slice(der: &[u8]) -> Option<&[u8]> {
    fn header(b: &[u8]) -> Option<(usize, usize)> {
        let first = *b.get(1)?;
        if first < 0x80 {
            return Some((2, first as usize));
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = b.get(2..2 + n)?;
        let len = bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize);
        Some((2 + n, len))
    }
    let (h, _) = header(der)?;
    let inner = der.get(h..)?;
    let (h2, l2) = header(inner)?;
    inner.get(..h2.checked_add(l2)?)
}

/// A name in a form where two encodings of the same name compare equal:
/// per RDN, attributes sorted, string values trimmed, inner whitespace
/// collapsed and case folded (as RFC 5280 section 7.1 and OpenSSL compare).
fn canonical_name(raw: &[u8]) -> Vec<u8> {
    let Ok((_, name)) = X509Name::from_der(raw) else {
        return raw.to_vec();
    };
    let mut out = Vec::with_capacity(raw.len());
    for rdn in name.iter_rdn() {
        let mut attrs: Vec<Vec<u8>> = rdn
            .iter()
            .map(|a| {
                let mut v = a.attr_type().as_bytes().to_vec();
                v.push(0);
                match a.as_str() {
                    Ok(s) => {
                        v.push(b's');
                        let folded = s
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .to_lowercase();
                        v.extend_from_slice(folded.as_bytes());
                    }
                    Err(_) => {
                        v.push(b'b');
                        v.extend_from_slice(a.as_slice());
                    }
                }
                v
            })
            .collect();
        attrs.sort();
        for a in attrs {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            out.extend_from_slice(&a);
        }
        out.push(0xff);
    }
    out
}

// ---------------------------------------------------------------------------
// The rules: one function each, certificate facts in, problem out.

/// RFC 5280 section 4.1.2.5 and 6.1.3 (a)(2): the certificate must be valid
/// at the verification time, notBefore and notAfter inclusive.
fn check_validity(f: &Facts<'_>, at: OffsetDateTime) -> Option<Problem> {
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
fn check_issuer_is_ca(f: &Facts<'_>) -> Option<Problem> {
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

/// RFC 5280 section 4.2.1.3 and 6.1.4 (n): when an issuer has keyUsage, it
/// must include keyCertSign.
fn check_key_cert_sign(f: &Facts<'_>) -> Option<Problem> {
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
fn check_pathlen(path: &[&Facts<'_>]) -> Vec<(usize, Problem)> {
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
fn check_leaf_not_ca(f: &Facts<'_>) -> Option<Problem> {
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
fn check_leaf_cn(f: &Facts<'_>) -> Option<Problem> {
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
fn check_leaf_eku(f: &Facts<'_>) -> Option<Problem> {
    (f.eku_client_auth == Some(false)).then(|| {
        Problem::new(
            ProblemCode::LeafEkuLacksClientAuth,
            &f.subject,
            format!(
                "{} has extendedKeyUsage without clientAuth, so it cannot authenticate a TLS client",
                f.subject
            ),
        )
    })
}

/// RFC 5280 section 4.2: a certificate with a critical extension the
/// verifier does not process must be rejected; a processed extension that
/// does not decode (or appears twice) is malformed.
fn check_critical_extensions(f: &Facts<'_>) -> Option<Problem> {
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
fn check_key_algorithm(f: &Facts<'_>) -> Option<Problem> {
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

enum SigCheck {
    Valid,
    Invalid(String),
    Unsupported(String),
}

/// RFC 5280 section 6.1.3 (a)(1) and 4.1.1.2: the child's signature must
/// verify with the issuer's public key, with the algorithm named in both
/// signature fields. RSA PKCS#1 v1.5 with SHA-1/256/384/512 and ECDSA
/// P-256/P-384 with SHA-256/384 are supported.
fn check_signature(child: &Facts<'_>, issuer: &Facts<'_>) -> SigCheck {
    if child.sig_alg_mismatch {
        return SigCheck::Invalid(
            "its TBS signature algorithm differs from its outer signatureAlgorithm".into(),
        );
    }
    let alg: &'static dyn VerificationAlgorithm = match (&child.sig_alg, &issuer.key) {
        (SigAlg::Other(name), _) => {
            return SigCheck::Unsupported(format!("it is signed with {name}"));
        }
        (_, Key::Other(name)) => {
            return SigCheck::Unsupported(format!(
                "its issuer {} has a {name} key",
                issuer.subject
            ));
        }
        (SigAlg::RsaSha256, Key::Rsa(b)) if (2048..=8192).contains(b) => {
            &sig::RSA_PKCS1_2048_8192_SHA256
        }
        (SigAlg::RsaSha384, Key::Rsa(b)) if (2048..=8192).contains(b) => {
            &sig::RSA_PKCS1_2048_8192_SHA384
        }
        (SigAlg::RsaSha512, Key::Rsa(b)) if (2048..=8192).contains(b) => {
            &sig::RSA_PKCS1_2048_8192_SHA512
        }
        (SigAlg::RsaSha256, Key::Rsa(b)) if (1024..2048).contains(b) => {
            &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
        (SigAlg::RsaSha512, Key::Rsa(b)) if (1024..2048).contains(b) => {
            &sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
        }
        (SigAlg::RsaSha1, Key::Rsa(b)) if (1024..=8192).contains(b) => {
            &sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (
            SigAlg::RsaSha1 | SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512,
            Key::Rsa(b),
        ) => {
            return SigCheck::Unsupported(format!(
                "its issuer {} has an RSA {b}-bit key, outside what iotca verifies with this hash",
                issuer.subject
            ));
        }
        (SigAlg::EcdsaSha256, Key::P256) => &sig::ECDSA_P256_SHA256_ASN1,
        (SigAlg::EcdsaSha384, Key::P256) => &sig::ECDSA_P256_SHA384_ASN1,
        (SigAlg::EcdsaSha256, Key::P384) => &sig::ECDSA_P384_SHA256_ASN1,
        (SigAlg::EcdsaSha384, Key::P384) => &sig::ECDSA_P384_SHA384_ASN1,
        (s, k) => {
            return SigCheck::Invalid(format!(
                "its signature algorithm ({}) cannot come from the issuer's {} key",
                sig_alg_name(s),
                key_name(k)
            ));
        }
    };
    match UnparsedPublicKey::new(alg, &issuer.key_bytes[..]).verify(&child.tbs, &child.signature) {
        Ok(()) => SigCheck::Valid,
        Err(_) => SigCheck::Invalid(format!(
            "its signature does not verify with the public key of {}",
            issuer.subject
        )),
    }
}

fn sig_alg_name(s: &SigAlg) -> &str {
    match s {
        SigAlg::RsaSha1 => "sha1WithRSAEncryption",
        SigAlg::RsaSha256 => "sha256WithRSAEncryption",
        SigAlg::RsaSha384 => "sha384WithRSAEncryption",
        SigAlg::RsaSha512 => "sha512WithRSAEncryption",
        SigAlg::EcdsaSha256 => "ecdsa-with-SHA256",
        SigAlg::EcdsaSha384 => "ecdsa-with-SHA384",
        SigAlg::Other(n) => n,
    }
}

fn key_name(k: &Key) -> String {
    match k {
        Key::Rsa(b) => format!("RSA {b}"),
        Key::P256 => "ECDSA P-256".into(),
        Key::P384 => "ECDSA P-384".into(),
        Key::Other(n) => n.clone(),
    }
}

/// DPS only sees the certificates the device sends: a path through a
/// certificate given with `--untrusted` does not hold for DPS.
fn check_presented(f: &Facts<'_>, source: Source, position: usize) -> Option<Problem> {
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
fn warn_expiring(f: &Facts<'_>, options: &VerifyOptions) -> Option<Warning> {
    if options.at < f.not_before || options.at > f.not_after {
        return None;
    }
    let days = cert::days_between(options.at, f.not_after);
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
fn warn_weak_rsa(f: &Facts<'_>) -> Option<Warning> {
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
fn warn_sha1(f: &Facts<'_>) -> Option<Warning> {
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

// ---------------------------------------------------------------------------
// Path building.

struct Node<'a> {
    facts: Facts<'a>,
    source: Source,
    position: usize,
    /// This certificate is a group CA (same subject and key): the anchor
    /// stands in for it.
    is_anchor: bool,
}

#[derive(Clone, Copy)]
struct State {
    node: usize,
    parent: Option<usize>,
    depth: usize,
    /// No certificate on the way failed its own checks.
    clean: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Anchor(usize),
    Node(usize),
}

struct DeadEnd {
    state: usize,
    problem: Problem,
}

struct Candidate {
    problems: Vec<(usize, Problem)>,
    states: Vec<usize>,
    anchor: usize,
}

fn verify_inner<D: AsRef<[u8]>, U: AsRef<[u8]>>(
    cas: &GroupCas,
    presented: &[D],
    untrusted: &[U],
    options: &VerifyOptions,
) -> Verdict {
    let Some(leaf_der) = presented.first() else {
        return Verdict::failed(
            None,
            Problem::new(
                ProblemCode::NoCertificate,
                "",
                "there is no certificate to verify",
            ),
        );
    };
    let leaf_der = leaf_der.as_ref();
    let leaf_x = match cert::parse_exact(leaf_der, 1) {
        Ok(x) => x,
        Err(e) => {
            return Verdict::failed(
                None,
                Problem::new(
                    ProblemCode::Malformed,
                    "certificate #1",
                    format!("the leaf {e}"),
                ),
            );
        }
    };
    let leaf_summary = CertSummary::new(&leaf_x, leaf_der);
    if cas.anchors.is_empty() {
        return Verdict::failed(
            Some(leaf_summary),
            Problem::new(
                ProblemCode::IssuerNotFound,
                cert::name_string(&leaf_x.tbs_certificate.subject),
                "no group CA was given",
            ),
        );
    }
    let mut nodes: Vec<Node<'_>> = Vec::with_capacity(presented.len() + untrusted.len());
    nodes.push(Node {
        facts: Facts::new(&leaf_x, leaf_der),
        source: Source::Leaf,
        position: 1,
        is_anchor: false,
    });
    drop(leaf_x);
    let mut seen: HashSet<&[u8]> = HashSet::new();
    seen.insert(leaf_der);
    let inputs = presented[1..]
        .iter()
        .map(|d| d.as_ref())
        .enumerate()
        .map(|(i, d)| (Source::Presented, i + 2, d))
        .chain(
            untrusted
                .iter()
                .map(|d| d.as_ref())
                .enumerate()
                .map(|(i, d)| (Source::Untrusted, i + 1, d)),
        );
    for (source, position, der) in inputs {
        if !seen.insert(der) {
            continue;
        }
        let x = match cert::parse_exact(der, position) {
            Ok(x) => x,
            Err(e) => {
                let which = match source {
                    Source::Untrusted => format!("untrusted certificate #{position}"),
                    _ => format!("certificate #{position}"),
                };
                let mut v = Verdict::failed(
                    Some(leaf_summary),
                    Problem::new(ProblemCode::Malformed, &which, format!("{which}: {e}")),
                );
                v.path = vec![path_cert(&nodes[0].facts, Source::Leaf, 1)];
                return v;
            }
        };
        let facts = Facts::new(&x, der);
        let is_anchor = cas.anchors.iter().any(|a| a.facts.same_ca(&facts));
        nodes.push(Node {
            facts,
            source,
            position,
            is_anchor,
        });
    }
    let mut search = Search::new(cas, &nodes, options);
    search.run();
    search.verdict(leaf_summary)
}

fn path_cert(f: &Facts<'_>, source: Source, position: usize) -> PathCert {
    PathCert {
        subject: f.subject.clone(),
        issuer: f.issuer.clone(),
        not_before: cert::rfc3339(f.not_before),
        not_after: cert::rfc3339(f.not_after),
        source,
        position,
        problems: Vec::new(),
    }
}

struct Search<'s, 'a> {
    cas: &'s GroupCas,
    nodes: &'s [Node<'a>],
    options: &'s VerifyOptions,
    states: Vec<State>,
    /// Per node: entered clean, entered dirty.
    visited: Vec<[bool; 2]>,
    /// Per node: passes its own checks as an issuer (computed lazily).
    issuer_ok: Vec<Option<bool>>,
    /// Pool index by canonical subject (built on first use).
    by_name: Option<HashMap<Vec<u8>, Vec<usize>>>,
    sig_cache: Vec<(usize, Target, bool)>,
    sig_checks: usize,
    gave_up: bool,
    complete: Vec<Candidate>,
    dead: Vec<DeadEnd>,
    leaf_problems: Vec<Problem>,
}

impl<'s, 'a> Search<'s, 'a> {
    fn new(cas: &'s GroupCas, nodes: &'s [Node<'a>], options: &'s VerifyOptions) -> Self {
        let leaf = &nodes[0].facts;
        let leaf_problems = [
            check_leaf_cn(leaf),
            check_leaf_not_ca(leaf),
            check_leaf_eku(leaf),
            check_validity(leaf, options.at),
            check_critical_extensions(leaf),
            check_key_algorithm(leaf),
        ]
        .into_iter()
        .flatten()
        .collect();
        Search {
            cas,
            nodes,
            options,
            states: Vec::new(),
            visited: vec![[false; 2]; nodes.len()],
            issuer_ok: vec![None; nodes.len()],
            by_name: None,
            sig_cache: Vec::new(),
            sig_checks: 0,
            gave_up: false,
            complete: Vec::new(),
            dead: Vec::new(),
            leaf_problems,
        }
    }

    fn facts(&self, t: Target) -> &Facts<'_> {
        match t {
            Target::Anchor(i) => &self.cas.anchors[i].facts,
            Target::Node(i) => &self.nodes[i].facts,
        }
    }

    /// The problems a certificate has as an issuer on any path, pathlen
    /// aside.
    fn issuer_problems(&self, f: &Facts<'_>) -> Vec<Problem> {
        [
            check_validity(f, self.options.at),
            check_issuer_is_ca(f),
            check_key_cert_sign(f),
            check_critical_extensions(f),
            check_key_algorithm(f),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn node_ok(&mut self, i: usize) -> bool {
        if let Some(ok) = self.issuer_ok[i] {
            return ok;
        }
        let n = &self.nodes[i];
        let ok = n.source != Source::Untrusted && self.issuer_problems(&n.facts).is_empty();
        self.issuer_ok[i] = Some(ok);
        ok
    }

    fn signature(&mut self, child: usize, issuer: Target) -> SigCheck {
        if let Some(&(_, _, ok)) = self
            .sig_cache
            .iter()
            .find(|(c, t, _)| *c == child && *t == issuer)
        {
            return if ok {
                SigCheck::Valid
            } else {
                SigCheck::Invalid(String::new())
            };
        }
        self.sig_checks += 1;
        let r = check_signature(&self.nodes[child].facts, self.facts(issuer));
        if !matches!(r, SigCheck::Unsupported(_)) {
            self.sig_cache
                .push((child, issuer, matches!(r, SigCheck::Valid)));
        }
        r
    }

    fn on_path(&self, mut s: usize, node: usize) -> bool {
        loop {
            if self.states[s].node == node {
                return true;
            }
            match self.states[s].parent {
                Some(p) => s = p,
                None => return false,
            }
        }
    }

    fn pool_candidates(&mut self, issuer_raw: &[u8]) -> Vec<usize> {
        if self.nodes.len() <= 1 {
            return Vec::new();
        }
        let nodes = self.nodes;
        let map = self.by_name.get_or_insert_with(|| {
            let mut m: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
            for (i, n) in nodes.iter().enumerate() {
                m.entry(canonical_name(&n.facts.subject_raw))
                    .or_default()
                    .push(i);
            }
            m
        });
        map.get(&canonical_name(issuer_raw))
            .cloned()
            .unwrap_or_default()
    }

    fn run(&mut self) {
        self.states.push(State {
            node: 0,
            parent: None,
            depth: 0,
            clean: true,
        });
        self.visited[0][0] = true;
        let mut queue = VecDeque::from([0usize]);
        while let Some(s) = queue.pop_front() {
            if self.expand(s, &mut queue) {
                return;
            }
            if self.gave_up {
                return;
            }
        }
    }

    /// Explores the issuers of state `s`; true when a path holds.
    fn expand(&mut self, s: usize, queue: &mut VecDeque<usize>) -> bool {
        let State {
            node, depth, clean, ..
        } = self.states[s];
        let nodes = self.nodes;
        let cas = self.cas;
        let child = &nodes[node].facts;
        if depth + 2 > MAX_DEPTH {
            self.dead.push(DeadEnd {
                state: s,
                problem: Problem::new(
                    ProblemCode::IssuerNotFound,
                    &child.subject,
                    format!("no path to a group CA within {MAX_DEPTH} certificates"),
                ),
            });
            return false;
        }
        let mut failures: Vec<Problem> = Vec::new();
        let mut progressed = false;

        // Group CAs first, those whose SKI matches the child's AKI before others.
        let mut child_canon: Option<Vec<u8>> = None;
        let mut anchors: Vec<usize> = Vec::with_capacity(self.cas.anchors.len());
        for (i, a) in cas.anchors.iter().enumerate() {
            let matches = a.facts.subject_raw == child.issuer_raw || {
                let c = child_canon.get_or_insert_with(|| canonical_name(&child.issuer_raw));
                *c == a.canon_subject
            };
            if matches {
                anchors.push(i);
            }
        }
        order_by_key_id(&mut anchors, child, |i| cas.anchors[i].facts.ski.as_deref());
        for ai in anchors {
            if self.sig_checks >= MAX_SIGNATURE_CHECKS {
                self.gave_up = true;
                break;
            }
            match self.signature(node, Target::Anchor(ai)) {
                SigCheck::Valid => {
                    progressed = true;
                    if self.complete_path(s, ai) {
                        return true;
                    }
                }
                SigCheck::Invalid(why) => {
                    // The child names a group CA as its issuer but another key
                    // signed it: that is the defect even if the search goes on
                    // through a presented look-alike.
                    let problem = self.sig_problem(node, Target::Anchor(ai), why);
                    self.dead.push(DeadEnd { state: s, problem });
                }
                SigCheck::Unsupported(why) => failures.push(Problem::new(
                    ProblemCode::UnsupportedAlgorithm,
                    &child.subject,
                    format!("{}: {why}", child.subject),
                )),
            }
        }

        // Then presented and untrusted certificates with the issuer's name.
        let mut pool = self.pool_candidates(&child.issuer_raw);
        pool.retain(|&p| p != node && !nodes[p].is_anchor);
        order_by_key_id(&mut pool, child, |i| nodes[i].facts.ski.as_deref());
        pool.sort_by_key(|&p| nodes[p].source == Source::Untrusted);
        for p in pool {
            if self.on_path(s, p) {
                continue;
            }
            if self.sig_checks >= MAX_SIGNATURE_CHECKS {
                self.gave_up = true;
                break;
            }
            match self.signature(node, Target::Node(p)) {
                SigCheck::Valid => {
                    progressed = true;
                    let next_clean = clean && self.node_ok(p);
                    let slot = usize::from(!next_clean);
                    if !self.visited[p][slot] {
                        self.visited[p][slot] = true;
                        self.states.push(State {
                            node: p,
                            parent: Some(s),
                            depth: depth + 1,
                            clean: next_clean,
                        });
                        queue.push_back(self.states.len() - 1);
                    }
                }
                SigCheck::Invalid(why) => {
                    failures.push(self.sig_problem(node, Target::Node(p), why))
                }
                SigCheck::Unsupported(why) => failures.push(Problem::new(
                    ProblemCode::UnsupportedAlgorithm,
                    &child.subject,
                    format!("{}: {why}", child.subject),
                )),
            }
        }

        if !progressed {
            let problem = failures
                .into_iter()
                .max_by_key(|p| p.code.rank())
                .unwrap_or_else(|| self.not_found(node));
            self.dead.push(DeadEnd { state: s, problem });
        }
        false
    }

    fn sig_problem(&self, node: usize, issuer: Target, why: String) -> Problem {
        let child = &self.nodes[node].facts;
        let is = self.facts(issuer);
        let why = if why.is_empty() {
            format!(
                "its signature does not verify with the public key of {}",
                is.subject
            )
        } else {
            why
        };
        let hint = match issuer {
            Target::Anchor(_) => format!(
                " (the group CA {}): it was altered, or issued by another key with the group CA's name",
                is.subject
            ),
            Target::Node(_) => String::new(),
        };
        Problem::new(
            ProblemCode::SignatureInvalid,
            &child.subject,
            format!("{}: {why}{hint}", child.subject),
        )
    }

    fn not_found(&self, node: usize) -> Problem {
        let f = &self.nodes[node].facts;
        let cas: Vec<&str> = self.cas.anchors.iter().map(|a| a.subject()).collect();
        let look_alike = self
            .cas
            .anchors
            .iter()
            .find(|a| a.facts.subject_raw == f.subject_raw && a.facts.spki_raw != f.spki_raw);
        let message = if let Some(a) = look_alike {
            format!(
                "{} has the group CA's name but a different public key: it is not the group CA {}",
                f.subject,
                a.subject()
            )
        } else if f.self_issued {
            format!(
                "{} is a self-issued root that is not the group CA ({})",
                f.subject,
                cas.join(", ")
            )
        } else if self.gave_up {
            format!(
                "gave up looking for the issuer of {} after {MAX_SIGNATURE_CHECKS} signature checks",
                f.subject
            )
        } else {
            format!(
                "the issuer of {} ({}) is neither a group CA ({}) nor among the certificates given",
                f.subject,
                f.issuer,
                cas.join(", ")
            )
        };
        Problem::new(ProblemCode::IssuerNotFound, &f.subject, message)
    }

    fn state_path(&self, mut s: usize) -> Vec<usize> {
        let mut out = vec![s];
        while let Some(p) = self.states[s].parent {
            out.push(p);
            s = p;
        }
        out.reverse();
        out
    }

    /// Records a path ending at group CA `anchor`; true when it holds.
    fn complete_path(&mut self, s: usize, anchor: usize) -> bool {
        let states = self.state_path(s);
        let a = &self.cas.anchors[anchor].facts;
        let mut facts: Vec<&Facts<'_>> = states
            .iter()
            .map(|&st| &self.nodes[self.states[st].node].facts)
            .collect();
        facts.push(a);
        let mut problems: Vec<(usize, Problem)> =
            self.leaf_problems.iter().map(|p| (0, p.clone())).collect();
        for (i, &st) in states.iter().enumerate().skip(1) {
            let n = &self.nodes[self.states[st].node];
            for p in self.issuer_problems(&n.facts) {
                problems.push((i, p));
            }
            if let Some(p) = check_presented(&n.facts, n.source, n.position) {
                problems.push((i, p));
            }
        }
        let last = facts.len() - 1;
        for p in self.issuer_problems(a) {
            problems.push((last, p));
        }
        problems.extend(check_pathlen(&facts));
        let holds = problems.is_empty();
        self.complete.push(Candidate {
            problems,
            states,
            anchor,
        });
        holds
    }

    fn verdict(self, leaf: CertSummary) -> Verdict {
        // A path that reaches a group CA: the one with the fewest problems,
        // then the most specific, then the shortest.
        let best = self.complete.iter().min_by_key(|c| {
            let top = c
                .problems
                .iter()
                .map(|(_, p)| p.code.rank())
                .max()
                .unwrap_or(0);
            (c.problems.len(), std::cmp::Reverse(top), c.states.len())
        });
        if let Some(c) = best {
            let mut path: Vec<PathCert> = c
                .states
                .iter()
                .map(|&st| {
                    let n = &self.nodes[self.states[st].node];
                    path_cert(&n.facts, n.source, n.position)
                })
                .collect();
            let a = &self.cas.anchors[c.anchor];
            path.push(path_cert(&a.facts, Source::GroupCa, c.anchor + 1));
            let mut problems = c.problems.clone();
            problems.sort_by_key(|(_, p)| std::cmp::Reverse(p.code.rank()));
            for (i, p) in &problems {
                path[*i].problems.push(p.code);
            }
            let warnings = self.warnings(c);
            return Verdict {
                chains: problems.is_empty(),
                leaf: Some(leaf),
                path,
                reaches_group_ca: true,
                group_ca: Some(c.anchor),
                problems: problems.into_iter().map(|(_, p)| p).collect(),
                warnings,
            };
        }
        // No path reaches a group CA: the most specific dead end, deepest first.
        let dead = self
            .dead
            .iter()
            .max_by_key(|d| (d.problem.code.rank(), self.states[d.state].depth));
        let (states, dead_problem) = match dead {
            Some(d) => (self.state_path(d.state), d.problem.clone()),
            None => (vec![0], self.not_found(0)),
        };
        let mut path: Vec<PathCert> = states
            .iter()
            .map(|&st| {
                let n = &self.nodes[self.states[st].node];
                path_cert(&n.facts, n.source, n.position)
            })
            .collect();
        let mut problems: Vec<(usize, Problem)> = vec![(path.len() - 1, dead_problem)];
        problems.extend(self.leaf_problems.iter().map(|p| (0, p.clone())));
        problems.sort_by_key(|(_, p)| std::cmp::Reverse(p.code.rank()));
        // Keep the chain-level defect first: it is why the path fails.
        if let Some(pos) = problems.iter().position(|(_, p)| {
            matches!(
                p.code,
                ProblemCode::IssuerNotFound
                    | ProblemCode::SignatureInvalid
                    | ProblemCode::UnsupportedAlgorithm
            )
        }) {
            let p = problems.remove(pos);
            problems.insert(0, p);
        }
        for (i, p) in &problems {
            path[*i].problems.push(p.code);
        }
        let mut warnings = Vec::new();
        warnings.extend(warn_expiring(&self.nodes[0].facts, self.options));
        Verdict {
            chains: false,
            leaf: Some(leaf),
            path,
            reaches_group_ca: false,
            group_ca: None,
            problems: problems.into_iter().map(|(_, p)| p).collect(),
            warnings,
        }
    }

    fn warnings(&self, c: &Candidate) -> Vec<Warning> {
        let mut out = Vec::new();
        let leaf = &self.nodes[0].facts;
        out.extend(warn_expiring(leaf, self.options));
        let on_path: Vec<usize> = c.states.iter().map(|&st| self.states[st].node).collect();
        let anchor = &self.cas.anchors[c.anchor].facts;
        for &n in &on_path {
            let f = &self.nodes[n].facts;
            out.extend(warn_weak_rsa(f));
            out.extend(warn_sha1(f));
        }
        out.extend(warn_weak_rsa(anchor));
        // Presented certificates neither on the path nor above the group CA.
        let mut above: Vec<usize> = Vec::new();
        let mut current: &Facts<'_> = anchor;
        for _ in 0..MAX_DEPTH {
            let next = self.nodes.iter().enumerate().find(|(i, n)| {
                n.source == Source::Presented
                    && !n.is_anchor
                    && !above.contains(i)
                    && canonical_name(&n.facts.subject_raw) == canonical_name(&current.issuer_raw)
                    && matches!(check_signature(current, &n.facts), SigCheck::Valid)
            });
            match next {
                Some((i, n)) => {
                    above.push(i);
                    current = &n.facts;
                }
                None => break,
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.source == Source::Presented
                && !n.is_anchor
                && !on_path.contains(&i)
                && !above.contains(&i)
            {
                out.push(Warning::new(
                    WarningCode::CertificateNotOnPath,
                    &n.facts.subject,
                    format!(
                        "{} (presented certificate #{}) is not on the path to the group CA; DPS ignores it",
                        n.facts.subject, n.position
                    ),
                ));
            }
        }
        out
    }
}

/// Puts first the candidates whose SKI equals the child's AKI (RFC 5280
/// section 4.2.1.1): a hint for the order, never a decision.
fn order_by_key_id<'k>(
    v: &mut [usize],
    child: &Facts<'_>,
    ski: impl Fn(usize) -> Option<&'k [u8]>,
) {
    if let Some(aki) = child.aki.as_deref() {
        v.sort_by_key(|&i| ski(i) != Some(aki));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, DnValue,
        ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyPair, KeyUsagePurpose as Ku,
        PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
    };
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2030-06-01 0:00 UTC);

    fn key() -> KeyPair {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
    }

    fn params(cn: &str, ca: bool) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = datetime!(2030-01-01 0:00 UTC);
        p.not_after = datetime!(2031-01-01 0:00 UTC);
        p.use_authority_key_identifier_extension = true;
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![Ku::KeyCertSign, Ku::DigitalSignature];
        } else {
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![Ku::DigitalSignature];
            p.extended_key_usages = vec![Eku::ClientAuth];
        }
        p
    }

    struct Made {
        params: CertificateParams,
        key: KeyPair,
        der: Vec<u8>,
    }

    fn self_signed(params: CertificateParams, key: KeyPair) -> Made {
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Made { params, key, der }
    }

    fn signed(params: CertificateParams, key: KeyPair, by: &Made) -> Made {
        let der = params
            .signed_by(&key, &Issuer::from_params(&by.params, &by.key))
            .unwrap()
            .der()
            .to_vec();
        Made { params, key, der }
    }

    fn facts(der: &[u8]) -> Facts<'_> {
        Facts::new(&cert::parse_exact(der, 1).unwrap(), der)
    }

    fn code(p: Option<Problem>) -> Option<ProblemCode> {
        p.map(|p| p.code)
    }

    fn verdict(presented: &[&[u8]], cas: &[&[u8]], untrusted: &[&[u8]]) -> Verdict {
        GroupCas::new(cas)
            .unwrap()
            .verify_with(presented, untrusted, &VerifyOptions::at(AT))
    }

    #[test]
    fn group_cas_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GroupCas>();
        assert_send_sync::<Anchor>();
        assert_send_sync::<Verdict>();
    }

    #[test]
    fn rule_validity() {
        let root = self_signed(params("Root", true), key());
        let f = facts(&root.der);
        assert_eq!(code(check_validity(&f, AT)), None);
        assert_eq!(
            code(check_validity(&f, datetime!(2029-12-31 23:59:59 UTC))),
            Some(ProblemCode::NotYetValid)
        );
        assert_eq!(
            code(check_validity(&f, datetime!(2031-01-01 0:00:01 UTC))),
            Some(ProblemCode::Expired)
        );
        // Both ends inclusive (RFC 5280 section 4.1.2.5).
        assert_eq!(
            code(check_validity(&f, datetime!(2031-01-01 0:00 UTC))),
            None
        );
    }

    #[test]
    fn rule_issuer_is_ca() {
        let root = self_signed(params("Root", true), key());
        assert_eq!(code(check_issuer_is_ca(&facts(&root.der))), None);
        let mut p = params("Not CA", true);
        p.is_ca = IsCa::ExplicitNoCa;
        let not_ca = self_signed(p.clone(), key());
        assert_eq!(
            code(check_issuer_is_ca(&facts(&not_ca.der))),
            Some(ProblemCode::IssuerNotCa)
        );
        p.is_ca = IsCa::NoCa;
        let no_bc = self_signed(p, key());
        assert_eq!(
            code(check_issuer_is_ca(&facts(&no_bc.der))),
            Some(ProblemCode::IssuerNotCa)
        );
    }

    #[test]
    fn rule_key_cert_sign() {
        let root = self_signed(params("Root", true), key());
        assert_eq!(code(check_key_cert_sign(&facts(&root.der))), None);
        let mut p = params("No KCS", true);
        p.key_usages = vec![Ku::DigitalSignature];
        let c = self_signed(p.clone(), key());
        assert_eq!(
            code(check_key_cert_sign(&facts(&c.der))),
            Some(ProblemCode::IssuerMissingKeycertsign)
        );
        p.key_usages = vec![];
        let no_ku = self_signed(p, key());
        assert_eq!(code(check_key_cert_sign(&facts(&no_ku.der))), None);
    }

    #[test]
    fn rule_pathlen() {
        let mut rp = params("Root", true);
        rp.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let root = self_signed(rp, key());
        let int = signed(params("Int", true), key(), &root);
        let leaf = signed(params("leaf", false), key(), &int);
        let (l, i, r) = (facts(&leaf.der), facts(&int.der), facts(&root.der));
        let found = check_pathlen(&[&l, &i, &r]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
        assert_eq!(found[0].1.code, ProblemCode::PathlenExceeded);
        assert!(check_pathlen(&[&l, &r]).is_empty());
    }

    #[test]
    fn rule_leaf_not_ca() {
        let root = self_signed(params("Root", true), key());
        let leaf = signed(params("leaf", false), key(), &root);
        assert_eq!(code(check_leaf_not_ca(&facts(&leaf.der))), None);
        assert_eq!(
            code(check_leaf_not_ca(&facts(&root.der))),
            Some(ProblemCode::LeafIsCa)
        );
    }

    #[test]
    fn rule_leaf_cn() {
        let root = self_signed(params("Root", true), key());
        let one = signed(params("device", false), key(), &root);
        assert_eq!(code(check_leaf_cn(&facts(&one.der))), None);
        let mut p = params("device", false);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::OrganizationName, "Org");
        let none = signed(p, key(), &root);
        assert_eq!(
            code(check_leaf_cn(&facts(&none.der))),
            Some(ProblemCode::LeafMissingCn)
        );
        let mut p = params("device-a", false);
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "device-b");
        let two = signed(p, key(), &root);
        assert_eq!(
            code(check_leaf_cn(&facts(&two.der))),
            Some(ProblemCode::LeafMultipleCn)
        );
    }

    #[test]
    fn rule_leaf_eku() {
        let root = self_signed(params("Root", true), key());
        let ok = signed(params("device", false), key(), &root);
        assert_eq!(code(check_leaf_eku(&facts(&ok.der))), None);
        let mut p = params("device", false);
        p.extended_key_usages = vec![Eku::ServerAuth, Eku::Any];
        let server = signed(p.clone(), key(), &root);
        assert_eq!(
            code(check_leaf_eku(&facts(&server.der))),
            Some(ProblemCode::LeafEkuLacksClientAuth)
        );
        p.extended_key_usages = vec![];
        let none = signed(p, key(), &root);
        assert_eq!(code(check_leaf_eku(&facts(&none.der))), None);
    }

    #[test]
    fn rule_critical_extensions() {
        let root = self_signed(params("Root", true), key());
        let mut p = params("device", false);
        let mut ext = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
        let crit = signed(p.clone(), key(), &root);
        assert_eq!(
            code(check_critical_extensions(&facts(&crit.der))),
            Some(ProblemCode::UnsupportedCriticalExtension)
        );
        p.custom_extensions = vec![CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0])];
        let non = signed(p, key(), &root);
        assert_eq!(code(check_critical_extensions(&facts(&non.der))), None);
    }

    #[test]
    fn rule_key_algorithm() {
        let root = self_signed(params("Root", true), key());
        assert_eq!(code(check_key_algorithm(&facts(&root.der))), None);
        let ed = signed(
            params("device", false),
            KeyPair::generate_for(&PKCS_ED25519).unwrap(),
            &root,
        );
        assert_eq!(
            code(check_key_algorithm(&facts(&ed.der))),
            Some(ProblemCode::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn rule_signature() {
        let root = self_signed(params("Root", true), key());
        let leaf = signed(params("device", false), key(), &root);
        let (l, r) = (facts(&leaf.der), facts(&root.der));
        assert!(matches!(check_signature(&l, &r), SigCheck::Valid));
        let other = self_signed(params("Root", true), key());
        assert!(matches!(
            check_signature(&l, &facts(&other.der)),
            SigCheck::Invalid(_)
        ));
        let mut bad = leaf.der.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert!(matches!(
            check_signature(&facts(&bad), &r),
            SigCheck::Invalid(_)
        ));
        let ed_root = self_signed(
            params("Ed", true),
            KeyPair::generate_for(&PKCS_ED25519).unwrap(),
        );
        let ed_leaf = signed(params("device", false), key(), &ed_root);
        assert!(matches!(
            check_signature(&facts(&ed_leaf.der), &facts(&ed_root.der)),
            SigCheck::Unsupported(_)
        ));
    }

    #[test]
    fn rule_presented() {
        let root = self_signed(params("Root", true), key());
        let f = facts(&root.der);
        assert_eq!(code(check_presented(&f, Source::Presented, 2)), None);
        assert_eq!(
            code(check_presented(&f, Source::Untrusted, 1)),
            Some(ProblemCode::ChainIncomplete)
        );
    }

    #[test]
    fn warning_expiring_soon() {
        let root = self_signed(params("Root", true), key());
        let f = facts(&root.der);
        let near = VerifyOptions::at(datetime!(2030-12-20 0:00 UTC));
        assert_eq!(
            warn_expiring(&f, &near).map(|w| w.code),
            Some(WarningCode::LeafExpiringSoon)
        );
        assert!(warn_expiring(&f, &VerifyOptions::at(AT)).is_none());
    }

    #[test]
    fn path_through_intermediate_and_fast_path() {
        let root = self_signed(params("Root", true), key());
        let int = signed(params("Int", true), key(), &root);
        let leaf = signed(params("device", false), key(), &int);
        let v = verdict(&[&leaf.der, &int.der], &[&root.der], &[]);
        assert!(v.chains, "{:?}", v.problems);
        assert_eq!(v.path_subjects(), ["CN=device", "CN=Int", "CN=Root"]);
        assert_eq!(v.group_ca, Some(0));
        let direct = signed(params("direct", false), key(), &root);
        let v = GroupCas::new(&[&root.der])
            .unwrap()
            .verify(&[&direct.der], AT);
        assert!(v.chains);
        assert_eq!(v.leaf.unwrap().cn.as_deref(), Some("direct"));
    }

    #[test]
    fn same_name_other_key_is_not_the_group_ca() {
        let root = self_signed(params("Root", true), key());
        let impostor = self_signed(params("Root", true), key());
        let leaf = signed(params("device", false), key(), &impostor);
        let v = verdict(&[&leaf.der], &[&root.der], &[]);
        assert!(!v.chains);
        assert_eq!(v.codes()[0], ProblemCode::SignatureInvalid);
        // Even when the device presents the look-alike.
        let v = verdict(&[&leaf.der, &impostor.der], &[&root.der], &[]);
        assert_eq!(v.codes()[0], ProblemCode::SignatureInvalid);
    }

    #[test]
    fn names_match_across_encodings_and_case() {
        // The CA's subject is a UTF8String; the leaf names it as a
        // PrintableString in another letter case.
        let root = self_signed(params("Group Root", true), key());
        let mut as_printable = params("x", true);
        as_printable.distinguished_name = rcgen::DistinguishedName::new();
        as_printable.distinguished_name.push(
            DnType::CommonName,
            DnValue::PrintableString("group  ROOT".try_into().unwrap()),
        );
        let issuer = Made {
            params: as_printable,
            key: KeyPair::from_pem(&root.key.serialize_pem()).unwrap(),
            der: Vec::new(),
        };
        let leaf = signed(params("device", false), key(), &issuer);
        let l = facts(&leaf.der);
        assert_ne!(l.issuer_raw, facts(&root.der).subject_raw);
        let v = verdict(&[&leaf.der], &[&root.der], &[]);
        assert!(v.chains, "{:?}", v.problems);
    }

    #[test]
    fn untrusted_completion_is_chain_incomplete() {
        let root = self_signed(params("Root", true), key());
        let int = signed(params("Int", true), key(), &root);
        let leaf = signed(params("device", false), key(), &int);
        let v = verdict(&[&leaf.der], &[&root.der], &[&int.der]);
        assert!(!v.chains);
        assert_eq!(v.codes(), [ProblemCode::ChainIncomplete]);
        assert_eq!(v.problems[0].subject, "CN=Int");
        assert!(v.reaches_group_ca);
        // Presented and untrusted both: the presented path wins.
        let v = verdict(&[&leaf.der, &int.der], &[&root.der], &[&int.der]);
        assert!(v.chains);
    }

    #[test]
    fn stray_presented_certificate_warns() {
        let root = self_signed(params("Root", true), key());
        let int = signed(params("Int", true), key(), &root);
        let leaf = signed(params("device", false), key(), &int);
        let stray = self_signed(params("Stray", true), key());
        let v = verdict(
            &[&leaf.der, &int.der, &root.der, &stray.der],
            &[&int.der],
            &[],
        );
        assert!(v.chains);
        let warned: Vec<&str> = v
            .warnings
            .iter()
            .filter(|w| w.code == WarningCode::CertificateNotOnPath)
            .map(|w| w.subject.as_str())
            .collect();
        // The root is above the group CA: not stray.
        assert_eq!(warned, ["CN=Stray"]);
    }

    #[test]
    fn empty_and_malformed_input() {
        let root = self_signed(params("Root", true), key());
        let cas = GroupCas::new(&[&root.der]).unwrap();
        let v = cas.verify(&[] as &[&[u8]], AT);
        assert_eq!(v.codes(), [ProblemCode::NoCertificate]);
        let v = cas.verify(&[b"garbage".as_slice()], AT);
        assert_eq!(v.codes(), [ProblemCode::Malformed]);
        assert!(v.leaf.is_none());
        let truncated = &root.der[..root.der.len() - 10];
        let v = cas.verify(&[truncated], AT);
        assert_eq!(v.codes(), [ProblemCode::Malformed]);
        let leaf = signed(params("device", false), key(), &root);
        let v = cas.verify(&[leaf.der.as_slice(), b"\x30\x03\x02\x01\x01"], AT);
        assert_eq!(v.codes(), [ProblemCode::Malformed]);
        assert!(matches!(
            GroupCas::new(&[b"nope".as_slice()]),
            Err(ParseError::Malformed { index: 1, .. })
        ));
    }

    #[test]
    fn loops_terminate() {
        let (ka, kb) = (key(), key());
        let (pa, pb) = (params("A", true), params("B", true));
        let a = pa
            .signed_by(&ka, &Issuer::from_params(&pb, &kb))
            .unwrap()
            .der()
            .to_vec();
        let b = pb
            .signed_by(&kb, &Issuer::from_params(&pa, &ka))
            .unwrap()
            .der()
            .to_vec();
        let leaf = params("device", false)
            .signed_by(&key(), &Issuer::from_params(&pa, &ka))
            .unwrap()
            .der()
            .to_vec();
        let other = self_signed(params("Other", true), key());
        let v = verdict(&[&leaf, &a, &b], &[&other.der], &[]);
        assert_eq!(v.codes(), [ProblemCode::IssuerNotFound]);
    }

    #[test]
    fn tbs_slice_matches_parser() {
        let root = self_signed(params("Root", true), key());
        let x = cert::parse_exact(&root.der, 1).unwrap();
        assert_eq!(tbs_slice(&root.der), Some(x.tbs_certificate.as_ref()));
    }
}
