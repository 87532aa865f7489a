//! Each hub's identity registry (IoT Hub REST, any `api-version`), SAS
//! policy `iothubowner` with that hub's key: `GET|PUT|DELETE /devices/{id}`,
//! `POST /devices/query`, on `hub/devices/` (a device belongs to the hub
//! named in its record's `"hub"`; records without one to the first hub).
//!
//! The hub is the one named by the `Host` header; for `localhost` or
//! `127.0.0.1` it is the one whose key signed the token. Errors are IoT
//! Hub's classic ones (`ErrorCode:DeviceNotFound;...`, `iothub-errorcode`).
//! Etags are unquoted in the JSON, as IoT Hub's are.

use std::sync::Arc;

use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::router::{self, Body, Req, empty, hub_error, json_response};
use super::{State, log, sas};
use crate::cert;
use crate::hub::{DEVICE_NOT_FOUND, Device};
use crate::text::escape;

/// Serves one registry request.
pub async fn handle(state: &Arc<State>, r: &Req) -> Response<Body> {
    let hub = match authorize(state, r) {
        Ok(h) => h,
        Err(e) => {
            return hub_error(
                StatusCode::UNAUTHORIZED,
                "IotHubUnauthorizedAccess",
                &e.to_string(),
            );
        }
    };
    let st = state.clone();
    let method = r.method.clone();
    let n = r.segments.len();
    let id = r.segments.get(1).cloned().unwrap_or_default();
    let is_query = n == 2 && method == Method::POST && r.seg(1) == "query";
    let if_match = r.if_match.clone();
    let body = r.body.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        if is_query {
            return Ok(Outcome::List(query(&st, &hub)));
        }
        if n != 2 {
            return Err(Fail::new(
                StatusCode::NOT_FOUND,
                "IotHubNotFound",
                "no such resource",
            ));
        }
        device(&st, &hub, method, &id, if_match.as_deref(), &body)
    })
    .await
    .unwrap_or_else(|e| {
        Err(Fail::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerError",
            &e.to_string(),
        ))
    });
    match out {
        Ok(Outcome::One(v)) => json_response(StatusCode::OK, &v),
        Ok(Outcome::Deleted) => empty(StatusCode::NO_CONTENT),
        Ok(Outcome::List(items)) => router::page(items, r, "Twin"),
        Err(f) => hub_error(f.status, f.code, &f.message),
    }
}

/// Which hub the request is for, and whether its token is good.
fn authorize(state: &State, r: &Req) -> Result<String, sas::SasError> {
    let now = router::unix_now();
    let host = r.host_name().to_string();
    let full_host = r.host.clone();
    let named = state
        .keys
        .hubs
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(&host));
    let candidates: Vec<_> = match named {
        Some(one) => vec![one],
        None => state.keys.hubs.iter().collect(),
    };
    let mut last = sas::SasError::BadSignature;
    for (name, policy) in candidates {
        let name_l = name.to_ascii_lowercase();
        match sas::verify(r.authorization.as_deref(), policy, now, |h| {
            h == name_l || h == full_host || super::dps_service::is_loopback(h)
        }) {
            Ok(_) => return Ok(name.clone()),
            Err(e @ (sas::SasError::Missing | sas::SasError::Malformed)) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

enum Outcome {
    One(Value),
    List(Vec<Value>),
    Deleted,
}

struct Fail {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Fail {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Fail {
        Fail {
            status,
            code,
            message: message.to_string(),
        }
    }
    fn bad(message: impl std::fmt::Display) -> Fail {
        Fail::new(
            StatusCode::BAD_REQUEST,
            "ArgumentInvalid",
            &message.to_string(),
        )
    }
}

impl From<crate::error::Error> for Fail {
    fn from(e: crate::error::Error) -> Fail {
        match e {
            crate::error::Error::Invalid(_) | crate::error::Error::BadRecord { .. } => Fail::bad(e),
            other => Fail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServerError",
                &format!("the local registry could not be used: {other}"),
            ),
        }
    }
}

fn not_found(id: &str) -> Fail {
    Fail::new(
        StatusCode::NOT_FOUND,
        DEVICE_NOT_FOUND,
        &format!("Device {id} not found."),
    )
}

/// The device's etag: the stored one, else a hash of the record.
fn etag_of(d: &Device) -> String {
    if let Some(Value::String(e)) = d.other.get("etag") {
        return e.clone();
    }
    let bytes = serde_json::to_vec(d).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    cert::hex_lower(&digest.as_ref()[..8])
}

/// The device as IoT Hub shows it.
fn render(d: &Device, hub: &str) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("etag".into(), Value::String(etag_of(d)));
        m.insert("hub".into(), Value::String(hub.to_string()));
        for (k, dv) in [
            ("generationId", Value::String("0".into())),
            ("connectionState", Value::String("Disconnected".into())),
            ("statusReason", Value::Null),
            ("cloudToDeviceMessageCount", Value::from(0)),
        ] {
            m.entry(k.to_string()).or_insert(dv);
        }
    }
    v
}

/// The device `id` if it belongs to `hub`.
fn get_on(st: &State, hub: &str, id: &str) -> Result<Option<Device>, Fail> {
    Ok(st.registry.get(id)?.filter(|d| {
        d.hub
            .as_deref()
            .unwrap_or(st.first_hub())
            .eq_ignore_ascii_case(hub)
    }))
}

fn device(
    st: &State,
    hub: &str,
    m: Method,
    id: &str,
    if_match: Option<&str>,
    body: &[u8],
) -> Result<Outcome, Fail> {
    if crate::hub::check_registry_id(id).is_err() {
        return match m {
            Method::PUT => Err(Fail::bad(format!("'{id}' is not a valid device ID"))),
            _ => Err(not_found(id)),
        };
    }
    match m {
        Method::GET => get_on(st, hub, id)?
            .map(|d| Outcome::One(render(&d, hub)))
            .ok_or_else(|| not_found(id)),
        Method::DELETE => {
            let lock = st.home.lock()?;
            let d = get_on(st, hub, id)?.ok_or_else(|| not_found(id))?;
            if let Some(mt) = if_match
                && !router::etag_matches(mt, &etag_of(&d))
            {
                return Err(Fail::new(
                    StatusCode::PRECONDITION_FAILED,
                    "PreconditionFailed",
                    "the If-Match etag is not the device's current etag",
                ));
            }
            st.registry.delete(&lock, id)?;
            log(&format!("hub {hub}: deleted device {}", escape(id)));
            Ok(Outcome::Deleted)
        }
        Method::PUT => {
            let mut b = router::body_object(body).map_err(Fail::bad)?;
            match b.get("deviceId") {
                Some(Value::String(s)) if s == id => {}
                None => {
                    b.insert("deviceId".into(), Value::String(id.to_string()));
                }
                _ => return Err(Fail::bad("deviceId in the body is not the one of the path")),
            }
            clean(&mut b);
            let lock = st.home.lock()?;
            let existing = st.registry.get(id)?;
            if let Some(old) = &existing {
                let on = old.hub.as_deref().unwrap_or(st.first_hub());
                if !on.eq_ignore_ascii_case(hub) {
                    return Err(Fail::new(
                        StatusCode::CONFLICT,
                        "DeviceAlreadyExists",
                        &format!("device {id} already exists on hub {on}"),
                    ));
                }
                match if_match {
                    None => {
                        return Err(Fail::new(
                            StatusCode::CONFLICT,
                            "DeviceAlreadyExists",
                            &format!("A device with ID '{id}' is already registered."),
                        ));
                    }
                    Some(mt) if !router::etag_matches(mt, &etag_of(old)) => {
                        return Err(Fail::new(
                            StatusCode::PRECONDITION_FAILED,
                            "PreconditionFailed",
                            "the If-Match etag is not the device's current etag",
                        ));
                    }
                    Some(_) => {}
                }
                if let Some(c) = &old.created_time {
                    b.insert("createdTime".into(), Value::String(c.clone()));
                }
            } else {
                b.insert(
                    "createdTime".into(),
                    Value::String(cert::rfc3339(OffsetDateTime::now_utc())),
                );
            }
            b.entry("status").or_insert(Value::String("enabled".into()));
            b.insert("hub".into(), Value::String(hub.to_string()));
            b.insert(
                "etag".into(),
                Value::String(
                    crate::dps::emulator::new_etag()
                        .trim_matches('"')
                        .to_string(),
                ),
            );
            let d: Device = serde_json::from_value(Value::Object(b))
                .map_err(|e| Fail::bad(format!("the body is not a Device: {e}")))?;
            if d.status != "enabled" && d.status != "disabled" {
                return Err(Fail::bad(format!(
                    "status '{}' is not enabled or disabled",
                    d.status
                )));
            }
            if existing.is_some() {
                st.registry.delete(&lock, id)?;
            }
            st.registry.add(&lock, &d)?;
            log(&format!(
                "hub {hub}: {} device {} ({})",
                if existing.is_some() {
                    "updated"
                } else {
                    "created"
                },
                escape(id),
                d.status
            ));
            let back = st.registry.get(id)?.ok_or_else(|| not_found(id))?;
            Ok(Outcome::One(render(&back, hub)))
        }
        _ => Err(Fail::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidOperation",
            "method not allowed",
        )),
    }
}

/// Drops the read-only and runtime fields a client may send back.
fn clean(b: &mut Map<String, Value>) {
    for k in [
        "etag",
        "generationId",
        "connectionState",
        "connectionStateUpdatedTime",
        "statusUpdatedTime",
        "lastActivityTime",
        "cloudToDeviceMessageCount",
        "hub",
        "createdTime",
    ] {
        b.remove(k);
    }
    if b.get("authentication").is_none() {
        b.insert(
            "authentication".into(),
            serde_json::json!({"type": "certificateAuthority"}),
        );
    }
}

/// `POST /devices/query`: every device of the hub, as twins.
fn query(st: &State, hub: &str) -> Vec<Value> {
    st.registry
        .list()
        .records
        .into_iter()
        .filter(|(_, d)| {
            d.hub
                .as_deref()
                .unwrap_or(st.first_hub())
                .eq_ignore_ascii_case(hub)
        })
        .map(|(_, d)| {
            serde_json::json!({
                "deviceId": d.device_id,
                "etag": etag_of(&d),
                "status": d.status,
                "authenticationType": d.authentication.kind,
                "x509Thumbprint": d.authentication.x509_thumbprint,
                "capabilities": d.capabilities,
                "hub": hub,
                "version": 1,
            })
        })
        .collect()
}
