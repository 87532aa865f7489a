//! Reading certificate files (PEM bundles or a single DER certificate) and
//! describing certificates the way IoT Hub and DPS show them.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::objects::oid_registry;
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::error::{Error, Result};

/// Largest certificate file iotca reads; anything bigger is refused unread.
pub const MAX_FILE_BYTES: u64 = crate::home::MAX_BUNDLE_BYTES;

/// Why bytes that should hold certificates do not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing in the input.
    #[error("the file is empty")]
    Empty,
    /// PEM that holds a private key, not a certificate.
    #[error("holds a private key ({0}), not a certificate")]
    PrivateKey(String),
    /// PEM blocks, but none labelled CERTIFICATE.
    #[error("holds no certificate (PEM labels found: {0})")]
    NoCertificate(String),
    /// PEM armour that does not decode.
    #[error("is not valid PEM: {0}")]
    BadPem(String),
    /// Neither PEM nor a DER certificate.
    #[error("is neither PEM nor a DER certificate")]
    NotCertificate,
    /// A PKCS#10 certificate signing request (PEM or DER).
    #[error(
        "holds a certificate signing request (PKCS#10), not a certificate: sign it with `iotca device sign FILE`"
    )]
    Csr,
    /// A PKCS#12 (PFX) file.
    #[error(
        "is a PKCS#12 (PFX) file, not a PEM or DER certificate: `openssl pkcs12 -in FILE -nokeys` prints the certificates it holds"
    )]
    Pfx,
    /// A DER private key (PKCS#8 or PKCS#1).
    #[error("holds a DER private key, not a certificate")]
    DerKey,
    /// A certificate block whose DER does not parse.
    #[error("certificate #{index} is malformed: {reason}")]
    Malformed {
        /// 1-based position in the file.
        index: usize,
        /// What the parser said.
        reason: String,
    },
}

/// Splits file contents into DER certificates, in file order.
///
/// Accepts PEM (any number of `CERTIFICATE` blocks, other blocks such as
/// parameters ignored) or one DER certificate. Each certificate is checked to
/// parse, so callers may `parse_der` the result without a second error path.
pub fn split_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ParseError> {
    let certs = split_unchecked(bytes)?;
    for (i, der) in certs.iter().enumerate() {
        parse_exact(der, i + 1)?;
    }
    Ok(certs)
}

/// Like [`split_certificates`] but without parsing each certificate: for
/// callers (audit) that parse them next anyway and report what fails.
pub fn split_unchecked(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ParseError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    if looks_like_pem(bytes) {
        let blocks = pem::parse_many(bytes).map_err(|e| ParseError::BadPem(e.to_string()))?;
        let mut out = Vec::new();
        let mut labels = Vec::new();
        for block in blocks {
            match block.tag() {
                "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                    out.push(block.into_contents());
                }
                tag if tag.contains("PRIVATE KEY") => {
                    return Err(ParseError::PrivateKey(tag.to_string()));
                }
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" if out.is_empty() => {
                    return Err(ParseError::Csr);
                }
                tag => labels.push(tag.to_string()),
            }
        }
        if out.is_empty() {
            if labels.is_empty() {
                return Err(ParseError::BadPem("no complete BEGIN/END block".into()));
            }
            return Err(ParseError::NoCertificate(labels.join(", ")));
        }
        return Ok(out);
    }
    if bytes.first() != Some(&0x30) {
        return Err(ParseError::NotCertificate);
    }
    if let Some(kind) = der_kind(bytes) {
        return Err(kind);
    }
    Ok(vec![bytes.to_vec()])
}

/// What a DER SEQUENCE that is not a certificate holds, told by its first
/// element: a certificate (and a CSR) starts with a SEQUENCE, a PFX with
/// INTEGER 3, a PKCS#8 or PKCS#1 key with INTEGER 0 or 1. A CSR is told from
/// a certificate by parsing it as one.
fn der_kind(der: &[u8]) -> Option<ParseError> {
    let header = |b: &[u8]| -> Option<usize> {
        match *b.get(1)? {
            n if n < 0x80 => Some(2),
            n => Some(2 + usize::from(n & 0x7f)),
        }
    };
    let inner = der.get(header(der)?..)?;
    match (inner.first()?, inner.get(1)?, inner.get(2)?) {
        (0x02, 0x01, 3) => Some(ParseError::Pfx),
        (0x02, 0x01, 0 | 1) => Some(ParseError::DerKey),
        (0x30, _, _) => {
            use x509_parser::prelude::FromDer as _;
            let is_csr = X509Certificate::from_der(der).is_err()
                && x509_parser::certification_request::X509CertificationRequest::from_der(der)
                    .is_ok();
            is_csr.then_some(ParseError::Csr)
        }
        _ => None,
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(11)
        .take(64 * 1024)
        .any(|w| w == b"-----BEGIN ")
}

/// Parses one DER certificate that must fill `der` exactly; `index` (1-based
/// position in its input) goes into the error.
pub fn parse_exact(der: &[u8], index: usize) -> Result<X509Certificate<'_>, ParseError> {
    match X509Certificate::from_der(der) {
        Ok(([], x)) => Ok(x),
        Ok((rest, _)) => Err(ParseError::Malformed {
            index,
            reason: format!("{} trailing bytes after the certificate", rest.len()),
        }),
        Err(e) => Err(ParseError::Malformed {
            index,
            reason: der_error(&e),
        }),
    }
}

/// x509-parser's error in words a person can act on.
fn der_error(e: &x509_parser::nom::Err<x509_parser::error::X509Error>) -> String {
    let raw = e.to_string();
    if raw.contains("Eof") || raw.contains("Incomplete") {
        "its DER ends early (the file is truncated or was cut while copying)".into()
    } else {
        format!("its DER is not a valid X.509 certificate ({raw})")
    }
}

/// Reads a certificate file (PEM bundle or DER) into DER certificates.
pub fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = read_limited(path)?;
    split_certificates(&bytes).map_err(|e| Error::BadCertificate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a certificate file or bundle, refusing anything larger than
/// [`MAX_FILE_BYTES`] (through the one bounded reader, [`crate::home::fs`]).
pub fn read_limited(path: &Path) -> Result<Vec<u8>> {
    crate::home::fs::read_bounded(path, MAX_FILE_BYTES, "certificate file")
}

/// Parses DER that [`split_certificates`] already accepted.
pub fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, ParseError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| ParseError::Malformed {
            index: 1,
            reason: e.to_string(),
        })
}

/// PEM-encodes one DER certificate (64-column lines, LF).
pub fn to_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Upper-case hex without separators, as IoT Hub shows thumbprints.
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Lower-case hex without separators (serial numbers, key identifiers).
pub fn hex_lower(bytes: &[u8]) -> String {
    hex_upper(bytes).to_ascii_lowercase()
}

/// SHA-256 thumbprint, upper-case hex (IoT Hub's "SHA-256 thumbprint").
pub fn sha256_thumbprint(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// SHA-1 thumbprint, upper-case hex (IoT Hub's "primary thumbprint").
pub fn sha1_thumbprint(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

/// RFC 3339 in UTC, seconds precision (`2026-11-27T08:58:27Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The subject or issuer name as text (`CN=sensor-thl-002`).
pub fn name_string(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.to_string_with_registry(oid_registry())
        .unwrap_or_else(|_| "<unreadable name>".into())
}

/// Every CN in the subject, in order. A CN that is not a string is shown as `<non-string CN>`.
pub fn common_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject()
        .iter_common_name()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| "<non-string CN>".into())
        })
        .collect()
}

/// The single CN of a certificate, if it has exactly one.
pub fn single_cn(cert: &X509Certificate<'_>) -> Option<String> {
    let cns = common_names(cert);
    if cns.len() == 1 {
        cns.into_iter().next()
    } else {
        None
    }
}

/// The key algorithm and size, e.g. `ECDSA P-256` or `RSA 2048`.
pub fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    spki_algorithm(cert.public_key())
}

/// [`key_algorithm`] for a bare SubjectPublicKeyInfo (a CSR's, say).
pub fn spki_algorithm(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    let alg = &spki.algorithm;
    if alg.algorithm == oids::OID_PKCS1_RSAENCRYPTION {
        return format!("RSA {}", spki_rsa_bits(spki).unwrap_or(0));
    }
    if alg.algorithm == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| {
                if oid == oids::OID_EC_P256 {
                    "P-256".to_string()
                } else if oid == oids::OID_NIST_EC_P384 {
                    "P-384".to_string()
                } else if oid == oids::OID_NIST_EC_P521 {
                    "P-521".to_string()
                } else {
                    oid.to_id_string()
                }
            })
            .unwrap_or_else(|| "unknown curve".into());
        return format!("ECDSA {curve}");
    }
    if alg.algorithm == oids::OID_SIG_ED25519 {
        return "Ed25519".into();
    }
    alg.algorithm.to_id_string()
}

/// RSA modulus size in bits, or None when the key is not RSA.
pub fn rsa_bits(cert: &X509Certificate<'_>) -> Option<usize> {
    spki_rsa_bits(cert.public_key())
}

/// [`rsa_bits`] for a bare SubjectPublicKeyInfo.
pub fn spki_rsa_bits(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<usize> {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let m = rsa.modulus;
            let start = m.iter().position(|&b| b != 0)?;
            let m = &m[start..];
            Some(m.len() * 8 - m[0].leading_zeros() as usize)
        }
        _ => None,
    }
}

/// The certificate's subject key identifier, if present.
pub fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
}

/// The key identifier in the authority key identifier extension, if present.
pub fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
}

/// A certificate described for people and scripts (the `leaf` object of
/// `verify --json`, plus the `inspect --json` keys).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject name, `CN=...`.
    pub subject: String,
    /// The subject CN when there is exactly one, else null.
    pub cn: Option<String>,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// SHA-256 thumbprint, upper-case hex, no colons.
    pub sha256: String,
    /// SHA-1 thumbprint, upper-case hex, no colons.
    pub sha1: String,
}

impl CertSummary {
    /// Describes a parsed certificate; `der` must be its encoding.
    pub fn new(cert: &X509Certificate<'_>, der: &[u8]) -> Self {
        CertSummary {
            subject: name_string(cert.subject()),
            cn: single_cn(cert),
            serial: hex_lower(cert.raw_serial()),
            not_before: rfc3339(cert.validity().not_before.to_datetime()),
            not_after: rfc3339(cert.validity().not_after.to_datetime()),
            sha256: sha256_thumbprint(der),
            sha1: sha1_thumbprint(der),
        }
    }
}

/// Everything `inspect` shows about one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertDetails {
    /// The summary keys shared with `verify`.
    #[serde(flatten)]
    pub summary: CertSummary,
    /// Issuer name.
    pub issuer: String,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// basicConstraints pathLenConstraint.
    pub pathlen: Option<u32>,
    /// keyUsage bits by name (`digitalSignature`, `keyCertSign`...).
    pub key_usage: Vec<String>,
    /// extendedKeyUsage purposes by name (`clientAuth`...) or dotted OID.
    pub extended_key_usage: Vec<String>,
    /// `ECDSA P-256`, `RSA 4096`...
    pub key_algorithm: String,
    /// Signature algorithm (`ecdsa-with-SHA256`...).
    pub signature_algorithm: String,
    /// Subject key identifier, lower-case hex.
    pub subject_key_id: Option<String>,
    /// Authority key identifier, lower-case hex.
    pub authority_key_id: Option<String>,
    /// DNS and IP subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// Whole days from now until notAfter (negative once expired).
    pub days_left: i64,
    /// True when the issuer and subject names are equal.
    pub self_issued: bool,
}

impl CertDetails {
    /// Describes a parsed certificate at time `now`.
    pub fn new(cert: &X509Certificate<'_>, der: &[u8], now: OffsetDateTime) -> Self {
        let (is_ca, pathlen) = match cert.basic_constraints() {
            Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
            _ => (false, None),
        };
        let key_usage = match cert.key_usage() {
            Ok(Some(ku)) => key_usage_names(ku.value.flags),
            _ => Vec::new(),
        };
        let extended_key_usage = match cert.extended_key_usage() {
            Ok(Some(eku)) => eku_names(eku.value),
            _ => Vec::new(),
        };
        let subject_alt_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .map(|g| match g {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(ip) => format!("IP:{}", ip_string(ip)),
                    GeneralName::URI(u) => format!("URI:{u}"),
                    GeneralName::RFC822Name(m) => format!("email:{m}"),
                    other => format!("{other:?}"),
                })
                .collect(),
            _ => Vec::new(),
        };
        let not_after = cert.validity().not_after.to_datetime();
        CertDetails {
            summary: CertSummary::new(cert, der),
            issuer: name_string(cert.issuer()),
            is_ca,
            pathlen,
            key_usage,
            extended_key_usage,
            key_algorithm: key_algorithm(cert),
            signature_algorithm: signature_algorithm_name(cert),
            subject_key_id: subject_key_id(cert).map(hex_lower),
            authority_key_id: authority_key_id(cert).map(hex_lower),
            subject_alt_names,
            days_left: days_between(now, not_after),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        }
    }
}

/// Whole days from `now` to `then`, rounded toward negative infinity.
pub fn days_between(now: OffsetDateTime, then: OffsetDateTime) -> i64 {
    let secs = (then - now).whole_seconds();
    secs.div_euclid(86_400)
}

/// The signature algorithm's usual name.
pub fn signature_algorithm_name(cert: &X509Certificate<'_>) -> String {
    let oid = &cert.signature_algorithm.algorithm;
    oid_registry()
        .get(oid)
        .map(|e| e.sn().to_string())
        .unwrap_or_else(|| oid.to_id_string())
}

fn ip_string(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => hex_lower(bytes),
    }
}

const KEY_USAGE_NAMES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

fn key_usage_names(flags: u16) -> Vec<String> {
    KEY_USAGE_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn eku_names(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut v = Vec::new();
    for (set, name) in [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ] {
        if set {
            v.push(name.to_string());
        }
    }
    v.extend(eku.other.iter().map(|o| o.to_id_string()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rejects_garbage_with_reasons() {
        assert_eq!(split_certificates(b""), Err(ParseError::Empty));
        assert_eq!(split_certificates(b" \n"), Err(ParseError::Empty));
        assert_eq!(
            split_certificates(b"hello"),
            Err(ParseError::NotCertificate)
        );
        assert!(matches!(
            split_certificates(&[0x30, 0x82, 0xff, 0xff, 0]),
            Err(ParseError::Malformed { .. })
        ));
        let key = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            split_certificates(key.as_bytes()),
            Err(ParseError::PrivateKey(_))
        ));
        let bad = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(split_certificates(bad.as_bytes()).is_err());
    }

    #[test]
    fn thumbprints_are_upper_hex() {
        assert_eq!(hex_upper(&[0x0a, 0xff]), "0AFF");
        assert_eq!(
            sha1_thumbprint(b"abc"),
            "A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
    }

    #[test]
    fn days_round_down() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(days_between(now, now + time::Duration::hours(47)), 1);
        assert_eq!(days_between(now, now - time::Duration::hours(1)), -1);
    }
}
