//! `deprovision --to azure` for one device, after its pre-flight passed:
//! the disabled individual enrollment (created, or updated with If-Match),
//! the device's hub from its registration state, the device deleted or
//! disabled there, each step read back. The outcome is data; the CLI prints it.

use serde::Serialize;
use serde_json::{Value, json};

use super::conn::ConnectionString;
use super::dps::{Dps, Record};
use super::http::{AzureError, Settings};
use super::hub::HubRegistry;

/// What to do with the device's hub identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubAction {
    /// Delete it (the default).
    Delete,
    /// Disable it, keeping the identity.
    Disable,
}

/// One step of the exercise.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `enrollment`, `registration` or `hub`.
    pub step: &'static str,
    /// What was done: `created`, `updated`, `unchanged`, `found`,
    /// `never_registered`, `deleted`, `disabled`, `not_found`, `skipped`.
    pub action: &'static str,
    /// The read-back confirmed the step's end state.
    pub confirmed: bool,
    /// The hub, for `registration` and `hub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// The hub device ID, for `registration` and `hub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `provisioningStatus` or the device `status` read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A reason the exercise is not complete.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `no_hub_connection_string`, `not_confirmed`.
    pub code: &'static str,
    /// One sentence.
    pub message: String,
}

/// The outcome for one device.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Every step done and confirmed.
    pub ok: bool,
    /// The registration ID.
    pub registration_id: String,
    /// What is left undone.
    pub problems: Vec<Problem>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// The services to act on.
pub struct Services {
    /// The DPS.
    pub dps: Dps,
    /// The hubs' connection strings (picked by `assignedHub`).
    pub hubs: Vec<ConnectionString>,
    /// Trust and timing for the hub clients.
    pub settings: Settings,
}

/// Does the enrollment DPS holds attest exactly this leaf?
fn same_certificate(rec: &Record, leaf_der: &[u8], leaf_pem: &str) -> bool {
    let primary = rec
        .json
        .pointer("/attestation/x509/clientCertificates/primary")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(t) = primary
        .pointer("/info/sha256Thumbprint")
        .and_then(Value::as_str)
    {
        return t.eq_ignore_ascii_case(&crate::cert::sha256_thumbprint(leaf_der));
    }
    if let Some(c) = primary.get("certificate").and_then(Value::as_str) {
        return c.trim() == leaf_pem.trim();
    }
    false
}

fn attestation(leaf_pem: &str) -> Value {
    json!({"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": leaf_pem}}}})
}

/// Runs steps 2–5 for `registration_id` whose certificate is `leaf_der`
/// (the pre-flight must have passed). Errors are requests that failed.
pub fn deprovision(
    svc: &Services,
    registration_id: &str,
    leaf_der: &[u8],
    hub_action: HubAction,
) -> Result<Outcome, AzureError> {
    let leaf_pem = crate::cert::to_pem(leaf_der);
    let mut steps = Vec::new();
    let mut problems = Vec::new();

    // 2. The disabled individual enrollment.
    let existing = svc.dps.enrollment(registration_id)?;
    let action = match &existing {
        Some(rec)
            if rec.provisioning_status() == Some("disabled")
                && same_certificate(rec, leaf_der, &leaf_pem) =>
        {
            "unchanged"
        }
        Some(rec) => {
            let mut body = rec.json.clone();
            body["provisioningStatus"] = json!("disabled");
            body["attestation"] = attestation(&leaf_pem);
            let etag = rec.etag.clone().unwrap_or_else(|| "*".into());
            svc.dps
                .put_enrollment_json(registration_id, &body, Some(&etag))?;
            "updated"
        }
        None => {
            let e = crate::enroll::IndividualEnrollment::x509(
                registration_id,
                leaf_pem.clone(),
                crate::enroll::ProvisioningStatus::Disabled,
            );
            svc.dps.put_enrollment(&e, None)?;
            "created"
        }
    };
    let back = svc.dps.enrollment(registration_id)?;
    let status = back
        .as_ref()
        .and_then(|b| b.provisioning_status())
        .map(str::to_string);
    let confirmed = back.as_ref().is_some_and(|b| {
        b.provisioning_status() == Some("disabled") && same_certificate(b, leaf_der, &leaf_pem)
    });
    if !confirmed {
        problems.push(Problem {
            code: "not_confirmed",
            message: format!(
                "the enrollment '{}' does not read back as disabled with this certificate",
                crate::text::escape(registration_id)
            ),
        });
    }
    steps.push(Step {
        step: "enrollment",
        action,
        confirmed,
        hub: None,
        device_id: None,
        status,
    });

    // 3. The device's hub, from its registration state.
    let reg = svc.dps.registration(registration_id)?;
    let assigned = reg.as_ref().and_then(|r| {
        let hub = r.str("assignedHub").filter(|h| !h.is_empty())?;
        let dev = r
            .str("deviceId")
            .filter(|d| !d.is_empty())
            .unwrap_or(registration_id);
        Some((hub.to_string(), dev.to_string()))
    });
    steps.push(Step {
        step: "registration",
        action: if assigned.is_some() {
            "found"
        } else {
            "never_registered"
        },
        confirmed: true,
        hub: assigned.as_ref().map(|a| a.0.clone()),
        device_id: assigned.as_ref().map(|a| a.1.clone()),
        status: reg
            .as_ref()
            .and_then(|r| r.str("status"))
            .map(str::to_string),
    });

    // 4. The device in that hub.
    if let Some((hub, device_id)) = assigned {
        match svc
            .hubs
            .iter()
            .find(|c| c.host_name.eq_ignore_ascii_case(&hub))
        {
            None => {
                problems.push(Problem {
                    code: "no_hub_connection_string",
                    message: format!(
                        "device '{}' is on hub '{}', for which no connection string was given (--hub-connection-string-file or IOTCA_HUB_CONNECTION_STRING); the DPS step is kept",
                        crate::text::escape(&device_id),
                        crate::text::escape(&hub)
                    ),
                });
                steps.push(Step {
                    step: "hub",
                    action: "skipped",
                    confirmed: false,
                    hub: Some(hub),
                    device_id: Some(device_id),
                    status: None,
                });
            }
            Some(conn) => {
                let reg = HubRegistry::new(conn.clone(), &svc.settings);
                let (action, confirmed, status) = match hub_action {
                    HubAction::Delete => {
                        let deleted = reg.delete_device(&device_id)?;
                        let gone = reg.device(&device_id)?.is_none();
                        (
                            if deleted { "deleted" } else { "not_found" },
                            gone,
                            gone.then(|| "DeviceNotFound".to_string()),
                        )
                    }
                    HubAction::Disable => {
                        let before = reg.device(&device_id)?;
                        let action = match &before {
                            None => "not_found",
                            Some(d) if d.status() == Some("disabled") => "unchanged",
                            Some(_) => {
                                reg.set_status(&device_id, "disabled")?;
                                "disabled"
                            }
                        };
                        let after = reg.device(&device_id)?;
                        let status = after.as_ref().and_then(|d| d.status()).map(str::to_string);
                        let ok = match &after {
                            None => true,
                            Some(d) => d.status() == Some("disabled"),
                        };
                        (action, ok, status.or(Some("DeviceNotFound".into())))
                    }
                };
                if !confirmed {
                    problems.push(Problem {
                        code: "not_confirmed",
                        message: format!(
                            "device '{}' on hub '{}' does not read back as {}",
                            crate::text::escape(&device_id),
                            crate::text::escape(&hub),
                            if hub_action == HubAction::Delete {
                                "DeviceNotFound"
                            } else {
                                "disabled"
                            }
                        ),
                    });
                }
                steps.push(Step {
                    step: "hub",
                    action,
                    confirmed,
                    hub: Some(hub),
                    device_id: Some(device_id),
                    status,
                });
            }
        }
    }
    Ok(Outcome {
        ok: problems.is_empty(),
        registration_id: registration_id.to_string(),
        problems,
        steps,
    })
}

#[cfg(test)]
#[path = "deprovision_tests.rs"]
mod tests;
