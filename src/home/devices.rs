//! Issuing into a home: `device create` (on every core, files written by
//! one thread) and `verification-cert`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use time::OffsetDateTime;

use super::ca::{LoadedCa, Report, Written, key_error, load_ca, load_key};
use super::{self as home, DeviceFiles, FileKind, Home, Locked};
use crate::cert;
use crate::error::{Error, Result};
use crate::ids;
use crate::issue::{self, CertRequest};
use crate::keys::{KeyAlgorithm, PrivateKey, Secret};
use crate::profile::Profile;

/// Devices signed ahead of the writer thread (bounds the memory held).
const WRITE_BATCH: usize = 512;

/// What to do about devices whose files already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse before writing anything, naming them.
    Refuse,
    /// Leave complete devices alone; finish half-written ones (resume).
    Skip,
    /// Archive their files and issue anew.
    Archive,
}

/// PKCS#12 options for `device create --pfx`.
#[derive(Debug, Clone)]
pub struct PfxOptions {
    /// The PFX password.
    pub password: Secret,
    /// Use legacy PBE-SHA1-3DES encryption.
    pub legacy: bool,
}

/// Options for `device create`.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// Device IDs (the subject CNs).
    pub ids: Vec<String>,
    /// Signing CA name.
    pub ca: String,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Validity in days; the profile's when None.
    pub days: Option<u32>,
    /// Existing-device policy.
    pub existing: Existing,
    /// Accept IDs that are not DPS registration IDs (still safe file names).
    pub allow_any_cn: bool,
    /// Decrypts the CA key.
    pub passphrase: Option<Secret>,
    /// Write a PFX too.
    pub pfx: Option<PfxOptions>,
    /// The profile.
    pub profile: Profile,
}

/// Checks a list of device IDs before anything is written.
pub fn check_device_ids(ids: &[String], allow_any_cn: bool) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::NoIds);
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        if allow_any_cn {
            ids::check_file_name(id)?;
        } else {
            ids::check_x509_registration_id(id)?;
        }
        if !seen.insert(id.to_ascii_lowercase()) {
            return Err(Error::DuplicateId { id: id.clone() });
        }
    }
    Ok(())
}

/// `device create`: issues a key, a certificate and a full-chain file for
/// every ID, spread over all cores; `progress` is called once per device.
pub fn create_devices(
    home: &Home,
    opts: &DeviceOptions,
    now: OffsetDateTime,
    progress: &(dyn Fn() + Sync),
) -> Result<Report> {
    check_device_ids(&opts.ids, opts.allow_any_cn)?;
    let ca = load_ca(home, &opts.ca, opts.passphrase.as_ref(), now)?;
    let lock = home.lock()?;
    let mut report = Report::default();
    let mut todo: Vec<(String, Option<PrivateKey>)> = Vec::with_capacity(opts.ids.len());
    let mut existing: Vec<String> = Vec::new();
    let mut to_archive: Vec<PathBuf> = Vec::new();
    for id in &opts.ids {
        let f = home.device_files(id)?;
        let any = f.all().iter().any(|p| home::exists(p));
        if !any {
            todo.push((id.clone(), None));
            continue;
        }
        match opts.existing {
            Existing::Refuse => existing.push(id.clone()),
            Existing::Archive => {
                to_archive.extend(f.all().iter().map(|p| p.to_path_buf()));
                todo.push((id.clone(), None));
            }
            Existing::Skip => {
                let has_key = home::exists(&f.key);
                let has_cert = home::exists(&f.cert);
                if has_key && has_cert {
                    if !home::exists(&f.full_chain) {
                        let leaf = cert::read_certificates(&f.cert)?;
                        lock.write_new(
                            &f.full_chain,
                            ca.full_chain_pem(&leaf[0]).as_bytes(),
                            FileKind::Public,
                            false,
                        )?;
                        report.wrote("device full chain (resumed)", &f.full_chain);
                    }
                    if let Some(p) = &opts.pfx
                        && !home::exists(&f.pfx)
                    {
                        super::devices_pfx::write_missing(&lock, &f, id, p, &ca.chain)?;
                        report.wrote("device PFX (was missing)", &f.pfx);
                    }
                    report.skipped.push(id.clone());
                } else if has_key {
                    // A run killed between key and certificate: finish it with the same key.
                    todo.push((id.clone(), Some(load_key(&f.key, None)?)));
                } else {
                    existing.push(id.clone());
                }
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
        return Err(Error::DevicesExist {
            count: existing.len(),
            home: home.root().to_path_buf(),
            shown: format!("{}{more}", shown.join(", ")),
        });
    }
    refuse_case_twins(home, todo.iter().map(|(id, _)| id.as_str()))?;
    if !to_archive.is_empty() {
        let refs: Vec<&Path> = to_archive.iter().map(PathBuf::as_path).collect();
        report.archived_to = lock.archive(&refs)?;
    }
    // Signing runs on every core, a batch at a time; the files are written
    // by one thread while the next batch is signed: renames into one
    // directory from several threads only contend for its lock.
    let prepare = |batch: Vec<(String, Option<PrivateKey>)>| -> Vec<Result<Prepared>> {
        batch
            .into_par_iter()
            .map(|(id, key)| prepare_one(home, opts, &ca, &id, key, now))
            .collect()
    };
    let mut todo = todo.into_iter();
    let mut next_batch = || todo.by_ref().take(WRITE_BATCH).collect::<Vec<_>>();
    let mut first_err = None;
    let mut ready = prepare(next_batch());
    while !ready.is_empty() {
        let batch = next_batch();
        let (next, ()) = rayon::join(
            || prepare(batch),
            || {
                for r in ready.drain(..) {
                    match r.and_then(|p| write_one(&lock, p)) {
                        Ok((w, warn)) => {
                            report.written.extend(w);
                            report.warnings.extend(warn);
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                    progress();
                }
            },
        );
        ready = next;
    }
    lock.sync_batch()?;
    dedupe_warnings(&mut report.warnings);
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Refuses new devices whose ID differs only in letter case from a device
/// already in the home: DPS matches registration IDs case-insensitively, so
/// the two certificates would compete for one registration.
pub(crate) fn refuse_case_twins<'a>(
    home: &Home,
    todo: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let dir = home.path("certs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut existing: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".cert.pem")
            && !stem.ends_with("-full-chain")
        {
            existing.insert(stem.to_ascii_lowercase(), stem.to_string());
        }
    }
    for id in todo {
        if let Some(other) = existing.get(&id.to_ascii_lowercase())
            && other != id
        {
            return Err(Error::CaseTwin {
                id: id.to_string(),
                other: other.clone(),
            });
        }
    }
    Ok(())
}

fn dedupe_warnings(w: &mut Vec<String>) {
    let n = w.len();
    if n > 3 {
        let first = w[0].clone();
        w.clear();
        w.push(format!("{first} (and {} more like it)", n - 1));
    }
}

/// One device, signed and encoded, ready to be written.
struct Prepared {
    files: DeviceFiles,
    /// The new key's PEM; None when resuming with a key already on disk.
    key_pem: Option<zeroize::Zeroizing<String>>,
    cert_pem: String,
    full_chain_pem: String,
    pfx: Option<zeroize::Zeroizing<Vec<u8>>>,
    warnings: Vec<String>,
}

/// The CPU part of issuing a device (key, signature, encodings, PFX): no I/O,
/// so it runs on every core.
fn prepare_one(
    home: &Home,
    opts: &DeviceOptions,
    ca: &LoadedCa,
    id: &str,
    key: Option<PrivateKey>,
    now: OffsetDateTime,
) -> Result<Prepared> {
    let files = home.device_files(id)?;
    let fresh = key.is_none();
    let (key, kp) = match key {
        Some(k) => {
            let kp = k.signing_key().map_err(|e| key_error(&files.key, e))?;
            (k, kp)
        }
        None => PrivateKey::generate_with_signing_key(opts.algorithm)?,
    };
    let mut req = CertRequest::new(id, opts.profile.clone());
    req.days = opts.days;
    let issued = issue::sign(&req, &kp, &ca.signer, now)?;
    let pfx = match &opts.pfx {
        None => None,
        Some(p) => {
            let enc = if p.legacy {
                crate::pfx::PfxEncryption::Legacy
            } else {
                crate::pfx::PfxEncryption::Modern
            };
            let der = crate::pfx::build_pfx(
                key.pkcs8_der(),
                &issued.der,
                &ca.chain,
                p.password.expose(),
                id,
                enc,
            )
            .map_err(|e| Error::Issue {
                subject: id.into(),
                reason: e.to_string(),
            })?;
            Some(zeroize::Zeroizing::new(der))
        }
    };
    Ok(Prepared {
        key_pem: fresh.then(|| key.to_pem()),
        cert_pem: issued.pem(),
        full_chain_pem: ca.full_chain_pem(&issued.der),
        pfx,
        warnings: issued.warnings,
        files,
    })
}

/// The I/O part: the files of one prepared device, key first so that a crash
/// never leaves a certificate without its key.
fn write_one(lock: &Locked<'_>, p: Prepared) -> Result<(Vec<Written>, Vec<String>)> {
    let f = &p.files;
    let mut written = Vec::with_capacity(4);
    let mut wrote = |what: &str, path: &Path| {
        written.push(Written {
            what: what.into(),
            path: path.to_path_buf(),
        })
    };
    if let Some(key_pem) = &p.key_pem {
        lock.write_new(&f.key, key_pem.as_bytes(), FileKind::Secret, false)?;
        wrote("device key", &f.key);
    }
    lock.write_new(&f.cert, p.cert_pem.as_bytes(), FileKind::Public, false)?;
    wrote("device certificate", &f.cert);
    lock.write_new(
        &f.full_chain,
        p.full_chain_pem.as_bytes(),
        FileKind::Public,
        false,
    )?;
    wrote("device full chain", &f.full_chain);
    if let Some(der) = &p.pfx {
        lock.write_new(&f.pfx, der, FileKind::Secret, false)?;
        wrote("device PFX", &f.pfx);
    }
    Ok((written, p.warnings))
}

/// Checks a verification code: 1–64 characters of letters, digits and `- . _ :`.
pub fn check_verification_code(code: &str) -> Result<()> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadVerificationCode { code: code.into() })
    }
}

/// `verification-cert CODE`: a proof-of-possession certificate (CN = code)
/// signed by `ca`. A previous one is archived, not overwritten.
pub fn create_verification_cert(
    home: &Home,
    code: &str,
    ca_name: &str,
    algorithm: KeyAlgorithm,
    passphrase: Option<&Secret>,
    profile: &Profile,
    now: OffsetDateTime,
) -> Result<Report> {
    check_verification_code(code)?;
    let ca = load_ca(home, ca_name, passphrase, now)?;
    let lock = home.lock()?;
    let cert_path = home.path(home::VERIFICATION_CERT);
    let key_path = home.path("private/verification-code.key.pem");
    let mut report = Report {
        archived_to: lock.archive(&[&cert_path, &key_path])?,
        ..Report::default()
    };
    let key = PrivateKey::generate(algorithm)?;
    let req = CertRequest::new(code, profile.clone());
    let issued = issue::sign(&req, &key.signing_key()?, &ca.signer, now)?;
    report.warnings.extend(issued.warnings.iter().cloned());
    lock.write_new(&key_path, key.to_pem().as_bytes(), FileKind::Secret, true)?;
    report.wrote("verification key", &key_path);
    lock.write_new(&cert_path, issued.pem().as_bytes(), FileKind::Public, true)?;
    report.wrote("verification certificate", &cert_path);
    Ok(report)
}
