//! The CAs of a home: `ca init`, `ca intermediate`, and loading a CA to
//! sign with. Each command function takes plain options, takes the home's
//! lock first, and returns a [`Report`] for the CLI to print; nothing here
//! prints.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::{self as home, CaFiles, FileKind, Home, Locked};
use crate::cert;
use crate::error::{Error, Result};
use crate::issue::{self, CertRequest, Signer};
use crate::keys::{KeyAlgorithm, KeyError, PrivateKey, Secret};
use crate::profile::Profile;

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
    let bytes = super::fs::read_secret(path, "key file")?;
    PrivateKey::from_pem(&bytes, passphrase).map_err(|e| key_error(path, e))
}

pub(super) fn key_error(path: &Path, e: KeyError) -> Error {
    Error::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The CA devices are signed by when `--ca` is not given: the default
/// intermediate when it exists, else the root (`ca init --no-intermediate`).
pub fn default_device_ca(home: &Home) -> &'static str {
    if home::exists(&home.path(home::INTERMEDIATE_CERT))
        || !home::exists(&home.path(home::ROOT_CERT))
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
    if !home::exists(&files.cert) {
        let root_exists = home::exists(&home.path(home::ROOT_CERT));
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
    if let Some(chain) = files.chain.as_ref().filter(|p| home::exists(p)) {
        let mut certs = cert::read_certificates(chain)?;
        if certs.first().map(Vec::as_slice) != Some(ca_der) {
            certs.insert(0, ca_der.to_vec());
        }
        return Ok(certs);
    }
    let mut chain = vec![ca_der.to_vec()];
    let parsed = cert::parse_der(ca_der)?;
    let self_issued = parsed.subject().as_raw() == parsed.issuer().as_raw();
    let root = home.path(home::ROOT_CERT);
    if !self_issued && home::exists(&root) {
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
    pub(super) fn wrote(&mut self, what: &str, path: &Path) {
        self.written.push(Written {
            what: what.into(),
            path: path.to_path_buf(),
        });
    }
}

fn write_key(
    lock: &Locked<'_>,
    path: &Path,
    key: &PrivateKey,
    passphrase: Option<&Secret>,
) -> Result<()> {
    let pem = match passphrase {
        Some(p) => key.to_encrypted_pem(p).map_err(|e| key_error(path, e))?,
        None => key.to_pem(),
    };
    lock.write_new(path, pem.as_bytes(), FileKind::Secret, true)
}

pub(super) fn concat_pem(ders: &[Vec<u8>]) -> String {
    ders.iter().map(|d| cert::to_pem(d)).collect()
}

fn refuse_existing(paths: &[&Path], what: &str) -> Result<()> {
    if let Some(p) = paths.iter().find(|p| home::exists(p)) {
        return Err(Error::AlreadyIssued {
            path: p.to_path_buf(),
            what: what.into(),
        });
    }
    Ok(())
}

/// `ca init`: a root CA and (unless `no_intermediate`) the default intermediate.
pub fn init_ca(dir: &Path, opts: &InitOptions, now: OffsetDateTime) -> Result<Report> {
    let home = Home::create(dir)?;
    let lock = home.lock()?;
    let root = home.ca_files("root")?;
    let int = home.ca_files("intermediate")?;
    let int_chain = int.chain.clone().unwrap_or_default();
    let targets: Vec<&Path> = vec![&root.cert, &root.key, &int.cert, &int.key, &int_chain];
    let mut report = Report::default();
    if opts.force {
        report.archived_to = lock.archive(&targets)?;
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
    write_key(&lock, &root.key, &root_key, pass)?;
    report.wrote("root CA key", &root.key);
    lock.write_new(
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
    write_key(&lock, &int.key, &int_key, pass)?;
    report.wrote("intermediate CA key", &int.key);
    lock.write_new(&int.cert, int_cert.pem().as_bytes(), FileKind::Public, true)?;
    report.wrote("intermediate CA certificate", &int.cert);
    let chain = concat_pem(&[int_cert.der.clone(), root_cert.der.clone()]);
    lock.write_new(&int_chain, chain.as_bytes(), FileKind::Public, true)?;
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
        return Err(Error::ReservedCaName {
            name: opts.name.clone(),
        });
    }
    let files = home.ca_files(&opts.name)?;
    let lock = home.lock()?;
    let parent = load_ca(home, &opts.parent, opts.passphrase.as_ref(), now)?;
    check_pathlen_budget(&opts.parent, &parent.chain)?;
    let chain_path = files.chain.clone().unwrap_or_default();
    let targets: Vec<&Path> = vec![&files.cert, &files.key, &chain_path];
    let mut report = Report::default();
    if opts.force {
        report.archived_to = lock.archive(&targets)?;
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
    write_key(&lock, &files.key, &key, new_key_pass)?;
    report.wrote("CA key", &files.key);
    lock.write_new(&files.cert, issued.pem().as_bytes(), FileKind::Public, true)?;
    report.wrote("CA certificate", &files.cert);
    lock.write_new(
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
            return Err(Error::PathlenBudget {
                ca: who,
                pathlen: n,
                parent: parent.into(),
            });
        }
    }
    Ok(())
}
