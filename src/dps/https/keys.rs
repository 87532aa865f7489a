//! The emulator's service keys and its endpoint file.
//!
//! - `private/iotca-dps-service.key`: the DPS `provisioningserviceowner` key;
//! - `private/iotca-hub-<host>.key`: each hub's `iothubowner` key;
//!
//! 32 random bytes, stored as base64 on one line, mode 0600, made on first
//! start and never overwritten. `private/iotca-dps-endpoint.json` (0600,
//! rewritten at every start) says where the running emulator listens and
//! holds the connection strings `iotca dps connection-strings` prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::sas::Policy;
use crate::error::{Error, Result};
use crate::home::{FileKind, Home, Locked};

/// The DPS service key file, relative to the home.
pub const DPS_KEY: &str = "private/iotca-dps-service.key";
/// The endpoint file, relative to the home.
pub const ENDPOINT_FILE: &str = "private/iotca-dps-endpoint.json";
/// The DPS service policy.
pub const DPS_POLICY: &str = "provisioningserviceowner";
/// The hub service policy.
pub const HUB_POLICY: &str = "iothubowner";

/// A hub's key file, relative to the home.
pub fn hub_key_file(host: &str) -> String {
    format!("private/iotca-hub-{host}.key")
}

/// Checks a `--hub` host name: DNS letters, digits, `-` and `.`, not
/// starting with `.` or `-`, at most 253 characters (it becomes a file name).
pub fn check_hub_host(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && host.as_bytes()[0].is_ascii_alphanumeric()
        && !host.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "hub host name '{}' is not a DNS name (letters, digits, '-' and '.')",
            crate::text::escape(host)
        )))
    }
}

/// The keys of the DPS and of every hub.
#[derive(Debug)]
pub struct ServiceKeys {
    /// `provisioningserviceowner`.
    pub dps: Policy,
    /// `(host, iothubowner)` for each hub, in `--hub` order.
    pub hubs: Vec<(String, Policy)>,
}

impl ServiceKeys {
    /// Loads the keys, making the missing ones (under the home's lock).
    pub fn ensure(home: &Home, hubs: &[String]) -> Result<ServiceKeys> {
        let lock = home.lock()?;
        let dps = Policy {
            name: DPS_POLICY.into(),
            key: ensure_key(&lock, &home.path(DPS_KEY))?,
        };
        let mut out = Vec::new();
        for h in hubs {
            check_hub_host(h)?;
            let key = ensure_key(&lock, &home.path(hub_key_file(h)))?;
            out.push((
                h.clone(),
                Policy {
                    name: HUB_POLICY.into(),
                    key,
                },
            ));
        }
        Ok(ServiceKeys { dps, hubs: out })
    }
}

fn ensure_key(lock: &Locked<'_>, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    if crate::home::exists(path) {
        let text = crate::home::fs::read_secret(path, "service key file")?;
        let key = STANDARD.decode(text.trim_ascii()).map_err(|_| {
            Error::Invalid(format!(
                "{} does not hold a base64 service key",
                path.display()
            ))
        })?;
        if key.len() < 16 {
            return Err(Error::Invalid(format!(
                "{} holds a key shorter than 16 bytes",
                path.display()
            )));
        }
        return Ok(Zeroizing::new(key));
    }
    let mut key = Zeroizing::new(vec![0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut text = Zeroizing::new(STANDARD.encode(&*key));
    text.push('\n');
    lock.write_new(path, text.as_bytes(), FileKind::Secret, true)?;
    Ok(key)
}

/// `private/iotca-dps-endpoint.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// The ID scope devices use.
    pub id_scope: String,
    /// The MQTT listener.
    pub mqtt: String,
    /// The HTTPS listener.
    pub https: Option<String>,
    /// The emulator CA file, relative to the home.
    pub trust: String,
    /// The DPS service connection string.
    pub dps: DpsEndpoint,
    /// One entry a hub.
    pub hubs: Vec<HubEndpoint>,
}

/// The DPS entry of [`Endpoint`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DpsEndpoint {
    /// `HostName=localhost:PORT;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=...`.
    pub connection_string: String,
}

/// A hub entry of [`Endpoint`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubEndpoint {
    /// The hub's host name.
    pub name: String,
    /// For iotca (with `GatewayHostName`).
    pub connection_string: String,
    /// For Microsoft's service SDKs (`HostName=localhost:PORT`).
    pub sdk_connection_string: String,
}

impl Endpoint {
    /// The endpoint of a server listening on `mqtt` and `https`.
    pub fn new(
        keys: &ServiceKeys,
        id_scope: &str,
        mqtt: SocketAddr,
        https: Option<SocketAddr>,
        trust: &str,
    ) -> Endpoint {
        let gateway = match https {
            Some(a) if a.ip().is_loopback() => format!("localhost:{}", a.port()),
            Some(a) => a.to_string(),
            None => "localhost:8443".into(),
        };
        let cs = |host: &str, policy: &Policy| {
            format!(
                "HostName={host};SharedAccessKeyName={};SharedAccessKey={}",
                policy.name,
                STANDARD.encode(&*policy.key)
            )
        };
        Endpoint {
            id_scope: id_scope.to_string(),
            mqtt: mqtt.to_string(),
            https: https.map(|a| a.to_string()),
            trust: trust.to_string(),
            dps: DpsEndpoint {
                connection_string: cs(&gateway, &keys.dps),
            },
            hubs: keys
                .hubs
                .iter()
                .map(|(name, p)| HubEndpoint {
                    name: name.clone(),
                    connection_string: format!("{};GatewayHostName={gateway}", cs(name, p)),
                    sdk_connection_string: cs(&gateway, p),
                })
                .collect(),
        }
    }

    /// Writes it (0600), replacing the previous start's.
    pub fn write(&self, home: &Home) -> Result<PathBuf> {
        let path = home.path(ENDPOINT_FILE);
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("could not encode the endpoint: {e}")))?;
        bytes.push(b'\n');
        let lock = home.lock()?;
        lock.write_replace(&path, &bytes, FileKind::Secret)?;
        Ok(path)
    }

    /// Reads the endpoint file of the home.
    pub fn read(home: &Home) -> Result<Endpoint> {
        let path = home.path(ENDPOINT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Invalid(format!(
                    "{} does not exist; start the emulator with `iotca dps serve` first",
                    path.display()
                )));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{} is not an endpoint file: {e}", path.display())))
    }
}
