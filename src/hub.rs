//! The local IoT hub identity registry: one JSON file per device under
//! `hub/devices/<device-id>.json`, shaped like IoT Hub's `Device` identity
//! (REST API `GET /devices/{id}`), X.509 authentication only.
//!
//! Device IDs are case-sensitive, as in IoT Hub, and become the file name
//! unchanged after [`check_device_id`]: every allowed character is safe in
//! a file name, and `.`-leading IDs (`.`, `..`, hidden files) are refused so
//! no ID can leave `hub/devices/`. (On a case-insensitive file system two
//! IDs differing only in case would share a file; iotca targets Linux.)
//!
//! Deleting a device moves its file under `archive/<timestamp>/`. Callers
//! hold [`Home::lock`] around writes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cert;
use crate::error::{Error, Result};
use crate::home::{FileKind, Home, Locked};
use crate::ids::{self, check_device_id};

/// Directory of device identities, relative to the home.
pub const DEVICES_DIR: &str = "hub/devices";

/// What IoT Hub answers for a device that is not in its registry.
pub const DEVICE_NOT_FOUND: &str = "DeviceNotFound";

/// `authentication.x509Thumbprint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct X509Thumbprint {
    /// SHA-1 (or SHA-256) thumbprint of the device certificate, upper-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_thumbprint: Option<String>,
    /// The secondary certificate's thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_thumbprint: Option<String>,
}

/// `authentication`: `certificateAuthority` (X.509 CA-signed, how DPS
/// registers group devices) or `selfSigned` (by thumbprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// `certificateAuthority` or `selfSigned`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The thumbprints, for `selfSigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_thumbprint: Option<X509Thumbprint>,
}

/// A device identity, as IoT Hub shows it (the fields iotca uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The device ID (case-sensitive).
    pub device_id: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// How the device authenticates.
    pub authentication: Authentication,
    /// `{"iotEdge": false}`.
    #[serde(default)]
    pub capabilities: crate::enroll::schema::Capabilities,
    /// The emulator hub the device belongs to (host name; a device ID is
    /// unique across the emulator's hubs). None in records made before
    /// hubs had names: the first `--hub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// When the identity was added (RFC 3339), iotca's own field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<String>,
    /// Fields iotca does not model, kept as they are.
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Device {
    /// An enabled device authenticated by an X.509 CA-signed certificate
    /// (`certificateAuthority`), as DPS registers devices of a group.
    pub fn ca_signed(device_id: &str, now: OffsetDateTime) -> Self {
        Device {
            device_id: device_id.to_string(),
            status: "enabled".into(),
            authentication: Authentication {
                kind: "certificateAuthority".into(),
                x509_thumbprint: None,
            },
            capabilities: Default::default(),
            hub: None,
            created_time: Some(cert::rfc3339(now)),
            other: Default::default(),
        }
    }

    /// An enabled device authenticated by the thumbprint of `cert_der`
    /// (`selfSigned`, the SHA-1 thumbprint as IoT Hub's primary thumbprint).
    pub fn with_thumbprint(device_id: &str, cert_der: &[u8], now: OffsetDateTime) -> Self {
        let mut d = Device::ca_signed(device_id, now);
        d.authentication = Authentication {
            kind: "selfSigned".into(),
            x509_thumbprint: Some(X509Thumbprint {
                primary_thumbprint: Some(cert::sha1_thumbprint(cert_der)),
                secondary_thumbprint: None,
            }),
        };
        d
    }
}

/// Checks a device ID for the local registry: the IoT hub rules, and not
/// starting with `.` (so it can never be `.`, `..` or a hidden file).
pub fn check_registry_id(device_id: &str) -> Result<()> {
    check_device_id(device_id)?;
    if device_id.starts_with('.') {
        return Err(Error::HiddenDeviceId {
            id: device_id.into(),
        });
    }
    Ok(())
}

/// The local IoT hub identity registry of one home.
#[derive(Debug, Clone)]
pub struct Registry {
    home: Home,
}

/// Every device: the readable ones and an error per broken file.
pub type DeviceListing = crate::enroll::Listing<(PathBuf, Device)>;

impl Registry {
    /// The registry inside `home`.
    pub fn new(home: Home) -> Self {
        Registry { home }
    }

    /// `hub/devices/<device-id>.json`, after checking the ID.
    pub fn path(&self, device_id: &str) -> Result<PathBuf> {
        check_registry_id(device_id)?;
        Ok(self.home.path(format!("{DEVICES_DIR}/{device_id}.json")))
    }

    /// The device `device_id` (case-sensitive), or None (IoT Hub's `DeviceNotFound`).
    pub fn get(&self, device_id: &str) -> Result<Option<Device>> {
        let path = self.path(device_id)?;
        match read(&path)? {
            None => Ok(None),
            Some(bytes) => parse(&path, &bytes).map(Some),
        }
    }

    /// Adds a device; refuses when one with that ID exists.
    pub fn add(&self, lock: &Locked<'_>, device: &Device) -> Result<PathBuf> {
        let path = self.path(&device.device_id)?;
        if crate::home::exists(&path) {
            return Err(Error::HubDeviceExists {
                id: device.device_id.clone(),
                path,
            });
        }
        let mut bytes = serde_json::to_vec_pretty(device).map_err(|source| Error::Encode {
            what: "device",
            source,
        })?;
        bytes.push(b'\n');
        lock.write_new(&path, &bytes, FileKind::Public, true)?;
        Ok(path)
    }

    /// Deletes the device (its file moves under `archive/<timestamp>/`).
    /// Returns the archive directory, or None when there was no such device.
    pub fn delete(&self, lock: &Locked<'_>, device_id: &str) -> Result<Option<PathBuf>> {
        let path = self.path(device_id)?;
        lock.archive(&[&path])
    }

    /// Every device, sorted by ID; broken files are listed in `errors`.
    pub fn list(&self) -> DeviceListing {
        let mut listing = DeviceListing {
            records: Vec::new(),
            errors: Vec::new(),
        };
        let paths = match self.home.record_files(DEVICES_DIR) {
            Ok(p) => p,
            Err(e) => {
                listing.errors.push(e);
                return listing;
            }
        };
        for path in paths {
            match read(&path).and_then(|b| match b {
                Some(b) => parse(&path, &b).map(Some),
                None => Ok(None),
            }) {
                Ok(Some(d)) => listing.records.push((path, d)),
                Ok(None) => {}
                Err(e) => listing.errors.push(e),
            }
        }
        listing
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    crate::home::fs::read_record(path)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Device> {
    let bad = |reason: String| Error::BadRecord {
        path: path.to_path_buf(),
        reason,
    };
    let d: Device = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("is not a valid device identity: {e}")))?;
    check_registry_id(&d.device_id).map_err(|e| bad(format!("deviceId: {e}")))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != d.device_id {
        return Err(bad(format!(
            "deviceId '{}' does not match the file name",
            d.device_id
        )));
    }
    Ok(d)
}

/// Registration IDs are also valid device IDs (a subset of the characters),
/// so the default device ID of an enrollment is always storable.
pub fn registration_id_is_device_id(registration_id: &str) -> bool {
    ids::check_registration_id(registration_id).is_ok()
        && check_registry_id(registration_id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn registry() -> (tempfile::TempDir, Registry) {
        let t = tempfile::tempdir().unwrap();
        let h = Home::create(t.path()).unwrap();
        (t, Registry::new(h))
    }

    #[test]
    fn add_get_delete_is_case_sensitive() {
        let (_t, r) = registry();
        let home = r.home.clone();
        let l = home.lock().unwrap();
        let now = OffsetDateTime::now_utc();
        r.add(&l, &Device::ca_signed("Dev-1", now)).unwrap();
        assert!(r.get("Dev-1").unwrap().is_some());
        assert!(r.get("dev-1").unwrap().is_none());
        assert!(r.add(&l, &Device::ca_signed("Dev-1", now)).is_err());
        assert!(r.delete(&l, "Dev-1").unwrap().is_some());
        assert!(r.get("Dev-1").unwrap().is_none());
        assert!(r.delete(&l, "Dev-1").unwrap().is_none());
    }

    #[test]
    fn ids_cannot_leave_the_registry() {
        let (_t, r) = registry();
        for bad in ["..", ".", "../x", "a/b", "a\0b", "é", ".hidden", ""] {
            assert!(r.path(bad).is_err(), "{bad:?}");
        }
        assert!(r.path("odd'$(x)*?!,=@%").is_ok());
        assert!(registration_id_is_device_id("sensor-thl-002"));
    }

    #[test]
    fn a_broken_file_is_named_and_the_rest_still_list() {
        let (_t, r) = registry();
        let home = r.home.clone();
        let l = home.lock().unwrap();
        let now = OffsetDateTime::now_utc();
        r.add(&l, &Device::ca_signed("good", now)).unwrap();
        let bad = r.path("bad").unwrap();
        fs::write(&bad, b"{\"deviceId\": ").unwrap();
        let l = r.list();
        assert_eq!(l.records.len(), 1);
        assert_eq!(l.errors.len(), 1);
        assert!(l.errors[0].to_string().contains("bad.json"));
        assert!(r.get("bad").is_err());
    }
}
