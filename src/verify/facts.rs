//! Parsed facts about one certificate: what the rules need to know,
//! borrowed from its DER (or owned, for an [`super::Anchor`]).

use std::borrow::Cow;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;

use crate::cert;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    Rsa(usize),
    P256,
    P384,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SigAlg {
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
pub(super) struct Facts<'a> {
    pub(super) subject: String,
    pub(super) issuer: String,
    pub(super) subject_raw: Cow<'a, [u8]>,
    pub(super) issuer_raw: Cow<'a, [u8]>,
    pub(super) spki_raw: Cow<'a, [u8]>,
    pub(super) key: Key,
    pub(super) key_bytes: Cow<'a, [u8]>,
    pub(super) sig_alg: SigAlg,
    /// The TBS signature field differs from signatureAlgorithm.
    pub(super) sig_alg_mismatch: bool,
    pub(super) tbs: Cow<'a, [u8]>,
    pub(super) signature: Cow<'a, [u8]>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    /// basicConstraints (CA flag, pathlen) when present.
    pub(super) basic: Option<(bool, Option<u32>)>,
    /// basicConstraints is marked critical.
    pub(super) basic_critical: bool,
    pub(super) key_usage: Option<u16>,
    /// extendedKeyUsage present: does it include clientAuth?
    pub(super) eku_client_auth: Option<bool>,
    /// extendedKeyUsage present with anyExtendedKeyUsage as its only purpose.
    pub(super) eku_only_any: bool,
    pub(super) cn_count: usize,
    pub(super) unknown_critical: Vec<String>,
    pub(super) bad_extension: Option<String>,
    pub(super) ski: Option<Cow<'a, [u8]>>,
    pub(super) aki: Option<Cow<'a, [u8]>>,
    pub(super) self_issued: bool,
    /// The issuer name has no RDN: it cannot name a CA (RFC 5280 section
    /// 4.1.2.4; a CA's subject must be non-empty, section 4.1.2.6).
    pub(super) issuer_empty: bool,
}

pub(super) const KU_KEY_CERT_SIGN: u16 = 1 << 5;

impl<'a> Facts<'a> {
    pub(super) fn new(x: &X509Certificate<'a>, der: &'a [u8]) -> Facts<'a> {
        let tbs = &x.tbs_certificate;
        let mut basic = None;
        let mut basic_critical = false;
        let mut eku_only_any = false;
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
                    basic = Some((bc.ca, bc.path_len_constraint));
                    basic_critical = ext.critical;
                }
                ParsedExtension::KeyUsage(ku) => key_usage = Some(ku.flags),
                ParsedExtension::ExtendedKeyUsage(e) => {
                    eku_client_auth = Some(e.client_auth);
                    eku_only_any = e.any
                        && !(e.server_auth
                            || e.client_auth
                            || e.code_signing
                            || e.email_protection
                            || e.time_stamping
                            || e.ocsp_signing)
                        && e.other.is_empty();
                }
                // RFC 5280 sections 4.2.1.1 and 4.2.1.2: conforming CAs mark
                // AKI and SKI non-critical; iotca reads them only as a hint
                // for the order of candidates, so a critical one is an
                // extension it does not process (as openssl rejects it).
                ParsedExtension::SubjectKeyIdentifier(k) => {
                    ski = Some(Cow::Borrowed(k.0));
                    if ext.critical {
                        unknown_critical.push(format!(
                            "{}, which RFC 5280 section 4.2.1.2 says must be non-critical",
                            extension_name(&ext.oid)
                        ));
                    }
                }
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| Cow::Borrowed(k.0));
                    if ext.critical {
                        unknown_critical.push(format!(
                            "{}, which RFC 5280 section 4.2.1.1 says must be non-critical",
                            extension_name(&ext.oid)
                        ));
                    }
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
            basic_critical,
            key_usage,
            eku_client_auth,
            eku_only_any,
            cn_count: tbs.subject.iter_common_name().count(),
            unknown_critical,
            bad_extension,
            ski,
            aki,
            self_issued: tbs.subject.as_raw() == tbs.issuer.as_raw(),
            issuer_empty: tbs.issuer.iter_rdn().next().is_none(),
        }
    }

    pub(super) fn into_owned(self) -> Facts<'static> {
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
            basic_critical: self.basic_critical,
            key_usage: self.key_usage,
            eku_client_auth: self.eku_client_auth,
            eku_only_any: self.eku_only_any,
            cn_count: self.cn_count,
            unknown_critical: self.unknown_critical,
            bad_extension: self.bad_extension,
            ski: self.ski.map(own),
            aki: self.aki.map(own),
            self_issued: self.self_issued,
            issuer_empty: self.issuer_empty,
        }
    }

    pub(super) fn is_ca(&self) -> bool {
        matches!(self.basic, Some((true, _)))
    }

    /// Same subject and same public key: the same CA, whatever else differs.
    pub(super) fn same_ca(&self, other: &Facts<'_>) -> bool {
        self.subject_raw == other.subject_raw && self.spki_raw == other.spki_raw
    }
}

/// Extensions whose content the rules read, so a broken encoding matters.
pub(super) fn is_processed(oid: &x509_parser::der_parser::oid::Oid<'_>) -> bool {
    [
        oids::OID_X509_EXT_BASIC_CONSTRAINTS,
        oids::OID_X509_EXT_KEY_USAGE,
        oids::OID_X509_EXT_EXTENDED_KEY_USAGE,
    ]
    .iter()
    .any(|o| o == oid)
}

pub(super) fn extension_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    match x509_parser::objects::oid_registry().get(oid) {
        Some(e) => format!("{} ({})", e.sn(), oid.to_id_string()),
        None => oid.to_id_string(),
    }
}

/// The DER of the TBSCertificate inside a certificate (RFC 5280 section 4.1).
pub(super) fn tbs_slice(der: &[u8]) -> Option<&[u8]> {
    pub(super) fn header(b: &[u8]) -> Option<(usize, usize)> {
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
