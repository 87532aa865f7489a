//! The `az` commands that do in Azure what iotca does locally, quoted so a
//! POSIX shell (bash, zsh, dash) passes every value through unchanged.
//!
//! Flags follow the azure-iot CLI extension: `az iot dps enrollment create`,
//! `az iot dps enrollment-group create` and `az iot hub device-identity
//! delete`. A name not given is written as a shell variable (`"$DPS_NAME"`,
//! `"$HUB_NAME"`) for the user to set.

use super::schema::{EnrollmentGroup, IndividualEnrollment};

/// The variable standing in for a missing `--dps-name`.
pub const DPS_NAME_VAR: &str = "\"$DPS_NAME\"";
/// The variable standing in for a missing `--hub-name`.
pub const HUB_NAME_VAR: &str = "\"$HUB_NAME\"";

fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '%' | '+' | ',' | '=')
}

/// Quotes `s` as one word for a POSIX shell: unchanged when it holds only
/// characters no shell treats specially, else in single quotes with each
/// embedded `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(is_safe) && !s.starts_with('=') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn name_or(name: Option<&str>, var: &str) -> String {
    name.map(shell_quote).unwrap_or_else(|| var.to_string())
}

fn push(cmd: &mut String, flag: &str, value: &str) {
    cmd.push(' ');
    cmd.push_str(flag);
    cmd.push(' ');
    cmd.push_str(value);
}

fn hubs_and_policy(
    cmd: &mut String,
    hubs: Option<&Vec<String>>,
    policy: Option<super::schema::AllocationPolicy>,
) {
    if let Some(hubs) = hubs.filter(|h| !h.is_empty()) {
        push(cmd, "--iot-hubs", &shell_quote(&hubs.join(" ")));
    }
    if let Some(p) = policy {
        push(cmd, "--allocation-policy", p.as_str());
    }
}

/// `az iot dps enrollment create ...` for an individual X.509 enrollment
/// whose certificate is in the file `cert_path` (the leaf alone: az sends
/// the whole file).
pub fn enrollment_create(
    dps_name: Option<&str>,
    e: &IndividualEnrollment,
    cert_path: &str,
) -> String {
    let mut cmd = String::from("az iot dps enrollment create");
    push(&mut cmd, "--dps-name", &name_or(dps_name, DPS_NAME_VAR));
    push(
        &mut cmd,
        "--enrollment-id",
        &shell_quote(&e.registration_id),
    );
    push(&mut cmd, "--attestation-type", "x509");
    push(&mut cmd, "--certificate-path", &shell_quote(cert_path));
    push(
        &mut cmd,
        "--provisioning-status",
        e.provisioning_status.as_str(),
    );
    if let Some(d) = &e.device_id {
        push(&mut cmd, "--device-id", &shell_quote(d));
    }
    hubs_and_policy(&mut cmd, e.iot_hubs.as_ref(), e.allocation_policy);
    if e.capabilities.iot_edge {
        cmd.push_str(" --edge-enabled");
    }
    cmd
}

/// `az iot dps enrollment-group create ...` for an X.509 enrollment group
/// whose CA certificate is in the file `ca_path`.
pub fn group_create(dps_name: Option<&str>, g: &EnrollmentGroup, ca_path: &str) -> String {
    let mut cmd = String::from("az iot dps enrollment-group create");
    push(&mut cmd, "--dps-name", &name_or(dps_name, DPS_NAME_VAR));
    push(
        &mut cmd,
        "--enrollment-id",
        &shell_quote(&g.enrollment_group_id),
    );
    push(&mut cmd, "--certificate-path", &shell_quote(ca_path));
    push(
        &mut cmd,
        "--provisioning-status",
        g.provisioning_status.as_str(),
    );
    hubs_and_policy(&mut cmd, g.iot_hubs.as_ref(), g.allocation_policy);
    if g.capabilities.iot_edge {
        cmd.push_str(" --edge-enabled");
    }
    cmd
}

/// `az iot hub device-identity delete --hub-name HUB --device-id ID`.
pub fn hub_device_delete(hub_name: Option<&str>, device_id: &str) -> String {
    let mut cmd = String::from("az iot hub device-identity delete");
    push(&mut cmd, "--hub-name", &name_or(hub_name, HUB_NAME_VAR));
    push(&mut cmd, "--device-id", &shell_quote(device_id));
    cmd
}

/// What an `az iot dps enrollment[-group] update` changes.
#[derive(Debug, Clone, Default)]
pub struct Update<'a> {
    /// `--certificate-path`: the new primary certificate's file.
    pub certificate_path: Option<&'a str>,
    /// `--secondary-certificate-path`: the new secondary certificate's file.
    pub secondary_certificate_path: Option<&'a str>,
    /// `--remove-secondary-certificate`.
    pub remove_secondary: bool,
    /// `--provisioning-status`.
    pub status: Option<super::schema::ProvisioningStatus>,
}

fn update(kind: &str, dps_name: Option<&str>, id: &str, u: &Update<'_>) -> String {
    let mut cmd = format!("az iot dps {kind} update");
    push(&mut cmd, "--dps-name", &name_or(dps_name, DPS_NAME_VAR));
    push(&mut cmd, "--enrollment-id", &shell_quote(id));
    if let Some(p) = u.certificate_path {
        push(&mut cmd, "--certificate-path", &shell_quote(p));
    }
    if let Some(p) = u.secondary_certificate_path {
        push(&mut cmd, "--secondary-certificate-path", &shell_quote(p));
    }
    if u.remove_secondary {
        cmd.push_str(" --remove-secondary-certificate");
    }
    if let Some(s) = u.status {
        push(&mut cmd, "--provisioning-status", s.as_str());
    }
    cmd
}

/// `az iot dps enrollment-group update ...`.
pub fn group_update(dps_name: Option<&str>, group_id: &str, u: &Update<'_>) -> String {
    update("enrollment-group", dps_name, group_id, u)
}

/// `az iot dps enrollment update ...`.
pub fn enrollment_update(dps_name: Option<&str>, id: &str, u: &Update<'_>) -> String {
    update("enrollment", dps_name, id, u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::schema::ProvisioningStatus;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("sensor-thl-002"), "sensor-thl-002");
        assert_eq!(shell_quote("certs/a.pem"), "certs/a.pem");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_quote("~x"), "'~x'");
    }

    #[test]
    fn enrollment_command_matches_the_design_example() {
        let e =
            IndividualEnrollment::x509("sensor-thl-002", "P".into(), ProvisioningStatus::Disabled);
        assert_eq!(
            enrollment_create(Some("dps-X"), &e, "certs/sensor-thl-002.cert.pem"),
            "az iot dps enrollment create --dps-name dps-X --enrollment-id sensor-thl-002 \
             --attestation-type x509 --certificate-path certs/sensor-thl-002.cert.pem \
             --provisioning-status disabled"
        );
        assert!(enrollment_create(None, &e, "c.pem").contains("--dps-name \"$DPS_NAME\" "));
        assert_eq!(
            hub_device_delete(Some("hub-X"), "sensor-thl-002"),
            "az iot hub device-identity delete --hub-name hub-X --device-id sensor-thl-002"
        );
        assert!(hub_device_delete(None, "d").contains("--hub-name \"$HUB_NAME\" "));
    }
}
