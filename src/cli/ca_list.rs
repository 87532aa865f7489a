//! `iotca ca list`: the home's CAs as a tree, devices under each.

use std::io::Write;

use time::OffsetDateTime;

use iotca::home::Home;
use iotca::home::inventory::{self, CaNode, Entry};
use iotca::text::escape;

use super::{CmdResult, Global, print_json};

/// Devices shown under a CA before the rest are summarised.
const SHOWN_DEVICES: usize = 8;

/// Runs `ca list`.
pub fn run(g: &Global, now: OffsetDateTime) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let inv = inventory::scan(&home, now)?;
    if g.json {
        print_json(&inv)?;
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", inv.home.display())?;
    if inv.cas.is_empty() && inv.orphans.is_empty() {
        writeln!(
            out,
            "  (no certificates; make a PKI with `iotca --home {} ca init`)",
            inv.home.display()
        )?;
        return Ok(0);
    }
    let n = inv.cas.len();
    for (i, ca) in inv.cas.iter().enumerate() {
        print_node(&mut out, ca, "", i + 1 == n && inv.orphans.is_empty())?;
    }
    if !inv.orphans.is_empty() {
        writeln!(out, "└── certificates whose issuer is not in this home")?;
        print_devices(&mut out, &inv.orphans, "    ")?;
    }
    for v in &inv.verification_certs {
        writeln!(
            out,
            "verification certificate (not a device): {}  {}",
            escape(&v.subject),
            validity(v)
        )?;
    }
    Ok(0)
}

fn validity(e: &Entry) -> String {
    if e.days_left < 0 {
        format!("EXPIRED {}", &e.not_after[..10])
    } else {
        format!("until {} ({} days)", &e.not_after[..10], e.days_left)
    }
}

fn print_node(
    out: &mut impl Write,
    node: &CaNode,
    prefix: &str,
    last: bool,
) -> std::io::Result<()> {
    let (branch, cont) = if last {
        ("└── ", "    ")
    } else {
        ("├── ", "│   ")
    };
    let key = if node.ca.has_key { "" } else { ", no key" };
    writeln!(
        out,
        "{prefix}{branch}[{}] {}  {}, {}{key}",
        escape(&node.ca.name),
        escape(&node.ca.subject),
        node.ca.key_algorithm,
        validity(&node.ca)
    )?;
    let inner = format!("{prefix}{cont}");
    let kids = node.children.len();
    for (i, c) in node.children.iter().enumerate() {
        print_node(out, c, &inner, i + 1 == kids && node.devices.is_empty())?;
    }
    if !node.devices.is_empty() {
        writeln!(out, "{inner}└── {} device(s)", node.devices.len())?;
        print_devices(out, &node.devices, &format!("{inner}    "))?;
    }
    Ok(())
}

fn print_devices(out: &mut impl Write, devices: &[Entry], prefix: &str) -> std::io::Result<()> {
    for d in devices.iter().take(SHOWN_DEVICES) {
        let cn = d.subject.strip_prefix("CN=").unwrap_or(&d.subject);
        let file_note = if cn == d.name {
            String::new()
        } else {
            format!(" ({})", escape(&d.name))
        };
        writeln!(out, "{prefix}{}{file_note}  {}", escape(cn), validity(d))?;
    }
    if devices.len() > SHOWN_DEVICES {
        writeln!(
            out,
            "{prefix}... and {} more (see --json)",
            devices.len() - SHOWN_DEVICES
        )?;
    }
    Ok(())
}
