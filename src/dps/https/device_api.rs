//! The DPS device API over HTTPS, X.509 in the TLS handshake:
//! `PUT /{idScope}/registrations/{id}/register` and
//! `GET /{idScope}/registrations/{id}/operations/{operationId}`.
//!
//! The register request is decided on the spot by
//! [`crate::provision::decide`] and committed by
//! [`crate::dps::registration::commit`] (the MQTT side's code); the reply is
//! `202 {"operationId", "status": "assigning"}` with `Retry-After: 1`, and
//! the operation then answers `200 {"operationId", "status",
//! "registrationState"}`. Refused (no client certificate, the registration
//! ID in the path or body is not the certificate's CN, nothing authorizes
//! the device): `401` with errorCode 401002, as DPS answers.

use std::sync::Arc;

use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::router::{Body, Req, dps_error, json_response};
use super::{State, log};
use crate::dps::emulator;
use crate::ids;
use crate::provision::{self, Status};
use crate::text::escape;

const UNAUTHORIZED: u32 = 401002;

/// Serves one device API request.
pub async fn handle(state: &Arc<State>, r: &Req) -> Response<Body> {
    let scope = r.segments[0].clone();
    let claimed = r.segments[2].clone();
    if let Some(want) = &state.id_scope
        && !want.eq_ignore_ascii_case(&scope)
    {
        return dps_error(StatusCode::UNAUTHORIZED, UNAUTHORIZED, "unknown ID scope");
    }
    match (r.method.clone(), r.segments.len(), r.seg(3).as_str()) {
        (Method::PUT, 4, "register") => register(state, r, &claimed).await,
        (Method::GET, 5, "operations") => {
            let op = &r.segments[4];
            let key = ids::registration_file_stem(&claimed);
            let ops = state.operations.lock().unwrap_or_else(|p| p.into_inner());
            match ops.iter().find(|(id, rid, _)| id == op && *rid == key) {
                Some((_, _, body)) => json_response(StatusCode::OK, body),
                None => dps_error(StatusCode::NOT_FOUND, 404000, "operation not found"),
            }
        }
        _ => dps_error(StatusCode::NOT_FOUND, 404000, "no such device API resource"),
    }
}

async fn register(state: &Arc<State>, r: &Req, claimed: &str) -> Response<Body> {
    let peer = r.peer;
    let body_id = if r.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Object(m)) => match m.get("registrationId") {
                Some(Value::String(s)) => Some(s.clone()),
                None | Some(Value::Null) => None,
                Some(_) => {
                    return dps_error(
                        StatusCode::BAD_REQUEST,
                        400004,
                        "registrationId is not a string",
                    );
                }
            },
            _ => {
                return dps_error(
                    StatusCode::BAD_REQUEST,
                    400004,
                    "the body is not a JSON object",
                );
            }
        }
    };
    if r.chain.is_empty() {
        log(&format!(
            "{peer} {}: refused (401): no client certificate",
            escape(claimed)
        ));
        return dps_error(
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
            "unauthorized: X.509 attestation needs the device certificate in the TLS handshake",
        );
    }
    let now = OffsetDateTime::now_utc();
    let st = state.clone();
    let chain = r.chain.clone();
    let claimed_s = claimed.to_string();
    let result = tokio::task::spawn_blocking(move || {
        let mut d = match provision::decide(&st.store, &chain, now) {
            Ok(d) => d,
            Err(e) => return Err(format!("the enrollment store could not be read: {e}")),
        };
        let cn = d.registration_id.clone();
        let mismatch = cn.as_ref().and_then(|cn| {
            [("request path", Some(claimed_s.as_str())), ("request body", body_id.as_deref())]
                .into_iter()
                .find_map(|(w, id)| {
                    id.filter(|id| !ids::registration_ids_match(id, cn)).map(|id| {
                        format!("unauthorized: the registration ID '{id}' in the {w} is not the device certificate's CN '{cn}'")
                    })
                })
        });
        if let Some(why) =
            mismatch.or_else(|| (d.status == Status::Failed).then(|| d.message.clone()))
        {
            return Ok(Err(why));
        }
        let leaf = chain.first().cloned().unwrap_or_default();
        let state = crate::dps::registration::commit(
            &st.home,
            &st.registrations,
            &mut d,
            &leaf,
            &st.hubs,
            now,
        )
        .map_err(|e| format!("could not record the registration: {e}"))?;
        Ok(Ok((d, state)))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the registration task failed: {e}")));
    let who = escape(claimed).into_owned();
    let (decision, reg_state) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => {
            log(&format!("{peer} {who}: refused (401): {}", escape(&why)));
            return dps_error(StatusCode::UNAUTHORIZED, UNAUTHORIZED, &why);
        }
        Err(why) => {
            // A broken store: a terminal `failed`, never a 5xx the SDKs retry.
            log(&format!("{peer} {who}: failed: {}", escape(&why)));
            let t = crate::cert::rfc3339(now);
            let s = emulator::RegistrationState {
                registration_id: claimed.to_string(),
                created_date_time_utc: Some(t.clone()),
                status: "failed".into(),
                error_code: Some(500000),
                error_message: Some(why),
                last_updated_date_time_utc: Some(t),
                etag: Some(emulator::new_etag()),
                ..Default::default()
            };
            return start(state, claimed, s);
        }
    };
    log(&format!(
        "{peer} {who}: {}: {}",
        decision.status.as_str(),
        escape(&decision.message)
    ));
    start(state, claimed, reg_state)
}

fn start(state: &State, claimed: &str, s: emulator::RegistrationState) -> Response<Body> {
    let op = emulator::new_operation_id();
    let body = json!({"operationId": op, "status": s.status, "registrationState": s});
    {
        let mut ops = state.operations.lock().unwrap_or_else(|p| p.into_inner());
        if ops.len() >= state.limits.max_operations.max(1) {
            ops.pop_front();
        }
        ops.push_back((op.clone(), ids::registration_file_stem(claimed), body));
    }
    let mut r = json_response(
        StatusCode::ACCEPTED,
        &json!({"operationId": op, "status": "assigning"}),
    );
    r.headers_mut()
        .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    r
}
