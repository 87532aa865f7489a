//! What `audit` knows beyond the scanned files: the group CAs, and the
//! home's CAs, verification certificates and devices (DESIGN section 7).

use std::path::Path;

use iotca::audit::{Known, VERIFICATION_FILE};
use iotca::cert;

/// The group CAs' thumbprints (those that are CAs), plus what the home's `certs/` holds (when
/// `home` has one): its CAs, its verification certificate, its devices.
pub fn known(group_cas: &[Vec<u8>], home: &Path) -> Known {
    let mut k = Known::default();
    // A --ca that is no CA certificate (a mistake the verdicts report)
    // does not hide the device it is.
    for der in group_cas {
        if cert::parse_der(der)
            .is_ok_and(|c| matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca))
        {
            k.ca_sha256.insert(cert::sha256_thumbprint(der));
        }
    }
    let Ok(rd) = std::fs::read_dir(home.join("certs")) else {
        return k;
    };
    for entry in rd.filter_map(Result::ok) {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".cert.pem") || name.ends_with("-full-chain.cert.pem") {
            continue;
        }
        let Ok(ders) = cert::read_certificates(&path) else {
            continue;
        };
        for (i, der) in ders.iter().enumerate() {
            let Ok(c) = cert::parse_der(der) else {
                continue;
            };
            let is_ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
            if is_ca {
                k.ca_sha256.insert(cert::sha256_thumbprint(der));
                k.ca_subjects.insert(c.subject().as_raw().to_vec());
            } else if i == 0 && name == VERIFICATION_FILE {
                k.verification_sha256.insert(cert::sha256_thumbprint(der));
            } else if i == 0 {
                k.devices
                    .insert(name.trim_end_matches(".cert.pem").to_string());
            }
        }
    }
    k
}
