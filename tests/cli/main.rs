//! iotca's integration tests: ONE test binary (linked once), a module per
//! area. Every test runs the real `iotca` binary against temporary homes and
//! checks its output with independent tools (openssl, pyca/cryptography,
//! DigiCert's pkilint, Microsoft's Azure IoT SDKs).
//!
//! Shared helpers live in [`util`]; a module keeps only what is its own.

mod util;

mod audit;
mod azure;
mod azure_emulator;
mod certgen;
mod compat;
mod dps;
mod dps_https;
mod enroll;
mod foundation;
mod hardening;
mod lab;
mod lifecycle;
mod limbo;
mod newcomer;
mod props;
mod verify;
