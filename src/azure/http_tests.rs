//! The client against a canned HTTPS server on 127.0.0.1 (std TcpListener + rustls).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::azure::dps::Dps;
use crate::azure::hub::HubRegistry;

pub(crate) const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// One canned answer: status line, headers, body. `None` = never answer.
pub(crate) type Canned = Option<(u16, Vec<(&'static str, String)>, String)>;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct TestServer {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Serves `answers` in order, one a connection, each with `Connection: close`.
pub(crate) fn serve(answers: Vec<Canned>) -> TestServer {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![ck.cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let Some(answer) = answers.next() else { return };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let mut r = BufReader::new(&mut tls);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            seen2.lock().unwrap().push(Seen {
                line: line.trim().to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let Some((status, hs, body)) = answer else {
                // Never answer: hold the connection until the client gives up.
                std::thread::sleep(Duration::from_secs(5));
                continue;
            };
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in hs {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = tls.write_all(out.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    TestServer {
        port,
        seen,
        ca,
        _dir: dir,
    }
}

/// The request lines the server saw, in order.
pub(crate) fn lines(s: &TestServer) -> Vec<String> {
    s.seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.line.clone())
        .collect()
}

pub(crate) fn settings(s: &TestServer) -> Settings {
    let mut st = Settings::new(Some(&s.ca)).unwrap();
    st.timeout = Duration::from_secs(2);
    st.max_wait = Duration::from_secs(2);
    st
}

pub(crate) fn hub_conn(port: u16) -> ConnectionString {
    ConnectionString::parse(
        &format!("HostName=lab-hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};GatewayHostName=localhost:{port}"),
        "t",
    )
    .unwrap()
}

pub(crate) fn dps_conn(port: u16) -> ConnectionString {
    ConnectionString::parse(
        &format!("HostName=localhost:{port};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={KEY}"),
        "t",
    )
    .unwrap()
}

fn json_ok(body: &str) -> Canned {
    Some((
        200,
        vec![("Content-Type", "application/json; charset=utf-8".into())],
        body.into(),
    ))
}

#[test]
fn gateway_connects_there_with_the_hub_as_host_and_sas_resource() {
    let s = serve(vec![json_ok(
        r#"{"deviceId":"d1","status":"enabled","etag":"\"e1\""}"#,
    )]);
    let hub = HubRegistry::new(hub_conn(s.port), &settings(&s));
    let d = hub.device("d1").unwrap().unwrap();
    assert_eq!(d.status(), Some("enabled"));
    let seen = s.seen.lock().unwrap();
    assert_eq!(
        seen[0].line,
        "GET /devices/d1?api-version=2021-04-12 HTTP/1.1"
    );
    assert_eq!(seen[0].header("host"), Some("lab-hub.azure-devices.net"));
    let auth = seen[0].header("authorization").unwrap();
    assert!(
        auth.starts_with("SharedAccessSignature sr=lab-hub.azure-devices.net&sig="),
        "{auth}"
    );
    assert!(auth.ends_with("&skn=iothubowner"), "{auth}");
}

#[test]
fn retries_429_after_retry_after_then_succeeds() {
    let s = serve(vec![
        Some((429, vec![("Retry-After", "1".into())], String::new())),
        json_ok(r#"{"registrationId":"r","provisioningStatus":"disabled","etag":"\"x\""}"#),
    ]);
    let dps = Dps::new(dps_conn(s.port), &settings(&s));
    let t = Instant::now();
    let e = dps.enrollment("r").unwrap().unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(e.provisioning_status(), Some("disabled"));
    assert_eq!(e.etag.as_deref(), Some("\"x\""));
    assert_eq!(s.seen.lock().unwrap().len(), 2);
}

#[test]
fn gives_up_on_503_after_the_bounded_tries_and_names_everything() {
    let body = r#"{"errorCode":503001,"trackingId":"trk-503","message":"busy","timestampUtc":"x"}"#;
    let s = serve(
        (0..6)
            .map(|_| Some((503, vec![("Retry-After", "0".into())], body.to_string())))
            .collect(),
    );
    let dps = Dps::new(dps_conn(s.port), &settings(&s));
    let e = dps.enrollment("sensor-1").unwrap_err();
    assert_eq!(s.seen.lock().unwrap().len(), 4);
    let m = e.to_string();
    assert_eq!(
        m,
        "GET /enrollments/sensor-1: HTTP 503 503001 (tracking ID trk-503): busy"
    );
    assert!(!m.contains(KEY) && !m.contains("sig="), "{m}");
}

#[test]
fn a_request_that_gets_no_answer_times_out() {
    let s = serve(vec![None]);
    let mut st = settings(&s);
    st.timeout = Duration::from_millis(700);
    let hub = HubRegistry::new(hub_conn(s.port), &st);
    let t = Instant::now();
    let e = hub.device("d1").unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let m = e.to_string();
    assert!(m.starts_with("GET /devices/d1 to localhost:"), "{m}");
    assert!(matches!(e, AzureError::Transport { .. }));
}

#[test]
fn a_412_race_is_an_error_with_the_hub_code_and_tracking_id() {
    let s = serve(vec![Some((
        412,
        vec![("iothub-errorcode", "PreconditionFailed".into())],
        r#"{"Message":"ErrorCode:PreconditionFailed;Precondition failed: etag mismatch","ExceptionMessage":"Tracking ID:abc123-G:0-TimeStamp:12/02/2026 10:00:00"}"#.into(),
    ))]);
    let hub = HubRegistry::new(hub_conn(s.port), &settings(&s));
    let e = hub
        .put_device(
            "d1",
            &serde_json::json!({"deviceId":"d1"}),
            Some("\"stale\""),
        )
        .unwrap_err();
    assert_eq!(e.status(), Some(412));
    assert_eq!(e.code(), Some("PreconditionFailed"));
    let m = e.to_string();
    assert!(m.starts_with("PUT /devices/d1: HTTP 412 PreconditionFailed (tracking ID abc123-G:0-TimeStamp:12/02/2026"), "{m}");
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[0].header("if-match"), Some("\"stale\""));
    assert!(
        seen[0].body.contains("\"deviceId\":\"d1\""),
        "{}",
        seen[0].body
    );
}

#[test]
fn a_404_is_none_and_an_untrusted_server_is_refused() {
    let s = serve(vec![Some((
        404,
        vec![("iothub-errorcode", "DeviceNotFound".into())],
        r#"{"Message":"ErrorCode:DeviceNotFound;gone"}"#.into(),
    ))]);
    let hub = HubRegistry::new(hub_conn(s.port), &settings(&s));
    assert!(hub.device("d1").unwrap().is_none());
    let s2 = serve(vec![json_ok("{}")]);
    // Trusting some other root only (whatever this machine's store holds).
    let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.cert.der().clone()).unwrap();
    let mut st = Settings::with_roots(roots).unwrap();
    st.timeout = Duration::from_secs(2);
    let hub = HubRegistry::new(hub_conn(s2.port), &st);
    let e = hub.device("d1").unwrap_err().to_string();
    assert!(
        e.contains("GET /devices/d1") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
}

fn page(items: &str, continuation: Option<&str>) -> Canned {
    let mut headers = vec![("Content-Type", "application/json; charset=utf-8".into())];
    if let Some(c) = continuation {
        headers.push(("x-ms-continuation", c.to_string()));
    }
    Some((200, headers, items.into()))
}

#[test]
fn a_query_follows_x_ms_continuation_until_the_last_page() {
    let s = serve(vec![
        page(
            r#"[{"registrationId":"a"},{"registrationId":"b"}]"#,
            Some("tok/1+x=="),
        ),
        page(
            r#"[{"registrationId":"c"},{"registrationId":"d"}]"#,
            Some("tok-2"),
        ),
        page(r#"[{"registrationId":"e"}]"#, None),
    ]);
    let mut dps = Dps::new(dps_conn(s.port), &settings(&s));
    dps.page_size = 2;
    let all = dps.enrollments().unwrap();
    let ids: Vec<&str> = all
        .iter()
        .map(|e| e["registrationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for r in seen.iter() {
        assert_eq!(
            r.line,
            "POST /enrollments/query?api-version=2021-10-01 HTTP/1.1"
        );
        assert_eq!(r.header("x-ms-max-item-count"), Some("2"));
        assert_eq!(r.body, r#"{"query":"*"}"#);
    }
    assert_eq!(seen[0].header("x-ms-continuation"), None);
    assert_eq!(seen[1].header("x-ms-continuation"), Some("tok/1+x=="));
    assert_eq!(seen[2].header("x-ms-continuation"), Some("tok-2"));
}

#[test]
fn a_query_whose_service_repeats_its_continuation_stops_with_an_error() {
    let s = serve(vec![
        page(r#"[{"enrollmentGroupId":"g1"}]"#, Some("same")),
        page(r#"[{"enrollmentGroupId":"g2"}]"#, Some("same")),
        page(r#"[]"#, None),
    ]);
    let dps = Dps::new(dps_conn(s.port), &settings(&s));
    let e = dps.groups().unwrap_err().to_string();
    assert_eq!(
        e,
        "POST /enrollmentGroups/query: the service sent the continuation token 'same' twice"
    );
    assert_eq!(s.seen.lock().unwrap().len(), 2);
}
