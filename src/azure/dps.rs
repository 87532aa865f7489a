//! The DPS service API (api-version 2021-10-01): individual enrollments,
//! enrollment groups and registration states.

use serde_json::{Value, json};

use super::http::{AzureError, Client, Settings};
use super::{ConnectionString, sas};
use crate::enroll::{EnrollmentGroup, IndividualEnrollment};

/// The DPS service API version.
pub const API_VERSION: &str = "2021-10-01";

/// Items asked for in one page of a query (`x-ms-max-item-count`); DPS
/// may send fewer, and says where to go on with `x-ms-continuation`.
pub const PAGE_SIZE: usize = 100;

/// A record as DPS holds it, with its etag.
#[derive(Debug, Clone)]
pub struct Record {
    /// The JSON DPS returned.
    pub json: Value,
    /// The etag (from the body, else the header), unquoted as DPS sends it.
    pub etag: Option<String>,
}

impl Record {
    /// `provisioningStatus`.
    pub fn provisioning_status(&self) -> Option<&str> {
        self.json.get("provisioningStatus")?.as_str()
    }
    /// A string field.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.json.get(name)?.as_str()
    }
}

/// The DPS service client.
pub struct Dps {
    client: Client,
    /// `x-ms-max-item-count` of each query page ([`PAGE_SIZE`] by default).
    pub page_size: usize,
}

impl Dps {
    /// A client for the DPS of `conn`.
    pub fn new(conn: ConnectionString, settings: &Settings) -> Self {
        Dps {
            client: Client::new(conn, API_VERSION, settings),
            page_size: PAGE_SIZE,
        }
    }

    /// The DPS `HostName`.
    pub fn host_name(&self) -> &str {
        self.client.host_name()
    }

    fn get(&self, path: &str) -> Result<Option<Record>, AzureError> {
        match self.client.send("GET", path, None, None) {
            Ok(r) => {
                let json: Value = r.json("GET", path)?;
                let etag = json
                    .get("etag")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or(r.etag);
                Ok(Some(Record { json, etag }))
            }
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> Result<Record, AzureError> {
        let r = self.client.send("PUT", path, if_match, Some(body))?;
        let json: Value = r.json("PUT", path)?;
        let etag = json
            .get("etag")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(r.etag);
        Ok(Record { json, etag })
    }

    /// Deletes `path`; `false` if it was not there.
    fn delete(&self, path: &str, if_match: Option<&str>) -> Result<bool, AzureError> {
        match self.client.send("DELETE", path, if_match, None) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every item of a query, all pages (the SDKs' query specification `*`).
    fn query(&self, path: &str) -> Result<Vec<Value>, AzureError> {
        self.client
            .query_all(path, &json!({"query": "*"}), self.page_size)
    }

    /// `GET /enrollments/{id}`; `None` on 404.
    pub fn enrollment(&self, id: &str) -> Result<Option<Record>, AzureError> {
        self.get(&format!("/enrollments/{}", sas::encode(id)))
    }

    /// `PUT /enrollments/{id}` with `If-Match` when updating.
    pub fn put_enrollment(
        &self,
        e: &IndividualEnrollment,
        if_match: Option<&str>,
    ) -> Result<Record, AzureError> {
        let body = serde_json::to_value(e).map_err(|err| AzureError::Body {
            method: "PUT".into(),
            path: "/enrollments".into(),
            reason: err.to_string(),
        })?;
        self.put(
            &format!("/enrollments/{}", sas::encode(&e.registration_id)),
            &body,
            if_match,
        )
    }

    /// `PUT /enrollments/{id}` with a body as DPS returned it (edited).
    pub fn put_enrollment_json(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Record, AzureError> {
        self.put(&format!("/enrollments/{}", sas::encode(id)), body, if_match)
    }

    /// `DELETE /enrollments/{id}`; `false` if there was none.
    pub fn delete_enrollment(&self, id: &str, if_match: Option<&str>) -> Result<bool, AzureError> {
        self.delete(&format!("/enrollments/{}", sas::encode(id)), if_match)
    }

    /// `POST /enrollments/query`: every individual enrollment.
    pub fn enrollments(&self) -> Result<Vec<Value>, AzureError> {
        self.query("/enrollments/query")
    }

    /// `GET /enrollmentGroups/{id}`; `None` on 404.
    pub fn group(&self, id: &str) -> Result<Option<Record>, AzureError> {
        self.get(&format!("/enrollmentGroups/{}", sas::encode(id)))
    }

    /// `PUT /enrollmentGroups/{id}`.
    pub fn put_group(
        &self,
        g: &EnrollmentGroup,
        if_match: Option<&str>,
    ) -> Result<Record, AzureError> {
        let body = serde_json::to_value(g).map_err(|err| AzureError::Body {
            method: "PUT".into(),
            path: "/enrollmentGroups".into(),
            reason: err.to_string(),
        })?;
        self.put(
            &format!("/enrollmentGroups/{}", sas::encode(&g.enrollment_group_id)),
            &body,
            if_match,
        )
    }

    /// `PUT /enrollmentGroups/{id}` with a body as DPS returned it (edited).
    pub fn put_group_json(
        &self,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Record, AzureError> {
        self.put(
            &format!("/enrollmentGroups/{}", sas::encode(id)),
            body,
            if_match,
        )
    }

    /// `DELETE /enrollmentGroups/{id}`.
    pub fn delete_group(&self, id: &str, if_match: Option<&str>) -> Result<bool, AzureError> {
        self.delete(&format!("/enrollmentGroups/{}", sas::encode(id)), if_match)
    }

    /// `POST /enrollmentGroups/query`: every enrollment group.
    pub fn groups(&self) -> Result<Vec<Value>, AzureError> {
        self.query("/enrollmentGroups/query")
    }

    /// `GET /registrations/{id}`: the device's registration state; `None` if it never registered.
    pub fn registration(&self, id: &str) -> Result<Option<Record>, AzureError> {
        self.get(&format!("/registrations/{}", sas::encode(id)))
    }

    /// `POST /registrations/{groupId}/query`: the registration states of a group's devices.
    pub fn group_registrations(&self, group_id: &str) -> Result<Vec<Value>, AzureError> {
        self.query(&format!("/registrations/{}/query", sas::encode(group_id)))
    }
}
