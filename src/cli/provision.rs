//! `iotca provision CERT`: what DPS would decide for a device presenting CERT.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use iotca::cert;
use iotca::enroll::EnrollmentStore;
use iotca::home::Home;
use iotca::provision::{self, Status};

use super::{CmdResult, Global, print_json};

const AFTER_HELP: &str = "\
POSITIONAL ARGUMENTS:
  CERT  The chain the device presents: its leaf first, then its intermediates
        (a full-chain PEM).

THE DECISION (as DPS makes it, against the home's dps/ store):
  1. The registration ID is the leaf's CN. An individual enrollment with that
     ID (case-insensitive) decides alone: disabled -> disabled; enabled and its
     certificate is this leaf -> assigned; otherwise failed.
  2. Else the first enrollment group up the chain (from the leaf's issuer to
     the root) whose CA is that issuer and to which the chain verifies:
     disabled -> disabled, enabled -> assigned.
  3. Else failed (unauthorized).
  An assigned device gets the enrollment's deviceId (else the registration
  ID) on its first iotHubs entry (else iotca-local-hub.azure-devices.net).

EXIT CODES:
  0  assigned
  1  disabled or failed
  2  could not decide (unreadable certificate, the device's own enrollment record is broken)

EXAMPLES:
  What does DPS tell sensor-thl-002?
    iotca provision certs/sensor-thl-002-full-chain.cert.pem
  For scripts:
    iotca provision certs/sensor-thl-002-full-chain.cert.pem --json | jq -r .status
  Provision and add the device to the local hub registry, as DPS does:
    iotca provision certs/sensor-thl-002-full-chain.cert.pem --register";

/// Simulate the DPS decision for a device presenting CERT.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ProvisionArgs {
    /// The device's chain: leaf first, then the intermediates it presents.
    #[arg(value_name = "CERT")]
    pub cert: PathBuf,
    /// Decide at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// On assigned, add the device to the local hub registry (as DPS does).
    #[arg(long)]
    pub register: bool,
}

/// Runs `provision`.
pub fn run(a: &ProvisionArgs, g: &Global) -> CmdResult {
    let now = match &a.at {
        Some(s) => OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
            anyhow::anyhow!("--at '{s}' is not an RFC 3339 time such as 2027-01-01T00:00:00Z ({e})")
        })?,
        None => OffsetDateTime::now_utc(),
    };
    let chain = cert::read_certificates(&a.cert)?;
    let home = Home::open(&g.home_dir())?;
    let store = EnrollmentStore::new(home.clone());
    let decision = provision::decide(&store, &chain, now)?;
    for w in &decision.warnings {
        eprintln!("warning: {w}");
    }
    let registered = if a.register && decision.status == Status::Assigned {
        let lock = home.lock()?;
        provision::register(&lock, &decision, &chain[0], now)?
    } else {
        None
    };
    if g.json {
        print_json(&super::wire::JsonDecision::new(
            &decision,
            registered.as_deref(),
        ))?;
    } else if !g.quiet {
        let mut s = format!(
            "{}: {}\n",
            decision.status.as_str().to_ascii_uppercase(),
            iotca::text::escape(&decision.message)
        );
        if let Some(p) = &registered {
            s.push_str(&format!(
                "added the device to the hub registry: {}\n",
                p.display()
            ));
        }
        std::io::stdout().lock().write_all(s.as_bytes())?;
    }
    Ok(if decision.status == Status::Assigned {
        0
    } else {
        1
    })
}
