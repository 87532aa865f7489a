//! Rebuilding a group's body from DPS's `info`, and the write against the
//! canned HTTPS server.

use super::*;
use crate::azure::http::tests::{Canned, TestServer, dps_conn, serve, settings};

fn ca(cn: &str) -> Vec<u8> {
    rcgen::generate_simple_self_signed(vec![cn.into()])
        .unwrap()
        .cert
        .der()
        .to_vec()
}

fn info(der: &[u8]) -> Value {
    json!({"info": {"sha256Thumbprint": cert::sha256_thumbprint(der), "subjectName": "CN=x"}})
}

fn group(primary: &[u8], secondary: Option<&[u8]>, status: &str) -> Value {
    let mut certs = json!({"primary": info(primary)});
    if let Some(s) = secondary {
        certs["secondary"] = info(s);
    }
    json!({
        "enrollmentGroupId": "fleet",
        "provisioningStatus": status,
        "etag": "\"e1\"",
        "allocationPolicy": "hashed",
        "attestation": {"type": "x509", "x509": {"signingCertificates": certs}},
    })
}

fn pem_at(body: &Value, which: &str) -> Option<Vec<u8>> {
    let p = body
        .pointer(&format!("{CERTS}/{which}/certificate"))?
        .as_str()?;
    cert::split_certificates(p.as_bytes())
        .ok()?
        .into_iter()
        .next()
}

#[test]
fn a_new_secondary_keeps_the_primary_and_the_other_fields() {
    let (old, new) = (ca("old"), ca("new"));
    let change = GroupChange {
        secondary: Some(new.clone()),
        ..Default::default()
    };
    let Rebuilt {
        body,
        before,
        after,
    } = rebuild(
        &group(&old, None, "enabled"),
        "dps",
        std::slice::from_ref(&old),
        &change,
    )
    .unwrap();
    assert_eq!(before, std::slice::from_ref(&old));
    assert_eq!(after, [old.clone(), new.clone()]);
    assert_eq!(pem_at(&body, "primary"), Some(old));
    assert_eq!(pem_at(&body, "secondary"), Some(new));
    assert!(body.pointer(&format!("{CERTS}/primary/info")).is_none());
    assert_eq!(body["allocationPolicy"], "hashed");
    assert_eq!(body["provisioningStatus"], "enabled");
}

#[test]
fn promotion_drops_the_old_primary_and_removal_the_secondary() {
    let (old, new) = (ca("old"), ca("new"));
    let known = [old.clone(), new.clone()];
    let g = group(&old, Some(&new), "enabled");
    let promote = GroupChange {
        promote: true,
        status: Some(ProvisioningStatus::Disabled),
        ..Default::default()
    };
    let Rebuilt {
        body,
        before,
        after,
    } = rebuild(&g, "dps", &known, &promote).unwrap();
    assert_eq!(before, known);
    assert_eq!(after, std::slice::from_ref(&new));
    assert_eq!(pem_at(&body, "primary"), Some(new));
    assert_eq!(pem_at(&body, "secondary"), None);
    assert_eq!(body["provisioningStatus"], "disabled");
    let remove = GroupChange {
        remove: true,
        ..Default::default()
    };
    let after = rebuild(&g, "dps", &known, &remove).unwrap().after;
    assert_eq!(after, std::slice::from_ref(&old));
    let none = rebuild(&group(&old, None, "enabled"), "dps", &known, &promote);
    assert!(
        matches!(
            none,
            Err(GroupUpdateError::NoSecondary {
                verb: "promote",
                ..
            })
        ),
        "{none:?}"
    );
}

#[test]
fn a_certificate_known_only_by_thumbprint_and_not_here_is_named() {
    let (old, other) = (ca("old"), ca("other"));
    let err = rebuild(
        &group(&old, None, "enabled"),
        "lab-dps",
        &[other],
        &GroupChange::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(
        err,
        GroupUpdateError::Unknown {
            which: "primary",
            ..
        }
    ));
    assert!(
        msg.contains(&cert::sha256_thumbprint(&old)) && msg.contains("lab-dps"),
        "{msg}"
    );
    let not_x509 = json!({"enrollmentGroupId": "fleet", "attestation": {"type": "symmetricKey"}});
    assert!(matches!(
        rebuild(&not_x509, "dps", &[], &GroupChange::default()),
        Err(GroupUpdateError::NotX509 { .. })
    ));
}

fn ok(v: &Value) -> Canned {
    Some((
        200,
        vec![("Content-Type", "application/json".into())],
        v.to_string(),
    ))
}

fn dps(s: &TestServer) -> Dps {
    Dps::new(dps_conn(s.port), &settings(s))
}

#[test]
fn writes_with_if_match_and_confirms_the_read_back() {
    let (old, new) = (ca("old"), ca("new"));
    let change = GroupChange {
        secondary: Some(new.clone()),
        ..Default::default()
    };
    let after = group(&old, Some(&new), "enabled");
    let s = serve(vec![
        ok(&group(&old, None, "enabled")),
        ok(&after),
        ok(&after),
    ]);
    let d = dps(&s);
    let p = plan(&d, "fleet", std::slice::from_ref(&old), &change).unwrap();
    let up = apply(&d, &p).unwrap();
    assert_eq!(up.certificates, [old, new]);
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1].line.starts_with("PUT /enrollmentGroups/fleet?"),
        "{}",
        seen[1].line
    );
    assert_eq!(seen[1].header("if-match"), Some("\"e1\""));
}

#[test]
fn a_412_is_a_race_and_a_wrong_read_back_is_not_confirmed() {
    let (old, new) = (ca("old"), ca("new"));
    let change = GroupChange {
        secondary: Some(new.clone()),
        ..Default::default()
    };
    let before = group(&old, None, "enabled");
    let s = serve(vec![
        ok(&before),
        Some((
            412,
            vec![],
            r#"{"errorCode":412300,"message":"etag"}"#.into(),
        )),
    ]);
    let d = dps(&s);
    let p = plan(&d, "fleet", std::slice::from_ref(&old), &change).unwrap();
    assert!(matches!(apply(&d, &p), Err(GroupUpdateError::Race { .. })));
    // DPS kept only the primary: the read-back says so.
    let s = serve(vec![ok(&before), ok(&before), ok(&before)]);
    let d = dps(&s);
    let p = plan(&d, "fleet", &[old], &change).unwrap();
    let e = apply(&d, &p).unwrap_err();
    assert!(
        matches!(e, GroupUpdateError::NotConfirmed { .. }) && e.to_string().contains("secondary"),
        "{e}"
    );
}
