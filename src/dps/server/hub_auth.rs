//! Who may connect to a hub: the registry record and the TLS client chain.
//!
//! A device may connect when its registry record (`hub/devices/<id>.json`)
//! exists, is `enabled` and belongs to the hub it names, the leaf's CN is
//! the device ID, and
//! - `certificateAuthority`: the presented chain verifies (the rules of
//!   [`crate::verify`]) to an enrollment group's certificate (primary or
//!   secondary) or a CA certificate of the home;
//! - `selfSigned`: the leaf's SHA-1 or SHA-256 thumbprint is the record's
//!   primary or secondary thumbprint.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::cert;
use crate::enroll::EnrollmentStore;
use crate::home::Home;
use crate::hub::{Device, Registry};
use crate::verify::GroupCas;

/// How long the trust anchors (group and home CAs) are reused before they
/// are read again.
const ANCHORS_TTL: Duration = Duration::from_secs(2);

/// What identifies a registry file's version: any write (an atomic rename)
/// or a deletion changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i64,
}

impl Stamp {
    /// The stamp of the file now; None when it is missing or unreadable.
    pub(super) fn of(path: &std::path::Path) -> Option<Stamp> {
        let m = fs::symlink_metadata(path).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        })
    }
}

/// The leaf's thumbprints, upper-case hex.
#[derive(Debug, Clone)]
pub(super) struct Thumbprints {
    pub(super) sha1: String,
    pub(super) sha256: String,
}

impl Thumbprints {
    pub(super) fn of(leaf: &[u8]) -> Thumbprints {
        Thumbprints {
            sha1: cert::sha1_thumbprint(leaf),
            sha256: cert::sha256_thumbprint(leaf),
        }
    }
}

/// Reads the home's registry and trust anchors for the hubs.
pub(super) struct HubAuth {
    home: Home,
    registry: Registry,
    store: EnrollmentStore,
    default_hub: String,
    anchors: Mutex<Option<(Instant, Arc<GroupCas>)>>,
}

impl HubAuth {
    pub(super) fn new(home: Home, default_hub: String) -> HubAuth {
        HubAuth {
            registry: Registry::new(home.clone()),
            store: EnrollmentStore::new(home.clone()),
            home,
            default_hub,
            anchors: Mutex::new(None),
        }
    }

    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The hub a record belongs to (records without one: the first hub).
    pub(super) fn hub_of<'a>(&'a self, d: &'a Device) -> &'a str {
        d.hub.as_deref().unwrap_or(&self.default_hub)
    }

    /// Why the record does not (or no longer does) let this device on
    /// `hub`, judging only what is in the record: None when it does.
    pub(super) fn record_refuses(
        &self,
        d: &Device,
        hub: &str,
        thumbs: &Thumbprints,
    ) -> Option<String> {
        if d.status != "enabled" {
            return Some(format!("the device is {} in the registry", d.status));
        }
        let home_hub = self.hub_of(d);
        if !home_hub.eq_ignore_ascii_case(hub) {
            return Some(format!("the device belongs to hub '{home_hub}'"));
        }
        match d.authentication.kind.as_str() {
            "certificateAuthority" => None,
            "selfSigned" => {
                let t = d.authentication.x509_thumbprint.clone().unwrap_or_default();
                let known = [t.primary_thumbprint, t.secondary_thumbprint];
                let matches = known.iter().flatten().any(|k| {
                    k.eq_ignore_ascii_case(&thumbs.sha1) || k.eq_ignore_ascii_case(&thumbs.sha256)
                });
                (!matches).then(|| {
                    "the certificate's thumbprint is neither the record's primary nor its secondary thumbprint".to_string()
                })
            }
            other => Some(format!(
                "the registry record's authentication type '{other}' is not X.509"
            )),
        }
    }

    /// The whole decision for a CONNECT: the record's stamp (taken before
    /// the record was read) when the device may connect, else why not.
    /// Blocking: reads files.
    pub(super) fn authorize(
        &self,
        hub: &str,
        device_id: &str,
        chain: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> Result<Option<Stamp>, String> {
        let leaf = chain.first().ok_or("no client certificate")?;
        let parsed = cert::parse_der(leaf).map_err(|e| format!("the client certificate {e}"))?;
        let cns = cert::common_names(&parsed);
        if cns.len() != 1 || cns[0] != device_id {
            return Err(format!(
                "the client certificate's CN {} is not the device ID",
                cns.first()
                    .map(|c| format!("'{c}'"))
                    .unwrap_or_else(|| "(none)".into())
            ));
        }
        let path = self.registry.path(device_id).map_err(|e| e.to_string())?;
        let stamp = Stamp::of(&path);
        let device = match self.registry.get(device_id) {
            Ok(Some(d)) => d,
            Ok(None) => return Err("the device is not in the hub's registry".into()),
            Err(e) => return Err(format!("the registry record cannot be read: {e}")),
        };
        if let Some(why) = self.record_refuses(&device, hub, &Thumbprints::of(leaf)) {
            return Err(why);
        }
        if device.authentication.kind == "certificateAuthority" {
            let verdict = self.anchors().verify(chain, now);
            if !verdict.chains {
                let codes: Vec<String> = verdict.codes().iter().map(|c| c.to_string()).collect();
                return Err(format!(
                    "the certificate chain does not verify to an enrollment group's CA or a CA of the home ({})",
                    codes.join(", ")
                ));
            }
        }
        Ok(stamp)
    }

    /// Group CAs (primary and secondary) and the home's CA certificates,
    /// read again at most every [`ANCHORS_TTL`].
    fn anchors(&self) -> Arc<GroupCas> {
        let mut cached = self.anchors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, cas)) = cached.as_ref()
            && at.elapsed() < ANCHORS_TTL
        {
            return cas.clone();
        }
        let cas = Arc::new(load_anchors(&self.home, &self.store));
        *cached = Some((Instant::now(), cas.clone()));
        cas
    }
}

fn load_anchors(home: &Home, store: &EnrollmentStore) -> GroupCas {
    let mut ders: Vec<Vec<u8>> = Vec::new();
    for g in store.groups().records {
        ders.extend(g.certificates);
    }
    if let Ok(inv) = crate::home::inventory::scan(home, OffsetDateTime::now_utc()) {
        let mut stack: Vec<&crate::home::inventory::CaNode> = inv.cas.iter().collect();
        while let Some(node) = stack.pop() {
            stack.extend(node.children.iter());
            // The emulator's own server CA signs no devices.
            if node.ca.file == home.path(crate::dps::emulator::CA_CERT) {
                continue;
            }
            if let Ok(bytes) = fs::read(&node.ca.file)
                && let Ok(certs) = cert::split_certificates(&bytes)
            {
                ders.extend(certs.into_iter().take(1));
            }
        }
    }
    let anchors = ders
        .iter()
        .filter_map(|d| crate::verify::Anchor::new(d).ok())
        .collect();
    GroupCas::from_anchors(anchors)
}
