//! What a home holds: its CAs as a tree, and the device certificates under
//! each (for `ca list`). Works on certGen.sh directories too.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::cert;
use crate::error::{Error, Result};
use crate::home::{self, Home};

/// One certificate found in `certs/`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The CA name (`root`, `intermediate`, NAME) or the device ID / file stem.
    pub name: String,
    /// Subject, `CN=...`.
    pub subject: String,
    /// The certificate file.
    pub file: PathBuf,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Days until notAfter (negative once expired).
    pub days_left: i64,
    /// `ECDSA P-256`, `RSA 4096`...
    pub key_algorithm: String,
    /// Whether the key file is present (CAs: can it sign?).
    pub has_key: bool,
}

/// A CA and what it signed.
#[derive(Debug, Clone, Serialize)]
pub struct CaNode {
    /// The CA itself.
    #[serde(flatten)]
    pub ca: Entry,
    /// The CA name of its issuer, None for a root (or an issuer not in the home).
    pub parent: Option<String>,
    /// CAs it signed.
    pub children: Vec<CaNode>,
    /// Device (leaf) certificates it signed.
    pub devices: Vec<Entry>,
}

/// The whole home.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// The home directory.
    pub home: PathBuf,
    /// Top-level CAs (roots, and CAs whose issuer is not in the home).
    pub cas: Vec<CaNode>,
    /// Leaf certificates whose issuer is not in the home.
    pub orphans: Vec<Entry>,
    /// Proof-of-possession certificates (`certs/verification-code.cert.pem`):
    /// not devices.
    pub verification_certs: Vec<Entry>,
}

impl CaNode {
    /// Devices this CA signed, directly or through the CAs under it.
    pub fn device_count(&self) -> usize {
        self.devices.len()
            + self
                .children
                .iter()
                .map(CaNode::device_count)
                .sum::<usize>()
    }
}

/// The file `verification-cert` writes.
const VERIFICATION_FILE: &str = "verification-code.cert.pem";

struct Found {
    entry: Entry,
    is_ca: bool,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
}

fn ca_name_for(file_name: &str) -> String {
    match file_name {
        "azure-iot-test-only.root.ca.cert.pem" => "root".into(),
        "azure-iot-test-only.intermediate.cert.pem" => "intermediate".into(),
        other => other
            .trim_end_matches(".cert.pem")
            .trim_end_matches(".pem")
            .into(),
    }
}

fn key_for(home: &Home, name: &str) -> PathBuf {
    match name {
        "root" => home.path(home::ROOT_KEY),
        "intermediate" => home.path(home::INTERMEDIATE_KEY),
        other => home.path(format!("private/{other}.key.pem")),
    }
}

/// Scans `certs/` (chain files excluded) and builds the tree.
pub fn scan(home: &Home, now: OffsetDateTime) -> Result<Inventory> {
    let dir = home.path("certs");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Inventory {
                home: home.root().to_path_buf(),
                cas: Vec::new(),
                orphans: Vec::new(),
                verification_certs: Vec::new(),
            });
        }
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut found: Vec<Found> = Vec::new();
    let mut verification_certs = Vec::new();
    // The same certificate under two names (certGen.sh's copy of an edge
    // CA beside iotca's) is one CA: the first name (sorted) is kept.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut names: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_single_cert_file(p))
        .collect();
    names.sort();
    for path in names {
        let Ok(ders) = cert::read_certificates(&path) else {
            continue;
        };
        let der = &ders[0];
        let Ok(c) = cert::parse_der(der) else {
            continue;
        };
        if !seen.insert(cert::sha256_thumbprint(der)) {
            continue;
        }
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let is_ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        let name = if is_ca {
            ca_name_for(&file_name)
        } else {
            file_name
                .trim_end_matches(".cert.pem")
                .trim_end_matches(".pem")
                .to_string()
        };
        let has_key = if is_ca {
            home::exists(&key_for(home, &name))
        } else {
            home::exists(&home.path(format!("private/{name}.key.pem")))
        };
        let not_after = c.validity().not_after.to_datetime();
        if !is_ca && file_name == VERIFICATION_FILE {
            verification_certs.push(Entry {
                name,
                subject: cert::name_string(c.subject()),
                file: path.clone(),
                not_after: cert::rfc3339(not_after),
                days_left: cert::days_between(now, not_after),
                key_algorithm: cert::key_algorithm(&c),
                has_key,
            });
            continue;
        }
        found.push(Found {
            entry: Entry {
                name,
                subject: cert::name_string(c.subject()),
                file: path.clone(),
                not_after: cert::rfc3339(not_after),
                days_left: cert::days_between(now, not_after),
                key_algorithm: cert::key_algorithm(&c),
                has_key,
            },
            is_ca,
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            ski: cert::subject_key_id(&c).map(<[u8]>::to_vec),
            aki: cert::authority_key_id(&c).map(<[u8]>::to_vec),
        });
    }
    let issuer_of = |f: &Found| -> Option<usize> {
        found.iter().position(|ca| {
            ca.is_ca
                && !std::ptr::eq(ca, f)
                && ca.subject_raw == f.issuer_raw
                && match (&f.aki, &ca.ski) {
                    (Some(a), Some(s)) => a == s,
                    _ => true,
                }
        })
    };
    let parents: Vec<Option<usize>> = found.iter().map(issuer_of).collect();
    fn build(i: usize, found: &[Found], parents: &[Option<usize>], depth: usize) -> CaNode {
        let mut children = Vec::new();
        let mut devices = Vec::new();
        for (j, p) in parents.iter().enumerate() {
            if *p != Some(i) || j == i {
                continue;
            }
            if found[j].is_ca {
                if depth < 16 {
                    children.push(build(j, found, parents, depth + 1));
                }
            } else {
                devices.push(found[j].entry.clone());
            }
        }
        CaNode {
            ca: found[i].entry.clone(),
            parent: parents[i].map(|p| found[p].entry.name.clone()),
            children,
            devices,
        }
    }
    let mut cas = Vec::new();
    let mut orphans = Vec::new();
    for (i, f) in found.iter().enumerate() {
        if parents[i].is_some() {
            continue;
        }
        if f.is_ca {
            cas.push(build(i, &found, &parents, 0));
        } else {
            orphans.push(f.entry.clone());
        }
    }
    Ok(Inventory {
        home: home.root().to_path_buf(),
        cas,
        orphans,
        verification_certs,
    })
}

/// Certificate files that hold one certificate of their own: not chain or
/// full-chain bundles, not PFX.
fn is_single_cert_file(p: &Path) -> bool {
    let Some(n) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    (n.ends_with(".cert.pem") || n.ends_with(".crt") || n.ends_with(".cer"))
        && !n.ends_with("-full-chain.cert.pem")
        && !n.ends_with(".chain.cert.pem")
        && !n.ends_with(".chain.ca.cert.pem")
        && !n.starts_with('.')
}
