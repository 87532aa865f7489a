//! iotca: the X.509 side of Azure IoT device provisioning.
//!
//! The library holds all the logic; the `iotca` binary only parses
//! arguments, reads files and prints. Modules have one concern each:
//!
//! - [`ids`]: DPS registration ID, IoT hub device ID and file-name rules.
//! - [`keys`]: key generation, reading every key format, PKCS#8 encryption.
//! - [`profile`]: certificate profiles (the `templates/*.toml`).
//! - [`issue`]: building and signing certificates from a profile.
//! - [`home`]: the PKI home: paths, bounded reads, atomic writes, the lock
//!   as a type, the archive, CAs, devices and the inventory.
//! - [`cert`]: reading certificate files and describing certificates.
//! - [`problem`] and [`verify`]: chain verification with DPS semantics.
//! - [`enroll`], [`hub`], [`provision`]: DPS enrollments, the IoT hub
//!   registry and the simulated DPS decision.
//! - [`hub_messages`]: the telemetry the local IoT hub received.
//! - [`audit`]: checking a fleet of device certificates against a CA.
//! - [`csr`] and [`lifecycle`]: signing CSRs, renewing devices, CA rollover.
//! - [`pfx`]: PKCS#12 files for device applications.
//! - [`text`]: escaping untrusted strings for terminals and logs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod azure;
pub mod cert;
pub mod csr;
pub mod dps;
pub mod enroll;
pub mod error;
mod error_code;
pub use error_code::CODES as ERROR_CODES;
pub mod home;
pub mod hub;
pub mod hub_messages;
pub mod ids;
pub mod issue;
pub mod keys;
pub mod lifecycle;
pub mod pfx;
pub mod profile;
pub mod provision;
pub mod text;
pub mod verify;

pub use error::{Error, Result};
pub use verify::problem;

// Old module paths, kept while in-flight branches move to `home`.
#[doc(hidden)]
pub use home as store;
#[doc(hidden)]
pub use home as pki;
#[doc(hidden)]
pub use home::inventory;
