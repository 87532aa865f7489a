//! `iotca dps serve`, the local DPS endpoint (issue 8), run as the real
//! binary against temporary homes.
//!
//! Two kinds of device talk to it:
//! - a small Rust TLS + MQTT client in this file (tokio-rustls and iotca's
//!   own MQTT codec), so the protocol is tested without Python: register
//!   and poll over TLS 1.2 and 1.3, refusals, hostile clients, and 200
//!   devices at once;
//! - the real Azure IoT Python device SDK (azure-iot-device 2.14) through
//!   `tests/dps/register.py`, for the lab scenario end to end. Those tests
//!   need the virtual environment made by `scripts/dps-test-env.sh`
//!   (`target/pyenv-dps`, or the interpreter in `$IOTCA_DPS_PYTHON`); when
//!   it is missing they print why and pass, unless
//!   `IOTCA_DPS_REQUIRE_PYTHON=1` (CI) makes that a failure.
//!
//! Every server listens on 127.0.0.1 port 0 (the real port is read from its
//! "listening on" line), so tests run in parallel; a guard kills it at the
//! end of each test, even on failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotca::dps::mqtt::{self, Connect, ConnectReturnCode, Packet, Publish};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub(crate) mod hub;

const INTER: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
pub(crate) const TRUST: &str = "certs/iotca-dps-server-ca.cert.pem";
pub(crate) const HUB: &str = "lab-hub.azure-devices.net";
pub(crate) const SCOPE: &str = "0ne00IOTCA1";

// ---------------------------------------------------------------- helpers

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_iotca")
}

pub(crate) fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("IOTCA_HOME")
        .output()
        .unwrap()
}

pub(crate) fn ok(home: &Path, args: &[&str]) -> String {
    let o = run(home, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "iotca {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A lab home: root, intermediate, the devices, and an enabled enrollment
/// group over the intermediate assigning to [`HUB`].
pub(crate) fn lab(dir: &Path, devices: &[&str]) -> PathBuf {
    let h = dir.join("pki");
    ok(&h, &["ca", "init"]);
    if !devices.is_empty() {
        let mut args = vec!["device", "create"];
        args.extend_from_slice(devices);
        ok(&h, &args);
    }
    let ca = h.join(INTER);
    ok(
        &h,
        &[
            "enroll",
            "group",
            "create",
            "fleet",
            "--ca",
            ca.to_str().unwrap(),
            "--iot-hub",
            HUB,
        ],
    );
    h
}

/// A running `iotca dps serve`, killed when dropped.
pub(crate) struct ServerGuard {
    child: Child,
    pub(crate) addr: SocketAddr,
    stderr: PathBuf,
    home: PathBuf,
}

impl ServerGuard {
    pub(crate) fn start(home: &Path, extra: &[&str]) -> ServerGuard {
        let stderr = home.join(format!(
            "dps-serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(bin())
            .arg("--home")
            .arg(home)
            .args([
                "dps",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env_remove("IOTCA_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut guard = ServerGuard {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            home: home.to_path_buf(),
        };
        // The line is printed once the socket is bound.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on stdout.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line; stderr: {}", guard.log()));
        let addr = line
            .split_whitespace()
            .skip_while(|w| *w != "on")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}; stderr: {}", guard.log()));
        guard.addr = addr;
        guard
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (up to 10 s) until the server's stderr holds `want`; lines
    /// about a closed connection are written just after it closes.
    pub(crate) fn expect_log(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(want) {
            assert!(
                Instant::now() < deadline,
                "{want:?} not in the server log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What this start wrote to `private/iotca-dps-endpoint.json`: the
    /// ports and the connection strings (DESIGN section 11).
    pub(crate) fn endpoint(&self) -> Value {
        let f = self.home.join("private/iotca-dps-endpoint.json");
        serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device's certificate chain (leaf first) and key.
struct Device {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn device(home: &Path, id: &str) -> Device {
    let chain =
        iotca::cert::read_certificates(&home.join(format!("certs/{id}-full-chain.cert.pem")))
            .unwrap()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
    let pem = std::fs::read(home.join(format!("private/{id}.key.pem"))).unwrap();
    let key = iotca::keys::PrivateKey::from_pem(&pem, None).unwrap();
    Device {
        chain,
        key: PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()),
    }
}

fn trust_der(home: &Path) -> Vec<u8> {
    iotca::cert::read_certificates(&home.join(TRUST))
        .unwrap()
        .remove(0)
}

fn connector(
    trust: &[u8],
    device: Option<&Device>,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(trust.to_vec())).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match device {
        Some(d) => b
            .with_client_auth_cert(d.chain.clone(), PrivateKeyDer::Pkcs8(d.key.clone_key()))
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(cfg))
}

/// A minimal MQTT device client over TLS.
struct Client {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
    next_id: u16,
}

const TIMEOUT: Duration = Duration::from_secs(20);

impl Client {
    async fn tls(
        addr: SocketAddr,
        trust: &[u8],
        device: &Device,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        let tls = connector(trust, Some(device), version)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        Ok(Client {
            tls,
            buf: Vec::new(),
            next_id: 0,
        })
    }

    async fn send(&mut self, p: &Packet) -> std::io::Result<()> {
        self.tls.write_all(&mqtt::to_bytes(p).unwrap()).await?;
        self.tls.flush().await
    }

    /// The next packet; None when the server closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((p, n)) = mqtt::decode(&self.buf, 1 << 20).unwrap() {
                self.buf.drain(..n);
                return Some(p);
            }
            let n = tokio::time::timeout(TIMEOUT, self.tls.read(&mut chunk))
                .await
                .expect("the server answers in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn id(&mut self) -> u16 {
        self.next_id += 1;
        self.next_id
    }

    /// CONNECT as the SDKs do; the CONNACK return code.
    async fn connect(&mut self, client_id: &str, username: &str) -> Option<ConnectReturnCode> {
        self.send(&Packet::Connect(Box::new(Connect {
            protocol_name: "MQTT".into(),
            protocol_level: 4,
            clean_session: false,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: Some(username.into()),
            password: None,
        })))
        .await
        .ok()?;
        match self.recv().await? {
            Packet::ConnAck { code, .. } => Some(code),
            p => panic!("expected CONNACK, got {p:?}"),
        }
    }

    async fn subscribe(&mut self) {
        let packet_id = self.id();
        self.send(&Packet::Subscribe {
            packet_id,
            filters: vec![("$dps/registrations/res/#".into(), 1)],
        })
        .await
        .unwrap();
        assert_eq!(
            self.recv().await,
            Some(Packet::SubAck {
                packet_id,
                codes: vec![1]
            })
        );
    }

    /// Publishes a request at QoS 1 and returns the reply's status code,
    /// topic and JSON body.
    async fn request(&mut self, topic: String, body: &[u8]) -> (u16, String, Value) {
        let packet_id = self.id();
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: 1,
            retain: false,
            topic,
            packet_id: Some(packet_id),
            payload: body.to_vec(),
        }))
        .await
        .unwrap();
        let mut acked = false;
        loop {
            match self.recv().await.expect("a reply") {
                Packet::PubAck { packet_id: id } if id == packet_id => acked = true,
                Packet::Publish(p) => {
                    assert!(acked, "PUBACK comes before the reply");
                    if let Some(id) = p.packet_id {
                        self.send(&Packet::PubAck { packet_id: id }).await.unwrap();
                    }
                    let status = p.topic.split('/').nth(3).unwrap().parse().unwrap();
                    let body = serde_json::from_slice(&p.payload).unwrap();
                    return (status, p.topic, body);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn register(&mut self, rid: u32, registration_id: &str) -> (u16, String, Value) {
        let body = json!({"registrationId": registration_id, "payload": null});
        self.request(
            format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}"),
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn poll(&mut self, rid: u32, operation_id: &str) -> (u16, String, Value) {
        self.request(
            format!(
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation_id}"
            ),
            b" ",
        )
        .await
    }
}

fn username(registration_id: &str) -> String {
    format!(
        "{SCOPE}/registrations/{registration_id}/api-version=2019-03-31&ClientVersion=iotca-test"
    )
}

/// What a device was finally told.
#[derive(Debug)]
struct Outcome {
    /// The register reply's status code (202, 401...).
    register: u16,
    /// The final body: the operation status (after 202) or the error.
    body: Value,
}

impl Outcome {
    fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or("")
    }
}

/// Connects, subscribes, registers as `registration_id` and polls once.
async fn register_raw(
    addr: SocketAddr,
    trust: &[u8],
    dev: &Device,
    registration_id: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Outcome {
    let mut c = Client::tls(addr, trust, dev, version).await.unwrap();
    assert_eq!(
        c.connect(registration_id, &username(registration_id)).await,
        Some(ConnectReturnCode::Accepted)
    );
    c.subscribe().await;
    let (code, topic, body) = c.register(1, registration_id).await;
    if code != 202 {
        assert_eq!(topic, format!("$dps/registrations/res/{code}/?$rid=1"));
        return Outcome {
            register: code,
            body,
        };
    }
    assert_eq!(topic, "$dps/registrations/res/202/?$rid=1&retry-after=1");
    assert_eq!(body["status"], "assigning");
    let op = body["operationId"].as_str().unwrap().to_string();
    let (code, topic, body) = c.poll(2, &op).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(topic, "$dps/registrations/res/200/?$rid=2");
    assert_eq!(body["operationId"], op.as_str());
    c.send(&Packet::Disconnect).await.unwrap();
    Outcome {
        register: 202,
        body,
    }
}

fn tls13() -> &'static rustls::SupportedProtocolVersion {
    &rustls::version::TLS13
}

fn tls12() -> &'static rustls::SupportedProtocolVersion {
    &rustls::version::TLS12
}

// ---------------------------------------------------- Rust-client tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_registers_over_tls_1_3_and_1_2() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001"]);
    let server = ServerGuard::start(&h, &[]);
    let trust = trust_der(&h);
    let dev = device(&h, "sensor-thl-001");

    let out = register_raw(server.addr, &trust, &dev, "sensor-thl-001", tls13()).await;
    assert_eq!(out.register, 202);
    assert_eq!(out.status(), "assigned", "{:?}", out.body);
    let st = &out.body["registrationState"];
    assert_eq!(st["registrationId"], "sensor-thl-001");
    assert_eq!(st["deviceId"], "sensor-thl-001");
    assert_eq!(st["assignedHub"], HUB);
    assert_eq!(st["status"], "assigned");
    assert_eq!(st["substatus"], "initialAssignment");
    for k in ["createdDateTimeUtc", "lastUpdatedDateTimeUtc", "etag"] {
        assert!(st[k].is_string(), "{k} in {st}");
    }
    // Case-insensitive registration IDs, over TLS 1.2 this time.
    let again = register_raw(server.addr, &trust, &dev, "SENSOR-thl-001", tls12()).await;
    assert_eq!(again.status(), "assigned", "{:?}", again.body);
    assert_eq!(
        again.body["registrationState"]["createdDateTimeUtc"],
        st["createdDateTimeUtc"]
    );

    // The hub registry has the device, the record is listed.
    let shown = ok(&h, &["hub", "device", "show", "sensor-thl-001", "--json"]);
    assert!(shown.contains("sensor-thl-001"), "{shown}");
    let regs: Value = serde_json::from_str(&ok(&h, &["dps", "registrations", "--json"])).unwrap();
    assert_eq!(regs["registrations"][0]["registrationId"], "sensor-thl-001");
    assert_eq!(regs["registrations"][0]["status"], "assigned");
    let text = ok(&h, &["dps", "registrations"]);
    assert!(
        text.contains("sensor-thl-001") && text.contains(HUB),
        "{text}"
    );
    assert!(h.join("dps/registrations/sensor-thl-001.json").exists());
    let log = server.log();
    assert!(
        log.contains("sensor-thl-001: assigned: assigned to hub lab-hub.azure-devices.net"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_follow_dps() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001", "sensor-thl-002"]);
    let foreign = t.path().join("foreign");
    ok(&foreign, &["ca", "init"]);
    ok(&foreign, &["device", "create", "sensor-thl-009"]);
    let d2 = h.join("certs/sensor-thl-002.cert.pem");
    ok(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            d2.to_str().unwrap(),
        ],
    );
    let server = ServerGuard::start(&h, &["--id-scope", SCOPE]);
    let trust = trust_der(&h);
    let d1 = device(&h, "sensor-thl-001");

    // Disabled individual enrollment: 202, then status disabled.
    let out = register_raw(
        server.addr,
        &trust,
        &device(&h, "sensor-thl-002"),
        "sensor-thl-002",
        tls13(),
    )
    .await;
    assert_eq!(out.register, 202);
    assert_eq!(out.status(), "disabled", "{:?}", out.body);
    assert_eq!(out.body["registrationState"]["status"], "disabled");
    assert!(out.body["registrationState"].get("assignedHub").is_none());

    // A registration ID that is not the certificate's CN: 401002.
    let out = register_raw(server.addr, &trust, &d1, "sensor-thl-002", tls12()).await;
    assert_eq!(out.register, 401, "{:?}", out.body);
    assert_eq!(out.body["errorCode"], 401002);
    assert!(out.body["trackingId"].is_string());
    let msg = out.body["message"].as_str().unwrap();
    assert!(
        msg.contains("not the device certificate's CN 'sensor-thl-001'"),
        "{msg}"
    );

    // The body disagreeing with the user name is refused too.
    let mut c = Client::tls(server.addr, &trust, &d1, tls13())
        .await
        .unwrap();
    c.connect("sensor-thl-001", &username("sensor-thl-001"))
        .await;
    c.subscribe().await;
    let (code, _, body) = c.register(5, "sensor-thl-007").await;
    assert_eq!(code, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("request body"));
    // An operation this connection never started.
    let (code, _, _) = c.poll(6, "4.nothing").await;
    assert_eq!(code, 404);
    // A body that is not JSON.
    let (code, _, _) = c
        .request(
            "$dps/registrations/PUT/iotdps-register/?$rid=7".into(),
            b"{not json",
        )
        .await;
    assert_eq!(code, 400);

    // A device of a foreign CA with the same names: 401.
    let out = register_raw(
        server.addr,
        &trust,
        &device(&foreign, "sensor-thl-009"),
        "sensor-thl-009",
        tls13(),
    )
    .await;
    assert_eq!(out.register, 401, "{:?}", out.body);
    assert!(
        out.body["message"]
            .as_str()
            .unwrap()
            .contains("no individual enrollment for registration ID 'sensor-thl-009'")
    );

    // Another ID scope: CONNACK 5; a user name of the wrong shape: CONNACK 4.
    let mut c = Client::tls(server.addr, &trust, &d1, tls13())
        .await
        .unwrap();
    let other = "0ne00OTHER/registrations/sensor-thl-001/api-version=2019-03-31";
    assert_eq!(
        c.connect("sensor-thl-001", other).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(c.recv().await, None);
    let mut c = Client::tls(server.addr, &trust, &d1, tls13())
        .await
        .unwrap();
    assert_eq!(
        c.connect("sensor-thl-001", "sensor-thl-001").await,
        Some(ConnectReturnCode::BadUsernameOrPassword)
    );

    // Refusals write no hub device; the disabled one is recorded.
    assert!(!h.join("hub/devices/sensor-thl-002.json").exists());
    assert!(!h.join("hub/devices/sensor-thl-001.json").exists());
    let reg: Value = serde_json::from_slice(
        &std::fs::read(h.join("dps/registrations/sensor-thl-002.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(reg["status"], "disabled");
    for want in [
        "sensor-thl-002: disabled: registration status is disabled",
        "sensor-thl-002 (certificate CN sensor-thl-001): refused (401)",
        "sensor-thl-009: refused (401)",
        "ID scope '0ne00OTHER'",
    ] {
        server.expect_log(want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_close_only_their_own_connection() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001", "sensor-thl-002"]);
    let server = ServerGuard::start(&h, &[]);
    let trust = trust_der(&h);
    let d1 = device(&h, "sensor-thl-001");

    // A well-behaved device connects first and stays connected throughout.
    let mut good = Client::tls(server.addr, &trust, &d1, tls13())
        .await
        .unwrap();
    good.connect("sensor-thl-001", &username("sensor-thl-001"))
        .await;
    good.subscribe().await;

    // A client that connects and says nothing.
    let _silent = TcpStream::connect(server.addr).await.unwrap();

    // Plain bytes where TLS is expected.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let r = tokio::time::timeout(TIMEOUT, garbage.read_to_end(&mut sink)).await;
    assert!(r.is_ok(), "the server closes a non-TLS client");

    // TLS without a client certificate: the handshake is refused.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let anon = connector(&trust, None, tls12())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(anon.is_err(), "TLS 1.2 without a client certificate fails");
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    if let Ok(mut s) = connector(&trust, None, tls13())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        // TLS 1.3 reports the refusal on the first read.
        let _ = s.write_all(&[0xc0, 0]).await;
        let mut b = [0u8; 16];
        let r = tokio::time::timeout(TIMEOUT, s.read(&mut b)).await.unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }

    // Malformed MQTT after a good TLS handshake: reserved packet type 0.
    let d2 = device(&h, "sensor-thl-002");
    let mut bad = Client::tls(server.addr, &trust, &d2, tls13())
        .await
        .unwrap();
    bad.tls.write_all(&[0x00, 0x00]).await.unwrap();
    assert_eq!(bad.recv().await, None);
    // A packet announcing 200 MB.
    let mut big = Client::tls(server.addr, &trust, &d2, tls12())
        .await
        .unwrap();
    big.tls
        .write_all(&[0x10, 0xff, 0xff, 0xff, 0x7f])
        .await
        .unwrap();
    assert_eq!(big.recv().await, None);
    // A first packet that is not CONNECT.
    let mut early = Client::tls(server.addr, &trust, &d2, tls13())
        .await
        .unwrap();
    early.send(&Packet::PingReq).await.unwrap();
    assert_eq!(early.recv().await, None);
    // A PUBLISH to a topic that is not DPS's.
    let mut odd = Client::tls(server.addr, &trust, &d2, tls13())
        .await
        .unwrap();
    odd.connect("sensor-thl-002", &username("sensor-thl-002"))
        .await;
    odd.send(&Packet::Publish(Publish {
        dup: false,
        qos: 0,
        retain: false,
        topic: "devices/x/messages/events/".into(),
        packet_id: None,
        payload: vec![],
    }))
    .await
    .unwrap();
    assert_eq!(odd.recv().await, None);
    // Random bytes after CONNECT.
    let mut noisy = Client::tls(server.addr, &trust, &d2, tls12())
        .await
        .unwrap();
    noisy
        .connect("sensor-thl-002", &username("sensor-thl-002"))
        .await;
    noisy
        .tls
        .write_all(&[0x82, 0x03, 0x00, 0x00, 0x00])
        .await
        .unwrap();
    assert_eq!(noisy.recv().await, None);

    // The first device is unaffected: it pings, registers and polls.
    good.send(&Packet::PingReq).await.unwrap();
    assert_eq!(good.recv().await, Some(Packet::PingResp));
    let (code, _, body) = good.register(1, "sensor-thl-001").await;
    assert_eq!(code, 202, "{body}");
    let op = body["operationId"].as_str().unwrap().to_string();
    let (code, _, body) = good.poll(2, &op).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "assigned");
    // And a new device registers too.
    let out = register_raw(server.addr, &trust, &d2, "sensor-thl-002", tls12()).await;
    assert_eq!(out.status(), "assigned", "{:?}", out.body);
    server.expect_log("malformed MQTT packet");
    server.expect_log("larger than");
    server.expect_log("TLS handshake failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_register_at_once() {
    const N: usize = 200;
    const DISABLED_EVERY: usize = 10;
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let ids: Vec<String> = (0..N).map(|i| format!("load-{i:04}")).collect();
    let ids_file = t.path().join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();
    ok(
        &h,
        &["device", "create", "--ids-file", ids_file.to_str().unwrap()],
    );
    // Every tenth device is blocked by a disabled individual enrollment.
    for id in ids.iter().step_by(DISABLED_EVERY) {
        let cert = h.join(format!("certs/{id}.cert.pem"));
        ok(
            &h,
            &[
                "enroll",
                "create",
                "--enrollment-id",
                id,
                "--cert",
                cert.to_str().unwrap(),
                "--status",
                "disabled",
            ],
        );
    }
    let server = ServerGuard::start(&h, &[]);
    let trust = Arc::new(trust_der(&h));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let dev = device(&h, id);
        let trust = trust.clone();
        let id = id.clone();
        let addr = server.addr;
        tasks.spawn(async move {
            let v = if i % 2 == 0 { tls13() } else { tls12() };
            let out = register_raw(addr, &trust, &dev, &id, v).await;
            (i, id, out)
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(120), async {
        let mut v = Vec::new();
        while let Some(r) = tasks.join_next().await {
            v.push(r.unwrap());
        }
        v
    })
    .await
    .expect("200 registrations finish within 2 minutes");
    assert_eq!(all.len(), N);
    for (i, id, out) in &all {
        let want = if i % DISABLED_EVERY == 0 {
            "disabled"
        } else {
            "assigned"
        };
        assert_eq!(out.status(), want, "{id}: {:?}", out.body);
        if want == "assigned" {
            assert_eq!(out.body["registrationState"]["deviceId"], id.as_str());
        }
    }
    eprintln!("{N} registrations in {:?}", started.elapsed());
    let hub = std::fs::read_dir(h.join("hub/devices")).unwrap().count();
    assert_eq!(hub, N - N / DISABLED_EVERY);
    let regs = std::fs::read_dir(h.join("dps/registrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(regs, N);
    let decisions = server
        .log()
        .lines()
        .filter(|l| l.contains(": assigned: ") || l.contains(": disabled: "))
        .count();
    assert_eq!(decisions, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_flag_and_broken_records() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("pki");
    ok(&h, &["ca", "init"]);
    ok(&h, &["device", "create", "dev-a", "dev-b"]);
    let ca = h.join(INTER);
    // A group that names no hub: --hub decides.
    ok(
        &h,
        &[
            "enroll",
            "group",
            "create",
            "plain",
            "--ca",
            ca.to_str().unwrap(),
        ],
    );
    // dev-b's individual enrollment record is broken.
    std::fs::create_dir_all(h.join("dps/enrollments")).unwrap();
    std::fs::write(h.join("dps/enrollments/dev-b.json"), "{").unwrap();
    let server = ServerGuard::start(&h, &["--hub", "my-hub.azure-devices.net"]);
    let trust = trust_der(&h);
    let out = register_raw(server.addr, &trust, &device(&h, "dev-a"), "dev-a", tls13()).await;
    assert_eq!(out.status(), "assigned", "{:?}", out.body);
    assert_eq!(
        out.body["registrationState"]["assignedHub"],
        "my-hub.azure-devices.net"
    );
    // A broken record is a terminal `failed` that names the file, not a
    // retryable 500.
    let out = register_raw(server.addr, &trust, &device(&h, "dev-b"), "dev-b", tls12()).await;
    assert_eq!(out.register, 202);
    assert_eq!(out.status(), "failed", "{:?}", out.body);
    let st = &out.body["registrationState"];
    assert_eq!(st["errorCode"], 500000);
    assert!(
        st["errorMessage"].as_str().unwrap().contains("dev-b.json"),
        "{st}"
    );
    server.expect_log("dev-b: failed: the enrollment store could not be read");
}

// -------------------------------------------------------- CLI behaviour

#[test]
fn trust_prints_the_emulator_ca_and_never_replaces_it() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("pki");
    ok(&h, &["ca", "init"]);
    let first = ok(&h, &["dps", "trust"]);
    assert!(first.starts_with("-----BEGIN CERTIFICATE-----"), "{first}");
    assert_eq!(std::fs::read_to_string(h.join(TRUST)).unwrap(), first);
    assert_eq!(ok(&h, &["dps", "trust"]), first);
    // The server uses the same CA.
    let server = ServerGuard::start(&h, &[]);
    drop(server);
    assert_eq!(ok(&h, &["dps", "trust"]), first);
    // `ca list` still works with the emulator CA in certs/.
    ok(&h, &["ca", "list"]);
    // No registrations yet.
    let text = ok(&h, &["dps", "registrations"]);
    assert!(text.contains("no registrations"), "{text}");
}

#[test]
fn serve_on_a_busy_port_exits_2_and_sigterm_stops_it_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let mut server = ServerGuard::start(&h, &[]);
    let addr = server.addr.to_string();
    let o = run(
        &h,
        &[
            "dps",
            "serve",
            "--listen",
            &addr,
            "--https-listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot listen on"), "{err}");

    let pid = server.pid().to_string();
    let k = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(k.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(server.log().contains("stopped"), "{}", server.log());

    // The home must exist.
    let o = run(&t.path().join("nowhere"), &["dps", "serve"]);
    assert_eq!(o.status.code(), Some(2));
}

// --------------------------------------------- the real Python device SDK

/// The Python interpreter with azure-iot-device, or None (skip).
fn python() -> Option<PathBuf> {
    let p = match std::env::var_os("IOTCA_DPS_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv-dps/bin/python"),
    };
    let usable = p.exists()
        && Command::new(&p)
            .args(["-c", "import azure.iot.device, paho.mqtt.client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if usable {
        return Some(p);
    }
    let why = format!(
        "{} has no azure-iot-device; run scripts/dps-test-env.sh (or set IOTCA_DPS_PYTHON)",
        p.display()
    );
    if std::env::var("IOTCA_DPS_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: the Python device SDK test: {why}");
    None
}

/// Registers devices with the Python SDK: (registration ID, cert file,
/// key file) each, concurrently; one JSON result per device.
pub(crate) fn sdk_register(
    py: &Path,
    server: &ServerGuard,
    trust: &Path,
    devices: &[(&str, PathBuf, PathBuf)],
) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dps/register.py");
    let input: Vec<Value> = devices
        .iter()
        .map(|(id, c, k)| json!({"registration_id": id, "cert": c, "key": k}))
        .collect();
    let mut child = Command::new(py)
        .arg(&script)
        .args([
            "--host",
            "localhost",
            "--id-scope",
            SCOPE,
            "--timeout",
            "60",
        ])
        .arg("--port")
        .arg(server.addr.port().to_string())
        .arg("--trust")
        .arg(trust)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    // Bounded: the driver gives each device 60 s; kill it well after that.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python SDK driver hung; server log:\n{}", server.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), devices.len(), "{out}");
    // The driver exits 0 only when every device was assigned, 1 otherwise.
    let all_assigned = results
        .iter()
        .all(|r| r["ok"] == true && r["status"] == "assigned");
    assert_eq!(
        o.status.code(),
        Some(if all_assigned { 0 } else { 1 }),
        "driver exit status: {}\n{}\nserver log:\n{}",
        out,
        String::from_utf8_lossy(&o.stderr),
        server.log()
    );
    results
}

pub(crate) fn files(home: &Path, id: &str) -> (PathBuf, PathBuf) {
    (
        home.join(format!("certs/{id}-full-chain.cert.pem")),
        home.join(format!("private/{id}.key.pem")),
    )
}

#[test]
fn python_sdk_lab_scenario() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001", "sensor-thl-002"]);
    let foreign = t.path().join("foreign");
    ok(&foreign, &["ca", "init"]);
    ok(&foreign, &["device", "create", "sensor-thl-009"]);
    let server = ServerGuard::start(&h, &["--id-scope", SCOPE]);
    let trust = h.join(TRUST);
    let dev = |home: &Path, id: &'static str| {
        let (c, k) = files(home, id);
        (id, c, k)
    };

    // Before: both devices are assigned through the group.
    let r = sdk_register(
        &py,
        &server,
        &trust,
        &[dev(&h, "sensor-thl-001"), dev(&h, "sensor-thl-002")],
    );
    for (res, id) in r.iter().zip(["sensor-thl-001", "sensor-thl-002"]) {
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["status"], "assigned", "{res}");
        assert_eq!(res["device_id"], id);
        assert_eq!(res["assigned_hub"], HUB);
        assert_eq!(res["substatus"], "initialAssignment");
    }
    let shown = ok(&h, &["hub", "device", "show", "sensor-thl-001"]);
    assert!(shown.contains("sensor-thl-001"), "{shown}");

    // Deprovision sensor-thl-002: disabled individual enrollment + hub deletion.
    let cert2 = h.join("certs/sensor-thl-002.cert.pem");
    ok(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            cert2.to_str().unwrap(),
        ],
    );
    let o = run(&h, &["hub", "device", "show", "sensor-thl-002"]);
    assert_eq!(o.status.code(), Some(1));

    // Then: sensor-thl-002 is refused and the SDK names the status
    // `disabled`; a wrong registration ID and a foreign CA are refused;
    // sensor-thl-001 still works.
    let (c1, k1) = files(&h, "sensor-thl-001");
    let r = sdk_register(
        &py,
        &server,
        &trust,
        &[
            dev(&h, "sensor-thl-002"),
            ("sensor-thl-003", c1, k1),
            dev(&foreign, "sensor-thl-009"),
            dev(&h, "sensor-thl-001"),
        ],
    );
    let disabled = &r[0];
    assert_ne!(disabled["status"], "assigned", "{disabled}");
    let why = disabled["message"].as_str().unwrap_or("");
    assert!(
        why.contains("registration status disabled") || disabled["status"] == "disabled",
        "{disabled}"
    );
    for refused in &r[1..3] {
        assert_eq!(refused["ok"], false, "{refused}");
        let m = refused["message"].as_str().unwrap();
        assert!(m.contains("status code 401"), "{refused}");
    }
    assert_eq!(r[3]["status"], "assigned", "{}", r[3]);
    assert!(!h.join("hub/devices/sensor-thl-002.json").exists());
    let log = server.log();
    assert!(
        log.contains("sensor-thl-002: disabled: registration status is disabled (individual enrollment 'sensor-thl-002' is disabled)"),
        "{log}"
    );
    assert!(
        log.contains("sensor-thl-003 (certificate CN sensor-thl-001): refused (401)"),
        "{log}"
    );
    assert!(log.contains("sensor-thl-009: refused (401)"), "{log}");

    // Deleting the disabled enrollment lets sensor-thl-002 back in through the group.
    ok(&h, &["enroll", "delete", "sensor-thl-002"]);
    let r = sdk_register(&py, &server, &trust, &[dev(&h, "sensor-thl-002")]);
    assert_eq!(r[0]["status"], "assigned", "{}", r[0]);
    ok(&h, &["hub", "device", "show", "sensor-thl-002"]);
    let regs: Value = serde_json::from_str(&ok(&h, &["dps", "registrations", "--json"])).unwrap();
    let statuses: Vec<(&str, &str)> = regs["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["registrationId"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("sensor-thl-001", "assigned"),
            ("sensor-thl-002", "assigned")
        ]
    );
}

#[test]
fn python_sdk_two_hundred_devices_at_once() {
    let Some(py) = python() else { return };
    const N: usize = 200;
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let ids: Vec<String> = (0..N).map(|i| format!("py-{i:03}")).collect();
    let ids_file = t.path().join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();
    ok(
        &h,
        &["device", "create", "--ids-file", ids_file.to_str().unwrap()],
    );
    // Every tenth device is blocked by a disabled individual enrollment.
    for id in ids.iter().step_by(10) {
        let cert = h.join(format!("certs/{id}.cert.pem"));
        ok(
            &h,
            &[
                "enroll",
                "create",
                "--enrollment-id",
                id,
                "--cert",
                cert.to_str().unwrap(),
                "--status",
                "disabled",
            ],
        );
    }
    let server = ServerGuard::start(&h, &[]);
    let devices: Vec<(&str, PathBuf, PathBuf)> = ids
        .iter()
        .map(|id| {
            let (c, k) = files(&h, id);
            (id.as_str(), c, k)
        })
        .collect();
    let started = Instant::now();
    let r = sdk_register(&py, &server, &h.join(TRUST), &devices);
    eprintln!("{N} SDK registrations in {:?}", started.elapsed());
    for (i, (res, id)) in r.iter().zip(&ids).enumerate() {
        if i % 10 == 0 {
            assert_eq!(res["ok"], false, "{res}");
            let m = res["message"].as_str().unwrap();
            assert!(m.contains("registration status disabled"), "{res}");
        } else {
            assert_eq!(res["status"], "assigned", "{res}");
            assert_eq!(res["device_id"], id.as_str());
        }
    }
    let hub = std::fs::read_dir(h.join("hub/devices")).unwrap().count();
    assert_eq!(hub, N - N / 10);
}
