//! `device renew`: a new certificate for existing devices. By default the
//! public key of the current certificate is certified again, byte for byte
//! (a key in a secure element cannot be replaced, and no private key is
//! needed to renew); `rekey` makes a new key. The old files go to
//! `archive/`. A device with an individual enrollment is flagged: that
//! enrollment names the old certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{HomeCa, home_cas, home_devices, issuer_of};
use crate::cert;
use crate::enroll::EnrollmentStore;
use crate::error::{Error, Result};
use crate::home::{self, FileKind, Home, LoadedCa, Report, Written, load_ca, load_key};
use crate::issue::{self, CertRequest};
use crate::keys::{PrivateKey, Secret};
use crate::profile::Profile;

/// Options for `device renew`.
#[derive(Debug, Clone)]
pub struct RenewOptions {
    /// Devices to renew (more may come from `expiring_within`).
    pub ids: Vec<String>,
    /// Also every device of the home whose certificate has expired or
    /// expires within this many days.
    pub expiring_within: Option<i64>,
    /// A new key instead of the current one.
    pub rekey: bool,
    /// Validity in days; the profile's when None.
    pub days: Option<u32>,
    /// The signing CA; when None, the CA that signed the current certificate.
    pub ca: Option<String>,
    /// Decrypts the CA key(s).
    pub passphrase: Option<Secret>,
    /// The device profile.
    pub profile: Profile,
}

/// One renewed device.
#[derive(Debug, Clone, Serialize)]
pub struct Renewed {
    /// The device ID.
    pub id: String,
    /// The CA that signed the new certificate.
    pub ca: String,
    /// The new certificate.
    pub cert: PathBuf,
    /// The new full chain.
    pub full_chain: PathBuf,
    /// The new key file, with `rekey`.
    pub new_key: Option<PathBuf>,
    /// True when the new certificate holds the old public key.
    pub same_key: bool,
    /// notAfter of the old certificate, RFC 3339.
    pub old_not_after: String,
    /// notAfter of the new certificate, RFC 3339.
    pub not_after: String,
    /// The device has an individual enrollment in the local store, which
    /// names the old certificate: it must be updated too.
    pub enrollment_update_needed: bool,
    /// The command that updates it, when needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_update: Option<String>,
}

/// What `device renew` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenewReport {
    /// Files written, archive, warnings.
    #[serde(flatten)]
    pub report: Report,
    /// One entry a device.
    pub devices: Vec<Renewed>,
}

/// The devices of the home whose certificate has expired or expires
/// within `days` of `now`.
pub fn expiring(home: &Home, days: i64, now: OffsetDateTime) -> Result<Vec<String>> {
    let limit = now + Duration::days(days);
    let mut out = Vec::new();
    for id in home_devices(home)? {
        let f = home.device_files(&id)?;
        let Ok(ders) = cert::read_certificates(&f.cert) else {
            continue;
        };
        let Ok(c) = cert::parse_der(&ders[0]) else {
            continue;
        };
        let is_ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca && c.validity().not_after.to_datetime() <= limit {
            out.push(id);
        }
    }
    Ok(out)
}

/// A device ready to be written.
struct Prepared {
    renewed: Renewed,
    cert_pem: String,
    chain_pem: String,
    key_pem: Option<zeroize::Zeroizing<String>>,
    archive: Vec<PathBuf>,
    warnings: Vec<String>,
}

/// `device renew`.
pub fn renew(home: &Home, opts: &RenewOptions, now: OffsetDateTime) -> Result<RenewReport> {
    let mut ids: Vec<String> = Vec::with_capacity(opts.ids.len());
    for id in &opts.ids {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    if let Some(days) = opts.expiring_within {
        for id in expiring(home, days, now)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut out = RenewReport::default();
    if ids.is_empty() {
        if opts.expiring_within.is_some() {
            return Ok(out);
        }
        return Err(Error::Invalid(
            "give device IDs to renew, or --expiring-within DAYS".into(),
        ));
    }
    let cas = home_cas(home)?;
    let store = EnrollmentStore::new(home.clone());
    let lock = home.lock()?;
    let mut loaded: HashMap<String, LoadedCa> = HashMap::new();
    let mut prepared = Vec::with_capacity(ids.len());
    // Everything is checked and signed before anything is archived or written.
    for id in &ids {
        let p = prepare(home, &cas, &mut loaded, &store, opts, id, now)?;
        prepared.push(p);
    }
    let all: Vec<&Path> = prepared
        .iter()
        .flat_map(|p| p.archive.iter().map(PathBuf::as_path))
        .collect();
    out.report.archived_to = lock.archive(&all)?;
    for p in prepared {
        out.report.warnings.extend(p.warnings.iter().cloned());
        let r = &p.renewed;
        if let Some(key_pem) = &p.key_pem
            && let Some(k) = &r.new_key
        {
            lock.write_new(k, key_pem.as_bytes(), FileKind::Secret, false)?;
            out.report.written.push(Written {
                what: "device key (new)".into(),
                path: k.clone(),
            });
        }
        lock.write_new(&r.cert, p.cert_pem.as_bytes(), FileKind::Public, false)?;
        lock.write_new(
            &r.full_chain,
            p.chain_pem.as_bytes(),
            FileKind::Public,
            false,
        )?;
        out.report.written.push(Written {
            what: "device certificate".into(),
            path: r.cert.clone(),
        });
        out.report.written.push(Written {
            what: "device full chain".into(),
            path: r.full_chain.clone(),
        });
        out.devices.push(p.renewed);
    }
    lock.sync_batch()?;
    Ok(out)
}

fn prepare(
    home: &Home,
    cas: &[HomeCa],
    loaded: &mut HashMap<String, LoadedCa>,
    store: &EnrollmentStore,
    opts: &RenewOptions,
    id: &str,
    now: OffsetDateTime,
) -> Result<Prepared> {
    let f = home.device_files(id)?;
    if !home::exists(&f.cert) {
        return Err(Error::Invalid(format!(
            "device '{id}' has no certificate in {} ({} is missing); issue it with `device create` or `device sign`",
            home.root().display(),
            f.cert.display()
        )));
    }
    let old_der = cert::read_certificates(&f.cert)?.swap_remove(0);
    let old = cert::parse_der(&old_der).map_err(|e| Error::BadCertificate {
        path: f.cert.clone(),
        reason: e.to_string(),
    })?;
    let cn = cert::single_cn(&old).ok_or_else(|| Error::BadCertificate {
        path: f.cert.clone(),
        reason: "has no single CN, so it is not a device certificate iotca can renew".into(),
    })?;
    if cn != id {
        return Err(Error::BadCertificate {
            path: f.cert.clone(),
            reason: format!(
                "has CN '{}', not the device ID '{id}'",
                crate::text::escape(&cn)
            ),
        });
    }
    if matches!(old.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
        return Err(Error::BadCertificate {
            path: f.cert.clone(),
            reason: "is a CA certificate, not a device's; renew a CA with `ca rollover`".into(),
        });
    }
    let ca_name = match &opts.ca {
        Some(n) => n.clone(),
        None => issuer_of(cas, &old_der).map(|c| c.name.clone()).ok_or_else(|| {
            Error::Invalid(format!(
                "device '{id}': no CA of this home signed {} ({}); say which CA signs the new certificate with --ca NAME",
                f.cert.display(),
                cert::name_string(old.issuer())
            ))
        })?,
    };
    if !loaded.contains_key(&ca_name) {
        let ca = load_ca(home, &ca_name, opts.passphrase.as_ref(), now)?;
        loaded.insert(ca_name.clone(), ca);
    }
    let ca = &loaded[&ca_name];
    let old_spki = old.public_key().raw.to_vec();
    let key_exists = home::exists(&f.key);
    let mut req = CertRequest::new(id, opts.profile.clone());
    req.days = opts.days;
    let mut archive = vec![f.cert.clone(), f.full_chain.clone(), f.pfx.clone()];
    let (issued, key_pem, new_key) = if opts.rekey {
        if !key_exists {
            return Err(Error::Invalid(format!(
                "device '{id}' has no key in this home ({} is missing: it was signed from a CSR, so its key lives on the device); make a new CSR on the device and sign it with `iotca device sign CSR --force`",
                f.key.display()
            )));
        }
        // The old key must still be readable: it is archived, never lost.
        load_key(&f.key, None)?;
        let alg = super::algorithm_of(&old_der).unwrap_or(crate::keys::KeyAlgorithm::P256);
        let (key, kp) = PrivateKey::generate_with_signing_key(alg)?;
        let issued = issue::sign(&req, &kp, &ca.signer, now)?;
        archive.push(f.key.clone());
        (issued, Some(key.to_pem()), Some(f.key.clone()))
    } else {
        if key_exists {
            let key = load_key(&f.key, None)?;
            if key.public_key_der()? != old_spki {
                return Err(Error::Invalid(format!(
                    "{} does not match {}: renewing would certify a key the device may not hold; fix the home or use --rekey",
                    f.key.display(),
                    f.cert.display()
                )));
            }
        }
        let issued = issue::sign_public_key(&req, &old_spki, &ca.signer, now)?;
        (issued, None, None)
    };
    let new = cert::parse_der(&issued.der)?;
    let mut warnings = issued.warnings.clone();
    if home::exists(&f.pfx) {
        warnings.push(format!(
            "{} held the old certificate and is archived; make a new PFX from the renewed files",
            f.pfx.display()
        ));
    }
    let enrolled = store.individual(id).ok().flatten().is_some();
    let update = enrolled.then(|| {
        format!(
            "iotca --home {} enroll update {id} --cert {}",
            crate::enroll::az::shell_quote(&home.root().to_string_lossy()),
            crate::enroll::az::shell_quote(&f.cert.to_string_lossy())
        )
    });
    let renewed = Renewed {
        id: id.to_string(),
        ca: ca_name.clone(),
        cert: f.cert.clone(),
        full_chain: f.full_chain.clone(),
        same_key: new.public_key().raw == old_spki.as_slice(),
        new_key,
        old_not_after: cert::rfc3339(old.validity().not_after.to_datetime()),
        not_after: cert::rfc3339(new.validity().not_after.to_datetime()),
        enrollment_update_needed: enrolled,
        enrollment_update: update,
    };
    Ok(Prepared {
        renewed,
        cert_pem: issued.pem(),
        chain_pem: ca.full_chain_pem(&issued.der),
        key_pem,
        archive,
        warnings,
    })
}
