//! `device create --pfx --skip-existing`: the PFX an existing device lacks,
//! built from its own key, certificate and full chain (nothing re-issued).

use super::ca::load_key;
use super::devices::PfxOptions;
use super::{DeviceFiles, FileKind, Locked};
use crate::cert;
use crate::error::{Error, Result};

/// Writes `files.pfx` for device `id` from the files it already has; the
/// chain is the device's full-chain file after its leaf (else `chain`).
pub(super) fn write_missing(
    lock: &Locked<'_>,
    files: &DeviceFiles,
    id: &str,
    opts: &PfxOptions,
    chain: &[Vec<u8>],
) -> Result<()> {
    let key = load_key(&files.key, None)?;
    let leaf = cert::read_certificates(&files.cert)?;
    let full: Vec<Vec<u8>> = cert::read_certificates(&files.full_chain)
        .ok()
        .filter(|c| c.first() == leaf.first())
        .map(|c| c.into_iter().skip(1).collect())
        .unwrap_or_else(|| chain.to_vec());
    let enc = if opts.legacy {
        crate::pfx::PfxEncryption::Legacy
    } else {
        crate::pfx::PfxEncryption::Modern
    };
    let der = crate::pfx::build_pfx(
        key.pkcs8_der(),
        &leaf[0],
        &full,
        opts.password.expose(),
        id,
        enc,
    )
    .map_err(|e| Error::Issue {
        subject: id.into(),
        reason: e.to_string(),
    })?;
    let der = zeroize::Zeroizing::new(der);
    lock.write_new(&files.pfx, &der, FileKind::Secret, false)
}
