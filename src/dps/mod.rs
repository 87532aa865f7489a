//! A local DPS endpoint (`iotca dps serve`): the Azure IoT Device
//! Provisioning Service's device API over MQTT 3.1.1 and TLS, answering
//! from the home's local enrollment store with the same decision as
//! `iotca provision` ([`crate::provision::decide`]).
//!
//! - [`mqtt`]: a bounded MQTT 3.1.1 codec.
//! - [`server`]: the TLS server and the DPS device protocol.
//! - [`emulator`]: the emulator CA, the server certificate and the
//!   registration records under `dps/registrations/`.

pub mod emulator;
pub mod https;
pub mod mqtt;
pub mod registration;
pub mod server;

pub use emulator::{EmulatorCa, RegistrationState, Registrations};
pub use server::{Limits, Server, ServerConfig, resolve_listen};
