//! The DPS provisioning decision, simulated against the local store
//! (DESIGN section 6). One function decides for `iotca provision`, `audit`
//! and the local DPS endpoint: [`decide`] (reading the store afresh) or
//! [`Snapshot::decide`] (the store read once, for many devices).
//!
//! Given the chain a device presents (leaf first):
//!
//! 0. The leaf must parse, have exactly one CN that is a valid registration
//!    ID (the CN IS the registration ID with X.509 attestation), and be
//!    within its validity (DPS refuses expired client certificates at the
//!    TLS handshake); otherwise `failed`.
//! 1. An individual enrollment whose registration ID equals the CN
//!    (case-insensitively) decides alone: disabled → `disabled`; enabled and
//!    its primary or secondary certificate is the leaf (same DER) →
//!    `assigned`; otherwise `failed` (DPS does not fall back to groups).
//! 2. Else the issuers along the presented chain, from the leaf's issuer up
//!    to the root (by name; the root need not be presented): the first
//!    enrollment group whose signing certificate has that name and to which
//!    the chain verifies ([`crate::verify`], same subject and same key)
//!    decides: disabled → `disabled`, enabled → `assigned`. Groups with the
//!    same CA are taken in ID order.
//! 3. Else `failed` (unauthorized).
//!
//! An assigned device's ID is the enrollment's `deviceId`, else the
//! registration ID; its hub is the enrollment's first `iotHubs` entry, else
//! [`DEFAULT_HUB`] (the local simulation has no linked hubs). Allocation
//! policies are not simulated.
//!
//! A broken group record is skipped with a warning in the decision; a broken
//! record for the device's own registration ID is an error, since it would
//! decide.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cert;
use crate::enroll::schema::{AllocationPolicy, ProvisioningStatus};
use crate::enroll::{EnrollmentKind, EnrollmentStore, StoredGroup, StoredIndividual};
use crate::error::{Error, Result};
use crate::home::Locked;
use crate::hub::{Device, Registry};
use crate::ids;
use crate::verify::{GroupCas, MAX_DEPTH};

/// The hub a device is assigned to when its enrollment lists none.
pub const DEFAULT_HUB: &str = "iotca-local-hub.azure-devices.net";

/// The outcome DPS reports to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Provisioned to a hub.
    Assigned,
    /// The enrollment that matched is disabled.
    Disabled,
    /// No enrollment admits the device (unauthorized).
    Failed,
}

impl Status {
    /// `assigned`, `disabled` or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Assigned => "assigned",
            Status::Disabled => "disabled",
            Status::Failed => "failed",
        }
    }
}

/// The enrollment that decided: `{"kind": "individual|group", "id": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentRef {
    /// Individual enrollment or enrollment group.
    pub kind: EnrollmentKind,
    /// Its registration ID or enrollment group ID.
    pub id: String,
}

/// What DPS would answer the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `assigned`, `disabled` or `failed`.
    pub status: Status,
    /// The registration ID (the leaf's CN), when there is one.
    pub registration_id: Option<String>,
    /// The IoT hub device ID, when assigned.
    pub device_id: Option<String>,
    /// The hub host name, when assigned.
    pub assigned_hub: Option<String>,
    /// The enrollment that decided, if one did.
    pub enrollment: Option<EnrollmentRef>,
    /// What the device would be told, in words.
    pub message: String,
    /// Broken records skipped while deciding (each names its file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How the deciding enrollment allocates a hub (for the emulator,
    /// which knows its hubs and the device's earlier registration).
    #[serde(skip)]
    pub allocation: Option<Allocation>,
}

/// An enrollment's allocation settings (DESIGN section 11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    /// `iotHubs`; None or empty: every hub of the emulator.
    pub iot_hubs: Option<Vec<String>>,
    /// `allocationPolicy`; None is `hashed`.
    pub policy: Option<AllocationPolicy>,
    /// `iotHubHostName` (for `static`).
    pub static_hub: Option<String>,
    /// `reprovisionPolicy.updateHubAssignment`.
    pub update_hub_assignment: bool,
}

impl Allocation {
    /// The hubs the enrollment may assign to, given the emulator's hubs
    /// (none: [`DEFAULT_HUB`]).
    pub fn candidates(&self, server_hubs: &[String]) -> Vec<String> {
        match &self.iot_hubs {
            Some(h) if !h.is_empty() => h.clone(),
            _ if !server_hubs.is_empty() => server_hubs.to_vec(),
            _ => vec![DEFAULT_HUB.to_string()],
        }
    }

    /// The hub for `registration_id`: `hashed` (evenly weighted,
    /// deterministic in the lower-cased registration ID), `static`
    /// (`iotHubHostName`, else the first hub), `geoLatency` and `custom`
    /// (locally: the first hub). With `previous` (the hub of the device's
    /// earlier registration): kept while it is still among the hubs, and
    /// kept anyway when `updateHubAssignment` is false.
    pub fn hub(
        &self,
        server_hubs: &[String],
        registration_id: &str,
        previous: Option<&str>,
    ) -> String {
        let hubs = self.candidates(server_hubs);
        if let Some(p) = previous
            && (hubs.iter().any(|h| h.eq_ignore_ascii_case(p)) || !self.update_hub_assignment)
        {
            return p.to_string();
        }
        match self.policy.unwrap_or(AllocationPolicy::Hashed) {
            AllocationPolicy::Hashed => {
                let digest = ring::digest::digest(
                    &ring::digest::SHA256,
                    registration_id.to_ascii_lowercase().as_bytes(),
                );
                let mut n = [0u8; 8];
                n.copy_from_slice(&digest.as_ref()[..8]);
                hubs[(u64::from_be_bytes(n) % hubs.len() as u64) as usize].clone()
            }
            AllocationPolicy::Static => self.static_hub.clone().unwrap_or_else(|| hubs[0].clone()),
            AllocationPolicy::GeoLatency | AllocationPolicy::Custom => hubs[0].clone(),
        }
    }
}

fn allocation_of(
    iot_hubs: Option<&Vec<String>>,
    policy: Option<AllocationPolicy>,
    other: &std::collections::BTreeMap<String, serde_json::Value>,
    reprovision: crate::enroll::schema::ReprovisionPolicy,
) -> Allocation {
    Allocation {
        iot_hubs: iot_hubs.cloned(),
        policy,
        static_hub: other
            .get("iotHubHostName")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        update_hub_assignment: reprovision.update_hub_assignment,
    }
}

impl Decision {
    fn failed(registration_id: Option<String>, reason: impl std::fmt::Display) -> Self {
        Decision {
            status: Status::Failed,
            registration_id,
            device_id: None,
            assigned_hub: None,
            enrollment: None,
            message: format!("unauthorized: {reason}"),
            warnings: Vec::new(),
            allocation: None,
        }
    }

    fn by(
        kind: EnrollmentKind,
        id: &str,
        status: ProvisioningStatus,
        registration_id: &str,
        device_id: Option<&str>,
        allocation: Allocation,
    ) -> Self {
        let enrollment = Some(EnrollmentRef {
            kind,
            id: id.to_string(),
        });
        let what = format!("{} enrollment '{id}'", kind.as_str());
        match status {
            ProvisioningStatus::Disabled => Decision {
                status: Status::Disabled,
                registration_id: Some(registration_id.to_string()),
                device_id: None,
                assigned_hub: None,
                enrollment,
                message: format!("registration status is disabled ({what} is disabled)"),
                warnings: Vec::new(),
                allocation: Some(allocation),
            },
            ProvisioningStatus::Enabled => {
                let device = device_id.unwrap_or(registration_id).to_string();
                let hub = allocation.hub(&[], registration_id, None);
                Decision {
                    status: Status::Assigned,
                    registration_id: Some(registration_id.to_string()),
                    message: format!("assigned to hub {hub} as device {device} (by {what})"),
                    device_id: Some(device),
                    assigned_hub: Some(hub),
                    enrollment,
                    warnings: Vec::new(),
                    allocation: Some(allocation),
                }
            }
        }
    }
}

/// An enrollment group ready for verification.
#[derive(Debug, Clone)]
struct PreparedGroup {
    stored: StoredGroup,
    cas: GroupCas,
    subjects: Vec<Vec<u8>>,
}

/// The enrollment groups of a store, parsed and prepared once.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    prepared: Vec<PreparedGroup>,
    warnings: Vec<String>,
}

impl Groups {
    /// Reads every enrollment group; broken ones become warnings.
    pub fn load(store: &EnrollmentStore) -> Groups {
        let listing = store.groups();
        let mut groups = Groups {
            prepared: Vec::new(),
            warnings: listing
                .errors
                .iter()
                .map(|e| format!("skipped a broken enrollment group record: {e}"))
                .collect(),
        };
        for stored in listing.records {
            match GroupCas::new(&stored.certificates) {
                Ok(cas) => {
                    let subjects = stored
                        .certificates
                        .iter()
                        .filter_map(|d| {
                            cert::parse_der(d)
                                .ok()
                                .map(|x| x.subject().as_raw().to_vec())
                        })
                        .collect();
                    groups.prepared.push(PreparedGroup {
                        stored,
                        cas,
                        subjects,
                    });
                }
                Err(e) => groups.warnings.push(format!(
                    "skipped a broken enrollment group record: {}: {e}",
                    stored.path.display()
                )),
            }
        }
        groups
    }

    /// How many groups were read.
    pub fn len(&self) -> usize {
        self.prepared.len()
    }

    /// True when no group was read.
    pub fn is_empty(&self) -> bool {
        self.prepared.is_empty()
    }
}

/// The whole store read once, to decide for many devices (audit).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    individuals: HashMap<String, StoredIndividual>,
    broken: HashMap<String, (PathBuf, String)>,
    groups: Groups,
}

impl Snapshot {
    /// Reads every enrollment in the store.
    pub fn load(store: &EnrollmentStore) -> Snapshot {
        let listing = store.individuals();
        let mut snap = Snapshot {
            groups: Groups::load(store),
            ..Snapshot::default()
        };
        for r in listing.records {
            snap.individuals.insert(
                ids::registration_file_stem(&r.enrollment.registration_id),
                r,
            );
        }
        for e in listing.errors {
            if let Error::BadRecord { path, reason } = e {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_string();
                snap.broken.insert(stem, (path, reason));
            }
        }
        snap
    }

    /// True when the store holds no enrollment at all.
    pub fn is_empty(&self) -> bool {
        self.individuals.is_empty() && self.broken.is_empty() && self.groups.is_empty()
    }

    /// The state of the individual enrollment for a registration ID
    /// (matched case-insensitively): `enabled`, `disabled`, `broken` for an
    /// unreadable record, or None when there is none.
    pub fn individual_state(&self, registration_id: &str) -> Option<&'static str> {
        let stem = ids::registration_file_stem(registration_id);
        if self.broken.contains_key(&stem) {
            return Some("broken");
        }
        self.individuals
            .get(&stem)
            .map(|r| r.enrollment.provisioning_status.as_str())
    }

    /// The decision for a device presenting `chain` (leaf first) at `now`.
    /// Errors only when the individual enrollment record for the device's
    /// registration ID is broken.
    pub fn decide<D: AsRef<[u8]>>(&self, chain: &[D], now: OffsetDateTime) -> Result<Decision> {
        decide_with(
            |id| {
                let stem = ids::registration_file_stem(id);
                if let Some((path, reason)) = self.broken.get(&stem) {
                    return Err(Error::BadRecord {
                        path: path.clone(),
                        reason: reason.clone(),
                    });
                }
                Ok(self.individuals.get(&stem).cloned())
            },
            &self.groups,
            chain,
            now,
        )
    }
}

/// The decision for a device presenting `chain` (leaf first) at `now`,
/// reading the store afresh. Errors only when the store cannot be read for
/// the device's own registration ID (its record is broken or unreadable).
pub fn decide<D: AsRef<[u8]>>(
    store: &EnrollmentStore,
    chain: &[D],
    now: OffsetDateTime,
) -> Result<Decision> {
    let groups = Groups::load(store);
    decide_with(|id| store.individual(id), &groups, chain, now)
}

fn decide_with<D: AsRef<[u8]>>(
    individual: impl Fn(&str) -> Result<Option<StoredIndividual>>,
    groups: &Groups,
    chain: &[D],
    now: OffsetDateTime,
) -> Result<Decision> {
    let mut d = decide_inner(individual, groups, chain, now)?;
    d.warnings.extend(groups.warnings.iter().cloned());
    Ok(d)
}

fn decide_inner<D: AsRef<[u8]>>(
    individual: impl Fn(&str) -> Result<Option<StoredIndividual>>,
    groups: &Groups,
    chain: &[D],
    now: OffsetDateTime,
) -> Result<Decision> {
    let Some(leaf_der) = chain.first().map(AsRef::as_ref) else {
        return Ok(Decision::failed(
            None,
            "the device presented no certificate",
        ));
    };
    let leaf = match cert::parse_der(leaf_der) {
        Ok(x) => x,
        Err(e) => {
            return Ok(Decision::failed(
                None,
                format!("the device certificate {e}"),
            ));
        }
    };
    let cns = cert::common_names(&leaf);
    let cn = match cns.as_slice() {
        [one] => one.clone(),
        [] => {
            return Ok(Decision::failed(
                None,
                "the device certificate has no CN, so there is no registration ID",
            ));
        }
        _ => {
            return Ok(Decision::failed(
                None,
                "the device certificate has several CNs, so the registration ID is ambiguous",
            ));
        }
    };
    if let Err(e) = ids::check_x509_registration_id(&cn) {
        return Ok(Decision::failed(Some(cn), e));
    }
    let validity = leaf.validity();
    if validity.not_after.to_datetime() < now {
        let at = cert::rfc3339(validity.not_after.to_datetime());
        return Ok(Decision::failed(
            Some(cn),
            format!("the device certificate expired at {at}"),
        ));
    }
    if validity.not_before.to_datetime() > now {
        let at = cert::rfc3339(validity.not_before.to_datetime());
        return Ok(Decision::failed(
            Some(cn),
            format!("the device certificate is not valid before {at}"),
        ));
    }

    // 1. The individual enrollment for the CN decides alone.
    if let Some(ind) = individual(&cn)? {
        let e = &ind.enrollment;
        if e.provisioning_status == ProvisioningStatus::Enabled
            && !ind.certificates.iter().any(|c| c.as_slice() == leaf_der)
        {
            let mut d = Decision::failed(
                Some(cn),
                format!(
                    "the device certificate is not the one in individual enrollment '{}' (an individual enrollment for this registration ID exists, so DPS does not try enrollment groups)",
                    e.registration_id
                ),
            );
            d.enrollment = Some(EnrollmentRef {
                kind: EnrollmentKind::Individual,
                id: e.registration_id.clone(),
            });
            return Ok(d);
        }
        return Ok(Decision::by(
            EnrollmentKind::Individual,
            &e.registration_id,
            e.provisioning_status,
            &cn,
            e.device_id.as_deref(),
            allocation_of(
                e.iot_hubs.as_ref(),
                e.allocation_policy,
                &e.other,
                e.reprovision_policy,
            ),
        ));
    }

    // 2. Enrollment groups, from the leaf's issuer upward.
    let parsed: Vec<_> = chain
        .iter()
        .skip(1)
        .filter_map(|d| cert::parse_der(d.as_ref()).ok())
        .collect();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut cur_issuer = leaf.issuer().as_raw().to_vec();
    let mut cur_subject = leaf.subject().as_raw().to_vec();
    for _ in 0..MAX_DEPTH {
        if levels.contains(&cur_issuer) {
            break;
        }
        levels.push(cur_issuer.clone());
        if cur_issuer == cur_subject {
            break;
        }
        match parsed
            .iter()
            .find(|x| x.subject().as_raw() == cur_issuer.as_slice())
        {
            Some(next) => {
                cur_subject = next.subject().as_raw().to_vec();
                cur_issuer = next.issuer().as_raw().to_vec();
            }
            None => break,
        }
    }
    let mut tried = vec![false; groups.prepared.len()];
    let mut reasons = Vec::new();
    let order = levels
        .iter()
        .flat_map(|name| {
            groups
                .prepared
                .iter()
                .enumerate()
                .filter(move |(_, g)| g.subjects.iter().any(|s| s == name))
                .map(|(i, _)| i)
        })
        .chain(0..groups.prepared.len())
        .collect::<Vec<_>>();
    for i in order {
        if std::mem::replace(&mut tried[i], true) {
            continue;
        }
        let g = &groups.prepared[i];
        let verdict = g.cas.verify(chain, now);
        let group = &g.stored.group;
        if verdict.chains {
            return Ok(Decision::by(
                EnrollmentKind::Group,
                &group.enrollment_group_id,
                group.provisioning_status,
                &cn,
                None,
                allocation_of(
                    group.iot_hubs.as_ref(),
                    group.allocation_policy,
                    &group.other,
                    group.reprovision_policy,
                ),
            ));
        }
        if g.subjects.iter().any(|s| levels.contains(s))
            && let Some(p) = verdict.problems.first()
        {
            reasons.push(format!(
                "the chain does not verify to enrollment group '{}' ({}: {})",
                group.enrollment_group_id, p.code, p.message
            ));
        }
    }

    // 3. Nothing admits the device.
    let why = if reasons.is_empty() {
        format!(
            "no individual enrollment for registration ID '{cn}' and no enrollment group whose CA is on the device's chain"
        )
    } else {
        format!(
            "no individual enrollment for registration ID '{cn}'; {}",
            reasons.join("; ")
        )
    };
    Ok(Decision::failed(Some(cn), why))
}

/// Does what DPS does after `assigned`: adds the device to the local IoT
/// hub registry (when not already there). An individual enrollment's
/// device is registered by the leaf's thumbprint (`selfSigned`), a group's
/// as `certificateAuthority`. Returns the record written, or None when
/// there was nothing to do, under the caller's lock.
pub fn register(
    lock: &Locked<'_>,
    decision: &Decision,
    leaf_der: &[u8],
    now: OffsetDateTime,
) -> Result<Option<PathBuf>> {
    let (Status::Assigned, Some(device_id), Some(e)) = (
        decision.status,
        decision.device_id.as_deref(),
        decision.enrollment.as_ref(),
    ) else {
        return Ok(None);
    };
    let registry = Registry::new(lock.home().clone());
    if let Some(mut old) = registry.get(device_id)? {
        // Already registered; a device that moved to another hub moves
        // its record with it (a device ID is unique across the hubs).
        match (&decision.assigned_hub, &old.hub) {
            (Some(new), Some(was)) if new != was => {
                old.hub = Some(new.clone());
                registry.delete(lock, device_id)?;
                return registry.add(lock, &old).map(Some);
            }
            _ => return Ok(None),
        }
    }
    let mut device = match e.kind {
        EnrollmentKind::Individual => Device::with_thumbprint(device_id, leaf_der, now),
        EnrollmentKind::Group => Device::ca_signed(device_id, now),
    };
    device.hub = decision.assigned_hub.clone();
    registry.add(lock, &device).map(Some)
}

impl crate::audit::EnrollmentLookup for Snapshot {
    fn lookup(
        &self,
        cn: &str,
        chain: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> crate::audit::EnrollmentInfo {
        crate::audit::EnrollmentInfo {
            enrollment: self.individual_state(cn).map(str::to_string),
            provisioning: Some(match self.decide(chain, at) {
                Ok(d) => d.status.as_str().to_string(),
                Err(_) => "error".to_string(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::enroll::schema::{EnrollmentGroup, IndividualEnrollment};
    use crate::home::Home;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    /// Root, intermediate, and a leaf with CN `cn` under it (DER).
    pub(crate) struct Pki {
        pub root: Vec<u8>,
        pub inter: Vec<u8>,
        pub leaf: Vec<u8>,
    }

    pub(crate) fn pki(cn: &str) -> Pki {
        let ca_params = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        };
        let rk = KeyPair::generate().unwrap();
        let root = ca_params("Root").self_signed(&rk).unwrap();
        let ik = KeyPair::generate().unwrap();
        let root_params = ca_params("Root");
        let root_issuer = rcgen::Issuer::from_params(&root_params, &rk);
        let inter = ca_params("Inter").signed_by(&ik, &root_issuer).unwrap();
        let inter_params = ca_params("Inter");
        let inter_issuer = rcgen::Issuer::from_params(&inter_params, &ik);
        let lk = KeyPair::generate().unwrap();
        let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
        lp.distinguished_name.push(DnType::CommonName, cn);
        let leaf = lp.signed_by(&lk, &inter_issuer).unwrap();
        Pki {
            root: root.der().to_vec(),
            inter: inter.der().to_vec(),
            leaf: leaf.der().to_vec(),
        }
    }

    fn store() -> (tempfile::TempDir, EnrollmentStore) {
        let t = tempfile::tempdir().unwrap();
        let h = Home::create(t.path()).unwrap();
        (t, EnrollmentStore::new(h))
    }

    fn group(s: &EnrollmentStore, id: &str, ca: &[u8], status: ProvisioningStatus) {
        s.create_group(
            &s.home().lock().unwrap(),
            &EnrollmentGroup::x509(id, cert::to_pem(ca), status),
        )
        .unwrap();
    }

    fn individual(s: &EnrollmentStore, id: &str, leaf: &[u8], status: ProvisioningStatus) {
        s.create_individual(
            &s.home().lock().unwrap(),
            &IndividualEnrollment::x509(id, cert::to_pem(leaf), status),
        )
        .unwrap();
    }

    #[test]
    fn the_decision_table() {
        use ProvisioningStatus::{Disabled, Enabled};
        let now = OffsetDateTime::now_utc();
        let p = pki("dev-1");
        let foreign = pki("dev-1");
        let chain = [p.leaf.clone(), p.inter.clone(), p.root.clone()];
        let fchain = [foreign.leaf.clone(), foreign.inter.clone()];
        let (_t, s) = store();

        // Nothing enrolled.
        let d = decide(&s, &chain, now).unwrap();
        assert_eq!(d.status, Status::Failed);
        assert_eq!(d.registration_id.as_deref(), Some("dev-1"));

        // Group over the intermediate.
        group(&s, "fleet", &p.inter, Enabled);
        let d = decide(&s, &chain, now).unwrap();
        assert_eq!(d.status, Status::Assigned, "{d:?}");
        assert_eq!(d.device_id.as_deref(), Some("dev-1"));
        assert_eq!(d.assigned_hub.as_deref(), Some(DEFAULT_HUB));
        assert_eq!(d.enrollment.as_ref().unwrap().kind, EnrollmentKind::Group);
        // Same names, other keys: not this group.
        let d = decide(&s, &fchain, now).unwrap();
        assert_eq!(d.status, Status::Failed, "{d:?}");
        assert!(d.message.contains("fleet"), "{}", d.message);

        // A disabled individual enrollment blocks even its own leaf, and
        // (by ID) the foreign device too.
        individual(&s, "DEV-1", &p.leaf, Disabled);
        for c in [&chain[..], &fchain[..]] {
            let d = decide(&s, c, now).unwrap();
            assert_eq!(d.status, Status::Disabled);
            assert_eq!(
                d.message,
                "registration status is disabled (individual enrollment 'DEV-1' is disabled)"
            );
        }
        // Snapshot agrees.
        let snap = Snapshot::load(&s);
        assert_eq!(snap.decide(&chain, now).unwrap().status, Status::Disabled);

        // Enabled individual: only its own certificate.
        s.replace_individual(
            &s.home().lock().unwrap(),
            &IndividualEnrollment::x509("dev-1", cert::to_pem(&p.leaf), Enabled),
        )
        .unwrap();
        let d = decide(&s, std::slice::from_ref(&p.leaf), now).unwrap();
        assert_eq!(d.status, Status::Assigned);
        assert_eq!(
            d.enrollment.as_ref().unwrap().kind,
            EnrollmentKind::Individual
        );
        assert_eq!(decide(&s, &fchain, now).unwrap().status, Status::Failed);

        // Deleted: back to the group; a disabled group says disabled.
        s.delete_individual(&s.home().lock().unwrap(), "dev-1")
            .unwrap();
        s.delete_group(&s.home().lock().unwrap(), "fleet").unwrap();
        group(&s, "fleet", &p.inter, Disabled);
        assert_eq!(decide(&s, &chain, now).unwrap().status, Status::Disabled);
    }

    #[test]
    fn the_nearest_group_on_the_chain_wins() {
        let now = OffsetDateTime::now_utc();
        let p = pki("dev-2");
        let (_t, s) = store();
        group(&s, "a-root", &p.root, ProvisioningStatus::Disabled);
        group(&s, "z-inter", &p.inter, ProvisioningStatus::Enabled);
        let d = decide(&s, &[p.leaf.clone(), p.inter.clone()], now).unwrap();
        assert_eq!(d.enrollment.unwrap().id, "z-inter");
        // The root group decides when the device presents the intermediate
        // and only the root is enrolled.
        s.delete_group(&s.home().lock().unwrap(), "z-inter")
            .unwrap();
        let d = decide(&s, &[p.leaf.clone(), p.inter.clone()], now).unwrap();
        assert_eq!(d.status, Status::Disabled);
        assert_eq!(d.enrollment.unwrap().id, "a-root");
        // Without the intermediate the chain does not reach the root.
        let d = decide(&s, std::slice::from_ref(&p.leaf), now).unwrap();
        assert_eq!(d.status, Status::Failed);
    }

    #[test]
    fn a_group_admits_chains_to_its_primary_or_its_secondary() {
        let now = OffsetDateTime::now_utc();
        let old = pki("old-dev");
        let new = pki("new-dev");
        let (_t, s) = store();
        let mut g = EnrollmentGroup::x509(
            "fleet",
            cert::to_pem(&old.inter),
            ProvisioningStatus::Enabled,
        );
        s.create_group(&s.home().lock().unwrap(), &g).unwrap();
        let old_chain = [old.leaf.clone(), old.inter.clone()];
        let new_chain = [new.leaf.clone(), new.inter.clone()];
        assert_eq!(
            decide(&s, &old_chain, now).unwrap().status,
            Status::Assigned
        );
        assert_eq!(decide(&s, &new_chain, now).unwrap().status, Status::Failed);
        // Both certificates: both generations (the snapshot agrees).
        g.signing_certificates_mut()
            .unwrap()
            .set_secondary(cert::to_pem(&new.inter));
        s.replace_group(&s.home().lock().unwrap(), &g).unwrap();
        let snap = Snapshot::load(&s);
        for c in [&old_chain, &new_chain] {
            assert_eq!(decide(&s, c, now).unwrap().status, Status::Assigned);
            assert_eq!(snap.decide(c, now).unwrap().status, Status::Assigned);
        }
        // Promoted: the old generation is refused.
        assert!(g.signing_certificates_mut().unwrap().promote_secondary());
        s.replace_group(&s.home().lock().unwrap(), &g).unwrap();
        assert_eq!(
            decide(&s, &new_chain, now).unwrap().status,
            Status::Assigned
        );
        let d = decide(&s, &old_chain, now).unwrap();
        assert_eq!(d.status, Status::Failed, "{d:?}");
    }

    #[test]
    fn broken_records() {
        let now = OffsetDateTime::now_utc();
        let p = pki("dev-3");
        let (_t, s) = store();
        group(&s, "fleet", &p.inter, ProvisioningStatus::Enabled);
        std::fs::write(s.home().path("dps/enrollmentGroups/junk.json"), "{").unwrap();
        let chain = [p.leaf.clone(), p.inter.clone()];
        let d = decide(&s, &chain, now).unwrap();
        assert_eq!(d.status, Status::Assigned);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("junk.json"));
        std::fs::create_dir_all(s.home().path("dps/enrollments")).unwrap();
        std::fs::write(
            s.home().path("dps/enrollments/dev-3.json"),
            "{\"registrationId\": 1}",
        )
        .unwrap();
        let e = decide(&s, &chain, now).unwrap_err().to_string();
        assert!(e.contains("dev-3.json"), "{e}");
        assert!(Snapshot::load(&s).decide(&chain, now).is_err());
        // Other devices are unaffected.
        let q = pki("dev-4");
        let _ = q;
        let empty: [&[u8]; 0] = [];
        assert_eq!(decide(&s, &empty, now).unwrap().status, Status::Failed);
        assert_eq!(
            decide(&s, &[b"junk".as_slice()], now).unwrap().status,
            Status::Failed
        );
    }

    #[test]
    fn assigned_uses_the_enrollments_device_id_and_hub() {
        let now = OffsetDateTime::now_utc();
        let p = pki("dev-5");
        let (_t, s) = store();
        let mut e =
            IndividualEnrollment::x509("dev-5", cert::to_pem(&p.leaf), ProvisioningStatus::Enabled);
        e.device_id = Some("Device Five".replace(' ', "-"));
        e.iot_hubs = Some(vec!["hub-a.azure-devices.net".into()]);
        s.create_individual(&s.home().lock().unwrap(), &e).unwrap();
        let d = decide(&s, std::slice::from_ref(&p.leaf), now).unwrap();
        assert_eq!(d.device_id.as_deref(), Some("Device-Five"));
        assert_eq!(d.assigned_hub.as_deref(), Some("hub-a.azure-devices.net"));
        let path = register(&s.home().lock().unwrap(), &d, &p.leaf, now)
            .unwrap()
            .unwrap();
        assert!(path.ends_with("hub/devices/Device-Five.json"));
        assert!(
            register(&s.home().lock().unwrap(), &d, &p.leaf, now)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn allocation_policies_and_the_reprovision_rule() {
        let hubs: Vec<String> = [
            "a.azure-devices.net",
            "b.azure-devices.net",
            "c.azure-devices.net",
        ]
        .map(String::from)
        .to_vec();
        let hashed = Allocation {
            update_hub_assignment: true,
            ..Allocation::default()
        };
        // Hashed: deterministic in the registration ID (any case), and
        // spread over every hub.
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..300 {
            let id = format!("sensor-{i}");
            let h = hashed.hub(&hubs, &id, None);
            assert_eq!(h, hashed.hub(&hubs, &id.to_uppercase(), None));
            *seen.entry(h).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.values().all(|n| *n > 60), "{seen:?}");
        // No hubs anywhere: the default hub.
        assert_eq!(hashed.hub(&[], "x", None), DEFAULT_HUB);
        // The enrollment's iotHubs win over the emulator's.
        let own = Allocation {
            iot_hubs: Some(vec!["own.azure-devices.net".into()]),
            ..hashed.clone()
        };
        assert_eq!(own.hub(&hubs, "x", None), "own.azure-devices.net");
        // Static: iotHubHostName, else the first hub; geoLatency: the first.
        let st = Allocation {
            policy: Some(AllocationPolicy::Static),
            static_hub: Some("b.azure-devices.net".into()),
            ..hashed.clone()
        };
        assert_eq!(st.hub(&hubs, "x", None), "b.azure-devices.net");
        let geo = Allocation {
            policy: Some(AllocationPolicy::GeoLatency),
            ..hashed.clone()
        };
        assert_eq!(geo.hub(&hubs, "x", None), "a.azure-devices.net");
        // Reprovision: a device keeps its hub while it is still listed...
        assert_eq!(
            geo.hub(&hubs, "x", Some("c.azure-devices.net")),
            "c.azure-devices.net"
        );
        // ...moves when it is not and updateHubAssignment is true...
        assert_eq!(
            geo.hub(&hubs, "x", Some("gone.azure-devices.net")),
            "a.azure-devices.net"
        );
        // ...and stays anyway when it is false.
        let sticky = Allocation {
            update_hub_assignment: false,
            ..geo
        };
        assert_eq!(
            sticky.hub(&hubs, "x", Some("gone.azure-devices.net")),
            "gone.azure-devices.net"
        );
    }
}
