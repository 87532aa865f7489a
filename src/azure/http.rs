//! The HTTPS client for the DPS service API and the hub registry: rustls
//! (ring) against the system's trust roots plus `--service-ca` (see
//! [`super::trust`]), a timeout on
//! every request, 429/503 retried after `Retry-After` a bounded number of
//! times, and errors naming the request, the status, the service's error
//! code and its tracking ID — never the key or the token.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ConnectionString, sas};

/// How long a SAS token made for one request lives.
const TOKEN_LIFETIME: u64 = 3600;

/// The most pages [`Client::query_all`] reads for one query.
pub const MAX_PAGES: usize = 10_000;

/// A request to Azure failed.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// The service answered with an error status.
    #[error("{method} {path}: HTTP {status}{}{}{}", code_part(.code), tracking_part(.tracking_id), message_part(.message))]
    Status {
        /// `GET`, `PUT`...
        method: String,
        /// The path, without the query.
        path: String,
        /// The HTTP status.
        status: u16,
        /// DPS `errorCode`, or the hub's `iothub-errorcode` / `ErrorCode:`.
        code: Option<String>,
        /// The service's tracking ID.
        tracking_id: Option<String>,
        /// The service's message, escaped and shortened.
        message: Option<String>,
    },
    /// No answer: connection, TLS or timeout.
    #[error("{method} {path} to {host}: {reason}")]
    Transport {
        /// `GET`, `PUT`...
        method: String,
        /// The path.
        path: String,
        /// Where it was sent.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The answer was not what the API promises.
    #[error("{method} {path}: the answer is not valid JSON of the expected shape: {reason}")]
    Body {
        /// `GET`, `PUT`...
        method: String,
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The service's query pages do not end (a repeated continuation token, too many pages).
    #[error("{method} {path}: {reason}")]
    Paging {
        /// `POST`.
        method: String,
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The `--service-ca` file could not be read, or holds no certificate.
    #[error("the service CA file {0}")]
    ServiceCa(#[source] crate::Error),
    /// Neither the system nor `--service-ca` gave a root to trust.
    #[error(
        "no TLS trust roots: the system store gave none{why} and no --service-ca file (or IOTCA_SERVICE_CA) was given"
    )]
    NoRoots {
        /// Why the system gave none, in parentheses, or empty.
        why: String,
    },
    /// A root or the TLS configuration could not be used.
    #[error("the service CA file {path}: {reason}")]
    Trust {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

fn code_part(c: &Option<String>) -> String {
    c.as_ref().map(|c| format!(" {c}")).unwrap_or_default()
}
fn tracking_part(c: &Option<String>) -> String {
    c.as_ref()
        .map(|c| format!(" (tracking ID {c})"))
        .unwrap_or_default()
}
fn message_part(c: &Option<String>) -> String {
    c.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
}

impl AzureError {
    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The service's error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Trust and timing shared by every client.
#[derive(Clone)]
pub struct Settings {
    tls: Arc<rustls::ClientConfig>,
    /// The timeout of each request (connect, send, answer).
    pub timeout: Duration,
    /// How many times a request is sent at most (429/503 retried).
    pub tries: u32,
    /// The longest wait between tries, whatever `Retry-After` says.
    pub max_wait: Duration,
}

impl Settings {
    /// The system's roots plus the certificates of `service_ca`, a 30 s
    /// timeout, 4 tries, waits capped at 30 s.
    pub fn new(service_ca: Option<&Path>) -> Result<Self, AzureError> {
        let (system, why) = super::trust::system_roots();
        let roots = super::trust::roots(system, why.as_deref(), service_ca)?;
        Self::with_roots(roots.store)
    }

    /// Exactly `roots`, with the defaults of [`Settings::new`].
    pub fn with_roots(roots: rustls::RootCertStore) -> Result<Self, AzureError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AzureError::Trust {
                path: String::new(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Settings {
            tls: Arc::new(tls),
            timeout: Duration::from_secs(30),
            tries: 4,
            max_wait: Duration::from_secs(30),
        })
    }
}

/// One service's client: its connection string, API version and an agent.
pub struct Client {
    agent: ureq::Agent,
    conn: ConnectionString,
    api_version: &'static str,
    settings: Settings,
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// The status (2xx).
    pub status: u16,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `x-ms-continuation` header of a query page: more pages follow.
    pub continuation: Option<String>,
    /// The body (may be empty).
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
    ) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| AzureError::Body {
            method: method.into(),
            path: path.into(),
            reason: e.to_string(),
        })
    }
}

impl Client {
    /// A client for `conn`'s service with `api_version`.
    pub fn new(conn: ConnectionString, api_version: &'static str, settings: &Settings) -> Self {
        let agent = ureq::AgentBuilder::new()
            .tls_config(settings.tls.clone())
            .timeout(settings.timeout)
            .redirects(0)
            .user_agent(concat!("iotca/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent,
            conn,
            api_version,
            settings: settings.clone(),
        }
    }

    /// The service's `HostName`.
    pub fn host_name(&self) -> &str {
        &self.conn.host_name
    }

    /// Sends `method path` with an optional `If-Match` and JSON body; 2xx is `Ok`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        if_match: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, AzureError> {
        self.send_with(method, path, if_match, &[], body)
    }

    /// Every item of a query (`POST path` with `body`), page by page as the
    /// SDKs read it: `x-ms-max-item-count: page_size` on each request, and
    /// each answer's `x-ms-continuation` sent back as `x-ms-continuation`
    /// until an answer has none. A service that repeats a continuation
    /// token, or pages past [`MAX_PAGES`], is an error rather than a hang.
    pub fn query_all(
        &self,
        path: &str,
        body: &serde_json::Value,
        page_size: usize,
    ) -> Result<Vec<serde_json::Value>, AzureError> {
        let size = page_size.max(1).to_string();
        let mut items = Vec::new();
        let mut tokens = std::collections::HashSet::new();
        let mut continuation: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut headers = vec![("x-ms-max-item-count", size.as_str())];
            if let Some(c) = &continuation {
                headers.push(("x-ms-continuation", c.as_str()));
            }
            let r = self.send_with("POST", path, None, &headers, Some(body))?;
            let page: Vec<serde_json::Value> = r.json("POST", path)?;
            items.extend(page);
            match r.continuation.filter(|c| !c.trim().is_empty()) {
                None => return Ok(items),
                Some(c) if !tokens.insert(c.clone()) => {
                    return Err(AzureError::Paging {
                        method: "POST".into(),
                        path: path.into(),
                        reason: format!(
                            "the service sent the continuation token '{}' twice",
                            crate::text::escape(&c)
                        ),
                    });
                }
                Some(c) => continuation = Some(c),
            }
        }
        Err(AzureError::Paging {
            method: "POST".into(),
            path: path.into(),
            reason: format!("the query did not end within {MAX_PAGES} pages"),
        })
    }

    /// [`Client::send`] with extra request headers.
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        if_match: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, AzureError> {
        let url = format!(
            "https://{}{path}?api-version={}",
            self.conn.connect_to(),
            self.api_version
        );
        let body = body.map(|b| b.to_string());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let expiry = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                + TOKEN_LIFETIME;
            let mut req = self
                .agent
                .request(method, &url)
                .set("Host", &self.conn.host_name)
                .set("Authorization", &sas::token(&self.conn, expiry))
                .set("Accept", "application/json");
            if let Some(m) = if_match {
                req = req.set("If-Match", m);
            }
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let result = match &body {
                Some(b) => req
                    .set("Content-Type", "application/json; charset=utf-8")
                    .send_string(b),
                None => req.call(),
            };
            match result {
                Ok(resp) => {
                    let status = resp.status();
                    let etag = resp.header("etag").map(str::to_string);
                    let continuation = resp.header("x-ms-continuation").map(str::to_string);
                    let body = read_body(resp).map_err(|reason| AzureError::Transport {
                        method: method.into(),
                        path: path.into(),
                        host: self.conn.connect_to().into(),
                        reason,
                    })?;
                    return Ok(Reply {
                        status,
                        etag,
                        continuation,
                        body,
                    });
                }
                Err(ureq::Error::Status(status, resp)) => {
                    if (status == 429 || status == 503) && attempt < self.settings.tries {
                        let wait = resp
                            .header("retry-after")
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs)
                            .unwrap_or(Duration::from_secs(1))
                            .min(self.settings.max_wait);
                        drop(resp);
                        std::thread::sleep(wait);
                        continue;
                    }
                    return Err(status_error(method, path, status, resp));
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(AzureError::Transport {
                        method: method.into(),
                        path: path.into(),
                        host: self.conn.connect_to().into(),
                        reason: transport_reason(&t),
                    });
                }
            }
        }
    }
}

/// At most 16 MiB of body.
fn read_body(resp: ureq::Response) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    resp.into_reader()
        .take(16 << 20)
        .read_to_end(&mut out)
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(out)
}

fn transport_reason(t: &ureq::Transport) -> String {
    // ureq's Display includes the URL (no secrets there, the token is a header),
    // but the kind and the source say it in fewer words.
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    crate::text::escape(&s).into_owned()
}

fn status_error(method: &str, path: &str, status: u16, resp: ureq::Response) -> AzureError {
    let header_code = resp.header("iothub-errorcode").map(str::to_string);
    let header_tracking = resp
        .header("x-ms-request-id")
        .or_else(|| resp.header("iothub-trackingid"))
        .map(str::to_string);
    let body = read_body(resp).unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |names: &[&str]| -> Option<String> {
        let j = json.as_ref()?;
        names.iter().find_map(|n| match j.get(*n)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let message = field(&["message", "Message"]);
    // The hub's classic form: "ErrorCode:DeviceNotFound;..." and "Tracking ID:...".
    let hub_code = message
        .as_deref()
        .and_then(|m| m.strip_prefix("ErrorCode:"))
        .map(|m| m.split([';', ' ']).next().unwrap_or("").to_string())
        .filter(|c| !c.is_empty());
    let hub_tracking = field(&["ExceptionMessage"]).and_then(|m| {
        let i = m.find("Tracking ID:")?;
        let rest = &m[i + "Tracking ID:".len()..];
        Some(rest.split([' ', ',']).next().unwrap_or("").to_string())
    });
    let code = field(&["errorCode"]).or(header_code).or(hub_code);
    let tracking_id = field(&["trackingId"]).or(hub_tracking).or(header_tracking);
    let clean = |s: String| {
        let s = crate::text::escape(&s).into_owned();
        if s.len() > 300 {
            let mut cut = 300;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}...", &s[..cut])
        } else {
            s
        }
    };
    AzureError::Status {
        method: method.into(),
        path: path.into(),
        status,
        code: code.map(clean),
        tracking_id: tracking_id.map(clean),
        message: message.filter(|m| !m.is_empty()).map(clean),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
pub(crate) mod tests;
