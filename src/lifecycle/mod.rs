//! Certificate lifecycle (DESIGN section 13): signing CSRs for keys that
//! never leave the device ([`sign`]), renewing devices with the same key or
//! a new one ([`renew`]), and rolling a CA over to a successor while an
//! enrollment group holds both ([`rollover`]).
//!
//! Helpers shared by the three: the home's CAs by name, the CA that issued
//! a certificate, and the home's devices.

use std::path::PathBuf;

use crate::cert;
use crate::error::{Error, Result};
use crate::home::{self, Home};
use crate::keys::KeyAlgorithm;

pub mod renew;
pub mod rollover;
pub mod sign;

/// A CA of the home: its name (as `--ca` takes it) and its certificate.
#[derive(Debug, Clone)]
pub struct HomeCa {
    /// `root`, `intermediate`, or a `ca intermediate` NAME.
    pub name: String,
    /// The certificate file.
    pub file: PathBuf,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// The CAs of a home that can sign (certificate and key present), root and
/// default intermediate first, then the others by name.
pub fn home_cas(home: &Home) -> Result<Vec<HomeCa>> {
    let mut out = Vec::new();
    let mut push = |name: &str| -> Result<()> {
        let files = home.ca_files(name)?;
        if !home::exists(&files.cert) || !home::exists(&files.key) {
            return Ok(());
        }
        let Ok(ders) = cert::read_certificates(&files.cert) else {
            return Ok(());
        };
        let is_ca = cert::parse_der(&ders[0])
            .is_ok_and(|c| matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca));
        if is_ca {
            out.push(HomeCa {
                name: name.to_string(),
                file: files.cert,
                der: ders[0].clone(),
            });
        }
        Ok(())
    };
    push("root")?;
    push("intermediate")?;
    let dir = home.path("certs");
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|n| n.strip_suffix(".cert.pem").map(str::to_string))
            .filter(|n| {
                !n.ends_with("-full-chain")
                    && !n.ends_with(".chain")
                    && !n.starts_with("azure-iot-test-only.")
                    && crate::ids::check_ca_name(n).is_ok()
                    && home::exists(&home.path(format!("private/{n}.key.pem")))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    names.sort();
    for n in names {
        push(&n)?;
    }
    Ok(out)
}

/// The CA of `cas` that issued `der`: same name as its issuer, matching key
/// identifiers, and a signature that verifies with the CA's key.
pub fn issuer_of<'a>(cas: &'a [HomeCa], der: &[u8]) -> Option<&'a HomeCa> {
    let c = cert::parse_der(der).ok()?;
    cas.iter().find(|ca| {
        let Ok(p) = cert::parse_der(&ca.der) else {
            return false;
        };
        ca.der != der
            && p.subject().as_raw() == c.issuer().as_raw()
            && match (cert::authority_key_id(&c), cert::subject_key_id(&p)) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
            && c.verify_signature(Some(p.public_key())).is_ok()
    })
}

/// The home's devices: IDs with both `certs/<id>.cert.pem` and
/// `certs/<id>-full-chain.cert.pem`, sorted.
pub fn home_devices(home: &Home) -> Result<Vec<String>> {
    let dir = home.path("certs");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| n.strip_suffix("-full-chain.cert.pem").map(str::to_string))
        .filter(|id| {
            crate::ids::check_file_name(id).is_ok()
                && home::exists(&home.path(format!("certs/{id}.cert.pem")))
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// The key algorithm of a certificate, as `--algorithm` names it, when it
/// is one iotca makes.
pub fn algorithm_of(der: &[u8]) -> Option<KeyAlgorithm> {
    let c = cert::parse_der(der).ok()?;
    match cert::key_algorithm(&c).as_str() {
        "ECDSA P-256" => Some(KeyAlgorithm::P256),
        "ECDSA P-384" => Some(KeyAlgorithm::P384),
        "RSA 2048" => Some(KeyAlgorithm::Rsa2048),
        "RSA 3072" => Some(KeyAlgorithm::Rsa3072),
        "RSA 4096" => Some(KeyAlgorithm::Rsa4096),
        _ => None,
    }
}
