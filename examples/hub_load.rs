//! Load for `scripts/bench.sh`: many devices connected to the hub of
//! `iotca dps serve` at once, each sending QoS 1 telemetry, every message
//! acknowledged. Loopback only; bounded counts.
//!
//!     cargo run --release --example hub_load -- HOME 127.0.0.1:PORT HUB IDS_FILE MESSAGES
//!
//! Devices are read from HOME (`certs/<id>-full-chain.cert.pem`,
//! `private/<id>.key.pem`); they must be in the hub registry. Prints one
//! JSON line: devices, connected, acked, seconds (from the first connect to
//! the last PUBACK), peak_connected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iotca::dps::mqtt::{self, Connect, ConnectReturnCode, Packet, Publish};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const MAX_DEVICES: usize = 5000;
const MAX_MESSAGES: usize = 1000;

struct Stream {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Stream {
    async fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        self.tls
            .write_all(&mqtt::to_bytes(p).map_err(std::io::Error::other)?)
            .await
    }

    async fn recv(&mut self) -> std::io::Result<Packet> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((p, n)) = mqtt::decode(&self.buf, 1 << 16).map_err(std::io::Error::other)? {
                self.buf.drain(..n);
                return Ok(p);
            }
            let n = tokio::time::timeout(Duration::from_secs(60), self.tls.read(&mut chunk))
                .await
                .map_err(std::io::Error::other)??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn connector(home: &Path, id: &str, trust: &[u8]) -> Result<TlsConnector, String> {
    let chain =
        iotca::cert::read_certificates(&home.join(format!("certs/{id}-full-chain.cert.pem")))
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(CertificateDer::from)
            .collect();
    let pem =
        std::fs::read(home.join(format!("private/{id}.key.pem"))).map_err(|e| e.to_string())?;
    let key = iotca::keys::PrivateKey::from_pem(&pem, None).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(trust.to_vec()))
        .map_err(|e| e.to_string())?;
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(
        chain,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec())),
    )
    .map_err(|e| e.to_string())?;
    Ok(TlsConnector::from(Arc::new(cfg)))
}

#[allow(clippy::too_many_arguments)]
async fn device(
    addr: SocketAddr,
    hub: String,
    id: String,
    tls: TlsConnector,
    messages: usize,
    connected: Arc<AtomicUsize>,
    all_in: Arc<tokio::sync::Barrier>,
) -> Result<usize, String> {
    let opened = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let tls = tls
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut s = Stream {
            tls,
            buf: Vec::new(),
        };
        s.send(&Packet::Connect(Box::new(Connect {
            protocol_name: "MQTT".into(),
            protocol_level: 4,
            clean_session: false,
            keep_alive: 120,
            client_id: id.clone(),
            will: None,
            username: Some(format!("{hub}/{id}/?api-version=2021-04-12")),
            password: None,
        })))
        .await
        .map_err(|e| e.to_string())?;
        match s.recv().await {
            Ok(Packet::ConnAck {
                code: ConnectReturnCode::Accepted,
                ..
            }) => Ok(s),
            other => Err(format!("{id}: not accepted: {other:?}")),
        }
    }
    .await;
    if opened.is_ok() {
        connected.fetch_add(1, Ordering::SeqCst);
    }
    // Everyone connected (or failed) before anyone sends.
    all_in.wait().await;
    let mut s = opened?;
    let mut acked = 0;
    for i in 1..=messages {
        let packet_id = (i % 65535 + 1) as u16;
        s.send(&Packet::Publish(Publish {
            dup: false,
            qos: 1,
            retain: false,
            topic: format!("devices/{id}/messages/events/%24.ct=application%2Fjson&seq={i}"),
            packet_id: Some(packet_id),
            payload: format!("{{\"seq\": {i}, \"temperature\": 21.5}}").into_bytes(),
        }))
        .await
        .map_err(|e| e.to_string())?;
        match s.recv().await {
            Ok(Packet::PubAck { packet_id: p }) if p == packet_id => acked += 1,
            other => return Err(format!("{id}: {other:?}")),
        }
    }
    let _ = s.send(&Packet::Disconnect).await;
    Ok(acked)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [home, addr, hub, ids_file, messages] = a.as_slice() else {
        return Err("usage: hub_load HOME ADDR:PORT HUB IDS_FILE MESSAGES".into());
    };
    let home = PathBuf::from(home);
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let messages: usize = messages.parse().map_err(|e| format!("{messages}: {e}"))?;
    let ids: Vec<String> = std::fs::read_to_string(ids_file)
        .map_err(|e| e.to_string())?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_DEVICES || messages > MAX_MESSAGES {
        return Err(format!(
            "at most {MAX_DEVICES} devices and {MAX_MESSAGES} messages each"
        ));
    }
    let trust = iotca::cert::read_certificates(&home.join(iotca::dps::emulator::CA_CERT))
        .map_err(|e| e.to_string())?
        .remove(0);
    let connected = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(tokio::sync::Barrier::new(ids.len()));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for id in &ids {
        let tls = connector(&home, id, &trust)?;
        tasks.spawn(device(
            addr,
            hub.clone(),
            id.clone(),
            tls,
            messages,
            connected.clone(),
            all_in.clone(),
        ));
    }
    let (mut acked, mut errors) = (0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(n) => acked += n,
            Err(e) => errors.push(e),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    for e in errors.iter().take(5) {
        eprintln!("hub_load: {e}");
    }
    println!(
        "{{\"devices\": {}, \"connected\": {}, \"acked\": {acked}, \"expected\": {}, \"seconds\": {secs:.2}}}",
        ids.len(),
        connected.load(Ordering::SeqCst),
        ids.len() * messages
    );
    Ok(())
}
