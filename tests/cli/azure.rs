//! `--to azure`: the guard refuses before any request is sent, and no key
//! ever appears in output or errors. (The workflow's requests are tested in
//! the library against a canned HTTPS server: src/azure/deprovision_tests.rs.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{iotca_in, run, show};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn pki(dir: &Path) -> PathBuf {
    let h = dir.to_path_buf();
    let o = run(iotca_in(&h).args(["ca", "init"]));
    assert!(o.status.success(), "{}", show(&o));
    let o = run(iotca_in(&h).args(["device", "create", "sensor-thl-001", "sensor-thl-002"]));
    assert!(o.status.success(), "{}", show(&o));
    h
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// A DPS that counts connections (it never answers).
struct Listener {
    l: TcpListener,
    port: u16,
}

impl Listener {
    fn new() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        Listener { l, port }
    }
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.l.accept().ok()).count()
    }
}

fn conn_files(dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let dps = dir.join("dps.cs");
    std::fs::write(
        &dps,
        format!("HostName=127.0.0.1:{port};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={KEY}\n"),
    )
    .unwrap();
    let hubs = dir.join("hubs.cs");
    std::fs::write(
        &hubs,
        format!("HostName=lab-hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};GatewayHostName=127.0.0.1:{port}\n"),
    )
    .unwrap();
    (dps, hubs)
}

fn deprovision(
    home: &Path,
    id: &str,
    cert: &str,
    files: &(PathBuf, PathBuf),
    extra: &[&str],
) -> Output {
    let mut c = iotca_in(home);
    c.args(["deprovision", id, "--cert"])
        .arg(home.join(cert))
        .args([
            "--to",
            "azure",
            "--request-timeout",
            "2",
            "--dps-connection-string-file",
        ])
        .arg(&files.0)
        .arg("--hub-connection-string-file")
        .arg(&files.1)
        .args(extra)
        .env_remove("IOTCA_DPS_CONNECTION_STRING")
        .env_remove("IOTCA_HUB_CONNECTION_STRING")
        .env_remove("IOTCA_SERVICE_CA");
    run(&mut c)
}

fn no_secret(o: &Output) {
    let all = show(o);
    assert!(!all.contains(KEY), "{all}");
    assert!(!all.contains("sig="), "{all}");
    assert!(!all.contains("SharedAccessSignature"), "{all}");
}

#[test]
fn the_guard_refuses_before_any_request_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = pki(&tmp.path().join("home"));
    let dps = Listener::new();
    let files = conn_files(tmp.path(), dps.port);
    let before = tree(&home);
    for (id, cert, why) in [
        (
            "sensor-thl-002",
            "certs/sensor-thl-001.cert.pem",
            "another device's certificate",
        ),
        (
            "Sensor-THL-002",
            "certs/sensor-thl-002.cert.pem",
            "the ID in another case",
        ),
        (
            "sensor-thl-02",
            "certs/sensor-thl-002.cert.pem",
            "a mismatched ID",
        ),
        (
            "sensor-thl-002",
            "certs/azure-iot-test-only.intermediate.cert.pem",
            "a CA certificate",
        ),
    ] {
        for json in [false, true] {
            let extra: &[&str] = if json { &["--json"] } else { &[] };
            let o = deprovision(&home, id, cert, &files, extra);
            assert_eq!(o.status.code(), Some(1), "{why}: {}", show(&o));
            no_secret(&o);
            if json {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(v["ok"], false, "{why}");
            }
        }
    }
    assert_eq!(
        dps.connections(),
        0,
        "a request was sent after a refused pre-flight"
    );
    assert_eq!(tree(&home), before, "the home changed");
}

#[test]
fn a_failed_request_names_it_and_never_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let home = pki(&tmp.path().join("home"));
    // A port nobody listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let files = conn_files(tmp.path(), port);
    let o = deprovision(
        &home,
        "sensor-thl-002",
        "certs/sensor-thl-002.cert.pem",
        &files,
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "GET /enrollments/sensor-thl-002 to 127.0.0.1:{port}"
        )),
        "{}",
        show(&o)
    );
    no_secret(&o);
}

#[test]
fn connection_strings_come_from_files_or_env_never_argv() {
    let tmp = tempfile::tempdir().unwrap();
    let home = pki(&tmp.path().join("home"));
    let cs = format!("HostName=h;SharedAccessKeyName=p;SharedAccessKey={KEY}");
    let o = run(iotca_in(&home)
        .args(["deprovision", "sensor-thl-002", "--cert"])
        .arg(home.join("certs/sensor-thl-002.cert.pem"))
        .args(["--to", "azure", "--dps-connection-string", &cs]));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    // None given at all: exit 2 saying where they go.
    let o = run(iotca_in(&home)
        .args(["deprovision", "sensor-thl-002", "--cert"])
        .arg(home.join("certs/sensor-thl-002.cert.pem"))
        .args(["--to", "azure"])
        .env_remove("IOTCA_DPS_CONNECTION_STRING"));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("IOTCA_DPS_CONNECTION_STRING"),
        "{}",
        show(&o)
    );
    // A malformed key in the environment: named, never echoed.
    let bad = "HostName=h;SharedAccessKeyName=p;SharedAccessKey=sekrit!!value";
    let o = run(iotca_in(&home)
        .args(["deprovision", "sensor-thl-002", "--cert"])
        .arg(home.join("certs/sensor-thl-002.cert.pem"))
        .args(["--to", "azure"])
        .env("IOTCA_DPS_CONNECTION_STRING", bad));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let all = show(&o);
    assert!(
        all.contains("IOTCA_DPS_CONNECTION_STRING") && !all.contains("sekrit"),
        "{all}"
    );
}

#[test]
fn ids_file_runs_every_pre_flight_first_one_refusal_sends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = pki(&tmp.path().join("home"));
    let dps = Listener::new();
    let files = conn_files(tmp.path(), dps.port);
    // sensor-thl-003 has the certificate of sensor-thl-001: its pre-flight refuses.
    std::fs::copy(
        home.join("certs/sensor-thl-001.cert.pem"),
        home.join("certs/sensor-thl-003.cert.pem"),
    )
    .unwrap();
    let ids = tmp.path().join("ids.txt");
    std::fs::write(
        &ids,
        "sensor-thl-001\n\n# retired too\nsensor-thl-003\nsensor-thl-002\n",
    )
    .unwrap();
    let before = tree(&home);
    let mut c = iotca_in(&home);
    c.args(["deprovision", "--ids-file"])
        .arg(&ids)
        .arg("--certs-dir")
        .arg(home.join("certs"))
        .args(["--to", "azure", "--json", "--dps-connection-string-file"])
        .arg(&files.0)
        .arg("--hub-connection-string-file")
        .arg(&files.1);
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["refused"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["refused"][0]["enrollment_id"], "sensor-thl-003");
    no_secret(&o);
    assert_eq!(dps.connections(), 0);
    assert_eq!(tree(&home), before);

    // A device with no certificate in DIR: exit 2 naming it, still nothing sent.
    std::fs::write(&ids, "sensor-thl-001\nsensor-thl-009\n").unwrap();
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sensor-thl-009"),
        "{}",
        show(&o)
    );
    assert_eq!(dps.connections(), 0);
}

#[test]
fn the_azure_reads_name_their_request_and_never_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().to_path_buf();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (dps, hubs) = conn_files(tmp.path(), port);
    for (args, request) in [
        (
            vec!["hub", "device", "show", "d1", "--azure"],
            "GET /devices/d1",
        ),
        (
            vec!["hub", "device", "delete", "d1", "--azure"],
            "DELETE /devices/d1",
        ),
        (
            vec!["hub", "device", "disable", "d1", "--azure"],
            "GET /devices/d1",
        ),
        (
            vec!["hub", "device", "list", "--azure"],
            "POST /devices/query",
        ),
        (
            vec!["enroll", "show", "d1", "--azure"],
            "GET /enrollments/d1",
        ),
        (
            vec!["enroll", "show", "g1", "--group", "--azure"],
            "GET /enrollmentGroups/g1",
        ),
        (
            vec!["enroll", "delete", "d1", "--azure"],
            "GET /enrollments/d1",
        ),
        (vec!["enroll", "list", "--azure"], "POST /enrollments/query"),
        (
            vec!["dps", "registrations", "--azure", "d1"],
            "GET /registrations/d1",
        ),
        (
            vec!["dps", "registrations", "--azure", "--group", "g1"],
            "POST /registrations/g1/query",
        ),
    ] {
        let mut c = iotca_in(&home);
        c.args(&args)
            .args(["--request-timeout", "2", "--dps-connection-string-file"])
            .arg(&dps)
            .arg("--hub-connection-string-file")
            .arg(&hubs);
        let o = run(&mut c);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{request} to 127.0.0.1:{port}")),
            "{args:?}: {}",
            show(&o)
        );
        no_secret(&o);
    }
    // Several hubs and no --hub: say which to pick.
    std::fs::write(
        &hubs,
        format!("HostName=a.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}\nHostName=b.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}\n"),
    )
    .unwrap();
    let o = run(iotca_in(&home)
        .args([
            "hub",
            "device",
            "show",
            "d1",
            "--azure",
            "--hub-connection-string-file",
        ])
        .arg(&hubs));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a.azure-devices.net, b.azure-devices.net") && err.contains("--hub"),
        "{}",
        show(&o)
    );
    no_secret(&o);
}

#[test]
fn enroll_create_to_azure_is_guarded_then_names_its_request() {
    let tmp = tempfile::tempdir().unwrap();
    let home = pki(&tmp.path().join("home"));
    let dps = Listener::new();
    let files = conn_files(tmp.path(), dps.port);
    let create = |id: &str, cert: &str| {
        let mut c = iotca_in(&home);
        c.args(["enroll", "create", "--enrollment-id", id, "--cert"])
            .arg(home.join(cert))
            .args([
                "--to",
                "azure",
                "--request-timeout",
                "1",
                "--dps-connection-string-file",
            ])
            .arg(&files.0);
        run(&mut c)
    };
    let o = create("sensor-thl-002", "certs/sensor-thl-001.cert.pem");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let o = run(iotca_in(&home)
        .args(["enroll", "group", "create", "fleet", "--ca"])
        .arg(home.join("certs/sensor-thl-001.cert.pem"))
        .args(["--to", "azure", "--dps-connection-string-file"])
        .arg(&files.0));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a device certificate as a group CA: {}",
        show(&o)
    );
    assert_eq!(
        dps.connections(),
        0,
        "a request was sent after a refused pre-flight"
    );
    // A pre-flight that passes goes to DPS: the listener never answers, so the request times out.
    let o = create("sensor-thl-002", "certs/sensor-thl-002.cert.pem");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("GET /enrollments/sensor-thl-002 to 127.0.0.1:"),
        "{}",
        show(&o)
    );
    no_secret(&o);
    assert_eq!(dps.connections(), 1);
}

#[test]
fn without_any_trust_root_or_with_a_bad_service_ca_nothing_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().to_path_buf();
    let dps = Listener::new();
    let files = conn_files(tmp.path(), dps.port);
    let bad = tmp.path().join("bad-ca.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let list = |service_ca: Option<&Path>| {
        let mut c = iotca_in(&home);
        c.args([
            "enroll",
            "list",
            "--azure",
            "--json",
            "--dps-connection-string-file",
        ])
        .arg(&files.0)
        // The system store, as rustls-native-certs reads it, made empty.
        .env("SSL_CERT_FILE", tmp.path().join("no-such-bundle.pem"))
        .env_remove("SSL_CERT_DIR")
        .env_remove("IOTCA_SERVICE_CA")
        .env_remove("IOTCA_DPS_CONNECTION_STRING");
        if let Some(p) = service_ca {
            c.arg("--service-ca").arg(p);
        }
        run(&mut c)
    };
    let o = list(None);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no TLS trust roots") && err.contains("--service-ca"),
        "{}",
        show(&o)
    );
    assert_eq!(err.lines().count(), 1, "{}", show(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no TLS trust roots")
    );
    let o = list(Some(&bad));
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("the service CA file {}", bad.display()))
            && err.contains("not valid PEM"),
        "{}",
        show(&o)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "bad_certificate");
    assert_eq!(dps.connections(), 0);
}

#[test]
fn enroll_check_azure_runs_the_pre_flight_then_names_its_request() {
    let tmp = tempfile::tempdir().unwrap();
    let home = pki(&tmp.path().join("home"));
    let dps = Listener::new();
    let files = conn_files(tmp.path(), dps.port);
    let check = |extra: &[&str]| {
        let mut c = iotca_in(&home);
        c.args(["enroll", "check", "--enrollment-id", "sensor-thl-002"])
            .arg("--cert")
            .arg(home.join("certs/sensor-thl-002.cert.pem"))
            .arg("--dps-connection-string-file")
            .arg(&files.0)
            .args(extra)
            .env_remove("IOTCA_SERVICE_CA");
        run(&mut c)
    };
    let o = check(&["--azure", "--json", "--request-timeout", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let request = format!("GET /enrollments/sensor-thl-002 to 127.0.0.1:{}", dps.port);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&request),
        "{}",
        show(&o)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains(&request), "{message}");
    no_secret(&o);
    assert_eq!(dps.connections(), 1);
    // Without --azure, nothing is sent.
    let o = check(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(dps.connections(), 0);
}
