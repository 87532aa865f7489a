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

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::emulator::{self, EmulatorCa, RegistrationState, Registrations};
use super::mqtt::{self, ConnectReturnCode, DecodeError, Packet, Publish};
use crate::cert;
use crate::enroll::EnrollmentStore;
use crate::error::{Error, Result};
use crate::ids;
use crate::provision::{self, Decision, Status};
use crate::store::Home;

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
    /// means the one hub [`provision::DEFAULT_HUB`].
    pub hubs: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            id_scope: None,
            https_listen: None,
            hubs: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// A bound, not yet running, local DPS endpoint.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    trust_path: PathBuf,
    ca_created: bool,
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
}

impl Server {
    /// Loads (or makes) the emulator CA in `home`, issues the server
    /// certificate and binds the listening socket.
    pub async fn bind(home: Home, config: ServerConfig) -> Result<Server> {
        let now = OffsetDateTime::now_utc();
        let h = home.clone();
        let (ca, identity) = tokio::task::spawn_blocking(move || {
            let ca = EmulatorCa::ensure(&h, now)?;
            let identity = ca.issue_server(now)?;
            Ok::<_, Error>((ca, identity))
        })
        .await
        .map_err(|e| Error::Invalid(format!("could not prepare the server certificate: {e}")))??;
        let tls = tls_config(&identity)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", config.listen)))?;
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            trust_path: ca.cert_path.clone(),
            ca_created: ca.created,
            shared: Arc::new(Shared {
                store: EnrollmentStore::new(home.clone()),
                registrations: Registrations::new(home.clone()),
                home,
                config,
                writer: Mutex::new(()),
            }),
        })
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
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
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
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        Ok(())
    }
}

fn log(line: &str) {
    eprintln!("iotca dps: {line}");
}

/// Accepts any client certificate chain at the TLS layer but verifies the
/// handshake signature with the certificate's key.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        // The chain is judged by the DPS decision after the handshake.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls configuration: TLS 1.2 and 1.3, ring, client certificate required.
fn tls_config(identity: &emulator::ServerIdentity) -> Result<rustls::ServerConfig> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let chain = identity
        .chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.to_vec()));
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .and_then(|b| {
            b.with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
        })
        .map_err(|e| Error::Invalid(format!("could not set up TLS: {e}")))
}

/// Why a connection ended early.
#[derive(Debug)]
enum ConnError {
    Tls(std::io::Error),
    Io(std::io::Error),
    Decode(DecodeError),
    Timeout(&'static str),
    Protocol(String),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Decode(e) => write!(f, "{e}"),
            ConnError::Timeout(what) => write!(f, "timed out {what}"),
            ConnError::Protocol(why) => write!(f, "{why}"),
        }
    }
}

impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        ConnError::Decode(e)
    }
}

/// An MQTT connection over any byte stream, with bounded buffering.
struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    max_packet: usize,
    write_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// The next packet, or None at a clean end of stream.
    async fn read(&mut self) -> std::result::Result<Option<Packet>, ConnError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((p, n)) = mqtt::decode(&self.buf, self.max_packet)? {
                self.buf.drain(..n);
                return Ok(Some(p));
            }
            let n = match self.stream.read(&mut chunk).await {
                Ok(n) => n,
                // A client that hangs up without TLS close_notify (most do)
                // between packets has simply gone.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(ConnError::Io(e)),
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnError::Protocol(
                        "the client closed the connection in the middle of a packet".into(),
                    ))
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn write(&mut self, p: &Packet) -> std::result::Result<(), ConnError> {
        let bytes = mqtt::to_bytes(p).map_err(|e| ConnError::Protocol(e.to_string()))?;
        let w = async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, w).await {
            Ok(r) => r.map_err(ConnError::Io),
            Err(_) => Err(ConnError::Timeout("writing to the client")),
        }
    }
}

/// The parts of the DPS user name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserName {
    id_scope: String,
    registration_id: String,
}

/// `{idScope}/registrations/{registrationId}/api-version=...`.
fn parse_username(u: &str) -> Option<UserName> {
    let mut parts = u.splitn(4, '/');
    let scope = parts.next()?;
    let fixed = parts.next()?;
    let id = parts.next()?;
    let rest = parts.next()?;
    if scope.is_empty() || fixed != "registrations" || id.is_empty() {
        return None;
    }
    let has_version = rest
        .trim_start_matches('?')
        .split('&')
        .any(|kv| kv.starts_with("api-version="));
    has_version.then(|| UserName {
        id_scope: scope.to_string(),
        registration_id: id.to_string(),
    })
}

/// The `key=value` pairs after `?` in a request topic (keys without `$`),
/// values percent-decoded.
fn topic_query(topic: &str) -> Vec<(String, String)> {
    let Some((_, q)) = topic.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k.trim_start_matches('$')), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                b.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request ID echoed back in the reply topic: it must not be able to
/// change the topic's shape (the SDKs split reply topics on `$`, `&`, `=`).
fn valid_rid(rid: &str) -> bool {
    !rid.is_empty()
        && rid.len() <= 128
        && rid
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'%'))
}

/// The raw (still encoded) value of `$rid` in a request topic.
fn raw_rid(topic: &str) -> Option<&str> {
    let (_, q) = topic.split_once('?')?;
    q.split('&').find_map(|kv| kv.strip_prefix("$rid="))
}

/// The state of one device connection.
struct Session {
    peer: SocketAddr,
    chain: Vec<Vec<u8>>,
    client_id: String,
    username: UserName,
    subscriptions: Vec<(String, u8)>,
    operations: VecDeque<(String, Value)>,
    next_packet_id: u16,
}

async fn connection(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> std::result::Result<(), ConnError> {
    let limits = shared.config.limits.clone();
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnError::Tls(e)),
        Err(_) => return Err(ConnError::Timeout("in the TLS handshake")),
    };
    let chain: Vec<Vec<u8>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.to_vec()).collect())
        .unwrap_or_default();
    if chain.is_empty() {
        return Err(ConnError::Protocol(
            "the client presented no certificate".into(),
        ));
    }
    let mut conn = Conn {
        stream: tls,
        buf: Vec::new(),
        max_packet: limits.max_packet,
        write_timeout: limits.write_timeout,
    };
    let first = match tokio::time::timeout(limits.handshake_timeout, conn.read()).await {
        Ok(r) => r?,
        Err(_) => return Err(ConnError::Timeout("waiting for CONNECT")),
    };
    let connect = match first {
        None => return Ok(()),
        Some(Packet::Connect(c)) => c,
        Some(p) => {
            return Err(ConnError::Protocol(format!(
                "the first packet was {}, not CONNECT",
                p.name()
            )));
        }
    };
    let refuse = |code| Packet::ConnAck {
        session_present: false,
        code,
    };
    if connect.protocol_name != "MQTT" || connect.protocol_level != 4 {
        conn.write(&refuse(ConnectReturnCode::UnacceptableProtocolVersion))
            .await?;
        return Err(ConnError::Protocol(format!(
            "refused CONNECT: protocol {} level {} is not MQTT 3.1.1",
            connect.protocol_name, connect.protocol_level
        )));
    }
    let Some(username) = connect.username.as_deref().and_then(parse_username) else {
        conn.write(&refuse(ConnectReturnCode::BadUsernameOrPassword))
            .await?;
        return Err(ConnError::Protocol(format!(
            "refused CONNECT from client '{}': the user name {:?} is not {{idScope}}/registrations/{{registrationId}}/api-version=...",
            connect.client_id,
            connect.username.as_deref().unwrap_or("")
        )));
    };
    if let Some(scope) = &shared.config.id_scope
        && !scope.eq_ignore_ascii_case(&username.id_scope)
    {
        conn.write(&refuse(ConnectReturnCode::NotAuthorized))
            .await?;
        return Err(ConnError::Protocol(format!(
            "refused CONNECT from '{}': ID scope '{}' is not this server's '{scope}'",
            username.registration_id, username.id_scope
        )));
    }
    conn.write(&Packet::ConnAck {
        session_present: false,
        code: ConnectReturnCode::Accepted,
    })
    .await?;
    let idle = if connect.keep_alive == 0 {
        limits.idle_without_keep_alive
    } else {
        Duration::from_millis(u64::from(connect.keep_alive) * 1500)
    };
    let mut session = Session {
        peer,
        chain,
        client_id: connect.client_id.clone(),
        username,
        subscriptions: Vec::new(),
        operations: VecDeque::new(),
        next_packet_id: 0,
    };
    loop {
        let packet = match tokio::time::timeout(idle, conn.read()).await {
            Ok(r) => r?,
            Err(_) => return Err(ConnError::Timeout("waiting for the client (keep-alive)")),
        };
        let Some(packet) = packet else {
            return Ok(());
        };
        match packet {
            Packet::PingReq => conn.write(&Packet::PingResp).await?,
            Packet::Disconnect => return Ok(()),
            Packet::PubAck { .. } => {}
            Packet::Subscribe { packet_id, filters } => {
                let mut codes = Vec::with_capacity(filters.len());
                for (filter, qos) in filters {
                    let ok = filter.starts_with("$dps/registrations/res/")
                        && (session.subscriptions.len() < limits.max_subscriptions
                            || session.subscriptions.iter().any(|(f, _)| *f == filter));
                    if ok {
                        let granted = qos.min(1);
                        session.subscriptions.retain(|(f, _)| *f != filter);
                        session.subscriptions.push((filter, granted));
                        codes.push(granted);
                    } else {
                        codes.push(0x80);
                    }
                }
                conn.write(&Packet::SubAck { packet_id, codes }).await?;
            }
            Packet::Unsubscribe { packet_id, filters } => {
                session.subscriptions.retain(|(f, _)| !filters.contains(f));
                conn.write(&Packet::UnsubAck { packet_id }).await?;
            }
            Packet::Publish(p) => {
                if let Some(packet_id) = p.packet_id {
                    conn.write(&Packet::PubAck { packet_id }).await?;
                }
                let reply = request(&shared, &mut session, &p).await?;
                if let Some((topic, body)) = reply {
                    deliver(&mut conn, &mut session, topic, body).await?;
                }
            }
            other => {
                return Err(ConnError::Protocol(format!(
                    "a client does not send {}",
                    other.name()
                )));
            }
        }
    }
}

/// Sends a reply to the device if it subscribed to a filter matching it.
async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    session: &mut Session,
    topic: String,
    body: Value,
) -> std::result::Result<(), ConnError> {
    let qos = session
        .subscriptions
        .iter()
        .filter(|(f, _)| mqtt::topic_matches(f, &topic))
        .map(|(_, q)| *q)
        .max();
    let Some(qos) = qos else {
        log(&format!(
            "{}: no subscription matches {topic}; reply dropped (subscribe to {RESPONSE_FILTER} first)",
            session.peer
        ));
        return Ok(());
    };
    let packet_id = if qos > 0 {
        session.next_packet_id = session.next_packet_id.checked_add(1).unwrap_or(1);
        Some(session.next_packet_id)
    } else {
        None
    };
    let payload = serde_json::to_vec(&body).unwrap_or_default();
    conn.write(&Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id,
        payload,
    }))
    .await
}

fn reply_topic(status: u16, rid: &str, retry_after: Option<u32>) -> String {
    match retry_after {
        Some(s) => format!("$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}"),
        None => format!("$dps/registrations/res/{status}/?$rid={rid}"),
    }
}

fn error_body(code: u32, message: &str, now: OffsetDateTime) -> Value {
    json!({
        "errorCode": code,
        "trackingId": tracking_id(),
        "message": message,
        "timestampUtc": cert::rfc3339(now),
    })
}

fn tracking_id() -> String {
    let op = emulator::new_operation_id();
    op.rsplit('.').next().unwrap_or(&op).to_string()
}

/// Handles one PUBLISH from the device: the reply topic and body, if any.
async fn request(
    shared: &Arc<Shared>,
    session: &mut Session,
    p: &Publish,
) -> std::result::Result<Option<(String, Value)>, ConnError> {
    let is_register = p.topic.starts_with(REGISTER_TOPIC);
    let is_status = p.topic.starts_with(STATUS_TOPIC);
    if !is_register && !is_status {
        return Err(ConnError::Protocol(format!(
            "PUBLISH to {:?}, which is not a DPS request topic",
            p.topic
        )));
    }
    let rid = match raw_rid(&p.topic) {
        Some(r) if valid_rid(r) => r.to_string(),
        _ => {
            return Err(ConnError::Protocol(format!(
                "PUBLISH to {:?} without a usable $rid",
                p.topic
            )));
        }
    };
    let now = OffsetDateTime::now_utc();
    if is_status {
        let op = topic_query(&p.topic)
            .into_iter()
            .find(|(k, _)| k == "operationId")
            .map(|(_, v)| v)
            .unwrap_or_default();
        return Ok(Some(
            match session.operations.iter().find(|(id, _)| *id == op) {
                Some((_, body)) => (reply_topic(200, &rid, None), body.clone()),
                None => (
                    reply_topic(404, &rid, None),
                    error_body(
                        404000,
                        &format!("operation '{op}' was not started on this connection"),
                        now,
                    ),
                ),
            },
        ));
    }
    register(shared, session, &rid, &p.payload, now).await
}

/// The registration ID the device claims in the register body, if any.
fn body_registration_id(payload: &[u8]) -> std::result::Result<Option<String>, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the register request body is not JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("the register request body is not a JSON object".into());
    };
    match m.get("registrationId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("registrationId in the register request body is not a string".into()),
    }
}

async fn register(
    shared: &Arc<Shared>,
    session: &mut Session,
    rid: &str,
    payload: &[u8],
    now: OffsetDateTime,
) -> std::result::Result<Option<(String, Value)>, ConnError> {
    let peer = session.peer;
    let body_id = match body_registration_id(payload) {
        Ok(id) => id,
        Err(why) => {
            log(&format!(
                "{peer} {}: bad request (400): {why}",
                session.username.registration_id
            ));
            return Ok(Some((
                reply_topic(400, rid, None),
                error_body(400004, &why, now),
            )));
        }
    };
    let chain = session.chain.clone();
    let s = shared.clone();
    let decided = tokio::task::spawn_blocking(move || provision::decide(&s.store, &chain, now))
        .await
        .map_err(|e| ConnError::Protocol(format!("the decision task failed: {e}")))?;
    let mut decision = match decided {
        Ok(d) => d,
        Err(e) => {
            // The store cannot be read for this device (its enrollment
            // record is broken): a terminal `failed` with DPS's internal
            // error code, rather than a 500 the SDKs would retry forever.
            let why = format!("the enrollment store could not be read: {e}");
            log(&format!(
                "{peer} {}: failed: {why}",
                session.username.registration_id
            ));
            let state = failed_state(&session.username.registration_id, &why, now);
            return Ok(Some(start_operation(shared, session, rid, state)));
        }
    };
    for w in &decision.warnings {
        log(&format!("warning: {w}"));
    }
    let claimed = &session.username.registration_id;
    let cn = decision.registration_id.clone();
    let mismatch = match &cn {
        None => None,
        Some(cn) => {
            let mut claims = vec![("MQTT user name", claimed.as_str())];
            claims.push(("MQTT client ID", session.client_id.as_str()));
            if let Some(b) = &body_id {
                claims.push(("register request body", b.as_str()));
            }
            claims
                .into_iter()
                .find(|(_, id)| !ids::registration_ids_match(id, cn))
                .map(|(where_, id)| {
                    format!(
                        "unauthorized: the registration ID '{id}' in the {where_} is not the device certificate's CN '{cn}'"
                    )
                })
        }
    };
    let who = match &cn {
        Some(cn) if ids::registration_ids_match(cn, claimed) => cn.clone(),
        Some(cn) => format!("{claimed} (certificate CN {cn})"),
        None => format!("{claimed} (certificate without a usable CN)"),
    };
    if let Some(why) =
        mismatch.or_else(|| (decision.status == Status::Failed).then(|| decision.message.clone()))
    {
        log(&format!("{peer} {who}: refused (401): {why}"));
        return Ok(Some((
            reply_topic(401, rid, None),
            error_body(UNAUTHORIZED, &why, now),
        )));
    }
    if let (Some(hub), Some(assigned)) = (shared.config.hubs.first(), &decision.assigned_hub)
        && assigned == provision::DEFAULT_HUB
    {
        decision.assigned_hub = Some(hub.clone());
        decision.message = decision.message.replace(provision::DEFAULT_HUB, hub);
    }
    let leaf = session.chain.first().cloned().unwrap_or_default();
    let s = shared.clone();
    let d = decision.clone();
    let committed = tokio::task::spawn_blocking(move || commit(&s, &d, &leaf, now))
        .await
        .map_err(|e| ConnError::Protocol(format!("the registration task failed: {e}")))?;
    let (state, line) = match committed {
        Ok(state) => {
            let line = format!("{}: {}", decision.status.as_str(), decision.message);
            (state, line)
        }
        Err(e) => {
            let why = format!("could not record the registration: {e}");
            let id = decision.registration_id.as_deref().unwrap_or(claimed);
            (failed_state(id, &why, now), format!("failed: {why}"))
        }
    };
    log(&format!("{peer} {who}: {line}"));
    Ok(Some(start_operation(shared, session, rid, state)))
}

/// Keeps the operation's final answer for polling and returns the `202 assigning` reply.
fn start_operation(
    shared: &Shared,
    session: &mut Session,
    rid: &str,
    state: RegistrationState,
) -> (String, Value) {
    let operation_id = emulator::new_operation_id();
    let body = json!({
        "operationId": operation_id,
        "status": state.status,
        "registrationState": state,
    });
    if session.operations.len() >= shared.config.limits.max_operations.max(1) {
        session.operations.pop_front();
    }
    session.operations.push_back((operation_id.clone(), body));
    (
        reply_topic(202, rid, Some(RETRY_AFTER)),
        json!({"operationId": operation_id, "status": "assigning"}),
    )
}

fn failed_state(registration_id: &str, why: &str, now: OffsetDateTime) -> RegistrationState {
    let t = cert::rfc3339(now);
    RegistrationState {
        registration_id: registration_id.to_string(),
        created_date_time_utc: Some(t.clone()),
        assigned_hub: None,
        device_id: None,
        status: "failed".into(),
        substatus: None,
        error_code: Some(INTERNAL_ERROR),
        error_message: Some(why.to_string()),
        last_updated_date_time_utc: Some(t),
        etag: Some(emulator::new_etag()),
    }
}

/// What DPS does once it has decided: the device joins the hub registry
/// (when assigned) and the registration record is written. Serialised by
/// the in-process mutex and the home's lock.
fn commit(
    shared: &Shared,
    decision: &Decision,
    leaf: &[u8],
    now: OffsetDateTime,
) -> Result<RegistrationState> {
    let registration_id = decision
        .registration_id
        .clone()
        .ok_or_else(|| Error::Invalid("the decision has no registration ID".into()))?;
    let _inner = shared.writer.lock().unwrap_or_else(|p| p.into_inner());
    let _lock = shared.home.lock()?;
    if decision.status == Status::Assigned {
        provision::register(&shared.home, decision, leaf, now)?;
    }
    let t = cert::rfc3339(now);
    let created = match shared.registrations.get(&registration_id) {
        Ok(Some(old)) => old.created_date_time_utc,
        _ => None,
    };
    let assigned = decision.status == Status::Assigned;
    let state = RegistrationState {
        registration_id,
        created_date_time_utc: Some(created.unwrap_or_else(|| t.clone())),
        assigned_hub: if assigned {
            decision.assigned_hub.clone()
        } else {
            None
        },
        device_id: if assigned {
            decision.device_id.clone()
        } else {
            None
        },
        status: decision.status.as_str().into(),
        substatus: assigned.then(|| "initialAssignment".to_string()),
        error_code: None,
        error_message: None,
        last_updated_date_time_utc: Some(t),
        etag: Some(emulator::new_etag()),
    };
    shared.registrations.put(&state)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        let u = parse_username(
            "0ne000FFFFF/registrations/sensor-thl-001/api-version=2019-03-31&ClientVersion=azure-iot-device%2F2.14.0",
        )
        .unwrap();
        assert_eq!(u.id_scope, "0ne000FFFFF");
        assert_eq!(u.registration_id, "sensor-thl-001");
        assert!(parse_username("s/registrations/x/").is_none());
        assert!(parse_username("s/devices/x/api-version=1").is_none());
        assert!(parse_username("/registrations/x/api-version=1").is_none());
        assert!(parse_username("s/registrations//api-version=1").is_none());
        assert!(parse_username("").is_none());
    }

    #[test]
    fn topics() {
        let t =
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=abc-1&operationId=4.a.b%2Dc";
        assert_eq!(raw_rid(t), Some("abc-1"));
        let q = topic_query(t);
        assert_eq!(q[1], ("operationId".into(), "4.a.b-c".into()));
        assert!(valid_rid("0c6e3b5e-61a7-4b6a-9c8b-0d7f9a1b2c3d"));
        assert!(valid_rid("42"));
        assert!(!valid_rid("a$b"));
        assert!(!valid_rid("a/b"));
        assert!(!valid_rid(""));
        assert_eq!(
            reply_topic(202, "7", Some(1)),
            "$dps/registrations/res/202/?$rid=7&retry-after=1"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn register_bodies() {
        assert_eq!(body_registration_id(b""), Ok(None));
        assert_eq!(body_registration_id(b" "), Ok(None));
        assert_eq!(
            body_registration_id(br#"{"payload": null, "registrationId": "a"}"#),
            Ok(Some("a".into()))
        );
        assert_eq!(body_registration_id(br#"{"payload": {"x": 1}}"#), Ok(None));
        assert!(body_registration_id(b"[1]").is_err());
        assert!(body_registration_id(br#"{"registrationId": 5}"#).is_err());
        assert!(body_registration_id(b"\xff").is_err());
    }
}
