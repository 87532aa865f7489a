//! Service connection strings: `HostName=H;SharedAccessKeyName=P;SharedAccessKey=K`
//! with an optional `GatewayHostName=HOST[:PORT]` (connect there; `HostName`
//! stays the `Host` header and the SAS resource).
//!
//! They are read from files or the environment only, never from argv, and
//! the key never appears in `Debug`, `Display` or an error.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

/// A connection string could not be read or parsed. No variant carries the key.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A file could not be read.
    #[error("cannot read the connection string file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A connection string is missing a part or has a malformed one.
    #[error("{origin}: not a service connection string: {reason}")]
    Parse {
        /// Where it came from (`FILE line N`, `IOTCA_DPS_CONNECTION_STRING`).
        origin: String,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// Nothing was given.
    #[error("{0}")]
    Missing(String),
}

/// One parsed service connection string.
#[derive(Clone)]
pub struct ConnectionString {
    /// `HostName`: the service's name, the `Host` header and the SAS resource.
    pub host_name: String,
    /// `SharedAccessKeyName`: the policy (`iothubowner`, `provisioningserviceowner`).
    pub policy: String,
    /// The decoded `SharedAccessKey`.
    key: Zeroizing<Vec<u8>>,
    /// `GatewayHostName=HOST[:PORT]`: where to connect instead of `HostName`.
    pub gateway: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host_name", &self.host_name)
            .field("policy", &self.policy)
            .field("key", &"<elided>")
            .field("gateway", &self.gateway)
            .finish()
    }
}

impl ConnectionString {
    /// Parses one connection string; `origin` names where it came from in errors.
    pub fn parse(s: &str, origin: &str) -> Result<Self, ConnError> {
        let err = |reason: String| ConnError::Parse {
            origin: origin.to_string(),
            reason,
        };
        let (mut host, mut policy, mut key, mut gateway) = (None, None, None, None);
        for part in s.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(err("a part has no '='".into()));
            };
            let value = value.trim();
            match name.trim() {
                "HostName" => host = Some(value.to_string()),
                "SharedAccessKeyName" => policy = Some(value.to_string()),
                "SharedAccessKey" => key = Some(value.to_string()),
                "GatewayHostName" => gateway = Some(value.to_string()),
                // DeviceId, ModuleId, ... are not for service connection strings;
                // unknown parts are refused so a device string is not mistaken.
                other => {
                    return Err(err(format!(
                        "unexpected part '{}'",
                        crate::text::escape(other)
                    )));
                }
            }
        }
        let host = host
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("HostName is missing".into()))?;
        if host.contains(['/', ' ', '?', '#', '@']) {
            return Err(err(format!(
                "HostName '{}' is not a host name",
                crate::text::escape(&host)
            )));
        }
        let policy = policy
            .filter(|p| !p.is_empty())
            .ok_or_else(|| err("SharedAccessKeyName is missing".into()))?;
        let key = key.ok_or_else(|| err("SharedAccessKey is missing".into()))?;
        let key = Zeroizing::new(key);
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .map_err(|_| err("SharedAccessKey is not base64".into()))?;
        if key.is_empty() {
            return Err(err("SharedAccessKey is empty".into()));
        }
        if let Some(g) = &gateway
            && (g.is_empty() || g.contains(['/', ' ', '?', '#', '@']))
        {
            return Err(err(format!(
                "GatewayHostName '{}' is not HOST[:PORT]",
                crate::text::escape(g)
            )));
        }
        Ok(ConnectionString {
            host_name: host,
            policy,
            key: Zeroizing::new(key),
            gateway,
        })
    }

    /// The decoded key, for signing.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// `host[:port]` to connect to: the gateway if given, else `HostName`.
    pub fn connect_to(&self) -> &str {
        self.gateway.as_deref().unwrap_or(&self.host_name)
    }

    /// Every connection string in `text`, one a line (blank lines and `#` comments skipped).
    pub fn parse_lines(text: &str, origin: &str) -> Result<Vec<Self>, ConnError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(Self::parse(line, &format!("{origin} line {}", i + 1))?);
        }
        Ok(out)
    }

    /// The first line of `path`.
    pub fn from_file_first_line(path: &Path) -> Result<Self, ConnError> {
        let text = read(path)?;
        let origin = path.display().to_string();
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| ConnError::Parse {
                origin: origin.clone(),
                reason: "the file is empty".into(),
            })?;
        Self::parse(line, &format!("{origin} line 1"))
    }

    /// Every line of `path`.
    pub fn from_file_lines(path: &Path) -> Result<Vec<Self>, ConnError> {
        let text = read(path)?;
        Self::parse_lines(&text, &path.display().to_string())
    }
}

fn read(path: &Path) -> Result<Zeroizing<String>, ConnError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| ConnError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// The DPS connection string: `file`'s first line, else `env_value`
/// (`IOTCA_DPS_CONNECTION_STRING`).
pub fn dps_connection(
    file: Option<&Path>,
    env_value: Option<&str>,
) -> Result<ConnectionString, ConnError> {
    if let Some(f) = file {
        return ConnectionString::from_file_first_line(f);
    }
    match env_value {
        Some(v) if !v.trim().is_empty() => ConnectionString::parse(v, "IOTCA_DPS_CONNECTION_STRING"),
        _ => Err(ConnError::Missing(
            "no DPS connection string: give --dps-connection-string-file F or set IOTCA_DPS_CONNECTION_STRING".into(),
        )),
    }
}

/// The hub connection strings: every line of every `files`, else `env_value`
/// (`IOTCA_HUB_CONNECTION_STRING`, one a line). Empty if none is given.
pub fn hub_connections(
    files: &[std::path::PathBuf],
    env_value: Option<&str>,
) -> Result<Vec<ConnectionString>, ConnError> {
    if !files.is_empty() {
        let mut out = Vec::new();
        for f in files {
            out.extend(ConnectionString::from_file_lines(f)?);
        }
        return Ok(out);
    }
    match env_value {
        Some(v) => ConnectionString::parse_lines(v, "IOTCA_HUB_CONNECTION_STRING"),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_parts_and_gateway() {
        let c = ConnectionString::parse(
            &format!("HostName=lab-hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};GatewayHostName=127.0.0.1:8443"),
            "t",
        )
        .unwrap();
        assert_eq!(c.host_name, "lab-hub.azure-devices.net");
        assert_eq!(c.policy, "iothubowner");
        assert_eq!(c.connect_to(), "127.0.0.1:8443");
        assert_eq!(c.key(), (0u8..32).collect::<Vec<_>>());
    }

    #[test]
    fn debug_and_errors_elide_the_key() {
        let c = ConnectionString::parse(
            &format!("HostName=h;SharedAccessKeyName=p;SharedAccessKey={KEY}"),
            "t",
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains(KEY) && d.contains("<elided>"), "{d}");
        let e = ConnectionString::parse(
            "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("not*base64"), "{e}");
    }

    #[test]
    fn refuses_missing_parts() {
        for s in [
            "SharedAccessKeyName=p;SharedAccessKey=AA==",
            "HostName=h;SharedAccessKey=AA==",
            "HostName=h;SharedAccessKeyName=p",
            "HostName=h;DeviceId=d;SharedAccessKey=AA==",
            "garbage",
        ] {
            assert!(ConnectionString::parse(s, "t").is_err(), "{s}");
        }
    }

    #[test]
    fn lines_skip_blanks_and_name_the_line() {
        let text = format!(
            "\nHostName=a;SharedAccessKeyName=p;SharedAccessKey={KEY}\n\n# c\nHostName=b\n"
        );
        let e = ConnectionString::parse_lines(&text, "f")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f line 5:"), "{e}");
    }
}
