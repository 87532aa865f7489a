//! `deprovision ... --to azure`: the outcome of the library's workflow, printed.

use std::fmt::Write as _;
use std::io::Write as _;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde::Serialize;

use iotca::azure::deprovision::{self, HubAction, Outcome, Problem, Services};

use super::deprovision::{DeprovisionArgs, HubActionArg};
use super::enroll::{preflight, preflight_json, render_preflight};
use super::{CmdResult, Global, print_json};

/// Runs steps 2–5 for one device whose pre-flight passed.
pub fn run_one(a: &DeprovisionArgs, g: &Global, id: &str, leaf: &[u8]) -> CmdResult {
    let svc = services(a)?;
    let out = deprovision::deprovision(&svc, id, leaf, hub_action(a))?;
    if g.json {
        print_json(&out)?;
    } else if !g.quiet || !out.ok {
        std::io::stdout()
            .lock()
            .write_all(render(&out, svc.dps.host_name()).as_bytes())?;
    }
    Ok(if out.ok { 0 } else { 2 })
}

fn services(a: &DeprovisionArgs) -> anyhow::Result<Services> {
    let settings = a.azure.settings()?;
    Ok(Services {
        dps: a.azure.dps(&settings)?,
        hubs: a.azure.hubs()?,
        settings,
    })
}

fn hub_action(a: &DeprovisionArgs) -> HubAction {
    match a.hub_action {
        HubActionArg::Delete => HubAction::Delete,
        HubActionArg::Disable => HubAction::Disable,
    }
}

/// How many devices are in flight at once.
const CONCURRENCY: usize = 8;

/// `deprovision --ids-file F --certs-dir DIR --to azure`.
#[derive(Serialize)]
struct JsonMany<'a> {
    ok: bool,
    devices: &'a [Outcome],
}

/// Every pre-flight first (one refusal: exit 1, nothing sent), then the devices, 8 at a time.
pub fn run_many(a: &DeprovisionArgs, g: &Global, ids_file: &Path, dir: &Path) -> CmdResult {
    let text = std::fs::read_to_string(ids_file)
        .with_context(|| format!("cannot read the IDs file {}", ids_file.display()))?;
    let ids: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if ids.is_empty() {
        anyhow::bail!("the IDs file {} names no device", ids_file.display());
    }
    let mut leaves = Vec::with_capacity(ids.len());
    let mut refused = Vec::new();
    for id in &ids {
        let mut cert = dir.join(format!("{id}.cert.pem"));
        if !cert.is_file() {
            cert = dir.join(format!("{id}-full-chain.cert.pem"));
        }
        if !cert.is_file() {
            anyhow::bail!(
                "no certificate for '{}' in {} (looked for {id}.cert.pem and {id}-full-chain.cert.pem)",
                iotca::text::escape(id),
                dir.display()
            );
        }
        let (p, chain) = preflight(id, &cert, a.group_ca.as_deref())?;
        if p.ok {
            leaves.push(chain.into_iter().next().unwrap_or_default());
        } else {
            refused.push(p);
        }
    }
    if !refused.is_empty() {
        if g.json {
            let j: Vec<_> = refused.iter().map(preflight_json).collect();
            print_json(&serde_json::json!({"ok": false, "refused": j}))?;
        } else {
            for p in &refused {
                eprint!("{}", render_preflight(p));
            }
        }
        eprintln!(
            "{} of {} pre-flights refused; nothing was changed.",
            refused.len(),
            ids.len()
        );
        return Ok(1);
    }

    let svc = services(a)?;
    let action = hub_action(a);
    let bar = if g.quiet || g.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(ids.len() as u64), ProgressDrawTarget::stderr())
    };
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Outcome>>> = ids.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..CONCURRENCY.min(ids.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    let out = deprovision::deprovision(&svc, id, &leaves[i], action)
                        .unwrap_or_else(|e| Outcome {
                            ok: false,
                            registration_id: id.to_string(),
                            problems: vec![Problem {
                                code: "request_failed",
                                message: e.to_string(),
                            }],
                            steps: Vec::new(),
                        });
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let outcomes: Vec<Outcome> = results
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let ok = outcomes.iter().all(|o| o.ok);
    if g.json {
        print_json(&JsonMany {
            ok,
            devices: &outcomes,
        })?;
    } else {
        let mut s = String::new();
        for o in &outcomes {
            if o.ok && g.quiet {
                continue;
            }
            let _ = writeln!(s, "{}:", iotca::text::escape(&o.registration_id));
            for line in render(o, svc.dps.host_name()).lines() {
                let _ = writeln!(s, "  {line}");
            }
        }
        let done = outcomes.iter().filter(|o| o.ok).count();
        let _ = writeln!(
            s,
            "{done} of {} devices deprovisioned and confirmed",
            outcomes.len()
        );
        std::io::stdout().lock().write_all(s.as_bytes())?;
    }
    Ok(if ok { 0 } else { 2 })
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
