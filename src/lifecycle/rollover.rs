//! `ca rollover NAME`: a successor for an intermediate CA (new key, same
//! parent, the CN with ` G2`, ` G3`... appended), the old CA left as it is
//! and still the default for `device create`. And the check that guards an
//! enrollment group's certificate change: which of the home's devices
//! chain to the group today and would not after the change.

use serde::Serialize;
use time::OffsetDateTime;

use super::{home_cas, home_devices, issuer_of};
use crate::cert;
use crate::error::{Error, Result};
use crate::home::{self, Home, IntermediateOptions, Report};
use crate::keys::{KeyAlgorithm, Secret};
use crate::profile::Profile;
use crate::verify::GroupCas;

/// Options for `ca rollover`.
#[derive(Debug, Clone)]
pub struct RolloverOptions {
    /// The CA rolled over.
    pub name: String,
    /// The successor's name; `NAME-2` (then `-3`...) when None.
    pub new_name: Option<String>,
    /// The successor's CN; the old CN with ` G2` (` G3`...) when None.
    pub cn: Option<String>,
    /// Validity in days; the profile's when None.
    pub days: Option<u32>,
    /// Key algorithm; the old CA's when None.
    pub algorithm: Option<KeyAlgorithm>,
    /// Decrypts the parent's key, and encrypts the new key.
    pub passphrase: Option<Secret>,
    /// The intermediate CA profile.
    pub profile: Profile,
}

/// What `ca rollover` made.
#[derive(Debug, Clone, Serialize)]
pub struct Rollover {
    /// The CA rolled over (kept, still valid).
    pub old: String,
    /// The successor's name.
    pub new: String,
    /// The common parent.
    pub parent: String,
    /// The successor's subject CN.
    pub cn: String,
    /// The successor's certificate file.
    pub new_cert: std::path::PathBuf,
    /// The old CA's certificate file.
    pub old_cert: std::path::PathBuf,
    /// Devices of the home the old CA signed (to re-issue under the new one).
    pub devices_under_old: Vec<String>,
    /// Files written.
    #[serde(flatten)]
    pub report: Report,
}

/// `base-N` → (`base`, N) for N ≥ 2.
fn split_generation(name: &str) -> (&str, u32) {
    if let Some((base, n)) = name.rsplit_once('-')
        && let Ok(n) = n.parse::<u32>()
        && n >= 2
        && !base.is_empty()
    {
        return (base, n);
    }
    (name, 1)
}

/// `CN Gk` → (`CN`, k) for k ≥ 2.
fn split_cn_generation(cn: &str) -> (&str, u32) {
    if let Some((base, g)) = cn.rsplit_once(" G")
        && let Ok(n) = g.parse::<u32>()
        && n >= 2
    {
        return (base, n);
    }
    (cn, 1)
}

/// The successor's name: the next free `base-N`. A name counts as a
/// generation (`intermediate-2`) only when its CN says the same (` G2`), so
/// a CA named `line-7` is followed by `line-7-2`, not `line-8`.
pub fn successor_name(home: &Home, name: &str, cn: &str) -> Result<String> {
    let (base, n) = match (split_generation(name), split_cn_generation(cn)) {
        ((base, n), (_, g)) if n == g && n >= 2 => (base, n),
        _ => (name, 1),
    };
    for k in n + 1..n + 1000 {
        let candidate = format!("{base}-{k}");
        let f = home.ca_files(&candidate)?;
        if !home::exists(&f.cert) && !home::exists(&f.key) {
            return Ok(candidate);
        }
    }
    Err(Error::Invalid(format!(
        "no free successor name for CA '{name}'; give one with --name NEW"
    )))
}

/// `ca rollover`.
pub fn rollover(home: &Home, opts: &RolloverOptions, now: OffsetDateTime) -> Result<Rollover> {
    let old_files = home.ca_files(&opts.name)?;
    let cas = home_cas(home)?;
    let Some(old) = cas.iter().find(|c| c.name == opts.name) else {
        return Err(Error::CaNotFound {
            name: opts.name.clone(),
            path: old_files.cert.clone(),
            hint: format!(
                " (or its key is missing); `iotca --home {} ca list` shows the CAs",
                home.root().display()
            ),
        });
    };
    let parsed = cert::parse_der(&old.der)?;
    if parsed.subject().as_raw() == parsed.issuer().as_raw() {
        return Err(Error::Invalid(format!(
            "CA '{}' is a root; `ca rollover` makes a successor for an intermediate under the same parent. A new root needs new enrollment groups (and verified CA certificates) in DPS",
            opts.name
        )));
    }
    let parent = issuer_of(&cas, &old.der).ok_or_else(|| {
        Error::Invalid(format!(
            "the parent of CA '{}' ({}) is not a CA of this home with its key, so no successor can be signed under it",
            opts.name,
            cert::name_string(parsed.issuer())
        ))
    })?;
    let old_cn = cert::single_cn(&parsed).unwrap_or_else(|| opts.name.clone());
    let new_name = match &opts.new_name {
        Some(n) => n.clone(),
        None => successor_name(home, &opts.name, &old_cn)?,
    };
    let cn = match &opts.cn {
        Some(c) => c.clone(),
        None => {
            let (base, g) = split_cn_generation(&old_cn);
            format!("{base} G{}", g + 1)
        }
    };
    let pathlen = parsed
        .basic_constraints()
        .ok()
        .flatten()
        .and_then(|bc| bc.value.path_len_constraint)
        .and_then(|n| u8::try_from(n).ok());
    let algorithm = opts
        .algorithm
        .or_else(|| super::algorithm_of(&old.der))
        .unwrap_or(KeyAlgorithm::P256);
    let io = IntermediateOptions {
        name: new_name.clone(),
        parent: parent.name.clone(),
        cn: Some(cn.clone()),
        pathlen,
        days: opts.days,
        algorithm,
        passphrase: opts.passphrase.clone(),
        unencrypted_key: false,
        force: false,
        profile: opts.profile.clone(),
    };
    let report = home::create_intermediate(home, &io, now)?;
    let devices_under_old = devices_signed_by(home, &old.der)?;
    Ok(Rollover {
        old: opts.name.clone(),
        new: new_name.clone(),
        parent: parent.name.clone(),
        cn,
        new_cert: home.ca_files(&new_name)?.cert,
        old_cert: old.file.clone(),
        devices_under_old,
        report,
    })
}

/// The home's devices whose certificate `ca_der` signed.
pub fn devices_signed_by(home: &Home, ca_der: &[u8]) -> Result<Vec<String>> {
    let ca = [super::HomeCa {
        name: String::new(),
        file: Default::default(),
        der: ca_der.to_vec(),
    }];
    let mut out = Vec::new();
    for id in home_devices(home)? {
        let f = home.device_files(&id)?;
        if let Ok(d) = cert::read_certificates(&f.cert)
            && issuer_of(&ca, &d[0]).is_some()
        {
            out.push(id);
        }
    }
    Ok(out)
}

/// The home's devices whose full chain verifies to one of `before` (a
/// group's certificates today) but to none of `after` (its certificates
/// after a change): DPS would refuse them after the change.
pub fn stranded_devices(
    home: &Home,
    before: &[Vec<u8>],
    after: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Vec<String>> {
    let before = GroupCas::new(before)?;
    let after = GroupCas::new(after)?;
    let mut out = Vec::new();
    for id in home_devices(home)? {
        let f = home.device_files(&id)?;
        let Ok(chain) = cert::read_certificates(&f.full_chain) else {
            continue;
        };
        if before.verify(&chain, now).chains && !after.verify(&chain, now).chains {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_count_up() {
        assert_eq!(split_generation("intermediate"), ("intermediate", 1));
        assert_eq!(split_generation("intermediate-2"), ("intermediate", 2));
        assert_eq!(split_generation("line-7"), ("line", 7));
        assert_eq!(split_generation("a-1"), ("a-1", 1));
        assert_eq!(
            split_cn_generation("Contoso Devices"),
            ("Contoso Devices", 1)
        );
        assert_eq!(
            split_cn_generation("Contoso Devices G3"),
            ("Contoso Devices", 3)
        );
        assert_eq!(split_cn_generation("G2"), ("G2", 1));
        let t = tempfile::tempdir().unwrap();
        let h = Home::create(t.path()).unwrap();
        assert_eq!(
            successor_name(&h, "intermediate", "X").unwrap(),
            "intermediate-2"
        );
        assert_eq!(
            successor_name(&h, "intermediate-2", "X G2").unwrap(),
            "intermediate-3"
        );
        assert_eq!(successor_name(&h, "line-7", "Line 7").unwrap(), "line-7-2");
        std::fs::write(h.path("certs/intermediate-2.cert.pem"), "x").unwrap();
        assert_eq!(
            successor_name(&h, "intermediate", "X").unwrap(),
            "intermediate-3"
        );
    }
}
