//! `enroll list|show|delete --azure` and `dps registrations --azure`: the
//! same questions asked of a real DPS through its service API.

use std::io::Write as _;

use serde_json::Value;

use super::azure_args::DpsRemoteArgs;
use super::{CmdResult, Global, print_json};

fn out(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn kind(group: bool) -> &'static str {
    if group {
        "enrollment group"
    } else {
        "enrollment"
    }
}

fn not_found(id: &str, group: bool, host: &str, g: &Global) -> CmdResult {
    if g.json {
        print_json(&serde_json::json!({"ok": false, "id": id, "error": "NotFound"}))?;
    } else {
        eprintln!(
            "no {} '{}' in {}",
            kind(group),
            iotca::text::escape(id),
            iotca::text::escape(host)
        );
    }
    Ok(1)
}

/// `enroll show ID --azure [--group]`: the record as DPS returns it.
pub fn show(id: &str, group: bool, r: &DpsRemoteArgs, g: &Global) -> CmdResult {
    let dps = r.dps()?;
    let rec = if group {
        dps.group(id)?
    } else {
        dps.enrollment(id)?
    };
    match rec {
        Some(rec) => {
            print_json(&rec.json)?;
            Ok(0)
        }
        None => not_found(id, group, dps.host_name(), g),
    }
}

/// `enroll delete ID --azure [--group]`: DELETE with the read etag, then read back 404.
pub fn delete(id: &str, group: bool, r: &DpsRemoteArgs, g: &Global) -> CmdResult {
    let dps = r.dps()?;
    let rec = if group {
        dps.group(id)?
    } else {
        dps.enrollment(id)?
    };
    let Some(rec) = rec else {
        return not_found(id, group, dps.host_name(), g);
    };
    let etag = rec.etag.as_deref();
    let deleted = if group {
        dps.delete_group(id, etag)?
    } else {
        dps.delete_enrollment(id, etag)?
    };
    let gone = if group {
        dps.group(id)?
    } else {
        dps.enrollment(id)?
    }
    .is_none();
    if !deleted || !gone {
        anyhow::bail!(
            "the {} '{}' still reads back from {} after DELETE",
            kind(group),
            iotca::text::escape(id),
            dps.host_name()
        );
    }
    if g.json {
        print_json(
            &serde_json::json!({"ok": true, "id": id, "kind": if group {"group"} else {"individual"}, "action": "deleted", "confirmed": true}),
        )?;
    } else if !g.quiet {
        out(&format!(
            "deleted {} '{}' from {} (confirmed: not found)\n",
            kind(group),
            iotca::text::escape(id),
            dps.host_name()
        ))?;
    }
    Ok(0)
}

fn field<'a>(v: &'a Value, n: &str) -> &'a str {
    v.get(n).and_then(Value::as_str).unwrap_or("")
}

/// `enroll list --azure`: every individual enrollment and enrollment group.
pub fn list(r: &DpsRemoteArgs, g: &Global) -> CmdResult {
    let dps = r.dps()?;
    let individual = dps.enrollments()?;
    let groups = dps.groups()?;
    if g.json {
        print_json(&serde_json::json!({"individual": individual, "groups": groups}))?;
        return Ok(0);
    }
    let mut s = String::new();
    for e in &individual {
        s.push_str(&format!(
            "individual\t{}\t{}\n",
            iotca::text::escape(field(e, "registrationId")),
            iotca::text::escape(field(e, "provisioningStatus"))
        ));
    }
    for e in &groups {
        s.push_str(&format!(
            "group\t{}\t{}\n",
            iotca::text::escape(field(e, "enrollmentGroupId")),
            iotca::text::escape(field(e, "provisioningStatus"))
        ));
    }
    out(&s)?;
    Ok(0)
}

/// `dps registrations --azure [--group G] [ID]`: registration states, which hub each device is on.
pub fn registrations(
    id: Option<&str>,
    group: Option<&str>,
    r: &DpsRemoteArgs,
    g: &Global,
) -> CmdResult {
    let dps = r.dps()?;
    let states: Vec<Value> = match (id, group) {
        (Some(id), _) => match dps.registration(id)? {
            Some(rec) => vec![rec.json],
            None => {
                if g.json {
                    print_json(
                        &serde_json::json!({"ok": false, "registration_id": id, "error": "NotFound"}),
                    )?;
                } else {
                    eprintln!(
                        "'{}' never registered with {}",
                        iotca::text::escape(id),
                        iotca::text::escape(dps.host_name())
                    );
                }
                return Ok(1);
            }
        },
        (None, Some(grp)) => dps.group_registrations(grp)?,
        (None, None) => anyhow::bail!("give ID or --group GROUP_ID with --azure"),
    };
    if g.json {
        print_json(&states)?;
        return Ok(0);
    }
    let mut s = String::new();
    for st in &states {
        s.push_str(&format!(
            "{}\t{}\thub={}\tdevice={}\n",
            iotca::text::escape(field(st, "registrationId")),
            iotca::text::escape(field(st, "status")),
            iotca::text::escape(field(st, "assignedHub")),
            iotca::text::escape(field(st, "deviceId"))
        ));
    }
    out(&s)?;
    Ok(0)
}

/// `enroll create|group create --to azure`, after the pre-flight: PUT (with
/// If-Match on the existing record's etag only with --force), then GET
/// confirming `provisioningStatus`.
pub fn create(
    id: &str,
    group: bool,
    body: &Value,
    force: bool,
    conn: &super::azure_args::AzureArgs,
    g: &Global,
) -> CmdResult {
    let settings = conn.settings()?;
    let dps = conn.dps(&settings)?;
    let get = |id: &str| -> anyhow::Result<_> {
        Ok(if group {
            dps.group(id)?
        } else {
            dps.enrollment(id)?
        })
    };
    let existing = get(id)?;
    let if_match = match &existing {
        Some(_) if !force => anyhow::bail!(
            "the {} '{}' already exists in {}; add --force to replace it",
            kind(group),
            iotca::text::escape(id),
            dps.host_name()
        ),
        Some(rec) => Some(rec.etag.clone().unwrap_or_else(|| "*".into())),
        None => None,
    };
    if group {
        let grp: iotca::enroll::EnrollmentGroup = serde_json::from_value(body.clone())?;
        dps.put_group(&grp, if_match.as_deref())?;
    } else {
        dps.put_enrollment_json(id, body, if_match.as_deref())?;
    }
    let want = body
        .get("provisioningStatus")
        .and_then(Value::as_str)
        .unwrap_or("enabled");
    let back = get(id)?;
    let status = back
        .as_ref()
        .and_then(|b| b.provisioning_status())
        .map(str::to_string);
    if status.as_deref() != Some(want) {
        anyhow::bail!(
            "the {} '{}' does not read back from {} as {want} (read: {})",
            kind(group),
            iotca::text::escape(id),
            dps.host_name(),
            status.as_deref().unwrap_or("nothing")
        );
    }
    if g.json {
        print_json(&serde_json::json!({
            "ok": true,
            "kind": if group { "group" } else { "individual" },
            "id": id,
            "action": if existing.is_some() { "replaced" } else { "created" },
            "provisioningStatus": want,
            "confirmed": true,
            "enrollment": back.map(|b| b.json),
        }))?;
    } else if !g.quiet {
        out(&format!(
            "{} {} '{}' in {}; read back: provisioningStatus {want}\n",
            if existing.is_some() {
                "replaced"
            } else {
                "created"
            },
            kind(group),
            iotca::text::escape(id),
            dps.host_name()
        ))?;
    }
    Ok(0)
}
