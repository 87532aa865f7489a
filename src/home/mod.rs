//! The PKI home: where every file lives (certGen.sh's names), and what is
//! done with it.
//!
//! - [`fs`]: every file read (bounded) and write (atomic, never replacing);
//! - [`Locked`] (lock.rs): the write lock as a type, the only way to write;
//! - archive.rs: `archive/<timestamp>/`, where replaced files go;
//! - [`ca`]: making and loading CAs; [`devices`]: issuing devices and
//!   proof-of-possession certificates; [`inventory`]: what a home holds.
//!
//! Rules (DESIGN section 3): keys 0600 under a 0700 `private/`, certificates
//! 0644; every file written to a temporary name in its directory and renamed
//! into place without replacing anything; `--force` moves old files under
//! `archive/<UTC timestamp>/`; a CA key is never deleted.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ids;

mod archive;
pub mod ca;
pub mod devices;
mod devices_pfx;
pub mod fs;
pub mod inventory;
mod lock;

pub use ca::{
    InitOptions, IntermediateOptions, LoadedCa, Report, Written, create_intermediate,
    default_device_ca, init_ca, load_ca, load_key,
};
pub use devices::{
    DeviceOptions, Existing, PfxOptions, check_device_ids, check_verification_code, create_devices,
    create_verification_cert,
};
pub use fs::{MAX_BUNDLE_BYTES, MAX_INPUT_BYTES, MAX_LINE_BYTES, exists, read_bounded};
pub use lock::Locked;

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

impl Home {
    /// A home at `dir`, which must exist and be a directory.
    pub fn open(dir: &Path) -> Result<Self> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(Home {
                root: dir.to_path_buf(),
            }),
            Ok(_) => Err(Error::HomeNotDirectory {
                path: dir.to_path_buf(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoHome {
                path: dir.to_path_buf(),
            }),
            Err(e) => Err(Error::io(dir, e)),
        }
    }

    /// A home at `dir`, creating it (and `certs/`, `private/`) when missing.
    pub fn create(dir: &Path) -> Result<Self> {
        // 0755 whatever the umask: nobody else may rename private/ or certs/ away.
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(dir, e))?;
        }
        let home = Home {
            root: dir.to_path_buf(),
        };
        fs::ensure_dir(&home.path("certs"), FileKind::Public)?;
        fs::ensure_dir(&home.path("private"), FileKind::Secret)?;
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

    /// The record files (`*.json`, not hidden) in a directory of the home,
    /// sorted by name; empty when the directory does not exist.
    pub fn record_files(&self, rel_dir: &str) -> Result<Vec<PathBuf>> {
        let dir = self.path(rel_dir);
        let entries = match std::fs::read_dir(&dir) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn home() -> (tempfile::TempDir, Home) {
        let t = tempfile::tempdir().unwrap();
        let h = Home::create(&t.path().join("h")).unwrap();
        (t, h)
    }

    #[test]
    fn secrets_are_0600_under_0700_and_never_overwritten() {
        let (_t, h) = home();
        let l = h.lock().unwrap();
        let key = h.path("private/k.key.pem");
        l.write_new(&key, b"secret", FileKind::Secret, true)
            .unwrap();
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(h.path("private")).unwrap().mode() & 0o777,
            0o700
        );
        let e = l
            .write_new(&key, b"other", FileKind::Secret, true)
            .unwrap_err();
        assert!(matches!(e, Error::Exists { .. }));
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        let cert = h.path("certs/c.cert.pem");
        l.write_new(&cert, b"cert", FileKind::Public, false)
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
        let l = h.lock().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let link = h.path("private/dev.key.pem");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(l.write_new(&link, b"new", FileKind::Secret, false).is_err());
        assert!(l.write_replace(&link, b"new", FileKind::Public).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn archive_moves_files_keeping_their_relative_path() {
        let (_t, h) = home();
        let l = h.lock().unwrap();
        let key = h.path("private/a.key.pem");
        l.write_new(&key, b"k", FileKind::Secret, false).unwrap();
        let missing = h.path("certs/none.pem");
        let dir = l.archive(&[&key, &missing]).unwrap().unwrap();
        assert!(!key.exists());
        assert_eq!(fs::read(dir.join("private/a.key.pem")).unwrap(), b"k");
        assert!(l.archive(&[&missing]).unwrap().is_none());
        let dir2 = {
            l.write_new(&key, b"k2", FileKind::Secret, false).unwrap();
            l.archive(&[&key]).unwrap().unwrap()
        };
        assert_ne!(dir, dir2);
    }

    #[test]
    fn a_secret_in_certs_leaves_certs_world_readable() {
        let (_t, h) = home();
        let l = h.lock().unwrap();
        let pfx = h.path("certs/d.cert.pfx");
        l.write_new(&pfx, b"pfx", FileKind::Secret, false).unwrap();
        assert_eq!(fs::metadata(&pfx).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(h.path("certs")).unwrap().mode() & 0o777, 0o755);
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
