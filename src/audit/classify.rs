//! What a certificate found by `audit` is (DESIGN section 7): a device, a
//! CA, or a proof-of-possession certificate; and the merging of files that
//! hold the same device leaf into one row.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::Row;

/// The file name `verification-cert` writes.
pub const VERIFICATION_FILE: &str = "verification-code.cert.pem";

/// What the caller knows beyond the scanned files: the group CAs and the
/// home's CAs, its verification certificates, and the devices it issued.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// SHA-256 thumbprints (upper-case hex) of certificates known to be CAs.
    pub ca_sha256: HashSet<String>,
    /// Raw subject names of the home's CAs.
    pub ca_subjects: HashSet<Vec<u8>>,
    /// SHA-256 thumbprints of the home's verification certificates.
    pub verification_sha256: HashSet<String>,
    /// Device IDs the home issued (`certs/<id>.cert.pem`).
    pub devices: HashSet<String>,
}

/// What the audit needs to know about a file's leaf to classify it.
#[derive(Debug, Clone)]
pub(super) struct LeafMeta {
    pub sha256: String,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub is_ca: bool,
    /// Issuer names of the file's certificates that are not self-issued.
    pub issuers: Vec<Vec<u8>>,
    /// A certificate after the first is not a CA: the file is a device's
    /// chain in the wrong order (a device row, whatever comes first).
    pub holds_leaf_later: bool,
}

/// Counts of certificates that are not devices.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct NotDevices {
    pub ca_certs: usize,
    pub verification_certs: usize,
}

/// True when `cn` has the shape of a DPS / IoT Hub verification code: at
/// least 16 hexadecimal digits and nothing else.
pub fn looks_like_verification_code(cn: &str) -> bool {
    cn.len() >= 16 && cn.len() <= 64 && cn.bytes().all(|b| b.is_ascii_hexdigit())
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// Merges rows holding the same leaf (first file's row kept, every file
/// listed in `files`), then drops the CA and proof-of-possession
/// certificates, counting them. Unreadable rows (no leaf) stay as they are.
pub(super) fn classify(
    found: Vec<(Row, Option<LeafMeta>)>,
    known: &Known,
) -> (Vec<Row>, NotDevices) {
    // How many files name each issuer. A file's first certificate is a CA
    // by this rule only when another file names it: a full chain in the
    // wrong order (intermediate first, then the leaf it issued) stays a
    // device row, with `leaf_is_ca`.
    let mut issuers: HashMap<&[u8], usize> = HashMap::new();
    for m in found.iter().filter_map(|(_, m)| m.as_ref()) {
        let names: HashSet<&[u8]> = m.issuers.iter().map(Vec::as_slice).collect();
        for n in names {
            *issuers.entry(n).or_default() += 1;
        }
    }
    let named_elsewhere = |m: &LeafMeta| {
        let own = usize::from(m.issuers.contains(&m.subject_raw));
        issuers.get(m.subject_raw.as_slice()).copied().unwrap_or(0) > own
    };
    let mut by_leaf: HashMap<&str, usize> = HashMap::new();
    let mut merged: Vec<(Row, Option<&LeafMeta>)> = Vec::new();
    for (row, meta) in &found {
        if let Some(m) = meta {
            if let Some(&i) = by_leaf.get(m.sha256.as_str()) {
                merged[i].0.files.push(row.path.clone());
                continue;
            }
            by_leaf.insert(&m.sha256, merged.len());
        }
        merged.push((row.clone(), meta.as_ref()));
    }
    drop(by_leaf);
    let mut counts = NotDevices::default();
    let mut rows = Vec::with_capacity(merged.len());
    for (row, meta) in merged {
        let Some(m) = meta else {
            rows.push(row);
            continue;
        };
        if !m.holds_leaf_later
            && (known.ca_sha256.contains(&m.sha256) || (m.is_ca && named_elsewhere(m)))
        {
            counts.ca_certs += 1;
        } else if is_verification(&row, m, known) {
            counts.verification_certs += 1;
        } else {
            rows.push(row);
        }
    }
    (rows, counts)
}

fn is_verification(row: &Row, m: &LeafMeta, known: &Known) -> bool {
    if m.is_ca {
        return false;
    }
    if known.verification_sha256.contains(&m.sha256)
        || row.files.iter().any(|f| file_name(f) == VERIFICATION_FILE)
    {
        return true;
    }
    row.cn.as_deref().is_some_and(|cn| {
        looks_like_verification_code(cn)
            && known.ca_subjects.contains(&m.issuer_raw)
            && !known.devices.contains(cn)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_codes_are_long_hex() {
        assert!(looks_like_verification_code("1A2B3C4D5E6F7081"));
        assert!(!looks_like_verification_code("sensor-thl-001"));
        assert!(!looks_like_verification_code("1A2B3C4D"));
    }
}
