//! The local DPS endpoint's own files: its emulator CA, the server
//! certificate it signs, and the registration records.
//!
//! ```text
//! certs/iotca-dps-server-ca.cert.pem     emulator CA (made on first use, never overwritten)
//! private/iotca-dps-server-ca.key.pem    its key (0600)
//! certs/iotca-dps-server.cert.pem        the server certificate of the last start
//! dps/registrations/<id lower>.json      DeviceRegistrationState, one per registration ID
//! ```
//!
//! The server certificate (SAN `DNS:localhost`, `IP:127.0.0.1`, EKU
//! serverAuth) is issued afresh by the emulator CA each time the server
//! starts, with a fresh key that only ever lives in memory: devices trust
//! the CA ([`EmulatorCa::pem`], what `iotca dps trust` prints), so nothing
//! on disk needs rotating and no server key is left lying around. The
//! certificate itself is written to the home for inspection, the previous
//! one moved under `archive/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::cert;
use crate::enroll::Listing;
use crate::error::{Error, Result};
use crate::home::{FileKind, Home, Locked};
use crate::ids;
use crate::issue::{self, CertRequest, Signer};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::profile::Profile;

/// The emulator CA's certificate, relative to the home.
pub const CA_CERT: &str = "certs/iotca-dps-server-ca.cert.pem";
/// The emulator CA's key, relative to the home.
pub const CA_KEY: &str = "private/iotca-dps-server-ca.key.pem";
/// The server certificate of the last start, relative to the home.
pub const SERVER_CERT: &str = "certs/iotca-dps-server.cert.pem";
/// The emulator CA's subject CN.
pub const CA_COMMON_NAME: &str = "iotca DPS emulator CA (test only)";
/// The server certificate's subject CN.
pub const SERVER_COMMON_NAME: &str = "localhost";
/// The server certificate's subject alternative names.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
/// Directory of registration records, relative to the home.
pub const REGISTRATIONS_DIR: &str = "dps/registrations";
/// Validity of the emulator CA.
pub const CA_DAYS: u32 = 3650;
/// Validity of a server certificate (re-issued at every start).
pub const SERVER_DAYS: u32 = 30;

/// The emulator CA, loaded or just made.
pub struct EmulatorCa {
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// Where the CA certificate is.
    pub cert_path: PathBuf,
    /// True when this call created the CA.
    pub created: bool,
    signer: Signer,
    home: Home,
}

impl std::fmt::Debug for EmulatorCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorCa")
            .field("cert_path", &self.cert_path)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl EmulatorCa {
    /// Loads the emulator CA of `home`, creating it (P-256, 10 years,
    /// pathlen 0) when neither of its files exists. Refuses when only one of
    /// the two files exists rather than overwrite anything.
    pub fn ensure(home: &Home, now: OffsetDateTime) -> Result<EmulatorCa> {
        let cert_path = home.path(CA_CERT);
        let key_path = home.path(CA_KEY);
        let lock = home.lock()?;
        match (
            crate::home::exists(&cert_path),
            crate::home::exists(&key_path),
        ) {
            (true, true) => Self::load(home, &cert_path, &key_path),
            (false, false) => {
                let key = PrivateKey::generate(KeyAlgorithm::P256)?;
                let mut profile = Profile::builtin("root-ca")?;
                profile.name = "dps-emulator-ca".into();
                profile.common_name = Some(CA_COMMON_NAME.into());
                let mut req = CertRequest::new(CA_COMMON_NAME, profile);
                req.days = Some(CA_DAYS);
                req.pathlen = Some(0);
                let issued = issue::self_signed(&req, &key, now)?;
                lock.write_new(&key_path, key.to_pem().as_bytes(), FileKind::Secret, true)?;
                lock.write_new(&cert_path, issued.pem().as_bytes(), FileKind::Public, true)?;
                let signer = Signer::new(&issued.der, &key)?;
                Ok(EmulatorCa {
                    cert_der: issued.der,
                    cert_path,
                    created: true,
                    signer,
                    home: home.clone(),
                })
            }
            (true, false) => Err(Error::Invalid(format!(
                "{} exists but its key {} does not; restore the key, or move the certificate away to make a new emulator CA",
                cert_path.display(),
                key_path.display()
            ))),
            (false, true) => Err(Error::Invalid(format!(
                "{} exists but its certificate {} does not; restore the certificate, or move the key away to make a new emulator CA",
                key_path.display(),
                cert_path.display()
            ))),
        }
    }

    fn load(home: &Home, cert_path: &Path, key_path: &Path) -> Result<EmulatorCa> {
        let certs = cert::read_certificates(cert_path)?;
        let der = certs
            .into_iter()
            .next()
            .ok_or_else(|| Error::BadCertificate {
                path: cert_path.to_path_buf(),
                reason: "holds no certificate".into(),
            })?;
        let key = crate::home::load_key(key_path, None)?;
        let signer = Signer::new(&der, &key).map_err(|e| Error::BadKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(EmulatorCa {
            cert_der: der,
            cert_path: cert_path.to_path_buf(),
            created: false,
            signer,
            home: home.clone(),
        })
    }

    /// The CA certificate as PEM: what a device passes as its server
    /// verification certificate.
    pub fn pem(&self) -> String {
        cert::to_pem(&self.cert_der)
    }

    /// Issues a server certificate for `localhost` / `127.0.0.1` with a
    /// fresh P-256 key.
    pub fn issue_server(&self, now: OffsetDateTime) -> Result<ServerIdentity> {
        self.issue_server_for(now, &[])
    }

    /// As [`EmulatorCa::issue_server`], the SAN also naming `hubs` (the
    /// emulator's hub host names).
    pub fn issue_server_for(&self, now: OffsetDateTime, hubs: &[String]) -> Result<ServerIdentity> {
        let key = PrivateKey::generate(KeyAlgorithm::P256)?;
        let kp = key.signing_key()?;
        let mut req = CertRequest::new(SERVER_COMMON_NAME, server_profile());
        req.days = Some(SERVER_DAYS);
        req.subject_alt_names = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        for h in hubs {
            if !req.subject_alt_names.contains(h) {
                req.subject_alt_names.push(h.clone());
            }
        }
        let issued = issue::sign(&req, &kp, &self.signer, now)?;
        let lock = self.home.lock()?;
        lock.archive(&[&self.home.path(SERVER_CERT)])?;
        lock.write_new(
            &self.home.path(SERVER_CERT),
            issued.pem().as_bytes(),
            FileKind::Public,
            true,
        )?;
        Ok(ServerIdentity {
            chain: vec![issued.der, self.cert_der.clone()],
            key_pkcs8: Zeroizing::new(key.pkcs8_der().to_vec()),
        })
    }
}

/// The TLS server certificate profile: not a CA, digitalSignature, serverAuth.
pub fn server_profile() -> Profile {
    Profile {
        name: "dps-server".into(),
        description: "TLS server certificate of the local DPS endpoint".into(),
        common_name: None,
        days: SERVER_DAYS,
        ca: false,
        pathlen: None,
        key_usage: vec!["digitalSignature".into()],
        rsa_key_usage: vec!["keyEncipherment".into()],
        extended_key_usage: vec!["serverAuth".into()],
        subject_key_identifier: true,
        authority_key_identifier: true,
    }
}

/// The server's certificate chain and key.
pub struct ServerIdentity {
    /// The server certificate, then the emulator CA (DER).
    pub chain: Vec<Vec<u8>>,
    /// The server key, PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain", &self.chain.len())
            .field("key", &"[secret key elided]")
            .finish()
    }
}

/// A registration record: the DPS `DeviceRegistrationState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationState {
    /// The registration ID (the device certificate's CN).
    pub registration_id: String,
    /// When the registration was first made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    /// The hub the device was assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    /// The device ID in that hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `assigned`, `disabled` or `failed`.
    pub status: String,
    /// `initialAssignment` (the only one simulated), for assigned devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<String>,
    /// DPS error code, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// What went wrong, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When the record last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    /// The record's entity tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The enrollment group that decided, iotca's own field (what the
    /// per-group registration query of the service API selects by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
}

/// The registration records of one home.
#[derive(Debug, Clone)]
pub struct Registrations {
    home: Home,
}

/// Largest registration record read.
const MAX_RECORD_BYTES: u64 = 256 * 1024;

impl Registrations {
    /// The records of `home`.
    pub fn new(home: Home) -> Self {
        Registrations { home }
    }

    /// `dps/registrations/<id lower-cased>.json`, after checking the ID.
    pub fn path(&self, registration_id: &str) -> Result<PathBuf> {
        ids::check_registration_id(registration_id)?;
        Ok(self.home.path(format!(
            "{REGISTRATIONS_DIR}/{}.json",
            ids::registration_file_stem(registration_id)
        )))
    }

    /// The record for a registration ID (case-insensitive), or None.
    pub fn get(&self, registration_id: &str) -> Result<Option<RegistrationState>> {
        let path = self.path(registration_id)?;
        read(&path)
    }

    /// Writes (or replaces) a record under the caller's lock.
    pub fn put(&self, lock: &Locked<'_>, state: &RegistrationState) -> Result<PathBuf> {
        let path = self.path(&state.registration_id)?;
        let mut bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::Invalid(format!("could not encode the registration: {e}")))?;
        bytes.push(b'\n');
        lock.write_replace(&path, &bytes, FileKind::Public)?;
        Ok(path)
    }

    /// Every record, sorted by file name; broken files are listed in `errors`.
    pub fn list(&self) -> Listing<(PathBuf, RegistrationState)> {
        let mut listing = Listing {
            records: Vec::new(),
            errors: Vec::new(),
        };
        let paths = match self.home.record_files(REGISTRATIONS_DIR) {
            Ok(p) => p,
            Err(e) => {
                listing.errors.push(e);
                return listing;
            }
        };
        for path in paths {
            match read(&path) {
                Ok(Some(r)) => listing.records.push((path, r)),
                Ok(None) => {}
                Err(e) => listing.errors.push(e),
            }
        }
        listing
    }
}

fn read(path: &Path) -> Result<Option<RegistrationState>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(Error::BadRecord {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_RECORD_BYTES} bytes"),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::BadRecord {
            path: path.to_path_buf(),
            reason: format!("not a registration record: {e}"),
        })
}

/// A fresh entity tag, as DPS writes them (a quoted-looking opaque string).
pub fn new_etag() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    cert::hex_lower(&b)
}

/// A fresh operation ID in DPS's style (`4.<16 hex>.<uuid-like>`).
pub fn new_operation_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let h = cert::hex_lower(&b);
    format!(
        "4.{}.{}-{}-{}-{}-{}",
        &h[0..16],
        &h[16..24],
        &h[24..28],
        &h[28..32],
        &h[32..36],
        &h[36..48]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_never_overwritten() {
        let t = tempfile::tempdir().unwrap();
        let home = Home::create(t.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let a = EmulatorCa::ensure(&home, now).unwrap();
        assert!(a.created);
        let b = EmulatorCa::ensure(&home, now).unwrap();
        assert!(!b.created);
        assert_eq!(a.cert_der, b.cert_der);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let x = cert::parse_der(&a.cert_der).unwrap();
        assert_eq!(cert::single_cn(&x).as_deref(), Some(CA_COMMON_NAME));
        assert!(x.is_ca());

        let id = a.issue_server(now).unwrap();
        let s = cert::parse_der(&id.chain[0]).unwrap();
        assert!(!s.is_ca());
        assert_eq!(s.issuer().as_raw(), x.subject().as_raw());
        let san = s.subject_alternative_name().unwrap().unwrap().value;
        let names = format!("{:?}", san.general_names);
        assert!(names.contains("localhost"), "{names}");
        assert!(
            names.contains("127.0.0.1") || names.contains("[127, 0, 0, 1]"),
            "{names}"
        );
        let eku = s.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        s.verify_signature(Some(x.public_key())).unwrap();

        // Half a CA is refused, not replaced.
        std::fs::remove_file(home.path(CA_KEY)).unwrap();
        let e = EmulatorCa::ensure(&home, now).unwrap_err().to_string();
        assert!(e.contains("does not"), "{e}");
        assert!(crate::home::exists(&home.path(CA_CERT)));
    }

    #[test]
    fn registration_records() {
        let t = tempfile::tempdir().unwrap();
        let home = Home::create(t.path()).unwrap();
        let r = Registrations::new(home.clone());
        assert!(r.get("Dev-1").unwrap().is_none());
        let s = RegistrationState {
            registration_id: "Dev-1".into(),
            created_date_time_utc: Some("2025-01-01T00:00:00Z".into()),
            assigned_hub: Some("h".into()),
            device_id: Some("Dev-1".into()),
            status: "assigned".into(),
            substatus: Some("initialAssignment".into()),
            error_code: None,
            error_message: None,
            last_updated_date_time_utc: None,
            etag: Some(new_etag()),
            enrollment_group_id: None,
        };
        let p = r.put(&home.lock().unwrap(), &s).unwrap();
        assert!(p.ends_with("dps/registrations/dev-1.json"));
        assert_eq!(r.get("DEV-1").unwrap().unwrap(), s);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(json["registrationId"], "Dev-1");
        assert_eq!(json["substatus"], "initialAssignment");
        assert!(json.get("errorCode").is_none());
        std::fs::write(home.path("dps/registrations/junk.json"), "{").unwrap();
        let l = r.list();
        assert_eq!(l.records.len(), 1);
        assert_eq!(l.errors.len(), 1);
        assert!(r.path("../x").is_err());
        let op = new_operation_id();
        assert!(op.starts_with("4.") && op.len() > 40, "{op}");
    }
}
