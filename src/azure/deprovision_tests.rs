//! The workflow against the canned HTTPS server: the exact requests, in order.

use super::*;
use crate::azure::http::tests::{
    Canned, KEY, TestServer, dps_conn, hub_conn, lines, serve, settings,
};

fn leaf() -> Vec<u8> {
    rcgen::generate_simple_self_signed(vec!["sensor-thl-002".into()])
        .unwrap()
        .cert
        .der()
        .to_vec()
}

fn ok(body: String) -> Canned {
    Some((
        200,
        vec![("Content-Type", "application/json; charset=utf-8".into())],
        body,
    ))
}

fn not_found_dps() -> Canned {
    Some((
        404,
        vec![],
        r#"{"errorCode":404201,"trackingId":"t1","message":"not found"}"#.into(),
    ))
}

fn not_found_hub() -> Canned {
    Some((
        404,
        vec![("iothub-errorcode", "DeviceNotFound".into())],
        r#"{"Message":"ErrorCode:DeviceNotFound;gone","ExceptionMessage":"Tracking ID:t2"}"#.into(),
    ))
}

fn enrollment(status: &str, leaf: &[u8], etag: &str) -> String {
    serde_json::json!({
        "registrationId": "sensor-thl-002",
        "provisioningStatus": status,
        "etag": etag,
        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"info": {"sha256Thumbprint": crate::cert::sha256_thumbprint(leaf)}}}}}
    })
    .to_string()
}

fn registration(hub: &str) -> Canned {
    ok(serde_json::json!({"registrationId": "sensor-thl-002", "assignedHub": hub, "deviceId": "sensor-thl-002", "status": "assigned"}).to_string())
}

fn services(s: &TestServer, hubs: bool) -> Services {
    let st = settings(s);
    Services {
        dps: Dps::new(dps_conn(s.port), &st),
        hubs: if hubs { vec![hub_conn(s.port)] } else { vec![] },
        settings: st,
    }
}

const Q: &str = "?api-version=";

#[test]
fn creates_disables_deletes_and_confirms() {
    let leaf = leaf();
    let s = serve(vec![
        not_found_dps(),
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        registration("lab-hub.azure-devices.net"),
        Some((204, vec![], String::new())),
        not_found_hub(),
    ]);
    let out = deprovision(
        &services(&s, true),
        "sensor-thl-002",
        &leaf,
        HubAction::Delete,
    )
    .unwrap();
    assert!(out.ok, "{out:?}");
    let l = lines(&s);
    assert_eq!(
        l,
        [
            format!("GET /enrollments/sensor-thl-002{Q}2021-10-01 HTTP/1.1"),
            format!("PUT /enrollments/sensor-thl-002{Q}2021-10-01 HTTP/1.1"),
            format!("GET /enrollments/sensor-thl-002{Q}2021-10-01 HTTP/1.1"),
            format!("GET /registrations/sensor-thl-002{Q}2021-10-01 HTTP/1.1"),
            format!("DELETE /devices/sensor-thl-002{Q}2021-04-12 HTTP/1.1"),
            format!("GET /devices/sensor-thl-002{Q}2021-04-12 HTTP/1.1"),
        ]
    );
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[1].header("if-match"), None);
    let put: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(put["provisioningStatus"], "disabled");
    assert!(
        put["attestation"]["x509"]["clientCertificates"]["primary"]["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(seen[4].header("host"), Some("lab-hub.azure-devices.net"));
    let steps: Vec<_> = out
        .steps
        .iter()
        .map(|s| (s.step, s.action, s.confirmed))
        .collect();
    assert_eq!(
        steps,
        [
            ("enrollment", "created", true),
            ("registration", "found", true),
            ("hub", "deleted", true)
        ]
    );
    let j = serde_json::to_string(&out).unwrap();
    assert!(!j.contains(KEY));
}

#[test]
fn an_enabled_enrollment_is_updated_with_if_match() {
    let leaf = leaf();
    let s = serve(vec![
        ok(enrollment("enabled", &leaf, "\"e7\"")),
        ok(enrollment("disabled", &leaf, "\"e8\"")),
        ok(enrollment("disabled", &leaf, "\"e8\"")),
        not_found_dps(),
    ]);
    let out = deprovision(
        &services(&s, true),
        "sensor-thl-002",
        &leaf,
        HubAction::Delete,
    )
    .unwrap();
    assert!(out.ok, "{out:?}");
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen[1].header("if-match"), Some("\"e7\""));
    assert_eq!(out.steps[0].action, "updated");
    assert_eq!(out.steps[1].action, "never_registered");
    assert_eq!(out.steps.len(), 2);
}

#[test]
fn running_again_changes_nothing() {
    let leaf = leaf();
    let s = serve(vec![
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        registration("lab-hub.azure-devices.net"),
        not_found_hub(),
        not_found_hub(),
    ]);
    let out = deprovision(
        &services(&s, true),
        "sensor-thl-002",
        &leaf,
        HubAction::Delete,
    )
    .unwrap();
    assert!(out.ok, "{out:?}");
    assert!(!lines(&s).iter().any(|l| l.starts_with("PUT")));
    assert_eq!(out.steps[0].action, "unchanged");
    assert_eq!(out.steps[2].action, "not_found");
}

#[test]
fn a_hub_without_a_connection_string_is_a_problem_naming_it_and_keeps_the_dps_step() {
    let leaf = leaf();
    let s = serve(vec![
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        registration("other-hub.azure-devices.net"),
    ]);
    let out = deprovision(
        &services(&s, true),
        "sensor-thl-002",
        &leaf,
        HubAction::Delete,
    )
    .unwrap();
    assert!(!out.ok);
    assert_eq!(out.problems[0].code, "no_hub_connection_string");
    assert!(
        out.problems[0]
            .message
            .contains("other-hub.azure-devices.net")
    );
    assert!(out.steps[0].confirmed);
    assert_eq!(lines(&s).len(), 3);
}

#[test]
fn disable_puts_the_device_back_disabled_with_its_etag() {
    let leaf = leaf();
    let dev = |st: &str| {
        ok(
            serde_json::json!({"deviceId": "sensor-thl-002", "status": st, "etag": "\"d1\""})
                .to_string(),
        )
    };
    let s = serve(vec![
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        ok(enrollment("disabled", &leaf, "\"e1\"")),
        registration("lab-hub.azure-devices.net"),
        dev("enabled"),
        dev("enabled"),
        dev("disabled"),
        dev("disabled"),
    ]);
    let out = deprovision(
        &services(&s, true),
        "sensor-thl-002",
        &leaf,
        HubAction::Disable,
    )
    .unwrap();
    assert!(out.ok, "{out:?}");
    let seen = s.seen.lock().unwrap();
    let put = seen
        .iter()
        .find(|r| r.line.starts_with("PUT /devices"))
        .unwrap();
    assert_eq!(put.header("if-match"), Some("\"d1\""));
    assert!(put.body.contains("\"status\":\"disabled\""));
    assert_eq!(out.steps[2].action, "disabled");
}
