//! One MQTT connection: bounded reads and timed writes, the CONNECT
//! handshake and the packet loop.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::register::request;
use super::topics::{UserName, parse_username};
use super::{RESPONSE_FILTER, Shared, log};
use crate::dps::mqtt::{self, ConnectReturnCode, DecodeError, Packet, Publish};

/// Why a connection ended early.
#[derive(Debug)]
pub(super) enum ConnError {
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
pub(super) struct Conn<S> {
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

/// The state of one device connection.
pub(super) struct Session {
    pub(super) peer: SocketAddr,
    pub(super) chain: Vec<Vec<u8>>,
    pub(super) client_id: String,
    pub(super) username: UserName,
    pub(super) subscriptions: Vec<(String, u8)>,
    pub(super) operations: VecDeque<(String, Value)>,
    pub(super) next_packet_id: u16,
}

pub(super) async fn connection(
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
pub(super) async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
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
