//! Request dispatch, and the response shapes the services use: DPS errors
//! `{"errorCode", "trackingId", "message", "timestampUtc"}`, hub errors
//! `{"Message": "ErrorCode:X;...", "ExceptionMessage": "Tracking ID:..."}`
//! with an `iothub-errorcode` header, `application/json; charset=utf-8`
//! on every JSON body. Paths are matched case-insensitively, any
//! `api-version` is accepted.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{State, device_api, dps_service, hub_registry, log};
use crate::cert;
use crate::text::escape;

/// The response body type.
pub type Body = Full<Bytes>;

/// A request as the handlers see it: method, decoded path segments, the
/// headers that matter, the body (already read and bounded).
#[derive(Debug)]
pub struct Req {
    /// The method.
    pub method: Method,
    /// Path segments, percent-decoded, in their own case.
    pub segments: Vec<String>,
    /// `Host`, lower-cased.
    pub host: String,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `x-ms-max-item-count`.
    pub max_items: Option<usize>,
    /// `x-ms-continuation`.
    pub continuation: Option<String>,
    /// The body.
    pub body: Bytes,
    /// The client's certificate chain from the TLS handshake (leaf first).
    pub chain: Arc<Vec<Vec<u8>>>,
    /// The peer.
    pub peer: SocketAddr,
}

impl Req {
    /// Segment `i` lower-cased (for matching).
    pub fn seg(&self, i: usize) -> String {
        self.segments
            .get(i)
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The `Host` header without its port.
    pub fn host_name(&self) -> &str {
        match self.host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.host,
        }
    }
}

/// The seconds since the epoch now.
pub fn unix_now() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

/// A short tracking ID.
pub fn tracking_id() -> String {
    crate::dps::emulator::new_operation_id()
        .rsplit('.')
        .next()
        .unwrap_or("0")
        .to_string()
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// An empty response (204 for DELETE).
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A DPS error.
pub fn dps_error(status: StatusCode, code: u32, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({
            "errorCode": code,
            "trackingId": tracking_id(),
            "message": message,
            "timestampUtc": cert::rfc3339(OffsetDateTime::now_utc()),
        }),
    )
}

/// An IoT hub error in the classic form, with `iothub-errorcode`.
pub fn hub_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let now = cert::rfc3339(OffsetDateTime::now_utc());
    let mut r = json_response(
        status,
        &json!({
            "Message": format!("ErrorCode:{code};{message}"),
            "ExceptionMessage": format!("Tracking ID:{}-G:0-TimeStamp:{now}", tracking_id()),
        }),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(code) {
        r.headers_mut().insert("iothub-errorcode", v);
    }
    r
}

/// Does `if_match` allow writing over a record whose etag is `current`?
/// `*` and `"*"` match anything; quotes and a `W/` prefix are ignored.
pub fn etag_matches(if_match: &str, current: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim();
        let s = s.strip_prefix("W/").unwrap_or(s);
        s.trim_matches('"').to_string()
    };
    let want = norm(if_match);
    want == "*" || want == norm(current)
}

/// Removes every null member (request bodies may carry nulls for any field).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The body as a JSON object (nulls removed), or why not.
pub fn body_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))?;
    strip_nulls(&mut v);
    match v {
        Value::Object(m) => Ok(m),
        _ => Err("the request body is not a JSON object".into()),
    }
}

/// The page size when a query does not send `x-ms-max-item-count`.
pub const DEFAULT_PAGE: usize = 1000;

/// A page of a query: `x-ms-max-item-count` items (default
/// [`DEFAULT_PAGE`]) from the offset in `x-ms-continuation`, and the next
/// continuation when more remain. A continuation this service did not
/// give is a 400, as a stale or forged token is on DPS.
pub fn page(items: Vec<Value>, req: &Req, item_type: &str) -> Response<Body> {
    let start = match req.continuation.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n <= items.len() => n,
            _ => {
                return dps_error(
                    StatusCode::BAD_REQUEST,
                    400000,
                    &format!(
                        "the x-ms-continuation token '{}' is not one this query returned",
                        escape(c)
                    ),
                );
            }
        },
    };
    let max = req.max_items.filter(|m| *m > 0).unwrap_or(DEFAULT_PAGE);
    let end = start.saturating_add(max).min(items.len());
    let more = end < items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    let mut r = json_response(StatusCode::OK, &Value::Array(slice));
    let h = r.headers_mut();
    if let Ok(v) = item_type.parse() {
        h.insert("x-ms-item-type", v);
    }
    if let Ok(v) = max.to_string().parse() {
        h.insert("x-ms-max-item-count", v);
    }
    if more && let Ok(v) = end.to_string().parse() {
        h.insert("x-ms-continuation", v);
    }
    r
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

/// Handles one request: reads the bounded body, dispatches, logs one line.
pub async fn handle(
    state: Arc<State>,
    chain: Arc<Vec<Vec<u8>>>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let Some(segs) = segments(&path) else {
        return dps_error(StatusCode::BAD_REQUEST, 400000, "the path is not UTF-8");
    };
    let host = header(&req, "host")
        .or_else(|| req.uri().host().map(str::to_string))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let authorization = header(&req, "authorization");
    let if_match = header(&req, "if-match");
    let max_items = header(&req, "x-ms-max-item-count").and_then(|v| v.trim().parse().ok());
    let continuation = header(&req, "x-ms-continuation");
    let limit = state.limits.max_body;
    let declared = header(&req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        log(&format!(
            "{peer} {method} {}: body refused: declared larger than {limit} bytes",
            escape(&path)
        ));
        let mut r = dps_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            413000,
            &format!("the request body is larger than {limit} bytes"),
        );
        r.headers_mut().insert(
            "connection",
            hyper::header::HeaderValue::from_static("close"),
        );
        return r;
    }
    let read = Limited::new(req.into_body(), limit).collect();
    let body = match tokio::time::timeout(state.limits.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            log(&format!(
                "{peer} {method} {}: body refused: {}",
                escape(&path),
                if too_large { "too large" } else { "unreadable" }
            ));
            let mut r = if too_large {
                dps_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    413000,
                    &format!("the request body is larger than {limit} bytes"),
                )
            } else {
                dps_error(
                    StatusCode::BAD_REQUEST,
                    400000,
                    "the request body could not be read",
                )
            };
            r.headers_mut().insert(
                "connection",
                hyper::header::HeaderValue::from_static("close"),
            );
            return r;
        }
        Err(_) => {
            let mut r = dps_error(
                StatusCode::REQUEST_TIMEOUT,
                408000,
                "the request body did not arrive in time",
            );
            r.headers_mut().insert(
                "connection",
                hyper::header::HeaderValue::from_static("close"),
            );
            return r;
        }
    };
    let r = Req {
        method,
        segments: segs,
        host,
        authorization,
        if_match,
        max_items,
        continuation,
        body,
        chain,
        peer,
    };
    let response = dispatch(&state, &r).await;
    log(&format!(
        "{peer} {} {}: {}",
        r.method,
        escape(&path),
        response.status().as_u16()
    ));
    response
}

async fn dispatch(state: &Arc<State>, r: &Req) -> Response<Body> {
    let n = r.segments.len();
    let s0 = r.seg(0);
    match (s0.as_str(), n) {
        ("devices", 1..=2) => hub_registry::handle(state, r).await,
        ("enrollments" | "enrollmentgroups", 2) | ("registrations", 2..=3) => {
            dps_service::handle(state, r).await
        }
        _ if n >= 4 && r.seg(1) == "registrations" => device_api::handle(state, r).await,
        _ => dps_error(
            StatusCode::NOT_FOUND,
            404000,
            "no such resource in the DPS service API, the DPS device API or the hub registry",
        ),
    }
}
