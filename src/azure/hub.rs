//! The IoT Hub identity registry (api-version 2021-04-12).

use serde_json::{Value, json};

use super::http::{AzureError, Client, Settings};
use super::{ConnectionString, sas};

/// The hub registry API version.
pub const API_VERSION: &str = "2021-04-12";

/// One hub's registry client.
pub struct HubRegistry {
    client: Client,
}

/// A device identity as the hub holds it.
#[derive(Debug, Clone)]
pub struct Device {
    /// The JSON the hub returned.
    pub json: Value,
}

impl Device {
    /// `status`: `enabled` or `disabled`.
    pub fn status(&self) -> Option<&str> {
        self.json.get("status")?.as_str()
    }
    /// The quoted etag, as `If-Match` wants it.
    pub fn etag(&self) -> Option<&str> {
        self.json.get("etag")?.as_str()
    }
}

impl HubRegistry {
    /// A client for the hub of `conn`.
    pub fn new(conn: ConnectionString, settings: &Settings) -> Self {
        HubRegistry {
            client: Client::new(conn, API_VERSION, settings),
        }
    }

    /// The hub's `HostName`.
    pub fn host_name(&self) -> &str {
        self.client.host_name()
    }

    fn path(id: &str) -> String {
        format!("/devices/{}", sas::encode(id))
    }

    /// `GET /devices/{id}`; `None` for 404 (DeviceNotFound).
    pub fn device(&self, id: &str) -> Result<Option<Device>, AzureError> {
        let path = Self::path(id);
        match self.client.send("GET", &path, None, None) {
            Ok(r) => Ok(Some(Device {
                json: r.json("GET", &path)?,
            })),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /devices/{id}` (create, or update with `If-Match`).
    pub fn put_device(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Device, AzureError> {
        let path = Self::path(id);
        let r = self.client.send("PUT", &path, if_match, Some(body))?;
        Ok(Device {
            json: r.json("PUT", &path)?,
        })
    }

    /// `DELETE /devices/{id}` with `If-Match: *`; `false` if it was not there.
    pub fn delete_device(&self, id: &str) -> Result<bool, AzureError> {
        match self.client.send("DELETE", &Self::path(id), Some("*"), None) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets `status` (`enabled`/`disabled`) with the read etag; `None` if there is no such device.
    pub fn set_status(&self, id: &str, status: &str) -> Result<Option<Device>, AzureError> {
        let Some(d) = self.device(id)? else {
            return Ok(None);
        };
        if d.status() == Some(status) {
            return Ok(Some(d));
        }
        let mut body = d.json.clone();
        body["status"] = json!(status);
        let etag = d.etag().map(str::to_string);
        self.put_device(id, &body, Some(etag.as_deref().unwrap_or("*")))
            .map(Some)
    }

    /// `POST /devices/query`: every device identity, all pages.
    pub fn devices(&self) -> Result<Vec<Value>, AzureError> {
        self.client.query_all(
            "/devices/query",
            &json!({"query": "SELECT * FROM devices"}),
            super::dps::PAGE_SIZE,
        )
    }
}
