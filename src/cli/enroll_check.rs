//! `iotca enroll check`: the pre-flight, and with `--azure` what the DPS
//! of the DPS connection string holds now for this device (read-only).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use clap::Args;
use serde::Serialize;
use time::OffsetDateTime;

use iotca::azure::holds::{self, HeldEnrollment, Holdings};
use iotca::cert;
use iotca::text::escape;

use super::azure_args::AzureArgs;
use super::enroll::CheckArgs;
use super::enroll_preflight::{JsonPreflight, preflight, preflight_json, render_preflight};
use super::{CmdResult, Global, print_json};

pub(super) const CHECK_HELP: &str = "\
PROBLEM CODES (every one that applies is listed):
  invalid_registration_id  the ID is not a DPS registration ID (1-64 of A-Z a-z 0-9 - . _ :,
                           alphanumeric at both ends)
  missing_cn, multiple_cn  the certificate has no CN, or more than one
  cn_mismatch              the CN differs from the enrollment ID
  cn_case_mismatch         they differ only in letter case (IoT hub device IDs are case-sensitive)
  certificate_is_ca        the certificate is a CA, not a device leaf
  certificate_expired      the certificate's notAfter has passed
  does_not_chain           with --group-ca: the chain does not reach it (the verify problems follow)

WITH --azure (read-only: GET /enrollments/{id}, POST /enrollments/query and
/enrollmentGroups/query, every page), after the pre-flight, what the DPS of
the DPS connection string holds now:
  - the individual enrollment under exactly the ID, its provisioningStatus, and
    whether it attests this certificate;
  - individual enrollments under the same ID in another letter case (DPS
    matches registration IDs case-insensitively: such a record is the one DPS
    uses for the device);
  - the enrollment groups whose CA (primary or secondary, matched by
    thumbprint) is on this device's chain: the certificates of --cert, --group-ca
    and the home's CAs;
  - the decision DPS would make now: whether a disabled individual enrollment
    is what blocks the device, or an enabled group lets it in.
--json adds \"dps\": {host, enrollment, other_case, for_cn, groups, decision}.

EXIT CODES:
  0  the enrollment will match this device
  1  it will not; the problems say why (what DPS holds is reported, not judged)
  2  the check could not run (unreadable or malformed file; with --azure: no
     connection string or trust root, or a request to DPS failed, named with
     its status, error code and tracking ID)

EXAMPLES:
  Before creating a disabled enrollment, check the ID against the device's certificate:
    iotca enroll check --enrollment-id sensor-thl-002 --cert certs/sensor-thl-002.cert.pem
  Also check the device belongs to the group over the intermediate:
    iotca enroll check --enrollment-id sensor-thl-002 --cert certs/sensor-thl-002-full-chain.cert.pem \\
        --group-ca certs/azure-iot-test-only.intermediate.cert.pem
  And ask the real DPS what it holds for the device now (its groups, any enrollment in any case):
    iotca enroll check --enrollment-id sensor-thl-002 --cert certs/sensor-thl-002-full-chain.cert.pem \\
        --azure --dps-connection-string-file dps.cs
  For scripts:
    iotca enroll check --enrollment-id sensor-thl-002 --cert dev.pem --json | jq -r '.problems[].code'";

/// `enroll check` flags: the pre-flight's, and `--azure` with its connection flags.
#[derive(Debug, Args)]
pub struct CheckCmd {
    #[command(flatten)]
    pub check: CheckArgs,
    /// After the pre-flight, also report what the DPS of the DPS connection
    /// string holds now for this device (read-only).
    #[arg(long)]
    pub azure: bool,
    #[command(flatten)]
    pub conn: AzureArgs,
}

/// `enroll check --json`, with `"dps"` under `--azure`.
#[derive(Serialize)]
struct JsonCheck<'a> {
    #[serde(flatten)]
    preflight: JsonPreflight<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dps: Option<&'a Holdings>,
}

fn out(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// Runs `enroll check`.
pub fn run(a: &CheckCmd, g: &Global) -> CmdResult {
    let c = &a.check;
    let (p, chain) = preflight(&c.enrollment_id, &c.cert, c.group_ca.as_deref())?;
    let held = if a.azure {
        let dps = a.conn.dps(&a.conn.settings()?)?;
        let known = known_cas(&chain, c.group_ca.as_deref(), g)?;
        Some(holds::holdings(
            &dps,
            &c.enrollment_id,
            &chain,
            &known,
            OffsetDateTime::now_utc(),
        )?)
    } else {
        None
    };
    if g.json {
        print_json(&JsonCheck {
            preflight: preflight_json(&p),
            dps: held.as_ref(),
        })?;
    } else if !g.quiet || !p.ok {
        let mut s = render_preflight(&p);
        if let Some(h) = &held {
            s.push_str(&render_holdings(h, &c.enrollment_id));
        }
        out(&s)?;
    }
    Ok(if p.ok { 0 } else { 1 })
}

/// CA certificates that may be a group's CA beyond those the device
/// presents: `--group-ca`'s, and, unless the chain already ends in a
/// self-signed root, the home's CAs (`certs/*.cert.pem` that are CAs).
fn known_cas(
    chain: &[Vec<u8>],
    group_ca: Option<&Path>,
    g: &Global,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut known = match group_ca {
        Some(p) => cert::read_certificates(p)?,
        None => Vec::new(),
    };
    let ends_in_root = chain.len() > 1
        && chain
            .last()
            .and_then(|d| cert::parse_der(d).ok())
            .is_some_and(|x| x.subject().as_raw() == x.issuer().as_raw());
    if ends_in_root {
        return Ok(known);
    }
    let Ok(rd) = std::fs::read_dir(g.home_dir().join("certs")) else {
        return Ok(known);
    };
    for entry in rd.filter_map(Result::ok) {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".cert.pem") || name.ends_with("-full-chain.cert.pem") {
            continue;
        }
        // A file the check cannot read is one CA fewer to recognise, not a failure.
        for der in cert::read_certificates(&path).unwrap_or_default() {
            let is_ca = cert::parse_der(&der)
                .is_ok_and(|x| matches!(x.basic_constraints(), Ok(Some(bc)) if bc.value.ca));
            if is_ca && !known.contains(&der) {
                known.push(der);
            }
        }
    }
    Ok(known)
}

fn describe(e: &HeldEnrollment) -> String {
    let status = e
        .provisioning_status
        .as_deref()
        .unwrap_or("status not given");
    let cert = match e.certificate_matches {
        Some(true) => "attests this certificate",
        Some(false) => "attests ANOTHER certificate",
        None => "its certificate is not shown",
    };
    format!(
        "'{}': {}, {cert}",
        escape(&e.registration_id),
        escape(status)
    )
}

/// What DPS holds, for people, after the pre-flight's text.
fn render_holdings(h: &Holdings, id: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "DPS {} holds now:", escape(&h.host));
    match &h.enrollment {
        Some(e) => {
            let _ = writeln!(s, "  individual enrollment {}", describe(e));
        }
        None => {
            let _ = writeln!(s, "  no individual enrollment '{}'", escape(id));
        }
    }
    for e in &h.other_case {
        let _ = writeln!(
            s,
            "  ! individual enrollment {}: its ID differs from '{}' only in letter case, and DPS matches registration IDs case-insensitively, so it is the one DPS uses for this device",
            describe(e),
            escape(id)
        );
    }
    if let Some(e) = &h.for_cn {
        let _ = writeln!(
            s,
            "  ! individual enrollment {}: it is under the certificate's CN, so it is the one DPS uses for this device, not '{}'",
            describe(e),
            escape(id)
        );
    }
    if h.groups.is_empty() {
        let _ = writeln!(
            s,
            "  no enrollment group whose CA is on this chain (recognised: the CAs in --cert, --group-ca and the home)"
        );
    } else {
        let _ = writeln!(s, "  enrollment groups whose CA is on this chain:");
    }
    for grp in &h.groups {
        let verdict = if grp.chains {
            "the chain verifies to it".to_string()
        } else {
            grp.problems
                .first()
                .map(|p| format!("the chain does not verify to it: {}: {}", p.code, p.message))
                .unwrap_or_else(|| "the chain does not verify to it".into())
        };
        let _ = writeln!(
            s,
            "    {}  {}  {} CA {}: {verdict}",
            escape(&grp.enrollment_group_id),
            escape(
                grp.provisioning_status
                    .as_deref()
                    .unwrap_or("status not given")
            ),
            grp.certificate,
            escape(&grp.ca_subject),
        );
    }
    let d = &h.decision;
    let _ = writeln!(
        s,
        "DPS would decide now: {}: {}",
        d.status.as_str(),
        escape(&d.message)
    );
    s
}
