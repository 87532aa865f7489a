//! The DPS service API (REST 2021-10-01, any `api-version`), SAS policy
//! `provisioningserviceowner`, on the home's enrollment store:
//! `PUT|GET|DELETE /enrollments/{id}`, `PUT|GET|DELETE /enrollmentGroups/{id}`,
//! `POST /enrollments/query`, `POST /enrollmentGroups/query`,
//! `GET|DELETE /registrations/{id}`, `POST /registrations/{groupId}/query`.
//!
//! Records keep their certificate; responses show it as DPS does, as
//! `info` (subject, thumbprints, validity...). A record's etag is its
//! stored `etag` (written by this API), else a hash of its content (a
//! record the CLI wrote); etags are quoted inside the JSON, as DPS does.

use std::sync::Arc;

use base64::Engine as _;
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::router::{self, Body, Req, dps_error, empty, json_response};
use super::{State, sas};
use crate::cert;
use crate::enroll::schema::{EnrollmentGroup, IndividualEnrollment};
use crate::error::Error;
use crate::ids;

const UNAUTHORIZED: u32 = 401002;
const BAD_REQUEST: u32 = 400004;
const NOT_FOUND: u32 = 404201;
const CONFLICT: u32 = 409201;
const PRECONDITION: u32 = 412201;
const FAILED: u32 = 400000;

/// Serves one DPS service request.
pub async fn handle(state: &Arc<State>, r: &Req) -> Response<Body> {
    if let Err(e) = authorize(state, r) {
        return dps_error(StatusCode::UNAUTHORIZED, UNAUTHORIZED, &e.to_string());
    }
    let st = state.clone();
    let kind = r.seg(0);
    let id = r.segments.get(1).cloned().unwrap_or_default();
    let method = r.method.clone();
    let n = r.segments.len();
    let is_query = method == Method::POST
        && ((n == 2 && r.seg(1) == "query" && kind != "registrations")
            || (n == 3 && r.seg(2) == "query" && kind == "registrations"));
    if n == 3 && !is_query {
        return dps_error(StatusCode::NOT_FOUND, NOT_FOUND, "no such DPS resource");
    }
    // Store access is blocking file I/O under the home lock.
    let req = ReqParts {
        if_match: r.if_match.clone(),
        body: r.body.to_vec(),
    };
    let out =
        tokio::task::spawn_blocking(move || match (kind.as_str(), method.clone(), is_query) {
            ("enrollments", Method::POST, true) => Ok(Outcome::List(individuals(&st))),
            ("enrollmentgroups", Method::POST, true) => Ok(Outcome::List(groups(&st))),
            ("registrations", Method::POST, true) => Ok(Outcome::List(registrations(&st, &id))),
            ("enrollments", m, false) => individual(&st, m, &id, &req),
            ("enrollmentgroups", m, false) => group(&st, m, &id, &req),
            ("registrations", m, false) => registration(&st, m, &id, &req),
            _ => Err(Fail::new(
                StatusCode::NOT_FOUND,
                NOT_FOUND,
                "no such DPS resource",
            )),
        })
        .await
        .unwrap_or_else(|e| {
            Err(Fail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                500000,
                &e.to_string(),
            ))
        });
    match out {
        Ok(Outcome::One(v)) => json_response(StatusCode::OK, &v),
        Ok(Outcome::Deleted) => empty(StatusCode::NO_CONTENT),
        Ok(Outcome::List(items)) => {
            let item_type = match r.seg(0).as_str() {
                "enrollments" => "Enrollment",
                "enrollmentgroups" => "EnrollmentGroup",
                _ => "DeviceRegistration",
            };
            router::page(items, r, item_type)
        }
        Err(f) => dps_error(f.status, f.code, &f.message),
    }
}

/// The SAS check: policy `provisioningserviceowner`, the DPS key, a
/// resource naming this host.
fn authorize(state: &State, r: &Req) -> Result<(), sas::SasError> {
    let host = r.host.clone();
    sas::verify(
        r.authorization.as_deref(),
        &state.keys.dps,
        router::unix_now(),
        |h| h == host || is_loopback(h) || h.ends_with(".azure-devices-provisioning.net"),
    )
    .map(|_| ())
}

/// `localhost` or `127.0.0.1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

struct ReqParts {
    if_match: Option<String>,
    body: Vec<u8>,
}

enum Outcome {
    One(Value),
    List(Vec<Value>),
    Deleted,
}

#[derive(Debug)]
struct Fail {
    status: StatusCode,
    code: u32,
    message: String,
}

impl Fail {
    fn new(status: StatusCode, code: u32, message: &str) -> Fail {
        Fail {
            status,
            code,
            message: message.to_string(),
        }
    }
    fn bad(message: impl std::fmt::Display) -> Fail {
        Fail::new(StatusCode::BAD_REQUEST, BAD_REQUEST, &message.to_string())
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match e {
            Error::BadRecord { .. } => Fail::new(StatusCode::BAD_REQUEST, FAILED, &e.to_string()),
            Error::Invalid(_) | Error::Exists { .. } => Fail::bad(e),
            other => Fail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                500000,
                &format!("the local store could not be used: {other}"),
            ),
        }
    }
}

/// The etag of a record: its stored one, else a hash of its content.
fn etag_of(v: &Value) -> String {
    if let Some(e) = v.get("etag").and_then(Value::as_str) {
        return e.to_string();
    }
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    format!("\"{}\"", cert::hex_lower(&d.as_ref()[..12]))
}

fn new_etag() -> String {
    format!("\"{}\"", crate::dps::emulator::new_etag().trim_matches('"'))
}

/// The write rule: create when absent (an If-Match other than `*` then
/// fails), 409 over an existing record without If-Match, 412 on a stale one.
fn precondition(existing: Option<&Value>, if_match: Option<&str>, what: &str) -> Result<(), Fail> {
    match (existing, if_match) {
        (None, None) => Ok(()),
        (None, Some(m)) if router::etag_matches(m, "") && m.trim().trim_matches('"') == "*" => {
            Ok(())
        }
        (None, Some(_)) => Err(Fail::new(
            StatusCode::PRECONDITION_FAILED,
            PRECONDITION,
            &format!("{what} does not exist, so the If-Match etag cannot match"),
        )),
        (Some(_), None) => Err(Fail::new(
            StatusCode::CONFLICT,
            CONFLICT,
            &format!("{what} already exists; send If-Match with its etag to replace it"),
        )),
        (Some(v), Some(m)) if router::etag_matches(m, &etag_of(v)) => Ok(()),
        (Some(_), Some(_)) => Err(Fail::new(
            StatusCode::PRECONDITION_FAILED,
            PRECONDITION,
            &format!("the If-Match etag is not {what}'s current etag"),
        )),
    }
}

/// A PEM certificate from a request: PEM, base64 of PEM, or base64 of DER.
fn certificate_pem(s: &str) -> Result<String, Fail> {
    let t = s.trim();
    let pem = if t.starts_with("-----BEGIN") {
        t.to_string()
    } else {
        let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| Fail::bad("the certificate is neither PEM nor base64"))?;
        if bytes.starts_with(b"-----BEGIN") {
            String::from_utf8(bytes).map_err(|_| Fail::bad("the certificate PEM is not text"))?
        } else {
            cert::to_pem(&bytes)
        }
    };
    let ders = cert::split_certificates(pem.as_bytes())
        .map_err(|e| Fail::bad(format!("the certificate {e}")))?;
    let der = ders
        .into_iter()
        .next()
        .ok_or_else(|| Fail::bad("no certificate"))?;
    cert::parse_der(&der).map_err(|e| Fail::bad(format!("the certificate {e}")))?;
    Ok(cert::to_pem(&der))
}

/// Cleans a request body: read-only fields dropped, certificates normalised.
fn clean(mut m: Map<String, Value>, kind: &str) -> Result<Map<String, Value>, Fail> {
    for k in [
        "etag",
        "createdDateTimeUtc",
        "lastUpdatedDateTimeUtc",
        "registrationState",
    ] {
        m.remove(k);
    }
    let certs = m
        .get_mut("attestation")
        .and_then(|a| a.get_mut("x509"))
        .and_then(|x| x.get_mut(kind))
        .and_then(Value::as_object_mut);
    if let Some(certs) = certs {
        for which in ["primary", "secondary"] {
            if let Some(Value::Object(c)) = certs.get_mut(which) {
                c.remove("info");
                match c.get("certificate").and_then(Value::as_str) {
                    Some(pem) => {
                        let pem = certificate_pem(pem)?;
                        c.insert("certificate".into(), Value::String(pem));
                    }
                    None => {
                        return Err(Fail::bad(format!(
                            "attestation.x509.{kind}.{which}.certificate is missing"
                        )));
                    }
                }
            }
        }
    }
    Ok(m)
}

/// The record as DPS shows it: certificates as `info`.
fn render(mut v: Value, kind: &str) -> Value {
    let etag = etag_of(&v);
    if let Some(certs) = v
        .get_mut("attestation")
        .and_then(|a| a.get_mut("x509"))
        .and_then(|x| x.get_mut(kind))
        .and_then(Value::as_object_mut)
    {
        for which in ["primary", "secondary"] {
            if let Some(Value::Object(c)) = certs.get_mut(which)
                && let Some(pem) = c
                    .remove("certificate")
                    .and_then(|p| p.as_str().map(str::to_string))
            {
                c.insert("info".into(), info(&pem));
            }
        }
    }
    if let Value::Object(m) = &mut v {
        m.insert("etag".into(), Value::String(etag));
    }
    v
}

/// `X509CertificateInfo` of a PEM certificate.
fn info(pem: &str) -> Value {
    let Some(der) = cert::split_certificates(pem.as_bytes())
        .ok()
        .and_then(|d| d.into_iter().next())
    else {
        return Value::Null;
    };
    let Ok(x) = cert::parse_der(&der) else {
        return Value::Null;
    };
    let v = x.validity();
    json!({
        "subjectName": cert::name_string(x.subject()),
        "sha1Thumbprint": cert::sha1_thumbprint(&der),
        "sha256Thumbprint": cert::sha256_thumbprint(&der),
        "issuerName": cert::name_string(x.issuer()),
        "notBeforeUtc": cert::rfc3339(v.not_before.to_datetime()),
        "notAfterUtc": cert::rfc3339(v.not_after.to_datetime()),
        "serialNumber": cert::hex_upper(x.raw_serial()),
        "version": x.version().0 + 1,
    })
}

fn stamp(m: &mut Map<String, Value>, existing: Option<&Value>) {
    let now = cert::rfc3339(OffsetDateTime::now_utc());
    let created = existing
        .and_then(|v| v.get("createdDateTimeUtc"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| now.clone());
    m.insert("createdDateTimeUtc".into(), Value::String(created));
    m.insert("lastUpdatedDateTimeUtc".into(), Value::String(now));
    m.insert("etag".into(), Value::String(new_etag()));
}

fn id_field(m: &mut Map<String, Value>, field: &str, id: &str) -> Result<(), Fail> {
    ids::check_registration_id(id).map_err(|e| Fail::bad(format!("{field} '{id}': {e}")))?;
    match m.get(field) {
        None => {
            m.insert(field.into(), Value::String(id.to_string()));
            Ok(())
        }
        Some(Value::String(s)) if ids::registration_ids_match(s, id) => Ok(()),
        Some(_) => Err(Fail::bad(format!(
            "{field} in the body is not '{id}' of the path"
        ))),
    }
}

fn not_found(what: &str) -> Fail {
    Fail::new(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        &format!("{what} not found"),
    )
}

fn individual(st: &State, m: Method, id: &str, req: &ReqParts) -> Result<Outcome, Fail> {
    let what = format!("enrollment '{id}'");
    if ids::check_registration_id(id).is_err() {
        return match m {
            Method::PUT => Err(Fail::bad(format!("'{id}' is not a valid registration ID"))),
            _ => Err(not_found(&what)),
        };
    }
    let current = |st: &State| -> Result<Option<Value>, Fail> {
        Ok(st
            .store
            .individual(id)?
            .map(|s| serde_json::to_value(&s.enrollment).unwrap_or(Value::Null)))
    };
    match m {
        Method::GET => current(st)?
            .map(|v| Outcome::One(render(v, "clientCertificates")))
            .ok_or_else(|| not_found(&what)),
        Method::DELETE => {
            let lock = st.home.lock()?;
            let Some(v) = current(st)? else {
                return Err(not_found(&what));
            };
            if let Some(mt) = &req.if_match {
                precondition(Some(&v), Some(mt), &what)?;
            }
            st.store.delete_individual(&lock, id)?;
            Ok(Outcome::Deleted)
        }
        Method::PUT => {
            let mut body = clean(
                router::body_object(&req.body).map_err(Fail::bad)?,
                "clientCertificates",
            )?;
            id_field(&mut body, "registrationId", id)?;
            let lock = st.home.lock()?;
            let existing = current(st)?;
            precondition(existing.as_ref(), req.if_match.as_deref(), &what)?;
            stamp(&mut body, existing.as_ref());
            let e: IndividualEnrollment = serde_json::from_value(Value::Object(body))
                .map_err(|e| Fail::bad(format!("the body is not an IndividualEnrollment: {e}")))?;
            if e.attestation.kind != "x509" || e.client_certificates().is_none() {
                return Err(Fail::bad(
                    "only X.509 attestation with clientCertificates is supported",
                ));
            }
            if let Some(d) = &e.device_id {
                ids::check_device_id(d).map_err(|err| Fail::bad(format!("deviceId: {err}")))?;
            }
            if existing.is_some() {
                st.store.replace_individual(&lock, &e)?;
            } else {
                st.store.create_individual(&lock, &e)?;
            }
            let back = current(st)?.ok_or_else(|| not_found(&what))?;
            Ok(Outcome::One(render(back, "clientCertificates")))
        }
        _ => Err(Fail::new(
            StatusCode::METHOD_NOT_ALLOWED,
            405000,
            "method not allowed",
        )),
    }
}

fn group(st: &State, m: Method, id: &str, req: &ReqParts) -> Result<Outcome, Fail> {
    let what = format!("enrollment group '{id}'");
    if ids::check_registration_id(id).is_err() {
        return match m {
            Method::PUT => Err(Fail::bad(format!(
                "'{id}' is not a valid enrollment group ID"
            ))),
            _ => Err(not_found(&what)),
        };
    }
    let current = |st: &State| -> Result<Option<Value>, Fail> {
        Ok(st
            .store
            .group(id)?
            .map(|s| serde_json::to_value(&s.group).unwrap_or(Value::Null)))
    };
    match m {
        Method::GET => current(st)?
            .map(|v| Outcome::One(render(v, "signingCertificates")))
            .ok_or_else(|| not_found(&what)),
        Method::DELETE => {
            let lock = st.home.lock()?;
            let Some(v) = current(st)? else {
                return Err(not_found(&what));
            };
            if let Some(mt) = &req.if_match {
                precondition(Some(&v), Some(mt), &what)?;
            }
            st.store.delete_group(&lock, id)?;
            Ok(Outcome::Deleted)
        }
        Method::PUT => {
            let mut body = clean(
                router::body_object(&req.body).map_err(Fail::bad)?,
                "signingCertificates",
            )?;
            id_field(&mut body, "enrollmentGroupId", id)?;
            let lock = st.home.lock()?;
            let existing = current(st)?;
            precondition(existing.as_ref(), req.if_match.as_deref(), &what)?;
            stamp(&mut body, existing.as_ref());
            let g: EnrollmentGroup = serde_json::from_value(Value::Object(body))
                .map_err(|e| Fail::bad(format!("the body is not an EnrollmentGroup: {e}")))?;
            if g.attestation.kind != "x509" || g.signing_certificates().is_none() {
                return Err(Fail::bad(
                    "only X.509 attestation with signingCertificates is supported",
                ));
            }
            if existing.is_some() {
                st.store.replace_group(&lock, &g)?;
            } else {
                st.store.create_group(&lock, &g)?;
            }
            let back = current(st)?.ok_or_else(|| not_found(&what))?;
            Ok(Outcome::One(render(back, "signingCertificates")))
        }
        _ => Err(Fail::new(
            StatusCode::METHOD_NOT_ALLOWED,
            405000,
            "method not allowed",
        )),
    }
}

fn individuals(st: &State) -> Vec<Value> {
    st.store
        .individuals()
        .records
        .into_iter()
        .filter_map(|s| serde_json::to_value(&s.enrollment).ok())
        .map(|v| render(v, "clientCertificates"))
        .collect()
}

fn groups(st: &State) -> Vec<Value> {
    st.store
        .groups()
        .records
        .into_iter()
        .filter_map(|s| serde_json::to_value(&s.group).ok())
        .map(|v| render(v, "signingCertificates"))
        .collect()
}

/// A registration state as DPS shows it (etag quoted; iotca's own
/// `enrollmentGroupId` kept, an extra key).
fn render_registration(s: &crate::dps::RegistrationState) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v
        && let Some(Value::String(e)) = m.get("etag").cloned()
        && !e.starts_with('"')
    {
        m.insert("etag".into(), Value::String(format!("\"{e}\"")));
    }
    v
}

fn registrations(st: &State, group_id: &str) -> Vec<Value> {
    st.registrations
        .list()
        .records
        .into_iter()
        .filter(|(_, s)| {
            s.enrollment_group_id
                .as_deref()
                .is_some_and(|g| ids::registration_ids_match(g, group_id))
        })
        .map(|(_, s)| render_registration(&s))
        .collect()
}

fn registration(st: &State, m: Method, id: &str, req: &ReqParts) -> Result<Outcome, Fail> {
    let what = format!("registration '{id}'");
    let nf = || Fail::new(StatusCode::NOT_FOUND, 404202, &format!("{what} not found"));
    if ids::check_registration_id(id).is_err() {
        return Err(nf());
    }
    match m {
        Method::GET => st
            .registrations
            .get(id)?
            .map(|s| Outcome::One(render_registration(&s)))
            .ok_or_else(nf),
        Method::DELETE => {
            let lock = st.home.lock()?;
            let Some(s) = st.registrations.get(id)? else {
                return Err(nf());
            };
            if let Some(mt) = &req.if_match {
                precondition(Some(&render_registration(&s)), Some(mt), &what)?;
            }
            let path = st.registrations.path(id)?;
            lock.archive(&[&path])?;
            Ok(Outcome::Deleted)
        }
        _ => Err(Fail::new(
            StatusCode::METHOD_NOT_ALLOWED,
            405000,
            "method not allowed",
        )),
    }
}
