//! The HTTPS side of `iotca dps serve` (DESIGN section 11): HTTP/1.1 with
//! keep-alive (hyper) over TLS 1.2/1.3 (tokio-rustls), serving
//!
//! - the DPS service API ([`dps_service`], SAS policy `provisioningserviceowner`),
//! - the DPS device API over HTTPS ([`device_api`], X.509 in the handshake),
//! - each hub's identity registry ([`hub_registry`], SAS policy `iothubowner`),
//!
//! from the home's store, shared with the CLI (the home lock serialises
//! the writes). [`router`] dispatches and shapes errors as the services do.
//!
//! # Limits
//!
//! Request heads at most [`Limits::max_head`] bytes (hyper's read buffer),
//! bodies at most [`Limits::max_body`]; the TLS handshake within
//! [`Limits::handshake_timeout`], a request head within
//! [`Limits::header_timeout`] of the connection going idle (slowloris), a
//! body within [`Limits::body_timeout`]; at most
//! [`Limits::max_connections`] connections. A hostile request closes only
//! its own connection; an expected failure is never a 5xx.

pub mod device_api;
pub mod dps_service;
pub mod hub_registry;
pub mod keys;
pub mod router;
pub mod sas;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::dps::emulator::Registrations;
use crate::enroll::EnrollmentStore;
use crate::home::Home;
use crate::hub::Registry;
use keys::ServiceKeys;

/// Resource limits of the HTTPS listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line and headers), bytes.
    pub max_head: usize,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a request head, from the moment the connection waits for one.
    pub header_timeout: Duration,
    /// Time for a request body.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Device API operations kept for polling.
    pub max_operations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: 256 * 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_operations: 4096,
        }
    }
}

/// What every request handler sees.
pub struct State {
    /// The home.
    pub home: Home,
    /// Its enrollments.
    pub store: EnrollmentStore,
    /// Its registration records.
    pub registrations: Registrations,
    /// Its hub registry.
    pub registry: Registry,
    /// The service keys.
    pub keys: ServiceKeys,
    /// The ID scope devices must use, if fixed.
    pub id_scope: Option<String>,
    /// The emulator's hubs (`--hub`), in order.
    pub hubs: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Device API operations: (operation ID, registration ID lower-cased, reply).
    pub operations: Mutex<std::collections::VecDeque<(String, String, serde_json::Value)>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("home", &self.home.root())
            .field("hubs", &self.hubs)
            .finish_non_exhaustive()
    }
}

impl State {
    /// The first hub (the one of records made before hubs had names).
    pub fn first_hub(&self) -> &str {
        self.hubs
            .first()
            .map(String::as_str)
            .unwrap_or(crate::provision::DEFAULT_HUB)
    }
}

pub(crate) fn log(line: &str) {
    eprintln!("iotca dps: https: {line}");
}

/// Serves HTTPS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    if tasks.len() >= state.limits.max_connections {
                        log(&format!("{peer}: refused: too many connections"));
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    let state = state.clone();
                    let acceptor = acceptor.clone();
                    let mut stop = stop_rx.clone();
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = connection(state, acceptor, tcp, peer) => {}
                            _ = stop.wait_for(|s| *s) => {}
                        }
                    });
                }
                Err(e) => {
                    log(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

async fn connection(
    state: Arc<State>,
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(state.limits.handshake_timeout, acceptor.accept(tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log(&format!("{peer}: TLS handshake failed: {e}"));
            return;
        }
        Err(_) => {
            log(&format!("{peer}: TLS handshake timed out"));
            return;
        }
    };
    let chain: Vec<Vec<u8>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
        .unwrap_or_default();
    let chain = Arc::new(chain);
    let st = state.clone();
    let service = hyper::service::service_fn(move |req| {
        let state = st.clone();
        let chain = chain.clone();
        async move { Ok::<_, std::convert::Infallible>(router::handle(state, chain, peer, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(state.limits.header_timeout)
        .max_header_size(state.limits.max_head)
        .max_buf_size(state.limits.max_head.max(8192))
        .serve_connection(TokioIo::new(tls), service);
    if let Err(e) = conn.await {
        log(&format!("{peer}: connection closed: {e}"));
    }
}
