//! `iotca dps ...`: a local DPS endpoint the Azure IoT device SDKs
//! provision against, its emulator CA, and its registration records.

use std::io::Write as _;
use std::net::SocketAddr;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use iotca::dps::{EmulatorCa, Registrations, Server, ServerConfig};
use iotca::home::Home;

use super::{CmdResult, Global, print_json};

/// Local DPS endpoint commands.
#[derive(Debug, Subcommand)]
pub enum DpsCommand {
    /// Serve the DPS device API (MQTT over TLS) from the home's enrollments until Ctrl-C.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Print the emulator CA certificate (PEM) devices must trust, creating it if missing.
    #[command(after_help = TRUST_HELP)]
    Trust,
    /// List the registration records (dps/registrations/<id>.json).
    #[command(after_help = REGISTRATIONS_HELP)]
    Registrations(RegistrationsArgs),
    /// Print the connection strings of the running emulator (DPS service, each hub).
    #[command(after_help = CONNECTION_STRINGS_HELP)]
    ConnectionStrings,
}

/// `dps registrations` arguments.
#[derive(Debug, clap::Args)]
pub struct RegistrationsArgs {
    /// With --azure: one device's registration state.
    #[arg(value_name = "ID", requires = "azure")]
    pub id: Option<String>,
    /// With --azure: the registration states of this enrollment group's devices.
    #[arg(long, value_name = "GROUP_ID", requires = "azure")]
    pub group: Option<String>,
    #[command(flatten)]
    pub remote: super::azure_args::DpsRemoteArgs,
}

const CONNECTION_STRINGS_HELP: &str = "\
Reads private/iotca-dps-endpoint.json, which every `iotca dps serve` start writes (0600):
the ID scope, the MQTT and HTTPS addresses, the file to trust, the DPS service connection
string (policy provisioningserviceowner) and, for each hub, two connection strings:
`connection_string` (HostName=<hub>;...;GatewayHostName=localhost:PORT, for iotca) and
`sdk_connection_string` (HostName=localhost:PORT, for Microsoft's service SDKs, which
cannot take a gateway). They hold the service keys: keep the output private.

EXIT CODES:
  0  printed
  2  the emulator has not been started in this home (no endpoint file), or it is unreadable

EXAMPLES:
  The DPS service connection string for azure-iot-deviceprovisioning:
    iotca --home pki dps connection-strings --json | jq -r .dps.connection_string
  Every hub's SDK connection string:
    iotca --home pki dps connection-strings --json | jq -r '.hubs[].sdk_connection_string'";

const SERVE_HELP: &str = "\
Devices connect with their X.509 certificate (send the full chain) over TLS 1.2 or 1.3, and
register with the DPS MQTT API (the Azure IoT device SDKs' protocol). Each registration is
decided as `iotca provision` decides it: an individual enrollment whose registration ID is
the certificate's CN first (disabled blocks), then the enrollment groups along the chain.
An assigned device is added to the local hub registry (hub/devices/) and every decision
is recorded under dps/registrations/ and logged on stderr (one line: who, what, why).
A registration ID (MQTT user name, client ID or request body) that is not the
certificate's CN, or a device nothing authorizes, is refused with 401 (errorCode 401002).

HTTPS (--https-listen, default 127.0.0.1:8443) serves the DPS service API (enrollments,
enrollment groups, registration states; SAS policy provisioningserviceowner), the DPS device
API over HTTPS (X.509 client certificate) and each --hub's identity registry (/devices;
SAS policy iothubowner with that hub's key), on the same store the CLI uses. The service
keys are made on first start (private/iotca-dps-service.key, private/iotca-hub-<host>.key,
never overwritten); `iotca dps connection-strings` prints the connection strings. Devices
are allocated among an enrollment's iotHubs (default: every --hub) by its allocationPolicy
(hashed by default, static, geoLatency).

On first start the emulator CA is made in the home (certs/iotca-dps-server-ca.cert.pem,
private/iotca-dps-server-ca.key.pem) and never overwritten; the server certificate it
signs (localhost, 127.0.0.1) is issued afresh at every start. When listening, one line
goes to stdout: the address, the ID scope and the file to trust. Ctrl-C or SIGTERM stops it.

EXIT CODES:
  0  stopped by Ctrl-C or SIGTERM
  2  could not start (the address is in use, the home or its emulator CA is unreadable)

EXAMPLES:
  Serve the lab home on the SDKs' port:
    iotca --home pki dps serve
  Other ports, a fixed ID scope, and two hubs to allocate devices among:
    iotca --home pki dps serve --listen 127.0.0.1:18883 --https-listen 127.0.0.1:18443 \\
        --id-scope 0ne00LAB001 --hub lab-hub.azure-devices.net --hub lab-hub-2.azure-devices.net
  Register with the Python device SDK (azure-iot-device):
    ProvisioningDeviceClient.create_from_x509_certificate(provisioning_host=\"localhost\",
        registration_id=\"sensor-thl-001\", id_scope=\"0ne00LAB001\",
        x509=X509(\"pki/certs/sensor-thl-001-full-chain.cert.pem\", \"pki/private/sensor-thl-001.key.pem\"),
        server_verification_cert=open(\"pki/certs/iotca-dps-server-ca.cert.pem\").read()).register()";

const TRUST_HELP: &str = "\
The emulator CA signs the server certificate of `iotca dps serve`. Devices pass it as their
server verification certificate (Python SDK: server_verification_cert=...). It is made on
first use (P-256, 10 years) and never overwritten.

EXIT CODES:
  0  printed
  2  the home does not exist, or the emulator CA is unreadable or half missing

EXAMPLES:
  Save it for a device app:
    iotca --home pki dps trust > dps-trust.pem";

const REGISTRATIONS_HELP: &str = "\
One record per registration ID, in the DPS DeviceRegistrationState shape (registrationId,
status assigned|disabled|failed, assignedHub, deviceId, substatus, createdDateTimeUtc,
lastUpdatedDateTimeUtc, etag; errorCode and errorMessage when failed).

EXIT CODES:
  0  every record was read
  2  some record could not be read (each is named on stderr; the others are listed)

EXAMPLES:
  What did the local DPS decide?
    iotca --home pki dps registrations
    iotca --home pki dps registrations --json";

/// `dps serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8883", value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// The ID scope devices must use (any is accepted when not given).
    #[arg(long, value_name = "SCOPE")]
    pub id_scope: Option<String>,
    /// The address and port of the HTTPS listener (DPS service API, DPS
    /// device API over HTTPS, the hubs' identity registries).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8443", value_parser = listen_addr)]
    pub https_listen: SocketAddr,
    /// An IoT hub host of the emulator (repeat for several); enrollments
    /// that name no hub are allocated among them
    /// [default: iotca-local-hub.azure-devices.net].
    #[arg(long, value_name = "HOST")]
    pub hub: Vec<String>,
}

/// `--listen` and `--https-listen`: an IP address or a host name (`localhost:8883`).
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    iotca::dps::resolve_listen(s).map_err(|e| e.to_string())
}

/// Runs a `dps` command.
pub fn run(cmd: &DpsCommand, g: &Global) -> CmdResult {
    match cmd {
        DpsCommand::Serve(a) => serve(a, g),
        DpsCommand::Trust => trust(g),
        DpsCommand::Registrations(a) if a.remote.azure => {
            super::dps_azure::registrations(a.id.as_deref(), a.group.as_deref(), &a.remote, g)
        }
        DpsCommand::Registrations(_) => registrations(g),
        DpsCommand::ConnectionStrings => connection_strings(g),
    }
}

fn serve(a: &ServeArgs, g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    if let Some(scope) = &a.id_scope
        && (scope.is_empty() || scope.contains('/'))
    {
        anyhow::bail!("--id-scope '{scope}' must be non-empty and contain no '/'");
    }
    let config = ServerConfig {
        listen: a.listen,
        id_scope: a.id_scope.clone(),
        https_listen: Some(a.https_listen),
        hubs: a.hub.clone(),
        ..ServerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = Server::bind(home, config).await?;
        let addr = server.local_addr()?;
        let https = server.https_addr();
        let trust = server.trust_path().to_path_buf();
        if server.ca_created() {
            eprintln!(
                "iotca dps: made the emulator CA {} (devices trust it)",
                trust.display()
            );
        }
        let scope = a.id_scope.as_deref().unwrap_or("any");
        {
            let mut out = std::io::stdout().lock();
            if g.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "listening": addr.to_string(),
                        "https": https.map(|h| h.to_string()),
                        "id_scope": a.id_scope,
                        "trust": trust,
                    })
                )?;
            } else {
                let https = https.map(|h| format!(", HTTPS on {h}")).unwrap_or_default();
                writeln!(
                    out,
                    "iotca dps: listening on {addr} (ID scope: {scope}; devices trust {}){https}",
                    trust.display()
                )?;
            }
            out.flush()?;
        }
        server.run(shutdown_signal()).await?;
        eprintln!("iotca dps: stopped");
        Ok::<u8, anyhow::Error>(0)
    })
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn trust(g: &Global) -> CmdResult {
    super::home_check::require_home(&g.home_dir())?;
    let home = Home::open(&g.home_dir())?;
    let ca = EmulatorCa::ensure(&home, OffsetDateTime::now_utc())?;
    if ca.created && !g.quiet {
        eprintln!("iotca: made the emulator CA {}", ca.cert_path.display());
    }
    if g.json {
        print_json(&serde_json::json!({
            "path": ca.cert_path,
            "created": ca.created,
            "pem": ca.pem(),
        }))?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(ca.pem().as_bytes())?;
        out.flush()?;
    }
    Ok(0)
}

fn registrations(g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let listing = Registrations::new(home.clone()).list();
    for e in &listing.errors {
        eprintln!("iotca: error: {e}");
    }
    if g.json {
        let records: Vec<_> = listing.records.iter().map(|(_, r)| r).collect();
        print_json(&serde_json::json!({
            "registrations": records,
            "errors": listing.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        let mut s = String::new();
        if listing.records.is_empty() {
            s.push_str(&format!(
                "no registrations in {}\n",
                home.path(iotca::dps::emulator::REGISTRATIONS_DIR).display()
            ));
        }
        for (_, r) in &listing.records {
            let what = match r.status.as_str() {
                "assigned" => format!(
                    "device {} on {}",
                    r.device_id.as_deref().unwrap_or("?"),
                    r.assigned_hub.as_deref().unwrap_or("?")
                ),
                "disabled" => "refused: its enrollment is disabled".to_string(),
                _ => r.error_message.clone().unwrap_or_default(),
            };
            s.push_str(&format!(
                "{:<32} {:<9} {:<21} {}\n",
                r.registration_id,
                r.status,
                r.last_updated_date_time_utc.as_deref().unwrap_or("-"),
                what
            ));
        }
        let mut out = std::io::stdout().lock();
        out.write_all(s.as_bytes())?;
    }
    Ok(if listing.errors.is_empty() { 0 } else { 2 })
}

fn connection_strings(g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let e = iotca::dps::https::keys::Endpoint::read(&home)?;
    if g.json {
        print_json(&e)?;
        return Ok(0);
    }
    let mut s = format!(
        "ID scope:   {}\nMQTT:       {}\nHTTPS:      {}\ntrust:      {}\nDPS:        {}\n",
        e.id_scope,
        e.mqtt,
        e.https.as_deref().unwrap_or("-"),
        home.path(&e.trust).display(),
        e.dps.connection_string
    );
    for h in &e.hubs {
        s.push_str(&format!(
            "hub {}:\n  iotca: {}\n  SDKs:  {}\n",
            h.name, h.connection_string, h.sdk_connection_string
        ));
    }
    std::io::stdout().lock().write_all(s.as_bytes())?;
    Ok(0)
}
