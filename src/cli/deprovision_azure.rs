//! `deprovision ... --to azure`: the outcome of the library's workflow, printed.

use std::fmt::Write as _;
use std::io::Write as _;

use iotca::azure::deprovision::{self, HubAction, Outcome, Services};

use super::deprovision::{DeprovisionArgs, HubActionArg};
use super::{CmdResult, Global, print_json};

/// Runs steps 2–5 for one device whose pre-flight passed.
pub fn run_one(a: &DeprovisionArgs, g: &Global, leaf: &[u8]) -> CmdResult {
    let settings = a.azure.settings()?;
    let svc = Services {
        dps: a.azure.dps(&settings)?,
        hubs: a.azure.hubs()?,
        settings,
    };
    let action = match a.hub_action {
        HubActionArg::Delete => HubAction::Delete,
        HubActionArg::Disable => HubAction::Disable,
    };
    let out = deprovision::deprovision(&svc, &a.id, leaf, action)?;
    if g.json {
        print_json(&out)?;
    } else if !g.quiet || !out.ok {
        std::io::stdout()
            .lock()
            .write_all(render(&out, svc.dps.host_name()).as_bytes())?;
    }
    Ok(if out.ok { 0 } else { 2 })
}

/// The outcome for people: one line a step, then the problems.
pub fn render(o: &Outcome, dps_host: &str) -> String {
    let esc = |s: &str| iotca::text::escape(s).into_owned();
    let mut s = String::new();
    let id = esc(&o.registration_id);
    for st in &o.steps {
        let hub = st.hub.as_deref().map(esc).unwrap_or_default();
        let dev = st.device_id.as_deref().map(esc).unwrap_or_default();
        let line = match (st.step, st.action) {
            ("enrollment", "created") => format!(
                "enrollment: created disabled individual enrollment '{id}' in {}",
                esc(dps_host)
            ),
            ("enrollment", "updated") => format!(
                "enrollment: updated the individual enrollment '{id}' to disabled (If-Match)"
            ),
            ("enrollment", _) => format!(
                "enrollment: '{id}' already is a disabled individual enrollment for this certificate"
            ),
            ("registration", "found") => {
                format!("registration: '{id}' is device '{dev}' on hub '{hub}'")
            }
            ("registration", _) => {
                format!("registration: '{id}' never registered; no hub entry to remove")
            }
            ("hub", "deleted") => format!("hub: deleted device '{dev}' from '{hub}'"),
            ("hub", "disabled") => format!("hub: disabled device '{dev}' on '{hub}'"),
            ("hub", "unchanged") => format!("hub: device '{dev}' on '{hub}' was already disabled"),
            ("hub", "not_found") => {
                format!("hub: device '{dev}' was not in '{hub}'; nothing to remove")
            }
            ("hub", _) => format!("hub: device '{dev}' on '{hub}' not touched"),
            _ => String::new(),
        };
        let conf = if st.confirmed {
            match (st.step, st.status.as_deref()) {
                (_, Some(status)) => format!(" (confirmed: {})", esc(status)),
                _ => " (confirmed)".into(),
            }
        } else {
            " (NOT confirmed)".into()
        };
        let _ = writeln!(s, "{line}{conf}");
    }
    for p in &o.problems {
        let _ = writeln!(s, "problem [{}]: {}", p.code, p.message);
    }
    s
}
