//! PKCS#10 certificate signing requests (RFC 2986): reading them (PEM or
//! DER, one file, several, or a directory), checking their own signature,
//! and saying what they ask for that a device certificate will not carry.
//!
//! A CSR is the way in for a device whose key never leaves it (a secure
//! element, a TPM): iotca certifies the CSR's public key and nothing else
//! from it. The subject is reduced to its CN (the device ID), and requested
//! extensions (basicConstraints CA:TRUE, subjectAltName, keyUsage...) are
//! not copied: the certificate follows the device profile. [`Csr::dropped`]
//! names what was asked for and left out, for a warning.

use std::path::{Path, PathBuf};

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{self, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::cert;
use crate::error::{Error, Result};

/// File extensions a directory's CSRs may have.
pub const CSR_EXTENSIONS: [&str; 3] = ["csr", "pem", "der"];

/// Smallest RSA modulus accepted in a CSR.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted in a CSR (what ring verifies).
pub const MAX_RSA_BITS: usize = 8192;

/// A CSR that parsed and whose signature verified.
#[derive(Debug, Clone)]
pub struct Csr {
    /// The file it came from.
    pub source: PathBuf,
    /// The subject's single CN: the device ID it asks for.
    pub cn: String,
    /// The SubjectPublicKeyInfo, DER, exactly as the CSR holds it.
    pub spki: Vec<u8>,
    /// `ECDSA P-256`, `ECDSA P-384`, `RSA 2048`...
    pub key_algorithm: String,
    /// What the CSR asks for that the certificate will not carry (subject
    /// attributes other than the CN, requested extensions), in words.
    pub dropped: Vec<String>,
}

impl Csr {
    /// True when the key is RSA (the device profile adds keyEncipherment).
    pub fn is_rsa(&self) -> bool {
        self.key_algorithm.starts_with("RSA")
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadCertificate {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads one CSR file: PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE
/// REQUEST`) or DER, at most 1 MiB; its signature must verify.
pub fn read_csr(path: &Path) -> Result<Csr> {
    let bytes = crate::home::read_bounded(path, crate::home::MAX_INPUT_BYTES, "CSR file")?;
    let der = csr_der(path, &bytes)?;
    parse_csr(path, &der)
}

/// The DER of the CSR in `bytes` (PEM or DER).
fn csr_der(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let blocks = pem::parse_many(bytes)
        .map_err(|e| bad(path, format!("is neither a PEM nor a DER CSR ({e})")))?;
    let mut csrs = blocks
        .iter()
        .filter(|b| matches!(b.tag(), "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"));
    match (csrs.next(), csrs.next()) {
        (Some(one), None) => Ok(one.contents().to_vec()),
        (Some(_), Some(_)) => Err(bad(
            path,
            "holds more than one CSR; give one CSR a file (or a directory of them)",
        )),
        (None, _) => {
            let found = blocks.first().map(|b| b.tag().to_string());
            Err(bad(
                path,
                match found {
                    Some(tag) => format!(
                        "holds a PEM '{tag}' block, not a CERTIFICATE REQUEST (make one with `openssl req -new -key KEY -subj /CN=ID -out ID.csr`)"
                    ),
                    None => "holds no PEM block and is not DER: not a CSR".to_string(),
                },
            ))
        }
    }
}

/// True when `bytes` look like a CSR (used to pick the CSRs of a
/// directory: a `.pem` certificate next to them is not one).
fn looks_like_csr(bytes: &[u8]) -> bool {
    if bytes.first() == Some(&0x30) {
        return X509CertificationRequest::from_der(bytes).is_ok();
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    text.contains("-----BEGIN CERTIFICATE REQUEST-----")
        || text.contains("-----BEGIN NEW CERTIFICATE REQUEST-----")
}

/// The CSR files named by `paths`: files as given, and in directories
/// (not recursing) the `.csr`, `.pem` and `.der` files that hold a CSR,
/// sorted by name. Empty directories are an error.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| Error::io(p, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|f| {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.')
                    && f.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| CSR_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
                    && f.is_file()
            })
            .filter(|f| {
                crate::home::read_bounded(f, crate::home::MAX_INPUT_BYTES, "CSR file")
                    .map(|b| looks_like_csr(&b))
                    .unwrap_or(true) // an unreadable file is reported when it is read
            })
            .collect();
        if found.is_empty() {
            return Err(Error::Invalid(format!(
                "{} holds no CSR (.csr, .pem or .der files with a CERTIFICATE REQUEST)",
                p.display()
            )));
        }
        found.sort();
        out.append(&mut found);
    }
    Ok(out)
}

/// Parses a CSR's DER, checks its signature with its own public key, the
/// key's algorithm and size, and its subject's CN.
pub fn parse_csr(path: &Path, der: &[u8]) -> Result<Csr> {
    let (rest, req) = X509CertificationRequest::from_der(der)
        .map_err(|e| bad(path, format!("is not a PKCS#10 CSR ({e})")))?;
    if !rest.is_empty() {
        return Err(bad(path, format!("has {} bytes after the CSR", rest.len())));
    }
    let info = &req.certification_request_info;
    let spki = &info.subject_pki;
    let key_algorithm = cert::spki_algorithm(spki);
    check_key(path, spki, &key_algorithm)?;
    let sig = &req.signature_algorithm.algorithm;
    if *sig == oid_registry::OID_PKCS1_SHA1WITHRSA || *sig == oid_registry::OID_SHA1_WITH_RSA {
        return Err(bad(
            path,
            "is signed with SHA-1, which iotca does not accept; make the CSR with SHA-256 (openssl req -sha256)",
        ));
    }
    req.verify_signature().map_err(|e| {
        bad(
            path,
            match e {
                x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => format!(
                    "is signed with an unsupported algorithm ({})",
                    sig.to_id_string()
                ),
                _ => "has a signature that does not verify with its own public key: the CSR was altered or corrupted".to_string(),
            },
        )
    })?;
    let mut dropped = Vec::new();
    let mut cns = Vec::new();
    for attr in info.subject.iter_attributes() {
        let value = attr
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|_| "(not a string)".into());
        if *attr.attr_type() == oid_registry::OID_X509_COMMON_NAME {
            cns.push(value);
        } else {
            dropped.push(format!(
                "subject {}={}",
                oid_name(attr.attr_type()),
                crate::text::escape(&value)
            ));
        }
    }
    let cn = match cns.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(bad(
                path,
                "the CSR's subject has no CN; the CN is the device ID (openssl req -subj /CN=ID)",
            ));
        }
        _ => {
            return Err(bad(
                path,
                "the CSR's subject has more than one CN; a device certificate has exactly one (the device ID)",
            ));
        }
    };
    if let Some(exts) = requested_extensions(&req) {
        dropped.extend(exts);
    }
    Ok(Csr {
        source: path.to_path_buf(),
        cn,
        spki: spki.raw.to_vec(),
        key_algorithm,
        dropped,
    })
}

fn check_key(path: &Path, spki: &SubjectPublicKeyInfo<'_>, name: &str) -> Result<()> {
    let ok = match name {
        "ECDSA P-256" | "ECDSA P-384" => true,
        _ if name.starts_with("RSA ") => {
            let bits = cert::spki_rsa_bits(spki).unwrap_or(0);
            (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad(
            path,
            format!(
                "has a {name} key; a device key must be ECDSA P-256, ECDSA P-384 or RSA {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
            ),
        ))
    }
}

fn oid_name(oid: &Oid<'_>) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_string)
        .unwrap_or_else(|_| oid.to_id_string())
}

/// The requested extensions, described (`basicConstraints CA:TRUE`,
/// `subjectAltName DNS:a, DNS:b`...).
fn requested_extensions(req: &X509CertificationRequest<'_>) -> Option<Vec<String>> {
    use x509_parser::cri_attributes::ParsedCriAttribute;
    let attrs = req.certification_request_info.iter_attributes();
    let mut out = Vec::new();
    for attr in attrs {
        match attr.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(r) => {
                for ext in &r.extensions {
                    out.push(describe_extension(ext));
                }
            }
            ParsedCriAttribute::ChallengePassword(_) => {
                out.push("challengePassword attribute".into());
            }
            _ => out.push(format!("attribute {}", oid_name(&attr.oid))),
        }
    }
    Some(out)
}

fn describe_extension(ext: &x509_parser::extensions::X509Extension<'_>) -> String {
    let name = oid_name(&ext.oid);
    let detail = match ext.parsed_extension() {
        ParsedExtension::BasicConstraints(bc) => {
            if bc.ca {
                match bc.path_len_constraint {
                    Some(n) => format!("CA:TRUE, pathlen:{n}"),
                    None => "CA:TRUE".into(),
                }
            } else {
                "CA:FALSE".into()
            }
        }
        ParsedExtension::SubjectAlternativeName(san) => san
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{}", crate::text::escape(d)),
                GeneralName::RFC822Name(d) => format!("email:{}", crate::text::escape(d)),
                GeneralName::URI(d) => format!("URI:{}", crate::text::escape(d)),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        format!("IP:{}", std::net::Ipv6Addr::from(a))
                    }
                    _ => "IP:(malformed)".into(),
                },
                other => format!("{other:?}").chars().take(40).collect(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        ParsedExtension::KeyUsage(ku) => ku.to_string(),
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let mut v = Vec::new();
            if eku.server_auth {
                v.push("serverAuth".to_string());
            }
            if eku.client_auth {
                v.push("clientAuth".to_string());
            }
            if eku.code_signing {
                v.push("codeSigning".to_string());
            }
            if eku.email_protection {
                v.push("emailProtection".to_string());
            }
            if eku.any {
                v.push("anyExtendedKeyUsage".to_string());
            }
            v.extend(eku.other.iter().map(oid_name));
            v.join(", ")
        }
        _ => String::new(),
    };
    let critical = if ext.critical { " (critical)" } else { "" };
    if detail.is_empty() {
        format!("{name}{critical}")
    } else {
        format!("{name} {detail}{critical}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn csr_pem(params: &CertificateParams, key: &KeyPair) -> String {
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    fn params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p
    }

    #[test]
    fn a_plain_csr_reads_and_its_key_is_kept_byte_for_byte() {
        use rcgen::PublicKeyData;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let pem = csr_pem(&params("sensor-1"), &key);
        let der = pem::parse(&pem).unwrap().into_contents();
        let c = parse_csr(Path::new("x.csr"), &der).unwrap();
        assert_eq!(c.cn, "sensor-1");
        assert_eq!(c.key_algorithm, "ECDSA P-384");
        assert_eq!(c.spki, key.subject_public_key_info());
        assert!(c.dropped.is_empty(), "{:?}", c.dropped);
        assert_eq!(
            csr_der(Path::new("x"), pem.as_bytes()).unwrap(),
            csr_der(Path::new("x"), &der).unwrap()
        );
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let key = KeyPair::generate().unwrap();
        let pem = csr_pem(&params("sensor-abc"), &key);
        let mut der = pem::parse(&pem).unwrap().into_contents();
        let at = der.windows(10).position(|w| w == b"sensor-abc").unwrap();
        der[at + 7] = b'x';
        let e = parse_csr(Path::new("t.csr"), &der).unwrap_err().to_string();
        assert!(e.contains("t.csr") && e.contains("does not verify"), "{e}");
    }

    #[test]
    fn requested_extensions_and_subject_attributes_are_named() {
        let key = KeyPair::generate().unwrap();
        let mut p = params("dev-9");
        p.distinguished_name
            .push(DnType::OrganizationName, "Contoso");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.subject_alt_names = vec![rcgen::SanType::DnsName("evil.example".try_into().unwrap())];
        let der = pem::parse(csr_pem(&p, &key)).unwrap().into_contents();
        let c = parse_csr(Path::new("e.csr"), &der).unwrap();
        let all = c.dropped.join("; ");
        assert!(all.contains("subject organizationName=Contoso"), "{all}");
        assert!(all.contains("basicConstraints CA:TRUE"), "{all}");
        assert!(all.contains("subjectAltName DNS:evil.example"), "{all}");
    }

    #[test]
    fn no_cn_ed25519_and_garbage_are_refused_in_words() {
        let key = KeyPair::generate().unwrap();
        let mut p = params("x");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::OrganizationName, "NoCn");
        let der = pem::parse(csr_pem(&p, &key)).unwrap().into_contents();
        let e = parse_csr(Path::new("n.csr"), &der).unwrap_err().to_string();
        assert!(e.contains("no CN"), "{e}");
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let der = pem::parse(csr_pem(&params("d"), &ed))
            .unwrap()
            .into_contents();
        let e = parse_csr(Path::new("ed.csr"), &der)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Ed25519") && e.contains("P-256"), "{e}");
        let e = csr_der(Path::new("g"), b"hello").unwrap_err().to_string();
        assert!(e.contains("not a CSR") || e.contains("neither"), "{e}");
        let e = parse_csr(Path::new("g"), &[0x30, 0x03, 1, 2, 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a PKCS#10 CSR"), "{e}");
        let cert_pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let e = csr_der(Path::new("c.pem"), cert_pem.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a CERTIFICATE REQUEST"), "{e}");
    }
}
