//! The flags every `--to azure` / `--azure` command shares: where the
//! connection strings are (files or the environment, never argv), the extra
//! trust for the service's TLS, and the request timeout.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use iotca::azure::conn::{self, ConnectionString};
use iotca::azure::dps::Dps;
use iotca::azure::http::Settings;

/// Connection strings, trust and timing for Azure.
#[derive(Debug, Args, Clone, Default)]
pub struct AzureArgs {
    /// A file whose first line is the DPS service connection string
    /// [default: $IOTCA_DPS_CONNECTION_STRING].
    #[arg(long, value_name = "F")]
    pub dps_connection_string_file: Option<PathBuf>,
    /// A file of hub service connection strings, one a line (repeatable)
    /// [default: $IOTCA_HUB_CONNECTION_STRING, one a line].
    #[arg(long, value_name = "F")]
    pub hub_connection_string_file: Vec<PathBuf>,
    /// Also trust these CA certificates for the services' TLS (for the
    /// emulator: `iotca dps trust`) [default: $IOTCA_SERVICE_CA].
    #[arg(long, value_name = "F")]
    pub service_ca: Option<PathBuf>,
    /// Seconds each request may take.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
}

impl AzureArgs {
    /// Trust and timing.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let ca = self
            .service_ca
            .clone()
            .or_else(|| std::env::var_os("IOTCA_SERVICE_CA").map(PathBuf::from));
        let mut s = Settings::new(ca.as_deref())?;
        s.timeout = Duration::from_secs(self.request_timeout.max(1));
        Ok(s)
    }

    /// The DPS client.
    pub fn dps(&self, settings: &Settings) -> anyhow::Result<Dps> {
        let env = std::env::var("IOTCA_DPS_CONNECTION_STRING").ok();
        let c = conn::dps_connection(self.dps_connection_string_file.as_deref(), env.as_deref())?;
        Ok(Dps::new(c, settings))
    }

    /// The hub connection strings given (possibly none).
    pub fn hubs(&self) -> anyhow::Result<Vec<ConnectionString>> {
        let env = std::env::var("IOTCA_HUB_CONNECTION_STRING").ok();
        Ok(conn::hub_connections(
            &self.hub_connection_string_file,
            env.as_deref(),
        )?)
    }
}

/// `--azure [--hub HOST]` plus the connection-string flags, for the hub commands.
#[derive(Debug, Args, Clone, Default)]
pub struct HubRemoteArgs {
    /// Act on the IoT hub of a hub connection string instead of the local registry.
    #[arg(long)]
    pub azure: bool,
    /// With --azure: the hub (its HostName) among several connection strings.
    #[arg(long, value_name = "HOST", requires = "azure")]
    pub hub: Option<String>,
    #[command(flatten)]
    pub conn: AzureArgs,
}

impl HubRemoteArgs {
    /// The registry client for the chosen hub.
    pub fn registry(&self) -> anyhow::Result<iotca::azure::hub::HubRegistry> {
        let settings = self.conn.settings()?;
        let hubs = self.conn.hubs()?;
        let names = || {
            hubs.iter()
                .map(|h| h.host_name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let pick = match &self.hub {
            Some(h) => hubs
                .iter()
                .find(|c| c.host_name.eq_ignore_ascii_case(h))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no hub connection string for '{}' (given: {})",
                        iotca::text::escape(h),
                        names()
                    )
                })?,
            None => match hubs.as_slice() {
                [one] => one,
                [] => anyhow::bail!(
                    "no hub connection string: give --hub-connection-string-file F or set IOTCA_HUB_CONNECTION_STRING"
                ),
                _ => anyhow::bail!("several hubs ({}): pick one with --hub HOST", names()),
            },
        };
        Ok(iotca::azure::hub::HubRegistry::new(pick.clone(), &settings))
    }
}

/// `--azure` plus the connection-string flags, for the DPS commands.
#[derive(Debug, Args, Clone, Default)]
pub struct DpsRemoteArgs {
    /// Ask the DPS of the DPS connection string instead of the local store.
    #[arg(long)]
    pub azure: bool,
    #[command(flatten)]
    pub conn: AzureArgs,
}

impl DpsRemoteArgs {
    /// The DPS client.
    pub fn dps(&self) -> anyhow::Result<Dps> {
        let settings = self.conn.settings()?;
        self.conn.dps(&settings)
    }
}
