//! The hub's device endpoint of `iotca dps serve` (issue 15): the same MQTT
//! port as DPS, told apart by the CONNECT user name. Driven by the Rust
//! client of the parent module, and by Microsoft's Python and Node device
//! SDKs (`tests/dps/hub_device.py`, `tests/dps/hub_device.js`).

use super::*;

const HUB2: &str = "second-hub.azure-devices.net";

fn hub_username(hub: &str, device_id: &str) -> String {
    format!("{hub}/{device_id}/?api-version=2021-04-12&DeviceClientType=iotca-test")
}

async fn hub_client(server: &ServerGuard, home: &Path, cert_home: &Path, id: &str) -> Client {
    let dev = device(cert_home, id);
    Client::tls(server.addr, &trust_der(home), &dev, tls12())
        .await
        .unwrap()
}

/// Connects `id` (certificate from `cert_home`) to `hub`; the CONNACK code.
async fn hub_connect(
    server: &ServerGuard,
    home: &Path,
    cert_home: &Path,
    client_id: &str,
    user: &str,
) -> (Client, Option<ConnectReturnCode>) {
    let mut c = hub_client(server, home, cert_home, client_id).await;
    let code = c.connect(client_id, user).await;
    (c, code)
}

async fn publish(c: &mut Client, topic: &str, qos: u8, payload: &[u8]) -> Option<u16> {
    let packet_id = (qos > 0).then(|| c.id());
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: payload.to_vec(),
    }))
    .await
    .unwrap();
    packet_id
}

pub(crate) fn messages_json(home: &Path, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["--json", "hub", "messages"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(home, &a)).unwrap()
}

/// Replaces a registry record the way the CLI does (atomic rename).
fn edit_record(home: &Path, id: &str, f: impl FnOnce(&mut Value)) {
    let path = home.join(format!("hub/devices/{id}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    let tmp = home.join(format!("hub/devices/.edit-{id}"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// Registers the devices through DPS (the Rust client): assigned to [`HUB`].
async fn provision(server: &ServerGuard, home: &Path, ids: &[&str]) {
    for id in ids {
        let o = register_raw(
            server.addr,
            &trust_der(home),
            &device(home, id),
            id,
            tls13(),
        )
        .await;
        assert_eq!(o.status(), "assigned", "{:?}", o.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_acknowledged_and_recorded() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &["sensor-thl-001"]);
    let server = ServerGuard::start(&h, &["--hub", HUB]);
    provision(&server, &h, &["sensor-thl-001"]).await;
    let id = "sensor-thl-001";
    let (mut c, code) = hub_connect(&server, &h, &h, id, &hub_username(HUB, id)).await;
    assert_eq!(code, Some(ConnectReturnCode::Accepted), "{}", server.log());
    // SUBSCRIBE: the device's own topics and $iothub are granted (QoS at most 1).
    let packet_id = c.id();
    c.send(&Packet::Subscribe {
        packet_id,
        filters: vec![
            (format!("devices/{id}/messages/devicebound/#"), 1),
            ("$iothub/twin/res/#".into(), 0),
            ("devices/sensor-thl-999/messages/devicebound/#".into(), 1),
        ],
    })
    .await
    .unwrap();
    assert_eq!(
        c.recv().await,
        Some(Packet::SubAck {
            packet_id,
            codes: vec![1, 0, 0x80]
        })
    );
    let topic = format!(
        "devices/{id}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&%24.mid=m-1&room=lab%201"
    );
    let pid = publish(&mut c, &topic, 1, br#"{"temperature": 21.5}"#).await;
    assert_eq!(
        c.recv().await,
        Some(Packet::PubAck {
            packet_id: pid.unwrap()
        })
    );
    // QoS 0, a body that is not UTF-8, and one with a terminal escape.
    publish(
        &mut c,
        &format!("devices/{id}/messages/events/"),
        0,
        &[0xff, 0x00, 0x01],
    )
    .await;
    let pid = publish(
        &mut c,
        &format!("devices/{id}/messages/events/"),
        1,
        b"\x1b[31mred",
    )
    .await;
    assert_eq!(
        c.recv().await,
        Some(Packet::PubAck {
            packet_id: pid.unwrap()
        })
    );
    // Twin requests are acknowledged and not recorded.
    let pid = publish(&mut c, "$iothub/twin/GET/?$rid=1", 1, b"").await;
    assert_eq!(
        c.recv().await,
        Some(Packet::PubAck {
            packet_id: pid.unwrap()
        })
    );
    c.send(&Packet::PingReq).await.unwrap();
    assert_eq!(c.recv().await, Some(Packet::PingResp));
    let packet_id = c.id();
    c.send(&Packet::Unsubscribe {
        packet_id,
        filters: vec!["$iothub/twin/res/#".into()],
    })
    .await
    .unwrap();
    assert_eq!(c.recv().await, Some(Packet::UnsubAck { packet_id }));
    c.send(&Packet::Disconnect).await.unwrap();
    assert_eq!(c.recv().await, None);

    let all = messages_json(&h, &[]);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0]["deviceId"], id);
    assert_eq!(all[0]["hub"], HUB);
    assert_eq!(all[0]["body"], r#"{"temperature": 21.5}"#);
    assert_eq!(all[0]["properties"]["$.ct"], "application/json");
    assert_eq!(all[0]["properties"]["$.ce"], "utf-8");
    assert_eq!(all[0]["properties"]["$.mid"], "m-1");
    assert_eq!(all[0]["properties"]["room"], "lab 1");
    assert!(all[0].get("bodyEncoding").is_none());
    assert_eq!(all[1]["bodyEncoding"], "base64");
    assert_eq!(all[1]["body"], "/wAB");
    let t0 = time::OffsetDateTime::parse(
        all[0]["enqueuedTimeUtc"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((time::OffsetDateTime::now_utc() - t0).whole_seconds().abs() < 600);
    let last = messages_json(&h, &[id, "--last", "1"]);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["body"], "\u{1b}[31mred");
    // Text for people: the escape is shown, never sent to the terminal.
    let text = ok(&h, &["hub", "messages", id]);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("\\u{1b}[31mred"), "{text}");
    assert!(text.contains("$.ct=application/json"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    // Clean session 1 is served too.
    let mut c = hub_client(&server, &h, &h, id).await;
    c.send(&Packet::Connect(Box::new(Connect {
        protocol_name: "MQTT".into(),
        protocol_level: 4,
        clean_session: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: Some(format!(
            "{HUB}/{id}/api-version=2020-09-30&DeviceClientType=node"
        )),
        password: None,
    })))
    .await
    .unwrap();
    assert_eq!(
        c.recv().await,
        Some(Packet::ConnAck {
            session_present: false,
            code: ConnectReturnCode::Accepted
        })
    );
    assert!(messages_json(&h, &["sensor-thl-404"]).is_empty());
    assert_eq!(run(&h, &["hub", "messages", "../x"]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_refuses_with_connack_5() {
    let t = tempfile::tempdir().unwrap();
    let ids = [
        "sensor-thl-001",
        "sensor-thl-002",
        "sensor-thl-003",
        "sensor-thl-004",
    ];
    let h = lab(t.path(), &ids);
    // A second home with its own CA: same CNs, other keys and issuers.
    let other = t.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let o = lab(&other, &["sensor-thl-003", "sensor-thl-004"]);
    let server = ServerGuard::start(&h, &["--hub", HUB, "--hub", HUB2]);
    provision(&server, &h, &["sensor-thl-001"]).await;
    let u = |id: &str| hub_username(HUB, id);
    let accepted = Some(ConnectReturnCode::Accepted);
    let refused = Some(ConnectReturnCode::NotAuthorized);
    let id = "sensor-thl-001";
    assert_eq!(hub_connect(&server, &h, &h, id, &u(id)).await.1, accepted);
    // Another hub name than the device's.
    assert_eq!(
        hub_connect(&server, &h, &h, id, &hub_username(HUB2, id))
            .await
            .1,
        refused
    );
    let nohub = hub_username("nohub.azure-devices.net", id);
    assert_eq!(hub_connect(&server, &h, &h, id, &nohub).await.1, refused);
    // The client ID is not the device ID.
    let mut c = hub_client(&server, &h, &h, id).await;
    assert_eq!(c.connect("sensor-thl-009", &u(id)).await, refused);
    // The certificate's CN is not the device ID (002 is not even registered).
    let mut c = hub_client(&server, &h, &h, id).await;
    assert_eq!(
        c.connect("sensor-thl-002", &u("sensor-thl-002")).await,
        refused
    );
    // Not in the registry.
    let id2 = "sensor-thl-002";
    assert_eq!(hub_connect(&server, &h, &h, id2, &u(id2)).await.1, refused);
    // selfSigned: this certificate's thumbprint, not another with the same CN.
    let cert3 = h.join("certs/sensor-thl-003.cert.pem");
    ok(
        &h,
        &[
            "hub",
            "device",
            "add",
            "sensor-thl-003",
            "--cert",
            cert3.to_str().unwrap(),
        ],
    );
    let id3 = "sensor-thl-003";
    assert_eq!(hub_connect(&server, &h, &h, id3, &u(id3)).await.1, accepted);
    assert_eq!(hub_connect(&server, &h, &o, id3, &u(id3)).await.1, refused);
    // The secondary thumbprint, as SHA-256, lets the other certificate on.
    let other3 = iotca::cert::read_certificates(&o.join("certs/sensor-thl-003.cert.pem")).unwrap();
    edit_record(&h, id3, |v| {
        v["authentication"]["x509Thumbprint"]["secondaryThumbprint"] =
            json!(iotca::cert::sha256_thumbprint(&other3[0]).to_lowercase());
    });
    assert_eq!(hub_connect(&server, &h, &o, id3, &u(id3)).await.1, accepted);
    // certificateAuthority: the chain must verify to a group CA or a home CA.
    ok(&h, &["hub", "device", "add", "sensor-thl-004"]);
    let id4 = "sensor-thl-004";
    assert_eq!(hub_connect(&server, &h, &h, id4, &u(id4)).await.1, accepted);
    assert_eq!(hub_connect(&server, &h, &o, id4, &u(id4)).await.1, refused);
    // A record of the other hub, and a disabled one.
    edit_record(&h, id4, |v| v["hub"] = json!(HUB2));
    assert_eq!(hub_connect(&server, &h, &h, id4, &u(id4)).await.1, refused);
    assert_eq!(
        hub_connect(&server, &h, &h, id4, &hub_username(HUB2, id4))
            .await
            .1,
        accepted
    );
    edit_record(&h, id, |v| v["status"] = json!("disabled"));
    assert_eq!(hub_connect(&server, &h, &h, id, &u(id)).await.1, refused);
    // A user name of neither shape.
    let mut c = hub_client(&server, &h, &h, id).await;
    assert_eq!(
        c.connect(id, "lab-hub/sensor-thl-001/no-version").await,
        Some(ConnectReturnCode::BadUsernameOrPassword)
    );
    server.expect_log("refused (CONNACK 5): the device is disabled in the registry");
    server.expect_log("refused (CONNACK 5): the device is not in the hub's registry");
    server.expect_log("does not verify to an enrollment group's CA or a CA of the home");
    server.expect_log("the certificate's thumbprint is neither");
    server.expect_log("the device belongs to hub 'second-hub.azure-devices.net'");
}

/// Waits until the server closes `c` (None from recv); the time it took.
async fn closed_within(c: &mut Client, limit: Duration) -> Duration {
    let start = Instant::now();
    match tokio::time::timeout(limit, c.recv()).await {
        Ok(None) => start.elapsed(),
        Ok(Some(p)) => panic!("unexpected {p:?}"),
        Err(_) => panic!("still open after {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_disabling_a_device_closes_its_connections() {
    let t = tempfile::tempdir().unwrap();
    let ids = ["sensor-thl-001", "sensor-thl-002", "sensor-thl-003"];
    let h = lab(t.path(), &ids);
    let server = ServerGuard::start(&h, &[]);
    provision(&server, &h, &ids).await;
    // DPS recorded the group's hub on each device record.
    let default_hub = HUB;
    let mut conns = Vec::new();
    for id in ids {
        let (c, code) = hub_connect(&server, &h, &h, id, &hub_username(default_hub, id)).await;
        assert_eq!(code, Some(ConnectReturnCode::Accepted), "{}", server.log());
        conns.push(c);
    }
    // Two connections for one device: both close.
    let (c2, _) = hub_connect(&server, &h, &h, ids[0], &hub_username(default_hub, ids[0])).await;
    conns.push(c2);
    // Delete from the CLI, another process.
    ok(&h, &["hub", "device", "delete", ids[0]]);
    // The contract says within a second; the bound leaves room for a loaded machine.
    let limit = Duration::from_secs(3);
    let took = closed_within(&mut conns[0], limit).await;
    closed_within(&mut conns[3], limit).await;
    eprintln!("closed {took:?} after the deletion");
    // Disabled by rewriting the record.
    edit_record(&h, ids[1], |v| v["status"] = json!("disabled"));
    closed_within(&mut conns[1], limit).await;
    // The third device is untouched and keeps sending.
    let c = &mut conns[2];
    let pid = publish(
        c,
        &format!("devices/{}/messages/events/", ids[2]),
        1,
        b"still here",
    )
    .await;
    assert_eq!(
        c.recv().await,
        Some(Packet::PubAck {
            packet_id: pid.unwrap()
        })
    );
    for id in &ids[..2] {
        let (_, code) = hub_connect(&server, &h, &h, id, &hub_username(default_hub, id)).await;
        assert_eq!(code, Some(ConnectReturnCode::NotAuthorized));
    }
    server.expect_log("closed: the device was deleted from the registry");
    server.expect_log("closed: the device is disabled in the registry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_hub_client_closes_only_its_own_connection() {
    let t = tempfile::tempdir().unwrap();
    let ids = ["sensor-thl-001", "sensor-thl-002"];
    let h = lab(t.path(), &ids);
    let server = ServerGuard::start(&h, &["--hub", HUB]);
    provision(&server, &h, &ids).await;
    let (mut good, _) = hub_connect(&server, &h, &h, ids[0], &hub_username(HUB, ids[0])).await;
    // Telemetry on another device's topic.
    let (mut bad, code) = hub_connect(&server, &h, &h, ids[1], &hub_username(HUB, ids[1])).await;
    assert_eq!(code, Some(ConnectReturnCode::Accepted));
    publish(
        &mut bad,
        "devices/sensor-thl-001/messages/events/",
        1,
        b"forged",
    )
    .await;
    assert_eq!(bad.recv().await, None);
    // A packet larger than the limit, then garbage.
    let (mut bad, _) = hub_connect(&server, &h, &h, ids[1], &hub_username(HUB, ids[1])).await;
    bad.tls
        .write_all(&[0x30, 0xff, 0xff, 0xff, 0x7f])
        .await
        .unwrap();
    assert_eq!(bad.recv().await, None);
    let (mut bad, _) = hub_connect(&server, &h, &h, ids[1], &hub_username(HUB, ids[1])).await;
    bad.tls.write_all(&[0x00, 0x00, 0xde, 0xad]).await.unwrap();
    assert_eq!(bad.recv().await, None);
    // A log line forged through the device ID is escaped.
    let mut c = hub_client(&server, &h, &h, ids[0]).await;
    let forged = format!("{HUB}/x\nforged line/?api-version=1");
    assert_eq!(
        c.connect("x", &forged).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    server.expect_log("device x\\nforged line: refused");
    assert!(!server.log().contains("\nforged line"), "{}", server.log());
    good.send(&Packet::PingReq).await.unwrap();
    assert_eq!(good.recv().await, Some(Packet::PingResp));
    let pid = publish(
        &mut good,
        "devices/sensor-thl-001/messages/events/",
        1,
        b"ok",
    )
    .await;
    assert_eq!(
        good.recv().await,
        Some(Packet::PubAck {
            packet_id: pid.unwrap()
        })
    );
    let all = messages_json(&h, &[]);
    assert_eq!(all.len(), 1, "the forged message is not recorded: {all:?}");
}

#[test]
fn hub_messages_follow_prints_new_records_one_a_line() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let store = iotca::hub_messages::MessageStore::new(iotca::home::Home::open(&h).unwrap());
    store
        .receive("dev-1", HUB, Default::default(), b"old")
        .unwrap();
    let mut child = Command::new(bin())
        .arg("--home")
        .arg(&h)
        .args(["--json", "hub", "messages", "--follow", "--last", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let next = || {
        let l = rx.recv_timeout(Duration::from_secs(30));
        serde_json::from_str::<Value>(&l.expect("a line from --follow")).unwrap()
    };
    let first = next();
    assert_eq!(first["body"], "old");
    store
        .receive("dev-2", HUB, Default::default(), b"new")
        .unwrap();
    let second = next();
    assert_eq!(second["body"], "new");
    assert_eq!(second["deviceId"], "dev-2");
    let _ = child.kill();
    let _ = child.wait();
}

// ------------------------------------------------- Microsoft's device SDKs

/// A missing SDK skips visibly, and fails when CI is set.
fn missing(what: &str, why: String) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
        || std::env::var("IOTCA_DPS_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    if ci {
        panic!("{what}: {why}");
    }
    eprintln!("SKIPPED: {what}: {why}");
}

fn sdk_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("IOTCA_SDK_PYTHON").map(PathBuf::from),
        Some(root.join("target/pyenv-sdk/bin/python")),
        Some(root.join("target/pyenv-dps/bin/python")),
    ];
    for p in candidates.into_iter().flatten() {
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
    }
    missing(
        "the Python hub device test",
        "no venv with azure-iot-device; run scripts/sdk-test-env.sh".into(),
    );
    None
}

fn node_modules() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("IOTCA_NODE_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/node-sdk"))
        .join("node_modules");
    let ok = dir.join("azure-iot-device").exists()
        && dir.join("azure-iot-device-mqtt").exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(dir);
    }
    missing(
        "the Node hub device test",
        format!(
            "no node, or no azure-iot-device(-mqtt) in {}; run scripts/sdk-test-env.sh",
            dir.display()
        ),
    );
    None
}

/// A device app driven line by line (see tests/dps/hub_device.py).
pub(crate) struct SdkDevice {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl SdkDevice {
    fn start(mut cmd: Command) -> SdkDevice {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        SdkDevice {
            child,
            stdin,
            lines,
        }
    }

    pub(crate) fn answer(&self, server: &ServerGuard) -> Value {
        let l = self
            .lines
            .recv_timeout(Duration::from_secs(90))
            .unwrap_or_else(|_| {
                panic!(
                    "the SDK device did not answer; server log:\n{}",
                    server.log()
                )
            });
        serde_json::from_str(&l).unwrap()
    }

    /// Microsoft's Python device SDK as device `id` of `home` (its full
    /// chain and key) on `hub`, through the server's MQTT port
    /// (tests/dps/hub_device.py); its first answer is connect()'s.
    pub(crate) fn python(
        py: &Path,
        server: &ServerGuard,
        home: &Path,
        hub: &str,
        id: &str,
    ) -> SdkDevice {
        let (cert, key) = files(home, id);
        let mut cmd = Command::new(py);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dps/hub_device.py"))
            .args(["--hub", hub, "--device-id", id])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--trust")
            .arg(home.join(TRUST))
            .arg("--port")
            .arg(server.addr.port().to_string());
        SdkDevice::start(cmd)
    }

    fn command(&mut self, server: &ServerGuard, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        self.answer(server)
    }

    pub(crate) fn send(&mut self, server: &ServerGuard, body: &str) -> Value {
        self.command(server, &format!("send {body}"))
    }

    /// Whether the SDK client says it is connected (`client.connected`).
    pub(crate) fn connected(&mut self, server: &ServerGuard) -> bool {
        let r = self.command(server, "connected");
        assert_eq!(r["ok"], true, "{r}");
        r["connected"].as_bool().unwrap()
    }
}

impl Drop for SdkDevice {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SDK device sends twice, is deleted, and its next send fails with `error`.
fn sdk_scenario(h: &Path, server: &ServerGuard, id: &str, mut dev: SdkDevice, error: &str) {
    let first = dev.answer(server);
    assert_eq!(first["ok"], true, "connect: {first}\n{}", server.log());
    for i in 0..2 {
        let r = dev.send(server, &format!("{{\"temperature\": {}}}", 20 + i));
        assert_eq!(r["ok"], true, "send: {r}\n{}", server.log());
    }
    let got = messages_json(h, &[id]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["body"], "{\"temperature\": 21}");
    assert_eq!(got[1]["properties"]["$.ct"], "application/json");
    assert_eq!(got[1]["properties"]["$.ce"], "utf-8");
    assert_eq!(got[1]["properties"]["seq"], "2");
    assert_eq!(got[1]["hub"], HUB);
    ok(h, &["hub", "device", "delete", id]);
    server.expect_log(&format!("device {id}: closed: the device was deleted"));
    let r = dev.send(server, "{\"temperature\": 99}");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"], error, "{r}");
    assert_eq!(messages_json(h, &[id]).len(), 2);
}

#[test]
fn python_sdk_device_sends_telemetry_until_deleted() {
    let Some(py) = sdk_python() else { return };
    let t = tempfile::tempdir().unwrap();
    let id = "sensor-thl-001";
    let h = lab(t.path(), &[id]);
    let server = ServerGuard::start(&h, &["--hub", HUB]);
    let (cert, key) = files(&h, id);
    let r = sdk_register(&py, &server, &h.join(TRUST), &[(id, cert, key)]);
    assert_eq!(r[0]["assigned_hub"], HUB, "{r:?}");
    let hub = r[0]["assigned_hub"].as_str().unwrap();
    let dev = SdkDevice::python(&py, &server, &h, hub, id);
    sdk_scenario(&h, &server, id, dev, "CredentialError");
}

#[test]
fn node_sdk_device_sends_telemetry_until_deleted() {
    let Some(modules) = node_modules() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let id = "sensor-thl-002";
    let h = lab(t.path(), &[id]);
    let server = ServerGuard::start(&h, &["--hub", HUB]);
    // Registered by DPS (the Rust client), then the Node SDK on the hub.
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(provision(&server, &h, &[id]));
    let (cert, key) = files(&h, id);
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", &modules)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dps/hub_device.js"))
        .args([HUB, id])
        .arg(&cert)
        .arg(&key)
        .arg(h.join(TRUST))
        .arg(server.addr.port().to_string());
    sdk_scenario(&h, &server, id, SdkDevice::start(cmd), "UnauthorizedError");
}

#[test]
fn serve_listens_on_a_host_name() {
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[]);
    let mut child = Command::new(bin())
        .arg("--home")
        .arg(&h)
        .args([
            "dps",
            "serve",
            "--listen",
            "localhost:0",
            "--https-listen",
            "localhost:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a listening line");
    let addr: SocketAddr = line
        .split_whitespace()
        .skip_while(|w| *w != "on")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(addr.ip().is_loopback(), "{line}");
    let o = run(&h, &["dps", "serve", "--listen", "localhost:x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not ADDR:PORT or HOST:PORT"));
}
