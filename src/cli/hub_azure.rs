//! `hub device show|delete|disable|enable|list --azure`: the same questions
//! asked of a real IoT hub's identity registry.

use std::io::Write as _;

use super::azure_args::HubRemoteArgs;
use super::{CmdResult, Global, print_json};

fn out(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn not_found(id: &str, hub: &str, g: &Global) -> CmdResult {
    if g.json {
        print_json(
            &serde_json::json!({"ok": false, "device_id": id, "hub": hub, "error": "DeviceNotFound"}),
        )?;
    } else {
        eprintln!(
            "DeviceNotFound: device '{}' is not in {}",
            iotca::text::escape(id),
            iotca::text::escape(hub)
        );
    }
    Ok(1)
}

/// `hub device show ID --azure`.
pub fn show(id: &str, r: &HubRemoteArgs, g: &Global) -> CmdResult {
    let reg = r.registry()?;
    match reg.device(id)? {
        Some(d) => {
            print_json(&d.json)?;
            Ok(0)
        }
        None => not_found(id, reg.host_name(), g),
    }
}

/// `hub device delete ID --azure`: deleted, then read back DeviceNotFound.
pub fn delete(id: &str, r: &HubRemoteArgs, g: &Global) -> CmdResult {
    let reg = r.registry()?;
    if !reg.delete_device(id)? {
        return not_found(id, reg.host_name(), g);
    }
    if reg.device(id)?.is_some() {
        anyhow::bail!(
            "device '{}' still reads back from {} after DELETE",
            iotca::text::escape(id),
            reg.host_name()
        );
    }
    if g.json {
        print_json(
            &serde_json::json!({"ok": true, "device_id": id, "hub": reg.host_name(), "action": "deleted", "confirmed": true}),
        )?;
    } else if !g.quiet {
        out(&format!(
            "deleted device '{}' from {} (confirmed: DeviceNotFound)\n",
            iotca::text::escape(id),
            reg.host_name()
        ))?;
    }
    Ok(0)
}

/// `hub device disable|enable ID --azure`: PUT with the read etag, then read back.
pub fn set_status(id: &str, status: &str, r: &HubRemoteArgs, g: &Global) -> CmdResult {
    let reg = r.registry()?;
    if reg.set_status(id, status)?.is_none() {
        return not_found(id, reg.host_name(), g);
    }
    let back = reg.device(id)?;
    let confirmed = back.as_ref().and_then(|d| d.status()) == Some(status);
    if !confirmed {
        anyhow::bail!(
            "device '{}' on {} does not read back as {status}",
            iotca::text::escape(id),
            reg.host_name()
        );
    }
    if g.json {
        print_json(
            &serde_json::json!({"ok": true, "device_id": id, "hub": reg.host_name(), "status": status, "confirmed": true}),
        )?;
    } else if !g.quiet {
        out(&format!(
            "device '{}' on {} is {status} (confirmed)\n",
            iotca::text::escape(id),
            reg.host_name()
        ))?;
    }
    Ok(0)
}

/// `hub device list --azure`.
pub fn list(r: &HubRemoteArgs, g: &Global) -> CmdResult {
    let reg = r.registry()?;
    let devices = reg.devices()?;
    if g.json {
        print_json(&devices)?;
    } else {
        let mut s = String::new();
        for d in &devices {
            let field = |n: &str| d.get(n).and_then(|v| v.as_str()).unwrap_or("");
            s.push_str(&format!(
                "{}\t{}\n",
                iotca::text::escape(field("deviceId")),
                iotca::text::escape(field("status"))
            ));
        }
        out(&s)?;
    }
    Ok(0)
}
