//! What DPS does once it has decided, the same for the MQTT and the HTTPS
//! device API: allocate a hub (section 11: the enrollment's `iotHubs` and
//! `allocationPolicy`, the reprovision rule), add an assigned device to
//! that hub's registry ([`provision::register`]) and write the
//! registration record. A refused registration keeps the record's earlier
//! `assignedHub` and `deviceId`, so the device's hub can still be found.

use time::OffsetDateTime;

use super::emulator::{self, RegistrationState, Registrations};
use crate::cert;
use crate::enroll::EnrollmentKind;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::provision::{self, Decision, Status};

/// Allocates, registers and records under the home's lock. `decision` is
/// updated with the hub allocated. `hubs` are the emulator's `--hub` names.
pub fn commit(
    home: &Home,
    registrations: &Registrations,
    decision: &mut Decision,
    leaf: &[u8],
    hubs: &[String],
    now: OffsetDateTime,
) -> Result<RegistrationState> {
    let registration_id = decision
        .registration_id
        .clone()
        .ok_or_else(|| Error::Invalid("the decision has no registration ID".into()))?;
    let lock = home.lock()?;
    let previous = registrations.get(&registration_id).ok().flatten();
    let previous_hub = previous.as_ref().and_then(|p| p.assigned_hub.clone());
    let mut substatus = "initialAssignment";
    if decision.status == Status::Assigned {
        if let Some(alloc) = &decision.allocation {
            let hub = alloc.hub(hubs, &registration_id, previous_hub.as_deref());
            if let Some(old) = &decision.assigned_hub
                && old != &hub
            {
                decision.message = decision.message.replace(old.as_str(), &hub);
            }
            if previous_hub.as_deref().is_some_and(|p| p != hub) {
                substatus = "deviceDataMigrated";
            }
            decision.assigned_hub = Some(hub);
        }
        provision::register(&lock, decision, leaf, now)?;
    }
    let t = cert::rfc3339(now);
    let assigned = decision.status == Status::Assigned;
    let kept = |f: fn(&RegistrationState) -> Option<String>| previous.as_ref().and_then(f);
    let state = RegistrationState {
        registration_id,
        created_date_time_utc: Some(
            kept(|p| p.created_date_time_utc.clone()).unwrap_or_else(|| t.clone()),
        ),
        assigned_hub: if assigned {
            decision.assigned_hub.clone()
        } else {
            previous_hub
        },
        device_id: if assigned {
            decision.device_id.clone()
        } else {
            kept(|p| p.device_id.clone())
        },
        status: decision.status.as_str().into(),
        substatus: assigned.then(|| substatus.to_string()),
        error_code: None,
        error_message: None,
        last_updated_date_time_utc: Some(t),
        etag: Some(emulator::new_etag()),
        enrollment_group_id: decision
            .enrollment
            .as_ref()
            .filter(|e| e.kind == EnrollmentKind::Group)
            .map(|e| e.id.clone()),
    };
    registrations.put(&lock, &state)?;
    Ok(state)
}
