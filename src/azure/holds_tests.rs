//! `holdings` against the canned HTTPS server: the three read-only
//! requests, and what is made of their answers.

use serde_json::json;

use super::*;
use crate::azure::http::tests::{Canned, TestServer, dps_conn, lines, serve, settings};
use crate::provision::tests::{Pki, pki};

fn ok(v: Value) -> Canned {
    Some((
        200,
        vec![("Content-Type", "application/json; charset=utf-8".into())],
        v.to_string(),
    ))
}

fn not_found() -> Canned {
    Some((
        404,
        vec![],
        r#"{"errorCode":404201,"trackingId":"t1","message":"not found"}"#.into(),
    ))
}

fn enrollment(id: &str, status: &str, cert: &[u8]) -> Value {
    json!({"registrationId": id, "provisioningStatus": status, "etag": "\"e\"",
           "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"info": {
               "subjectName": "CN=x", "sha1Thumbprint": cert::sha1_thumbprint(cert),
               "sha256Thumbprint": cert::sha256_thumbprint(cert)}}}}}})
}

/// A group whose `which` certificate is `ca`, given by `thumb` (`sha1` or `sha256`) only.
fn group(id: &str, status: &str, which: &str, ca: &[u8], thumb: &str) -> Value {
    let t = if thumb == "sha1" {
        json!({"sha1Thumbprint": cert::sha1_thumbprint(ca)})
    } else {
        json!({"sha256Thumbprint": cert::sha256_thumbprint(ca)})
    };
    json!({"enrollmentGroupId": id, "provisioningStatus": status,
           "attestation": {"type": "x509", "x509": {"signingCertificates": {which: {"info": t}}}}})
}

fn ask(
    answers: Vec<Canned>,
    id: &str,
    chain: &[&[u8]],
    known: &[Vec<u8>],
) -> (Holdings, TestServer) {
    let s = serve(answers);
    let dps = Dps::new(dps_conn(s.port), &settings(&s));
    let h = holdings(&dps, id, chain, known, OffsetDateTime::now_utc()).unwrap();
    (h, s)
}

#[test]
fn three_read_only_requests_a_disabled_enrollment_and_the_groups_on_the_chain() {
    let p: Pki = pki("sensor-thl-002");
    let other = pki("x");
    let (h, s) = ask(
        vec![
            ok(enrollment("sensor-thl-002", "disabled", &p.leaf)),
            ok(json!([
                enrollment("sensor-thl-002", "disabled", &p.leaf),
                enrollment("sensor-thl-001", "enabled", &other.leaf)
            ])),
            ok(json!([
                group("fleet", "enabled", "primary", &p.inter, "sha256"),
                group("old", "disabled", "secondary", &p.root, "sha1"),
                group("elsewhere", "enabled", "primary", &other.inter, "sha256")
            ])),
        ],
        "sensor-thl-002",
        &[&p.leaf, &p.inter],
        std::slice::from_ref(&p.root),
    );
    assert_eq!(
        lines(&s),
        [
            "GET /enrollments/sensor-thl-002?api-version=2021-10-01 HTTP/1.1",
            "POST /enrollments/query?api-version=2021-10-01 HTTP/1.1",
            "POST /enrollmentGroups/query?api-version=2021-10-01 HTTP/1.1",
        ]
    );
    let e = h.enrollment.as_ref().unwrap();
    assert_eq!(e.provisioning_status.as_deref(), Some("disabled"));
    assert_eq!(e.certificate_matches, Some(true));
    assert!(h.other_case.is_empty() && h.for_cn.is_none());
    let g: Vec<(&str, &str, bool)> = h
        .groups
        .iter()
        .map(|g| (g.enrollment_group_id.as_str(), g.certificate, g.chains))
        .collect();
    // Nearest the leaf first; the unrelated group is not on this chain.
    assert_eq!(g, [("fleet", "primary", true), ("old", "secondary", true)]);
    assert_eq!(h.groups[0].ca_sha256, cert::sha256_thumbprint(&p.inter));
    assert!(h.groups[0].admits() && !h.groups[1].admits());
    assert_eq!(h.decision.status, Status::Disabled);
    assert_eq!(
        h.decision.enrollment,
        Some(EnrollmentRef {
            kind: EnrollmentKind::Individual,
            id: "sensor-thl-002".into()
        })
    );
}

#[test]
fn another_case_is_the_enrollment_dps_uses() {
    let p = pki("sensor-thl-002");
    // GET matches case-insensitively on DPS: it returns the record in its own case.
    let (h, _s) = ask(
        vec![
            ok(enrollment("Sensor-THL-002", "disabled", &p.leaf)),
            ok(json!([enrollment("Sensor-THL-002", "disabled", &p.leaf)])),
            ok(json!([group(
                "fleet", "enabled", "primary", &p.inter, "sha256"
            )])),
        ],
        "sensor-thl-002",
        &[&p.leaf, &p.inter],
        &[],
    );
    assert!(h.enrollment.is_none());
    assert_eq!(
        h.other_case.len(),
        1,
        "one record, though both GET and the query return it"
    );
    assert_eq!(h.other_case[0].registration_id, "Sensor-THL-002");
    assert_eq!(h.decision.status, Status::Disabled);
    assert_eq!(h.decision.enrollment.as_ref().unwrap().id, "Sensor-THL-002");
}

#[test]
fn no_enrollment_the_enabled_group_admits_and_a_mismatched_one_fails() {
    let p = pki("sensor-thl-002");
    let (h, _s) = ask(
        vec![
            not_found(),
            ok(json!([])),
            ok(json!([group(
                "fleet", "enabled", "primary", &p.inter, "sha256"
            )])),
        ],
        "sensor-thl-002",
        &[&p.leaf, &p.inter],
        &[],
    );
    assert!(h.enrollment.is_none() && h.other_case.is_empty());
    assert_eq!(h.decision.status, Status::Assigned);
    assert_eq!(
        h.decision.enrollment.as_ref().unwrap().kind,
        EnrollmentKind::Group
    );
    assert!(
        h.decision
            .message
            .contains("only a disabled individual enrollment 'sensor-thl-002' would block it"),
        "{}",
        h.decision.message
    );

    let other = pki("sensor-thl-002");
    let (h, _s) = ask(
        vec![
            ok(enrollment("sensor-thl-002", "enabled", &other.leaf)),
            ok(json!([enrollment(
                "sensor-thl-002",
                "enabled",
                &other.leaf
            )])),
            ok(json!([group(
                "fleet", "enabled", "primary", &p.inter, "sha256"
            )])),
        ],
        "sensor-thl-002",
        &[&p.leaf, &p.inter],
        &[],
    );
    assert_eq!(
        h.enrollment.as_ref().unwrap().certificate_matches,
        Some(false)
    );
    assert_eq!(h.decision.status, Status::Failed);
}

#[test]
fn a_group_ca_the_device_does_not_present_a_path_to_does_not_admit_it() {
    let p = pki("sensor-thl-002");
    // The device presents its leaf alone; the group's CA is the root, known from the home.
    let (h, _s) = ask(
        vec![
            not_found(),
            ok(json!([])),
            ok(json!([group(
                "fleet-root",
                "enabled",
                "primary",
                &p.root,
                "sha256"
            )])),
        ],
        "sensor-thl-002",
        &[&p.leaf],
        &[p.inter.clone(), p.root.clone()],
    );
    assert_eq!(h.groups.len(), 1);
    assert!(!h.groups[0].chains);
    assert_eq!(h.groups[0].problems[0].code.as_str(), "chain_incomplete");
    assert_eq!(h.decision.status, Status::Failed);
}

#[test]
fn a_request_that_fails_is_the_error_naming_it() {
    let p = pki("sensor-thl-002");
    let s = serve(vec![
        not_found(),
        Some((
            401,
            vec![],
            r#"{"errorCode":401002,"trackingId":"trk-9","message":"bad token"}"#.into(),
        )),
    ]);
    let dps = Dps::new(dps_conn(s.port), &settings(&s));
    let e = holdings(
        &dps,
        "sensor-thl-002",
        &[&p.leaf],
        &[],
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "POST /enrollments/query: HTTP 401 401002 (tracking ID trk-9): bad token"
    );
}
