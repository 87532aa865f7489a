//! Acting on Azure (DESIGN section 12): service connection strings, SAS
//! tokens, an HTTPS client for the DPS service API and the IoT Hub identity
//! registry, and the deprovisioning workflow with read-backs.
//!
//! - [`conn`]: service connection strings
//!   (plus `GatewayHostName`), read from files or the environment only.
//! - [`sas`]: `SharedAccessSignature sr=...&sig=...&se=...&skn=...`.
//! - [`http`]: requests with a timeout, bounded 429/503 retries and errors
//!   that name the request, status, error code and tracking ID.
//! - [`trust`]: the system's roots plus `--service-ca`.
//! - [`dps`], [`hub`]: the two services' REST calls.
//! - [`group_update`]: a group's signing certificates changed (CA rollover).
//! - [`holds`]: what a DPS holds for one device (`enroll check --azure`).
//! - [`deprovision`]: the whole exercise for one device, as a typed outcome.

pub mod conn;
pub mod deprovision;
pub mod dps;
pub mod group_update;
pub mod holds;
pub mod http;
pub mod hub;
pub mod sas;
pub mod trust;

pub use conn::{ConnError, ConnectionString};
pub use http::{AzureError, Client};
