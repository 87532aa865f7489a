//! The PKI home: where every file lives (certGen.sh's names), atomic
//! never-overwrite writes, the archive, and the lock that serialises writers.
//!
//! Rules (DESIGN section 3): keys 0600 under a 0700 `private/`, certificates
//! 0644; every file written to a temporary name in its directory and renamed
//! into place without replacing anything; `--force` moves old files under
//! `archive/<UTC timestamp>/`; a CA key is never deleted.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::ids;

/// Certificate file of the root CA.
pub const ROOT_CERT: &str = "certs/azure-iot-test-only.root.ca.cert.pem";
/// Key file of the root CA.
pub const ROOT_KEY: &str = "private/azure-iot-test-only.root.ca.key.pem";
/// Certificate file of the default intermediate CA.
pub const INTERMEDIATE_CERT: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
/// Key file of the default intermediate CA.
pub const INTERMEDIATE_KEY: &str = "private/azure-iot-test-only.intermediate.key.pem";
/// The default intermediate then the root.
pub const CHAIN_CERT: &str = "certs/azure-iot-test-only.chain.ca.cert.pem";
/// The proof-of-possession certificate.
pub const VERIFICATION_CERT: &str = "certs/verification-code.cert.pem";
/// The lock file serialising writers.
pub const LOCK_FILE: &str = ".iotca.lock";

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A private key: mode 0600, under a 0700 directory.
    Secret,
    /// A certificate or record: mode 0644.
    Public,
}

/// Where a CA's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// The CA name (`root`, `intermediate` or a `ca intermediate` NAME).
    pub name: String,
    /// Its certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Its chain file (this CA, then its issuers up to the root), if it has one.
    pub chain: Option<PathBuf>,
}

/// Where a device's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFiles {
    /// `certs/<id>.cert.pem`.
    pub cert: PathBuf,
    /// `certs/<id>-full-chain.cert.pem`.
    pub full_chain: PathBuf,
    /// `private/<id>.key.pem`.
    pub key: PathBuf,
    /// `certs/<id>.cert.pfx`.
    pub pfx: PathBuf,
}

impl DeviceFiles {
    /// The PEM files (and the PFX) in the order they are archived.
    pub fn all(&self) -> [&Path; 4] {
        [&self.cert, &self.full_chain, &self.key, &self.pfx]
    }
}

/// A PKI home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

/// Holds the home's write lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    _file: fs::File,
}

impl Home {
    /// A home at `dir`, which must exist and be a directory.
    pub fn open(dir: &Path) -> Result<Self> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(Home {
                root: dir.to_path_buf(),
            }),
            Ok(_) => Err(Error::Invalid(format!(
                "the home {} is not a directory",
                dir.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Invalid(format!(
                "the home {} does not exist; create a PKI there with `iotca --home {} ca init`",
                dir.display(),
                dir.display()
            ))),
            Err(e) => Err(Error::io(dir, e)),
        }
    }

    /// A home at `dir`, creating it (and `certs/`, `private/`) when missing.
    pub fn create(dir: &Path) -> Result<Self> {
        // 0755 whatever the umask: nobody else may rename private/ or certs/ away.
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(dir, e))?;
        }
        let home = Home {
            root: dir.to_path_buf(),
        };
        home.ensure_dir(Path::new("certs"), FileKind::Public)?;
        home.ensure_dir(Path::new("private"), FileKind::Secret)?;
        Ok(home)
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the home.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Takes the home's exclusive write lock, waiting for another iotca
    /// process to release it rather than failing.
    pub fn lock(&self) -> Result<LockGuard> {
        let path = self.path(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(LockGuard { _file: file })
    }

    /// The files of a CA by name: `root`, `intermediate`, or a name made
    /// with `ca intermediate` (checked against the name rules).
    pub fn ca_files(&self, name: &str) -> Result<CaFiles> {
        Ok(match name {
            "root" => CaFiles {
                name: name.into(),
                cert: self.path(ROOT_CERT),
                key: self.path(ROOT_KEY),
                chain: None,
            },
            "intermediate" => CaFiles {
                name: name.into(),
                cert: self.path(INTERMEDIATE_CERT),
                key: self.path(INTERMEDIATE_KEY),
                chain: Some(self.path(CHAIN_CERT)),
            },
            other => {
                ids::check_ca_name(other)?;
                CaFiles {
                    name: other.into(),
                    cert: self.path(format!("certs/{other}.cert.pem")),
                    key: self.path(format!("private/{other}.key.pem")),
                    chain: Some(self.path(format!("certs/{other}.chain.cert.pem"))),
                }
            }
        })
    }

    /// The files of a device. The ID must already have passed
    /// [`ids::check_file_name`] (or the stricter registration ID rules).
    pub fn device_files(&self, id: &str) -> Result<DeviceFiles> {
        ids::check_file_name(id)?;
        Ok(DeviceFiles {
            cert: self.path(format!("certs/{id}.cert.pem")),
            full_chain: self.path(format!("certs/{id}-full-chain.cert.pem")),
            key: self.path(format!("private/{id}.key.pem")),
            pfx: self.path(format!("certs/{id}.cert.pfx")),
        })
    }

    /// Creates a directory inside the home (0700 for secrets) if missing, and
    /// tightens `private/`-style directories to 0700 if they are looser.
    pub fn ensure_dir(&self, rel: &Path, kind: FileKind) -> Result<PathBuf> {
        let dir = self.path(rel);
        let mode = if kind == FileKind::Secret {
            0o700
        } else {
            0o755
        };
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&dir)
        {
            Ok(()) => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        if kind == FileKind::Secret {
            let meta = fs::metadata(&dir).map_err(|e| Error::io(&dir, e))?;
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io(&dir, e))?;
            }
        }
        Ok(dir)
    }

    /// Writes `bytes` to `path` atomically without replacing anything: a
    /// temporary file in the same directory, the mode set, fsynced when
    /// `sync`, then renamed into place only if nothing exists there (a
    /// symlink planted at `path` counts as existing and is never followed).
    pub fn write_new(&self, path: &Path, bytes: &[u8], kind: FileKind, sync: bool) -> Result<()> {
        let tmp = self.write_temp(path, bytes, kind, sync)?;
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                Error::io(path, e.error)
            }
        })?;
        if sync {
            sync_dir(path)?;
        }
        Ok(())
    }

    /// Writes `bytes` to `path` atomically, replacing what is there (for
    /// records that are updated in place, never for keys or certificates).
    pub fn write_replace(&self, path: &Path, bytes: &[u8], kind: FileKind) -> Result<()> {
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Invalid(format!(
                "{} is a symbolic link; iotca does not write through links",
                path.display()
            )));
        }
        let tmp = self.write_temp(path, bytes, kind, true)?;
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
        sync_dir(path)
    }

    fn write_temp(
        &self,
        path: &Path,
        bytes: &[u8],
        kind: FileKind,
        sync: bool,
    ) -> Result<tempfile::NamedTempFile> {
        let dir = path
            .parent()
            .ok_or_else(|| Error::Invalid(format!("{} has no directory", path.display())))?;
        let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
        let temp = || {
            tempfile::Builder::new()
                .prefix(".iotca-tmp-")
                .tempfile_in(dir)
        };
        // Secrets: make sure of the directory's 0700 first, every time. Public
        // files: create the directory only when it is missing, which keeps
        // bulk issuance to one directory check per device, not three.
        let tmp = if kind == FileKind::Secret {
            self.ensure_dir(rel, kind)?;
            temp()
        } else {
            match temp() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.ensure_dir(rel, kind)?;
                    temp()
                }
                other => other,
            }
        };
        let mut tmp = tmp.map_err(|e| Error::io(dir, e))?;
        let mode = if kind == FileKind::Secret {
            0o600
        } else {
            0o644
        };
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
        if sync {
            tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
        }
        Ok(tmp)
    }

    /// Moves the existing files among `paths` to `archive/<UTC timestamp>/`,
    /// keeping their path relative to the home. Returns the archive
    /// directory, or None when none of the files existed.
    pub fn archive(&self, paths: &[&Path]) -> Result<Option<PathBuf>> {
        let existing: Vec<&Path> = paths
            .iter()
            .copied()
            .filter(|p| fs::symlink_metadata(p).is_ok())
            .collect();
        if existing.is_empty() {
            return Ok(None);
        }
        let dir = self.new_archive_dir()?;
        for p in existing {
            let rel = p.strip_prefix(&self.root).unwrap_or(p);
            let rel = rel.strip_prefix("./").unwrap_or(rel);
            let dest = dir.join(rel);
            let parent = dest.parent().unwrap_or(&dir);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Error::io(parent, e))?;
            fs::rename(p, &dest).map_err(|e| Error::io(p, e))?;
        }
        sync_dir(&dir.join("x"))?;
        Ok(Some(dir))
    }

    fn new_archive_dir(&self) -> Result<PathBuf> {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let base = self.ensure_dir(Path::new("archive"), FileKind::Secret)?;
        for n in 0..1000 {
            let name = if n == 0 {
                stamp.clone()
            } else {
                format!("{stamp}-{n}")
            };
            let dir = base.join(name);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        Err(Error::Invalid("too many archives in one second".into()))
    }

    /// Flushes everything written so far to disk (one call per batch of
    /// device files, instead of an fsync per file).
    pub fn sync_batch(&self) -> Result<()> {
        let dir = fs::File::open(&self.root).map_err(|e| Error::io(&self.root, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io(&self.root, e.into()))
    }
}

impl Home {
    /// The record files (`*.json`, not hidden) in a directory of the home,
    /// sorted by name; empty when the directory does not exist.
    pub fn record_files(&self, rel_dir: &str) -> Result<Vec<PathBuf>> {
        let dir = self.path(rel_dir);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && name.ends_with(".json")
            })
            .collect();
        paths.sort();
        Ok(paths)
    }
}

fn sync_dir(file_in_dir: &Path) -> Result<()> {
    if let Some(dir) = file_in_dir.parent() {
        let d = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// True when `path` exists (a dangling symlink counts).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn home() -> (tempfile::TempDir, Home) {
        let t = tempfile::tempdir().unwrap();
        let h = Home::create(&t.path().join("h")).unwrap();
        (t, h)
    }

    #[test]
    fn secrets_are_0600_under_0700_and_never_overwritten() {
        let (_t, h) = home();
        let key = h.path("private/k.key.pem");
        h.write_new(&key, b"secret", FileKind::Secret, true)
            .unwrap();
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(h.path("private")).unwrap().mode() & 0o777,
            0o700
        );
        let e = h
            .write_new(&key, b"other", FileKind::Secret, true)
            .unwrap_err();
        assert!(matches!(e, Error::Exists { .. }));
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        let cert = h.path("certs/c.cert.pem");
        h.write_new(&cert, b"cert", FileKind::Public, false)
            .unwrap();
        assert_eq!(fs::metadata(&cert).unwrap().mode() & 0o777, 0o644);
        let leftovers: Vec<_> = fs::read_dir(h.path("private"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".iotca-tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let (t, h) = home();
        let victim = t.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let link = h.path("private/dev.key.pem");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(h.write_new(&link, b"new", FileKind::Secret, false).is_err());
        assert!(h.write_replace(&link, b"new", FileKind::Public).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn archive_moves_files_keeping_their_relative_path() {
        let (_t, h) = home();
        let key = h.path("private/a.key.pem");
        h.write_new(&key, b"k", FileKind::Secret, false).unwrap();
        let missing = h.path("certs/none.pem");
        let dir = h.archive(&[&key, &missing]).unwrap().unwrap();
        assert!(!key.exists());
        assert_eq!(fs::read(dir.join("private/a.key.pem")).unwrap(), b"k");
        assert!(h.archive(&[&missing]).unwrap().is_none());
        let dir2 = {
            h.write_new(&key, b"k2", FileKind::Secret, false).unwrap();
            h.archive(&[&key]).unwrap().unwrap()
        };
        assert_ne!(dir, dir2);
    }

    #[test]
    fn names_cannot_escape_the_home() {
        let (_t, h) = home();
        for bad in ["../x", "/etc/passwd", "a/b", ".."] {
            assert!(h.device_files(bad).is_err(), "{bad}");
            assert!(h.ca_files(bad).is_err(), "{bad}");
        }
        assert_eq!(h.ca_files("root").unwrap().cert, h.path(ROOT_CERT));
        assert_eq!(
            h.device_files("d1").unwrap().full_chain,
            h.path("certs/d1-full-chain.cert.pem")
        );
    }

    #[test]
    fn missing_home_says_how_to_make_one() {
        let e = Home::open(Path::new("/nonexistent/iotca-home"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca init"), "{e}");
    }
}
