//! PKI operations on a home: make CAs, issue devices and verification
//! certificates, list what is there. Each function takes plain options,
//! does the work under the home's lock, and returns a report for the CLI to
//! print; nothing here prints.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use time::OffsetDateTime;

use crate::cert;
use crate::error::{Error, Result};
use crate::ids;
use crate::issue::{self, CertRequest, Signer};
use crate::keys::{KeyAlgorithm, KeyError, PrivateKey, Secret};
use crate::profile::Profile;
use crate::store::{self, CaFiles, DeviceFiles, FileKind, Home};

/// A CA loaded from the home, ready to sign.
#[derive(Debug)]
pub struct LoadedCa {
    /// Its files.
    pub files: CaFiles,
    /// Certificate and key, joined.
    pub signer: Signer,
    /// DER chain: this CA, then its issuers up to and including the root.
    pub chain: Vec<Vec<u8>>,
    /// `chain` as PEM, encoded once for every full-chain file written under this CA.
    pub chain_pem: String,
}

impl LoadedCa {
    /// A full-chain PEM: `leaf_der`, then this CA's chain up to the root.
    pub fn full_chain_pem(&self, leaf_der: &[u8]) -> String {
        cert::to_pem(leaf_der) + &self.chain_pem
    }
}

/// Reads a key file, decrypting it with `passphrase` when it is encrypted.
pub fn load_key(path: &Path, passphrase: Option<&Secret>) -> Result<PrivateKey> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
    PrivateKey::from_pem(&bytes, passphrase).map_err(|e| key_error(path, e))
}

fn key_error(path: &Path, e: KeyError) -> Error {
    Error::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The CA devices are signed by when `--ca` is not given: the default
/// intermediate when it exists, else the root (`ca init --no-intermediate`).
pub fn default_device_ca(home: &Home) -> &'static str {
    if store::exists(&home.path(store::INTERMEDIATE_CERT))
        || !store::exists(&home.path(store::ROOT_CERT))
    {
        "intermediate"
    } else {
        "root"
    }
}

/// Loads a CA by name: its certificate, its key (decrypted with
/// `passphrase` when encrypted) and its chain up to the root.
pub fn load_ca(
    home: &Home,
    name: &str,
    passphrase: Option<&Secret>,
    now: OffsetDateTime,
) -> Result<LoadedCa> {
    let files = home.ca_files(name)?;
    if !store::exists(&files.cert) {
        let root_exists = store::exists(&home.path(store::ROOT_CERT));
        let hint = match name {
            "intermediate" if root_exists => format!(
                "; this home has no default intermediate (it was made with --no-intermediate): sign with --ca root, or make a CA with `iotca --home {} ca intermediate NAME` and pass --ca NAME",
                home.root().display()
            ),
            "root" | "intermediate" => format!(
                "; create it with `iotca --home {} ca init`",
                home.root().display()
            ),
            other => format!(
                "; create it with `iotca --home {} ca intermediate {other}`",
                home.root().display()
            ),
        };
        return Err(Error::CaNotFound {
            name: name.into(),
            path: files.cert.clone(),
            hint,
        });
    }
    let certs = cert::read_certificates(&files.cert)?;
    let ca_der = certs[0].clone();
    let parsed = cert::parse_der(&ca_der).map_err(|e| Error::BadCertificate {
        path: files.cert.clone(),
        reason: e.to_string(),
    })?;
    let is_ca = matches!(parsed.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return Err(Error::BadCertificate {
            path: files.cert.clone(),
            reason: "is not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
        });
    }
    let not_after = parsed.validity().not_after.to_datetime();
    if not_after <= now {
        return Err(Error::BadCertificate {
            path: files.cert.clone(),
            reason: format!(
                "CA '{name}' expired on {}; renew it before issuing",
                cert::rfc3339(not_after)
            ),
        });
    }
    let key = load_key(&files.key, passphrase)?;
    let signer = Signer::new(&ca_der, &key).map_err(|e| Error::BadKey {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let chain = ca_chain(home, &files, &ca_der)?;
    Ok(LoadedCa {
        files,
        signer,
        chain_pem: concat_pem(&chain),
        chain,
    })
}

/// The chain of a CA: the CA itself, then its issuers up to the root, from
/// its chain file when there is one, else the CA plus the home's root.
fn ca_chain(home: &Home, files: &CaFiles, ca_der: &[u8]) -> Result<Vec<Vec<u8>>> {
    if let Some(chain) = files.chain.as_ref().filter(|p| store::exists(p)) {
        let mut certs = cert::read_certificates(chain)?;
        if certs.first().map(Vec::as_slice) != Some(ca_der) {
            certs.insert(0, ca_der.to_vec());
        }
        return Ok(certs);
    }
    let mut chain = vec![ca_der.to_vec()];
    let parsed = cert::parse_der(ca_der)?;
    let self_issued = parsed.subject().as_raw() == parsed.issuer().as_raw();
    let root = home.path(store::ROOT_CERT);
    if !self_issued && store::exists(&root) {
        chain.extend(cert::read_certificates(&root)?.into_iter().take(1));
    }
    Ok(chain)
}

/// Options for `ca init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Key algorithm for both CAs.
    pub algorithm: KeyAlgorithm,
    /// Root CN; the profile's when None.
    pub root_cn: Option<String>,
    /// Intermediate CN; the profile's when None.
    pub intermediate_cn: Option<String>,
    /// Root validity in days; the profile's when None.
    pub days: Option<u32>,
    /// Intermediate validity in days; the profile's when None.
    pub intermediate_days: Option<u32>,
    /// Make only the root.
    pub no_intermediate: bool,
    /// Encrypt the CA keys with this passphrase.
    pub passphrase: Option<Secret>,
    /// Archive existing CA files instead of refusing.
    pub force: bool,
    /// Root profile.
    pub root_profile: Profile,
    /// Intermediate profile.
    pub intermediate_profile: Profile,
}

/// A file iotca wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// What it is (`root certificate`, `device key`...).
    pub what: String,
    /// Where.
    pub path: PathBuf,
}

/// What a command did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Files written.
    pub written: Vec<Written>,
    /// Where replaced files went, when `--force` archived some.
    pub archived_to: Option<PathBuf>,
    /// Warnings to show on stderr.
    pub warnings: Vec<String>,
    /// Devices skipped because they already exist (`--skip-existing`).
    pub skipped: Vec<String>,
}

impl Report {
    fn wrote(&mut self, what: &str, path: &Path) {
        self.written.push(Written {
            what: what.into(),
            path: path.to_path_buf(),
        });
    }
}

fn write_key(
    home: &Home,
    path: &Path,
    key: &PrivateKey,
    passphrase: Option<&Secret>,
) -> Result<()> {
    let pem = match passphrase {
        Some(p) => key.to_encrypted_pem(p).map_err(|e| key_error(path, e))?,
        None => key.to_pem(),
    };
    home.write_new(path, pem.as_bytes(), FileKind::Secret, true)
}

fn concat_pem(ders: &[Vec<u8>]) -> String {
    ders.iter().map(|d| cert::to_pem(d)).collect()
}

fn refuse_existing(paths: &[&Path], what: &str) -> Result<()> {
    if let Some(p) = paths.iter().find(|p| store::exists(p)) {
        return Err(Error::Invalid(format!(
            "{} already exists; {what} was made before: use --force to archive the old files under archive/ and make new ones",
            p.display()
        )));
    }
    Ok(())
}

/// `ca init`: a root CA and (unless `no_intermediate`) the default intermediate.
pub fn init_ca(dir: &Path, opts: &InitOptions, now: OffsetDateTime) -> Result<Report> {
    let home = Home::create(dir)?;
    let _lock = home.lock()?;
    let root = home.ca_files("root")?;
    let int = home.ca_files("intermediate")?;
    let int_chain = int.chain.clone().unwrap_or_default();
    let targets: Vec<&Path> = vec![&root.cert, &root.key, &int.cert, &int.key, &int_chain];
    let mut report = Report::default();
    if opts.force {
        report.archived_to = home.archive(&targets)?;
    } else {
        refuse_existing(&targets, "a CA")?;
    }
    let pass = opts.passphrase.as_ref();
    let root_key = PrivateKey::generate(opts.algorithm)?;
    let mut req = CertRequest::new(
        opts.root_cn
            .clone()
            .or_else(|| opts.root_profile.common_name.clone())
            .unwrap_or_else(|| "iotca root CA".into()),
        opts.root_profile.clone(),
    );
    req.days = opts.days;
    let root_cert = issue::self_signed(&req, &root_key, now)?;
    write_key(&home, &root.key, &root_key, pass)?;
    report.wrote("root CA key", &root.key);
    home.write_new(
        &root.cert,
        root_cert.pem().as_bytes(),
        FileKind::Public,
        true,
    )?;
    report.wrote("root CA certificate", &root.cert);
    if opts.no_intermediate {
        return Ok(report);
    }
    let signer = Signer::new(&root_cert.der, &root_key)?;
    let int_key = PrivateKey::generate(opts.algorithm)?;
    let mut req = CertRequest::new(
        opts.intermediate_cn
            .clone()
            .or_else(|| opts.intermediate_profile.common_name.clone())
            .unwrap_or_else(|| "iotca intermediate CA".into()),
        opts.intermediate_profile.clone(),
    );
    req.days = opts.intermediate_days;
    let int_cert = issue::sign(&req, &int_key.signing_key()?, &signer, now)?;
    report.warnings.extend(int_cert.warnings.iter().cloned());
    write_key(&home, &int.key, &int_key, pass)?;
    report.wrote("intermediate CA key", &int.key);
    home.write_new(&int.cert, int_cert.pem().as_bytes(), FileKind::Public, true)?;
    report.wrote("intermediate CA certificate", &int.cert);
    let chain = concat_pem(&[int_cert.der.clone(), root_cert.der.clone()]);
    home.write_new(&int_chain, chain.as_bytes(), FileKind::Public, true)?;
    report.wrote("CA chain (intermediate, root)", &int_chain);
    Ok(report)
}

/// Options for `ca intermediate NAME`.
#[derive(Debug, Clone)]
pub struct IntermediateOptions {
    /// The new CA's name (file names `certs/<name>.cert.pem`...).
    pub name: String,
    /// The CA that signs it.
    pub parent: String,
    /// Subject CN; the name when None.
    pub cn: Option<String>,
    /// basicConstraints pathLenConstraint.
    pub pathlen: Option<u8>,
    /// Validity in days; the profile's when None.
    pub days: Option<u32>,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Decrypts the parent's key, and encrypts the new key when given
    /// (unless `unencrypted_key`).
    pub passphrase: Option<Secret>,
    /// Write the new CA key unencrypted even when a passphrase is given
    /// (an IoT Edge device CA, whose key the Edge runtime reads as is).
    pub unencrypted_key: bool,
    /// Archive an existing CA of that name instead of refusing.
    pub force: bool,
    /// The profile.
    pub profile: Profile,
}

/// `ca intermediate NAME`: a further CA under `parent`.
pub fn create_intermediate(
    home: &Home,
    opts: &IntermediateOptions,
    now: OffsetDateTime,
) -> Result<Report> {
    if matches!(opts.name.as_str(), "root" | "intermediate") {
        return Err(Error::Invalid(format!(
            "'{}' is reserved for the CAs made by `ca init`; choose another name",
            opts.name
        )));
    }
    let files = home.ca_files(&opts.name)?;
    let _lock = home.lock()?;
    let parent = load_ca(home, &opts.parent, opts.passphrase.as_ref(), now)?;
    check_pathlen_budget(&opts.parent, &parent.chain)?;
    let chain_path = files.chain.clone().unwrap_or_default();
    let targets: Vec<&Path> = vec![&files.cert, &files.key, &chain_path];
    let mut report = Report::default();
    if opts.force {
        report.archived_to = home.archive(&targets)?;
    } else {
        refuse_existing(&targets, &format!("CA '{}'", opts.name))?;
    }
    let key = PrivateKey::generate(opts.algorithm)?;
    let mut req = CertRequest::new(
        opts.cn.clone().unwrap_or_else(|| opts.name.clone()),
        opts.profile.clone(),
    );
    req.days = opts.days;
    req.pathlen = opts.pathlen;
    let issued = issue::sign(&req, &key.signing_key()?, &parent.signer, now)?;
    report.warnings.extend(issued.warnings.iter().cloned());
    let new_key_pass = opts.passphrase.as_ref().filter(|_| !opts.unencrypted_key);
    write_key(home, &files.key, &key, new_key_pass)?;
    report.wrote("CA key", &files.key);
    home.write_new(&files.cert, issued.pem().as_bytes(), FileKind::Public, true)?;
    report.wrote("CA certificate", &files.cert);
    home.write_new(
        &chain_path,
        parent.full_chain_pem(&issued.der).as_bytes(),
        FileKind::Public,
        true,
    )?;
    report.wrote("CA chain (this CA up to the root)", &chain_path);
    Ok(report)
}

/// Refuses a new CA under `parent` when a pathLenConstraint on the parent's
/// chain leaves no room for it: no device under it could ever chain
/// (RFC 5280 section 4.2.1.9). `chain` is the parent, then its issuers.
fn check_pathlen_budget(parent: &str, chain: &[Vec<u8>]) -> Result<()> {
    for (i, der) in chain.iter().enumerate() {
        let Ok(c) = cert::parse_der(der) else {
            continue;
        };
        if let Ok(Some(bc)) = c.basic_constraints()
            && let Some(n) = bc.value.path_len_constraint
            && (n as usize) < i + 1
        {
            let who = cert::name_string(c.subject());
            return Err(Error::Invalid(format!(
                "{who} has pathlen {n}, so a CA under '{parent}' could sign no device that chains; sign devices with --ca {parent}, or put the new CA under another parent"
            )));
        }
    }
    Ok(())
}

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
        return Err(Error::Invalid("no device IDs given".into()));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        if allow_any_cn {
            ids::check_file_name(id)?;
        } else {
            ids::check_x509_registration_id(id)?;
        }
        if !seen.insert(id.to_ascii_lowercase()) {
            return Err(Error::Invalid(format!(
                "device ID '{id}' is given twice (DPS matches registration IDs case-insensitively)"
            )));
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
    let _lock = home.lock()?;
    let mut report = Report::default();
    let mut todo: Vec<(String, Option<PrivateKey>)> = Vec::with_capacity(opts.ids.len());
    let mut existing: Vec<String> = Vec::new();
    let mut to_archive: Vec<PathBuf> = Vec::new();
    for id in &opts.ids {
        let f = home.device_files(id)?;
        let any = f.all().iter().any(|p| store::exists(p));
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
                let has_key = store::exists(&f.key);
                let has_cert = store::exists(&f.cert);
                if has_key && has_cert {
                    if !store::exists(&f.full_chain) {
                        let leaf = cert::read_certificates(&f.cert)?;
                        home.write_new(
                            &f.full_chain,
                            ca.full_chain_pem(&leaf[0]).as_bytes(),
                            FileKind::Public,
                            false,
                        )?;
                        report.wrote("device full chain (resumed)", &f.full_chain);
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
        return Err(Error::Invalid(format!(
            "{} device(s) already exist in {}: {}{more}; nothing was written. Use --skip-existing to issue only the missing ones, or --force to archive the old files and issue anew",
            existing.len(),
            home.root().display(),
            shown.join(", ")
        )));
    }
    refuse_case_twins(home, &todo)?;
    if !to_archive.is_empty() {
        let refs: Vec<&Path> = to_archive.iter().map(PathBuf::as_path).collect();
        report.archived_to = home.archive(&refs)?;
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
                    match r.and_then(|p| write_one(home, p)) {
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
    home.sync_batch()?;
    dedupe_warnings(&mut report.warnings);
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Refuses new devices whose ID differs only in letter case from a device
/// already in the home: DPS matches registration IDs case-insensitively, so
/// the two certificates would compete for one registration.
fn refuse_case_twins(home: &Home, todo: &[(String, Option<PrivateKey>)]) -> Result<()> {
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
    for (id, _) in todo {
        if let Some(other) = existing.get(&id.to_ascii_lowercase())
            && other != id
        {
            return Err(Error::Invalid(format!(
                "device ID '{id}' differs only in letter case from the existing device '{other}'; DPS matches registration IDs case-insensitively, so both would claim one registration: nothing was written"
            )));
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
fn write_one(home: &Home, p: Prepared) -> Result<(Vec<Written>, Vec<String>)> {
    let f = &p.files;
    let mut written = Vec::with_capacity(4);
    let mut wrote = |what: &str, path: &Path| {
        written.push(Written {
            what: what.into(),
            path: path.to_path_buf(),
        })
    };
    if let Some(key_pem) = &p.key_pem {
        home.write_new(&f.key, key_pem.as_bytes(), FileKind::Secret, false)?;
        wrote("device key", &f.key);
    }
    home.write_new(&f.cert, p.cert_pem.as_bytes(), FileKind::Public, false)?;
    wrote("device certificate", &f.cert);
    home.write_new(
        &f.full_chain,
        p.full_chain_pem.as_bytes(),
        FileKind::Public,
        false,
    )?;
    wrote("device full chain", &f.full_chain);
    if let Some(der) = &p.pfx {
        home.write_new(&f.pfx, der, FileKind::Secret, false)?;
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
        Err(Error::Invalid(format!(
            "verification code '{}' must be 1 to 64 letters, digits or - . _ : (copy it from the portal or `az iot dps certificate generate-verification-code`)",
            code.escape_default()
        )))
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
    let _lock = home.lock()?;
    let cert_path = home.path(store::VERIFICATION_CERT);
    let key_path = home.path("private/verification-code.key.pem");
    let mut report = Report {
        archived_to: home.archive(&[&cert_path, &key_path])?,
        ..Report::default()
    };
    let key = PrivateKey::generate(algorithm)?;
    let req = CertRequest::new(code, profile.clone());
    let issued = issue::sign(&req, &key.signing_key()?, &ca.signer, now)?;
    report.warnings.extend(issued.warnings.iter().cloned());
    home.write_new(&key_path, key.to_pem().as_bytes(), FileKind::Secret, true)?;
    report.wrote("verification key", &key_path);
    home.write_new(&cert_path, issued.pem().as_bytes(), FileKind::Public, true)?;
    report.wrote("verification certificate", &cert_path);
    Ok(report)
}
