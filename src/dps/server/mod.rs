//! The local DPS endpoint: the DPS device API over MQTT 3.1.1 and TLS, as
//! the Azure IoT device SDKs speak it, answering from the local enrollment
//! store with [`crate::provision::decide`] (the decision `iotca provision`
//! makes; there is no second implementation here).
//!
//! # Protocol
//!
//! - TLS 1.2 or 1.3. A client certificate is required; any chain is accepted
//!   at the TLS layer (the handshake signature is still verified, so the
//!   device proves it holds the leaf's key), and the decision is made on
//!   the presented chain afterwards, as DPS does.
//! - CONNECT: client ID = registration ID; user name
//!   `{idScope}/registrations/{registrationId}/api-version=...`. A user name
//!   of another shape is refused with CONNACK 4, another ID scope (when the
//!   server has one) with CONNACK 5.
//! - SUBSCRIBE `$dps/registrations/res/#` (other filters get 0x80).
//! - PUBLISH `$dps/registrations/PUT/iotdps-register/?$rid={rid}` (body
//!   empty, or JSON with `registrationId`): the device is decided on the
//!   spot. Refused (the registration ID in the user name, client ID or body
//!   is not the leaf's CN, or nothing authorizes the device): `401` with
//!   `{"errorCode": 401002, "trackingId", "message", "timestampUtc"}`.
//!   Otherwise `202` on `$dps/registrations/res/202/?$rid={rid}&retry-after=1`
//!   with `{"operationId", "status": "assigning"}`; an assigned device is
//!   added to the local hub registry and a registration record is written.
//! - PUBLISH `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}`:
//!   `200` with `{"operationId", "status": "assigned"|"disabled"|"failed",
//!   "registrationState": {...}}` (DPS `DeviceRegistrationState`), or `404`
//!   for an operation this connection did not start.
//! - PINGREQ/PINGRESP, PUBACK for QoS 1 publishes, UNSUBSCRIBE, DISCONNECT.
//!
//! The Python SDK (azure-iot-device 2.14) returns a result for `assigned`,
//! raises for `failed` and for statuses it does not know (so `disabled`
//! raises `ClientError` whose cause says "invalid registration status
//! disabled"), and raises on any status code from 300 to 428.
//!
//! # Limits
//!
//! One task per connection; a packet is at most [`Limits::max_packet`]
//! bytes; the TLS handshake and the CONNECT must arrive within
//! [`Limits::handshake_timeout`]; after that a connection idle for 1.5
//! times its keep-alive is closed; at most [`Limits::max_connections`]
//! connections at once. A malformed packet, a TLS failure or a timeout
//! closes that connection and nothing else.

mod conn;
mod hub;
mod hub_auth;
mod register;
mod tls;
mod topics;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::emulator::{EmulatorCa, Registrations};
use crate::enroll::EnrollmentStore;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::hub_messages::MessageStore;
use conn::connection;
use hub_auth::HubAuth;
pub(crate) use tls::tls_config;
use watch::Watcher;

/// The port the device SDKs use.
pub const DEFAULT_PORT: u16 = 8883;
/// The topic filter devices subscribe to for replies.
pub const RESPONSE_FILTER: &str = "$dps/registrations/res/#";
/// Prefix of the register request topic.
pub const REGISTER_TOPIC: &str = "$dps/registrations/PUT/iotdps-register/";
/// Prefix of the operation status request topic.
pub const STATUS_TOPIC: &str = "$dps/registrations/GET/iotdps-get-operationstatus/";
/// The `retry-after` (seconds) sent with `202 assigning`.
pub const RETRY_AFTER: u32 = 1;
/// DPS's error code for an unauthorized device.
pub const UNAUTHORIZED: u32 = 401002;
/// DPS's error code for an internal error (a `failed` registration state).
pub const INTERNAL_ERROR: u32 = 500000;

/// Resource limits of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest MQTT packet accepted (remaining length), in bytes.
    pub max_packet: usize,
    /// Time allowed for the TLS handshake and, after it, for the CONNECT.
    pub handshake_timeout: Duration,
    /// Idle limit when the client's keep-alive is 0.
    pub idle_without_keep_alive: Duration,
    /// Time allowed for one write to a client.
    pub write_timeout: Duration,
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
    /// Operations one connection may keep for polling (oldest dropped first).
    pub max_operations: usize,
    /// Topic filters one connection may hold.
    pub max_subscriptions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_without_keep_alive: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_operations: 16,
            max_subscriptions: 8,
        }
    }
}

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The ID scope devices must use; any scope is accepted when None.
    pub id_scope: Option<String>,
    /// Where the HTTPS listener (DPS service and device API, hub
    /// registries) listens; none when None.
    pub https_listen: Option<SocketAddr>,
    /// The emulator's IoT hubs (`--hub`, host names). An enrollment that
    /// names no `iotHubs` may be allocated to any of them; none given
    /// means the one hub [`crate::provision::DEFAULT_HUB`].
    pub hubs: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
    /// Resource limits of the HTTPS listener.
    pub https_limits: crate::dps::https::Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            id_scope: None,
            https_listen: None,
            hubs: Vec::new(),
            limits: Limits::default(),
            https_limits: crate::dps::https::Limits::default(),
        }
    }
}

/// An `ADDR:PORT` or `HOST:PORT` to listen on: IP literals as they are
/// (`[::1]:8883` for IPv6), host names resolved (`localhost:8883`), the
/// first address the resolver gives winning.
pub fn resolve_listen(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if s.rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(Error::Invalid(format!(
            "'{s}' is not ADDR:PORT or HOST:PORT (for example 127.0.0.1:8883 or localhost:8883)"
        )));
    }
    use std::net::ToSocketAddrs as _;
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| Error::Invalid(format!("cannot resolve '{s}': {e}")))?;
    addrs
        .next()
        .ok_or_else(|| Error::Invalid(format!("'{s}' resolves to no address")))
}

/// The ID scope written to the endpoint file when none is fixed (any is accepted).
pub const DEFAULT_ID_SCOPE: &str = "0ne00000000";

/// A bound, not yet running, local DPS endpoint.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    trust_path: PathBuf,
    ca_created: bool,
    https: Option<Https>,
    endpoint_path: PathBuf,
}

/// The bound HTTPS listener.
struct Https {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<crate::dps::https::State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.listener.local_addr().ok())
            .field("trust_path", &self.trust_path)
            .finish_non_exhaustive()
    }
}
struct Shared {
    home: Home,
    store: EnrollmentStore,
    registrations: Registrations,
    config: ServerConfig,
    writer: Mutex<()>,
    hub_auth: Arc<HubAuth>,
    watcher: Arc<Watcher>,
    messages: MessageStore,
}

/// The emulator's hubs: `--hub` names, or the default hub.
fn hub_names(config: &ServerConfig) -> Vec<String> {
    if config.hubs.is_empty() {
        vec![crate::provision::DEFAULT_HUB.to_string()]
    } else {
        config.hubs.clone()
    }
}

impl Server {
    /// Loads (or makes) the emulator CA in `home`, issues the server
    /// certificate and binds the listening socket.
    pub async fn bind(home: Home, mut config: ServerConfig) -> Result<Server> {
        use crate::dps::https;
        let now = OffsetDateTime::now_utc();
        if config.hubs.is_empty() {
            config.hubs.push(crate::provision::DEFAULT_HUB.to_string());
        }
        for h in &config.hubs {
            https::keys::check_hub_host(h)?;
        }
        let h = home.clone();
        let hubs = config.hubs.clone();
        let (ca, identity, keys) = tokio::task::spawn_blocking(move || {
            let ca = EmulatorCa::ensure(&h, now)?;
            let identity = ca.issue_server_for(now, &hubs)?;
            let keys = https::keys::ServiceKeys::ensure(&h, &hubs)?;
            Ok::<_, Error>((ca, identity, keys))
        })
        .await
        .map_err(|e| Error::Invalid(format!("could not prepare the server certificate: {e}")))??;
        let tls = tls_config(&identity, true)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", config.listen)))?;
        let mqtt_addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("the listening socket has no address: {e}")))?;
        let https_listener = match config.https_listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| Error::Invalid(format!("cannot listen on {a}: {e}")))?,
            ),
            None => None,
        };
        let https_addr = https_listener.as_ref().and_then(|l| l.local_addr().ok());
        let trust_rel = crate::dps::emulator::CA_CERT.to_string();
        let endpoint = https::keys::Endpoint::new(
            &keys,
            config.id_scope.as_deref().unwrap_or(DEFAULT_ID_SCOPE),
            mqtt_addr,
            https_addr,
            &trust_rel,
        );
        let h = home.clone();
        let endpoint_path = tokio::task::spawn_blocking(move || endpoint.write(&h))
            .await
            .map_err(|e| Error::Invalid(format!("could not write the endpoint file: {e}")))??;
        let https = match https_listener {
            Some(l) => Some(Https {
                listener: l,
                acceptor: TlsAcceptor::from(Arc::new(https::tls::config(&identity)?)),
                state: Arc::new(https::State {
                    store: EnrollmentStore::new(home.clone()),
                    registrations: Registrations::new(home.clone()),
                    registry: crate::hub::Registry::new(home.clone()),
                    home: home.clone(),
                    keys,
                    id_scope: config.id_scope.clone(),
                    hubs: config.hubs.clone(),
                    limits: config.https_limits.clone(),
                    operations: Mutex::new(Default::default()),
                }),
            }),
            None => None,
        };
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            trust_path: ca.cert_path.clone(),
            ca_created: ca.created,
            https,
            endpoint_path,
            shared: Arc::new(Shared {
                hub_auth: Arc::new(HubAuth::new(home.clone(), hub_names(&config).remove(0))),
                watcher: Arc::new(Watcher::default()),
                messages: MessageStore::new(home.clone()),
                store: EnrollmentStore::new(home.clone()),
                registrations: Registrations::new(home.clone()),
                home,
                config,
                writer: Mutex::new(()),
            }),
        })
    }

    /// The address of the HTTPS listener, when there is one.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
            .as_ref()
            .and_then(|h| h.listener.local_addr().ok())
    }

    /// `private/iotca-dps-endpoint.json`, written by [`Server::bind`].
    pub fn endpoint_path(&self) -> &Path {
        &self.endpoint_path
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("the listening socket has no address: {e}")))
    }

    /// The emulator CA certificate file devices must trust.
    pub fn trust_path(&self) -> &Path {
        &self.trust_path
    }

    /// True when binding made the emulator CA.
    pub fn ca_created(&self) -> bool {
        self.ca_created
    }

    /// Serves until `shutdown` completes, then stops accepting, closes every
    /// connection (waiting up to 5 seconds for them) and returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let watcher = tokio::spawn(
            self.shared
                .watcher
                .clone()
                .run(self.shared.hub_auth.clone(), stop_rx.clone()),
        );
        let https_task = self.https.take().map(|h| {
            let mut stop = stop_rx.clone();
            tokio::spawn(crate::dps::https::serve(
                h.listener,
                h.acceptor,
                h.state,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ))
        });
        let mut tasks = JoinSet::new();
        let max = self.shared.config.limits.max_connections;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        if tasks.len() >= max {
                            log(&format!("{peer}: refused: {max} connections already open"));
                            drop(tcp);
                            continue;
                        }
                        let _ = tcp.set_nodelay(true);
                        let shared = self.shared.clone();
                        let acceptor = self.acceptor.clone();
                        let mut stop = stop_rx.clone();
                        tasks.spawn(async move {
                            tokio::select! {
                                r = connection(shared, acceptor, tcp, peer) => {
                                    if let Err(e) = r {
                                        log(&format!("{peer}: connection closed: {e}"));
                                    }
                                }
                                _ = stop.wait_for(|s| *s) => {}
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        log(&format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        if let Some(t) = https_task {
            let _ = t.await;
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        let _ = watcher.await;
        Ok(())
    }
}

/// One line of the server log. Network-supplied IDs and topics are in it,
/// so the whole line goes through [`crate::text::escape`]: a client cannot
/// forge a line or reach the terminal.
fn log(line: &str) {
    eprintln!("iotca dps: {}", crate::text::escape(line));
}

#[cfg(test)]
mod tests {
    use super::resolve_listen;

    #[test]
    fn listen_addresses_and_host_names() {
        assert_eq!(resolve_listen("127.0.0.1:8883").unwrap().port(), 8883);
        assert!(resolve_listen("[::1]:0").unwrap().is_ipv6());
        let a = resolve_listen("localhost:8883").unwrap();
        assert!(a.ip().is_loopback() && a.port() == 8883, "{a}");
        for bad in ["localhost", "localhost:x", ":8883", "127.0.0.1:99999", ""] {
            assert!(resolve_listen(bad).is_err(), "{bad}");
        }
    }
}
