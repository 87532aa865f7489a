//! The DPS requests: register (decided by [`crate::provision::decide`])
//! and operation status.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::conn::{ConnError, Session};
use super::topics::{raw_rid, reply_topic, topic_query, valid_rid};
use super::{INTERNAL_ERROR, REGISTER_TOPIC, RETRY_AFTER, STATUS_TOPIC, Shared, UNAUTHORIZED, log};
use crate::cert;
use crate::dps::emulator::{self, RegistrationState};
use crate::dps::mqtt::Publish;
use crate::error::Result;
use crate::ids;
use crate::provision::{self, Decision, Status};

pub(super) fn error_body(code: u32, message: &str, now: OffsetDateTime) -> Value {
    json!({
        "errorCode": code,
        "trackingId": tracking_id(),
        "message": message,
        "timestampUtc": cert::rfc3339(now),
    })
}

pub(super) fn tracking_id() -> String {
    let op = emulator::new_operation_id();
    op.rsplit('.').next().unwrap_or(&op).to_string()
}

/// Handles one PUBLISH from the device: the reply topic and body, if any.
pub(super) async fn request(
    shared: &Arc<Shared>,
    session: &mut Session,
    p: &Publish,
) -> std::result::Result<Option<(String, Value)>, ConnError> {
    let is_register = p.topic.starts_with(REGISTER_TOPIC);
    let is_status = p.topic.starts_with(STATUS_TOPIC);
    if !is_register && !is_status {
        return Err(ConnError::Protocol(format!(
            "PUBLISH to {:?}, which is not a DPS request topic",
            p.topic
        )));
    }
    let rid = match raw_rid(&p.topic) {
        Some(r) if valid_rid(r) => r.to_string(),
        _ => {
            return Err(ConnError::Protocol(format!(
                "PUBLISH to {:?} without a usable $rid",
                p.topic
            )));
        }
    };
    let now = OffsetDateTime::now_utc();
    if is_status {
        let op = topic_query(&p.topic)
            .into_iter()
            .find(|(k, _)| k == "operationId")
            .map(|(_, v)| v)
            .unwrap_or_default();
        return Ok(Some(
            match session.operations.iter().find(|(id, _)| *id == op) {
                Some((_, body)) => (reply_topic(200, &rid, None), body.clone()),
                None => (
                    reply_topic(404, &rid, None),
                    error_body(
                        404000,
                        &format!("operation '{op}' was not started on this connection"),
                        now,
                    ),
                ),
            },
        ));
    }
    register(shared, session, &rid, &p.payload, now).await
}

/// The registration ID the device claims in the register body, if any.
pub(super) fn body_registration_id(payload: &[u8]) -> std::result::Result<Option<String>, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("the register request body is not JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("the register request body is not a JSON object".into());
    };
    match m.get("registrationId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("registrationId in the register request body is not a string".into()),
    }
}

pub(super) async fn register(
    shared: &Arc<Shared>,
    session: &mut Session,
    rid: &str,
    payload: &[u8],
    now: OffsetDateTime,
) -> std::result::Result<Option<(String, Value)>, ConnError> {
    let peer = session.peer;
    let body_id = match body_registration_id(payload) {
        Ok(id) => id,
        Err(why) => {
            log(&format!(
                "{peer} {}: bad request (400): {why}",
                session.username.registration_id
            ));
            return Ok(Some((
                reply_topic(400, rid, None),
                error_body(400004, &why, now),
            )));
        }
    };
    let chain = session.chain.clone();
    let s = shared.clone();
    let decided = tokio::task::spawn_blocking(move || provision::decide(&s.store, &chain, now))
        .await
        .map_err(|e| ConnError::Protocol(format!("the decision task failed: {e}")))?;
    let mut decision = match decided {
        Ok(d) => d,
        Err(e) => {
            // The store cannot be read for this device (its enrollment
            // record is broken): a terminal `failed` with DPS's internal
            // error code, rather than a 500 the SDKs would retry forever.
            let why = format!("the enrollment store could not be read: {e}");
            log(&format!(
                "{peer} {}: failed: {why}",
                session.username.registration_id
            ));
            let state = failed_state(&session.username.registration_id, &why, now);
            return Ok(Some(start_operation(shared, session, rid, state)));
        }
    };
    for w in &decision.warnings {
        log(&format!("warning: {w}"));
    }
    let claimed = &session.username.registration_id;
    let cn = decision.registration_id.clone();
    let mismatch = match &cn {
        None => None,
        Some(cn) => {
            let mut claims = vec![("MQTT user name", claimed.as_str())];
            claims.push(("MQTT client ID", session.client_id.as_str()));
            if let Some(b) = &body_id {
                claims.push(("register request body", b.as_str()));
            }
            claims
                .into_iter()
                .find(|(_, id)| !ids::registration_ids_match(id, cn))
                .map(|(where_, id)| {
                    format!(
                        "unauthorized: the registration ID '{id}' in the {where_} is not the device certificate's CN '{cn}'"
                    )
                })
        }
    };
    let who = match &cn {
        Some(cn) if ids::registration_ids_match(cn, claimed) => cn.clone(),
        Some(cn) => format!("{claimed} (certificate CN {cn})"),
        None => format!("{claimed} (certificate without a usable CN)"),
    };
    if let Some(why) =
        mismatch.or_else(|| (decision.status == Status::Failed).then(|| decision.message.clone()))
    {
        log(&format!("{peer} {who}: refused (401): {why}"));
        return Ok(Some((
            reply_topic(401, rid, None),
            error_body(UNAUTHORIZED, &why, now),
        )));
    }
    let leaf = session.chain.first().cloned().unwrap_or_default();
    let s = shared.clone();
    let mut d = decision.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let r = commit(&s, &mut d, &leaf, now);
        (d, r)
    })
    .await
    .map_err(|e| ConnError::Protocol(format!("the registration task failed: {e}")))?;
    let (d, committed) = committed;
    decision = d;
    let (state, line) = match committed {
        Ok(state) => {
            let line = format!("{}: {}", decision.status.as_str(), decision.message);
            (state, line)
        }
        Err(e) => {
            let why = format!("could not record the registration: {e}");
            let id = decision.registration_id.as_deref().unwrap_or(claimed);
            (failed_state(id, &why, now), format!("failed: {why}"))
        }
    };
    log(&format!("{peer} {who}: {line}"));
    Ok(Some(start_operation(shared, session, rid, state)))
}

/// Keeps the operation's final answer for polling and returns the `202 assigning` reply.
pub(super) fn start_operation(
    shared: &Shared,
    session: &mut Session,
    rid: &str,
    state: RegistrationState,
) -> (String, Value) {
    let operation_id = emulator::new_operation_id();
    let body = json!({
        "operationId": operation_id,
        "status": state.status,
        "registrationState": state,
    });
    if session.operations.len() >= shared.config.limits.max_operations.max(1) {
        session.operations.pop_front();
    }
    session.operations.push_back((operation_id.clone(), body));
    (
        reply_topic(202, rid, Some(RETRY_AFTER)),
        json!({"operationId": operation_id, "status": "assigning"}),
    )
}

pub(super) fn failed_state(
    registration_id: &str,
    why: &str,
    now: OffsetDateTime,
) -> RegistrationState {
    let t = cert::rfc3339(now);
    RegistrationState {
        registration_id: registration_id.to_string(),
        created_date_time_utc: Some(t.clone()),
        assigned_hub: None,
        device_id: None,
        status: "failed".into(),
        substatus: None,
        error_code: Some(INTERNAL_ERROR),
        error_message: Some(why.to_string()),
        last_updated_date_time_utc: Some(t),
        etag: Some(emulator::new_etag()),
        enrollment_group_id: None,
    }
}

/// What DPS does once it has decided ([`crate::dps::registration::commit`],
/// shared with the HTTPS device API), serialised by the in-process mutex
/// and the home's lock.
pub(super) fn commit(
    shared: &Shared,
    decision: &mut Decision,
    leaf: &[u8],
    now: OffsetDateTime,
) -> Result<RegistrationState> {
    let _inner = shared.writer.lock().unwrap_or_else(|p| p.into_inner());
    crate::dps::registration::commit(
        &shared.home,
        &shared.registrations,
        decision,
        leaf,
        &shared.config.hubs,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_bodies() {
        assert_eq!(body_registration_id(b""), Ok(None));
        assert_eq!(body_registration_id(b" "), Ok(None));
        assert_eq!(
            body_registration_id(br#"{"payload": null, "registrationId": "a"}"#),
            Ok(Some("a".into()))
        );
        assert_eq!(body_registration_id(br#"{"payload": {"x": 1}}"#), Ok(None));
        assert!(body_registration_id(b"[1]").is_err());
        assert!(body_registration_id(br#"{"registrationId": 5}"#).is_err());
        assert!(body_registration_id(b"\xff").is_err());
    }
}
