//! `device sign`: device certificates for CSRs, the key staying on the
//! device. Same ID rules, refusals and `--force` archive as `device create`;
//! the certificate follows the device profile whatever the CSR asks for.
//! Signing runs on every core; files are written by one thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use time::OffsetDateTime;

use crate::csr::{self, Csr};
use crate::error::{Error, Result};
use crate::home::{self, FileKind, Home, LoadedCa, Report, Written, load_ca};
use crate::ids;
use crate::issue::{self, CertRequest};
use crate::keys::Secret;
use crate::profile::Profile;

/// CSRs signed before their files are written (bounds the memory held).
const BATCH: usize = 1024;

/// Options for `device sign`.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Signing CA name.
    pub ca: String,
    /// Validity in days; the profile's when None.
    pub days: Option<u32>,
    /// The device ID the (single) CSR's CN must equal.
    pub id: Option<String>,
    /// Accept CNs that are not DPS registration IDs (still safe file names).
    pub allow_any_cn: bool,
    /// Archive an existing device's files instead of refusing.
    pub force: bool,
    /// Decrypts the CA key.
    pub passphrase: Option<Secret>,
    /// The device profile.
    pub profile: Profile,
}

/// One signed device.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The device ID (the CSR's CN).
    pub id: String,
    /// The CSR file.
    pub csr: PathBuf,
    /// `certs/<id>.cert.pem`.
    pub cert: PathBuf,
    /// `certs/<id>-full-chain.cert.pem`.
    pub full_chain: PathBuf,
    /// The CSR's key (`ECDSA P-256`...).
    pub key_algorithm: String,
    /// What the CSR asked for that the certificate does not carry.
    pub dropped: Vec<String>,
}

/// What `device sign` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignReport {
    /// Files written, archive, warnings.
    #[serde(flatten)]
    pub report: Report,
    /// One entry a device.
    pub devices: Vec<Signed>,
}

/// Reads and verifies the CSRs named by `paths` (files, or directories of
/// `.csr`/`.pem`/`.der` files), on every core. The first bad CSR stops it,
/// before anything is written.
pub fn read_csrs(paths: &[PathBuf]) -> Result<Vec<Csr>> {
    let files = csr::collect(paths)?;
    files.par_iter().map(|f| csr::read_csr(f)).collect()
}

/// Checks the CSRs' CNs as `device create` checks IDs, naming the file at
/// fault: registration ID rules (or safe file names with `allow_any_cn`),
/// `--id`, and no two CSRs for one device.
fn check_ids(csrs: &[Csr], opts: &SignOptions) -> Result<()> {
    if csrs.is_empty() {
        return Err(Error::Invalid("no CSR given".into()));
    }
    if let Some(id) = &opts.id {
        if csrs.len() != 1 {
            return Err(Error::Invalid(format!(
                "--id names one device, but {} CSRs were given",
                csrs.len()
            )));
        }
        if csrs[0].cn != *id {
            return Err(Error::Invalid(format!(
                "{}: the CSR's CN '{}' is not the device ID '{id}' given with --id; nothing was written",
                csrs[0].source.display(),
                crate::text::escape(&csrs[0].cn)
            )));
        }
    }
    let mut seen: HashMap<String, &Path> = HashMap::with_capacity(csrs.len());
    for c in csrs {
        let checked = if opts.allow_any_cn {
            ids::check_file_name(&c.cn)
        } else {
            ids::check_x509_registration_id(&c.cn)
        };
        checked.map_err(|e| {
            Error::Invalid(format!(
                "{}: the CSR's CN cannot be a device ID: {e}{}; nothing was written",
                c.source.display(),
                if opts.allow_any_cn {
                    ""
                } else {
                    " (make a new CSR with a valid ID as CN, or pass --allow-any-cn)"
                }
            ))
        })?;
        if let Some(first) = seen.insert(c.cn.to_ascii_lowercase(), &c.source) {
            return Err(Error::Invalid(format!(
                "{} and {} both ask for device '{}' (DPS matches registration IDs case-insensitively); nothing was written",
                first.display(),
                c.source.display(),
                c.cn
            )));
        }
    }
    Ok(())
}

/// `device sign`: a certificate and a full-chain file for each CSR, signed
/// by `opts.ca`; no key is written. `progress` is called once per device.
pub fn sign_csrs(
    home: &Home,
    csrs: &[Csr],
    opts: &SignOptions,
    now: OffsetDateTime,
    progress: &(dyn Fn() + Sync),
) -> Result<SignReport> {
    check_ids(csrs, opts)?;
    let ca = load_ca(home, &opts.ca, opts.passphrase.as_ref(), now)?;
    let lock = home.lock()?;
    let mut out = SignReport::default();
    let mut existing = Vec::new();
    let mut to_archive: Vec<PathBuf> = Vec::new();
    for c in csrs {
        let f = home.device_files(&c.cn)?;
        if f.all().iter().any(|p| home::exists(p)) {
            if opts.force {
                to_archive.extend(f.all().iter().map(|p| p.to_path_buf()));
            } else {
                existing.push(c.cn.clone());
            }
        }
    }
    if !existing.is_empty() {
        let shown: Vec<&str> = existing.iter().take(10).map(String::as_str).collect();
        let more = if existing.len() > 10 {
            format!(" and {} more", existing.len() - 10)
        } else {
            String::new()
        };
        return Err(Error::Invalid(format!(
            "{} device(s) already exist in {}: {}{more}; nothing was written. Use --force to archive the old files (the old key too) and sign the CSR anew",
            existing.len(),
            home.root().display(),
            shown.join(", ")
        )));
    }
    home::devices::refuse_case_twins(home, csrs.iter().map(|c| c.cn.as_str()))?;
    if !to_archive.is_empty() {
        let refs: Vec<&Path> = to_archive.iter().map(PathBuf::as_path).collect();
        out.report.archived_to = lock.archive(&refs)?;
    }
    let mut first_err = None;
    for batch in csrs.chunks(BATCH) {
        let prepared: Vec<Result<(String, String, Vec<String>)>> = batch
            .par_iter()
            .map(|c| prepare(c, opts, &ca, now))
            .collect();
        for (c, p) in batch.iter().zip(prepared) {
            match p.and_then(|(cert_pem, chain_pem, warnings)| {
                let f = home.device_files(&c.cn)?;
                lock.write_new(&f.cert, cert_pem.as_bytes(), FileKind::Public, false)?;
                lock.write_new(&f.full_chain, chain_pem.as_bytes(), FileKind::Public, false)?;
                Ok((f, warnings))
            }) {
                Ok((f, warnings)) => {
                    out.report.written.push(Written {
                        what: "device certificate".into(),
                        path: f.cert.clone(),
                    });
                    out.report.written.push(Written {
                        what: "device full chain".into(),
                        path: f.full_chain.clone(),
                    });
                    out.report.warnings.extend(warnings);
                    out.devices.push(Signed {
                        id: c.cn.clone(),
                        csr: c.source.clone(),
                        cert: f.cert,
                        full_chain: f.full_chain,
                        key_algorithm: c.key_algorithm.clone(),
                        dropped: c.dropped.clone(),
                    });
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            progress();
        }
    }
    lock.sync_batch()?;
    out.report.warnings = summarise(dropped_warnings(&out.devices), &out.report.warnings);
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn prepare(
    c: &Csr,
    opts: &SignOptions,
    ca: &LoadedCa,
    now: OffsetDateTime,
) -> Result<(String, String, Vec<String>)> {
    let mut req = CertRequest::new(&c.cn, opts.profile.clone());
    req.days = opts.days;
    let issued = issue::sign_public_key(&req, &c.spki, &ca.signer, now)?;
    Ok((
        issued.pem(),
        ca.full_chain_pem(&issued.der),
        issued.warnings,
    ))
}

/// One warning a device whose CSR asked for more than the profile gives.
fn dropped_warnings(devices: &[Signed]) -> Vec<String> {
    devices
        .iter()
        .filter(|d| !d.dropped.is_empty())
        .map(|d| {
            format!(
                "{} ({}): not copied from the CSR, the certificate follows the device profile: {}",
                d.id,
                d.csr.display(),
                d.dropped.join(", ")
            )
        })
        .collect()
}

/// The first few warnings of each kind, then a count of the rest.
fn summarise(dropped: Vec<String>, other: &[String]) -> Vec<String> {
    const SHOWN: usize = 10;
    let mut out = Vec::new();
    for list in [dropped, other.to_vec()] {
        let n = list.len();
        out.extend(list.into_iter().take(SHOWN));
        if n > SHOWN {
            out.push(format!("... and {} more warnings like these", n - SHOWN));
        }
    }
    out
}
