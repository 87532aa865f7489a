//! The HTTPS side of `iotca dps serve` (issue 14, DESIGN section 11),
//! driven by Microsoft's own SDKs: the Python service SDKs
//! (azure-iot-deviceprovisioning, azure-iot-hub) and the Node ones
//! (azure-iot-provisioning-device-http and -mqtt, azure-iot-provisioning-service,
//! azure-iothub), installed by `scripts/sdk-test-env.sh` under target/.
//! A test whose client is missing prints "SKIPPED: ..." and passes, unless
//! the environment variable CI is set, where it fails.
//!
//! Every server listens on 127.0.0.1 port 0 for MQTT and HTTPS; the ports
//! come from `private/iotca-dps-endpoint.json`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_iotca")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let o = run(home, args);
    assert!(
        o.status.success(),
        "iotca {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A home with a root, the default intermediate and devices.
fn lab(dir: &Path, devices: &[&str]) -> PathBuf {
    let h = dir.join("pki");
    std::fs::create_dir_all(&h).unwrap();
    ok(&h, &["ca", "init"]);
    if !devices.is_empty() {
        let mut args = vec!["device", "create"];
        args.extend_from_slice(devices);
        ok(&h, &args);
    }
    h
}

fn skip_or_fail(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{why} (CI is set: run scripts/sdk-test-env.sh)");
    }
    eprintln!("SKIPPED: {why}; run scripts/sdk-test-env.sh");
}

/// The interpreter of target/pyenv-sdk, with Microsoft's Python device and
/// service SDKs; None (skipped visibly, a failure in CI) when missing.
pub(crate) fn python() -> Option<PathBuf> {
    let p = root().join("target/pyenv-sdk/bin/python");
    let usable = p.exists()
        && Command::new(&p)
            .args([
                "-c",
                "import azure.iot.deviceprovisioning, azure.iot.hub, azure.iot.device",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !usable {
        skip_or_fail("the Python service SDKs are not in target/pyenv-sdk");
        return None;
    }
    Some(p)
}

fn node_sdk() -> Option<PathBuf> {
    let d = root().join("target/node-sdk");
    let usable = d
        .join("node_modules/azure-iot-provisioning-device-http/package.json")
        .exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !usable {
        skip_or_fail("node or the Node SDKs in target/node-sdk are missing");
        return None;
    }
    Some(d)
}

/// A running `iotca dps serve`, killed when dropped.
struct Server {
    child: Child,
    home: PathBuf,
    mqtt: SocketAddr,
    https: SocketAddr,
    endpoint: Value,
    stderr: PathBuf,
}

impl Server {
    fn start(home: &Path, extra: &[&str]) -> Server {
        let stderr = home.join(format!("serve-{}.log", std::process::id()));
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
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("HTTPS on"), "{line}");
        let endpoint: Value = serde_json::from_slice(
            &std::fs::read(home.join("private/iotca-dps-endpoint.json")).unwrap(),
        )
        .unwrap();
        Server {
            child,
            home: home.to_path_buf(),
            mqtt: endpoint["mqtt"].as_str().unwrap().parse().unwrap(),
            https: endpoint["https"].as_str().unwrap().parse().unwrap(),
            endpoint,
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn dps_cs(&self) -> String {
        self.endpoint["dps"]["connection_string"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn hub_cs(&self, i: usize) -> String {
        self.endpoint["hubs"][i]["sdk_connection_string"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn trust(&self) -> PathBuf {
        self.home.join("certs/iotca-dps-server-ca.cert.pem")
    }

    /// Node with preload.js mapping the services' ports to this server's.
    fn node(&self, sdk: &Path, script: &str, args: &[&str]) -> Command {
        let mut c = Command::new("node");
        c.arg("-r")
            .arg(root().join("tests/sdk/js/preload.js"))
            .arg(root().join("tests/sdk/js").join(script))
            .args(args)
            .env("IOTCA_NODE_SDK", sdk)
            .env("IOTCA_HTTPS_PORT", self.https.port().to_string())
            .env("IOTCA_MQTT_PORT", self.mqtt.port().to_string())
            .env("NODE_EXTRA_CA_CERTS", self.trust());
        c
    }

    fn node_register(&self, sdk: &Path, transport: &str, id: &str, device: &str) -> Value {
        let h = &self.home;
        let cert = h.join(format!("certs/{device}-full-chain.cert.pem"));
        let key = h.join(format!("private/{device}.key.pem"));
        let o = self
            .node(sdk, "register.js", &[transport, "0ne00000000", id])
            .arg(cert)
            .arg(key)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|_| {
            panic!(
                "register.js: {out}{}\nserver: {}",
                String::from_utf8_lossy(&o.stderr),
                self.log()
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_roundtrip(py: &Path, s: &Server, registered: &str, keep: &str) -> Output {
    let h = &s.home;
    Command::new(py)
        .arg(root().join("tests/sdk/python/service_roundtrip.py"))
        .env("DPS_CS", s.dps_cs())
        .env("HUB_CS", s.hub_cs(0))
        .env("REQUESTS_CA_BUNDLE", s.trust())
        .env("LEAF", h.join("certs/sensor-thl-002.cert.pem"))
        .env(
            "GROUP_CA",
            h.join("certs/azure-iot-test-only.intermediate.cert.pem"),
        )
        .env("GROUP_ID", "lab-group")
        .env("REGISTERED", registered)
        .env("KEEP_ID", keep)
        .output()
        .unwrap()
}

fn assert_ok_last_line(o: &Output, what: &str, s: &Server) {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.lines().last() == Some("OK"),
        "{what}: {out}{}\nserver log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        s.log()
    );
}

fn group(h: &Path) {
    ok(
        h,
        &[
            "enroll",
            "group",
            "create",
            "lab-group",
            "--ca",
            h.join("certs/azure-iot-test-only.intermediate.cert.pem")
                .to_str()
                .unwrap(),
        ],
    );
}

#[test]
fn python_service_sdks_round_trip_on_the_shared_store() {
    let (Some(py), Some(node)) = (python(), node_sdk()) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001", "sensor-thl-002"]);
    group(&h);
    let s = Server::start(&h, &["--hub", "lab-hub.azure-devices.net"]);
    let r = s.node_register(&node, "http", "sensor-thl-001", "sensor-thl-001");
    assert_eq!(r["status"], "assigned", "{r}");
    let o = python_roundtrip(&py, &s, "sensor-thl-001", "sensor-thl-00x");
    assert_ok_last_line(&o, "service_roundtrip.py", &s);
    // The enrollment the SDK created is what the CLI reads: the trap, a
    // disabled enrollment whose ID is not the certificate's CN, accepted
    // by the emulator as by DPS; iotca's own check refuses it.
    let shown: Value =
        serde_json::from_str(&ok(&h, &["enroll", "show", "sensor-thl-00x", "--json"])).unwrap();
    assert_eq!(
        shown["provisioningStatus"], "disabled",
        "enroll show: {shown}"
    );
    let check = run(
        &h,
        &[
            "enroll",
            "check",
            "--enrollment-id",
            "sensor-thl-00x",
            "--cert",
            h.join("certs/sensor-thl-002.cert.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(check.status.code(), Some(1));
    // The log never holds a key or a signature.
    let log = s.log();
    for secret in [s.dps_cs(), s.hub_cs(0)] {
        let key = secret
            .rsplit("SharedAccessKey=")
            .next()
            .unwrap()
            .to_string();
        assert!(!log.contains(&key), "a key reached the log");
    }
    assert!(!log.contains("sig="), "a signature reached the log");
}

#[test]
fn node_device_and_service_clients() {
    let Some(node) = node_sdk() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001", "sensor-thl-002"]);
    group(&h);
    ok(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            h.join("certs/sensor-thl-002.cert.pem").to_str().unwrap(),
            "--status",
            "disabled",
        ],
    );
    let hubs = ["lab-hub.azure-devices.net", "lab-hub-2.azure-devices.net"];
    let s = Server::start(&h, &["--hub", hubs[0], "--hub", hubs[1]]);

    let r = s.node_register(&node, "http", "sensor-thl-001", "sensor-thl-001");
    assert_eq!(r["status"], "assigned", "{r}");
    let hub = r["assignedHub"].as_str().unwrap().to_string();
    assert!(hubs.contains(&hub.as_str()), "{r}");
    // The registry record names the hub; MQTT (a second real client)
    // keeps the device on it (hashed allocation is deterministic).
    let dev: Value =
        serde_json::from_slice(&std::fs::read(h.join("hub/devices/sensor-thl-001.json")).unwrap())
            .unwrap();
    assert_eq!(dev["hub"], hub.as_str());
    let m = s.node_register(&node, "mqtt", "sensor-thl-001", "sensor-thl-001");
    assert_eq!(m["status"], "assigned", "{m}");
    assert_eq!(m["assignedHub"], hub.as_str(), "{m}");

    let d = s.node_register(&node, "http", "sensor-thl-002", "sensor-thl-002");
    assert_eq!(d["ok"], false, "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("status is disabled"),
        "{d}"
    );
    let u = s.node_register(&node, "http", "sensor-thl-009", "sensor-thl-001");
    assert_eq!(u["error"], "UnauthorizedError", "{u}");

    // A refused registration keeps the hub the device was on.
    ok(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            h.join("certs/sensor-thl-001.cert.pem").to_str().unwrap(),
            "--status",
            "disabled",
        ],
    );
    let again = s.node_register(&node, "http", "sensor-thl-001", "sensor-thl-001");
    assert!(
        again["message"]
            .as_str()
            .unwrap_or("")
            .contains("status is disabled"),
        "{again}"
    );
    let rec: Value = serde_json::from_slice(
        &std::fs::read(h.join("dps/registrations/sensor-thl-001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["status"], "disabled", "{rec}");
    assert_eq!(rec["assignedHub"], hub.as_str(), "{rec}");

    let o = s
        .node(&node, "service.js", &[])
        .env("DPS_CS", s.dps_cs())
        .env("HUB_CS", s.hub_cs(0))
        .env("LEAF", h.join("certs/sensor-thl-002.cert.pem"))
        .output()
        .unwrap();
    assert_ok_last_line(&o, "service.js", &s);
}

// ------------------------------------------------------------ hostile

fn tls_client(trust: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in iotca::cert::split_certificates(&std::fs::read(trust).unwrap()).unwrap() {
        roots
            .add(rustls_pki_types::CertificateDer::from(der))
            .unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// Sends `request` over TLS and returns what came back before the server
/// closed (or 10 s passed).
fn exchange(cfg: &Arc<rustls::ClientConfig>, addr: SocketAddr, request: &[u8]) -> String {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), "localhost".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let _ = tls.write_all(request);
    let _ = tls.flush();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get_with(key_b64: &str, path: &str, host: &str) -> Vec<u8> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap();
    let se = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = iotca::dps::https::sas::sign(host, "provisioningserviceowner", &key, se);
    format!(
        "GET {path}?api-version=2021-10-01 HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn hostile_requests_close_only_their_own_connection() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let s = Server::start(&h, &[]);
    let cfg = tls_client(&s.trust());
    let key = std::fs::read_to_string(h.join("private/iotca-dps-service.key")).unwrap();
    let key = key.trim();
    let host = format!("localhost:{}", s.https.port());
    let good = get_with(key, "/enrollments/nobody", &host);

    // A slow client holding a half-sent request head open.
    let mut slow = TcpStream::connect(s.https).unwrap();
    slow.write_all(b"\x16\x03\x01").unwrap();

    // Garbage before TLS.
    let mut g = TcpStream::connect(s.https).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    g.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);

    // Oversized head: 431 (or, when the unread rest of the head makes the
    // close a reset, nothing), and that connection is closed.
    let mut big = b"GET /enrollments/x HTTP/1.1\r\nHost: localhost\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend(b"\r\n\r\n");
    let r = exchange(&cfg, s.https, &big);
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");

    // Oversized body: 413 in DPS's error shape.
    let mut body = format!(
        "PUT /enrollments/x HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024
    )
    .into_bytes();
    // The server refuses on the declared length, before the body arrives.
    body.extend(std::iter::repeat_n(b'{', 1024));
    let r = exchange(&cfg, s.https, &body);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");

    // Wrong SAS (another key): 401 with a JSON error, never a 5xx.
    let wrong = get_with(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "/enrollments/nobody",
        &host,
    );
    let r = exchange(&cfg, s.https, &wrong);
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.contains("application/json; charset=utf-8"), "{r}");
    assert!(r.contains("\"errorCode\":401002"), "{r}");
    let r = exchange(
        &cfg,
        s.https,
        b"GET /devices/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("iothub-errorcode: iothubunauthorizedaccess"),
        "{r}"
    );

    // Bad JSON body with a good SAS: 400.
    let mut put = get_with(key, "/enrollments/x", &host);
    let head = String::from_utf8(put.clone())
        .unwrap()
        .replacen("GET", "PUT", 1);
    put = head
        .replace(
            "Connection: close\r\n\r\n",
            "Connection: close\r\nContent-Length: 5\r\n\r\n[1,2",
        )
        .into_bytes();
    put.push(b']');
    let r = exchange(&cfg, s.https, &put);
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // The server is still serving, the slow client notwithstanding.
    let start = Instant::now();
    let r = exchange(&cfg, s.https, &good);
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(r.contains("\"errorCode\":404201"), "{r}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(slow);
    assert!(!s.log().contains("sig="), "a signature reached the log");
}

#[test]
fn connection_strings_print_the_endpoint_and_keys_persist() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let o = run(&h, &["dps", "connection-strings"]);
    assert_eq!(o.status.code(), Some(2), "before any start");
    let first = {
        let s = Server::start(&h, &["--hub", "a-hub.azure-devices.net"]);
        s.dps_cs()
    };
    let s = Server::start(
        &h,
        &[
            "--hub",
            "a-hub.azure-devices.net",
            "--hub",
            "b-hub.azure-devices.net",
        ],
    );
    assert_eq!(
        s.dps_cs().split(';').nth(2),
        first.split(';').nth(2),
        "the DPS key was kept"
    );
    let j: Value = serde_json::from_str(&ok(&h, &["dps", "connection-strings", "--json"])).unwrap();
    assert_eq!(j["hubs"][1]["name"], "b-hub.azure-devices.net");
    assert!(
        j["hubs"][0]["connection_string"]
            .as_str()
            .unwrap()
            .contains(&format!("GatewayHostName=localhost:{}", s.https.port()))
    );
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "private/iotca-dps-service.key",
        "private/iotca-hub-b-hub.azure-devices.net.key",
        "private/iotca-dps-endpoint.json",
    ] {
        let mode = std::fs::metadata(h.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // The server certificate names each hub.
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(h.join("certs/iotca-dps-server.cert.pem"))
        .output()
        .unwrap();
    let san = String::from_utf8_lossy(&o.stdout);
    assert!(
        san.contains("DNS:b-hub.azure-devices.net") && san.contains("DNS:localhost"),
        "{san}"
    );
}
