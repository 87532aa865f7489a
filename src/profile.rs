//! Certificate profiles: the `templates/*.toml` files, embedded in the
//! binary as defaults and overridable with `--template FILE`.
//!
//! A profile is plain data; [`crate::issue`] turns it into a certificate.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The built-in profiles, by name, with their TOML text.
pub const BUILTIN: [(&str, &str); 5] = [
    ("root-ca", include_str!("../templates/root-ca.toml")),
    (
        "intermediate-ca",
        include_str!("../templates/intermediate-ca.toml"),
    ),
    ("device", include_str!("../templates/device.toml")),
    (
        "verification",
        include_str!("../templates/verification.toml"),
    ),
    ("edge-ca", include_str!("../templates/edge-ca.toml")),
];

/// Key usage bits a profile may name (RFC 5280 section 4.2.1.3).
pub const KEY_USAGES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

/// Extended key usages a profile may name (RFC 5280 section 4.2.1.12).
pub const EXTENDED_KEY_USAGES: [&str; 6] = [
    "clientAuth",
    "serverAuth",
    "codeSigning",
    "emailProtection",
    "timeStamping",
    "OCSPSigning",
];

/// The longest validity iotca issues, in days (100 years): the bound of
/// `--days` and of a template's `days`.
pub const MAX_DAYS: u32 = 36500;

/// A certificate profile: what goes into a certificate besides its subject and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (`device`, `root-ca`...).
    pub name: String,
    /// One line saying what the profile is for.
    #[serde(default)]
    pub description: String,
    /// Default subject CN (CAs only; devices use their ID).
    #[serde(default)]
    pub common_name: Option<String>,
    /// Default validity in days (1 to [`MAX_DAYS`]).
    pub days: u32,
    /// basicConstraints cA (always written, critical).
    pub ca: bool,
    /// basicConstraints pathLenConstraint, CAs only.
    #[serde(default)]
    pub pathlen: Option<u8>,
    /// keyUsage bits (critical).
    pub key_usage: Vec<String>,
    /// keyUsage bits added when the subject key is RSA.
    #[serde(default)]
    pub rsa_key_usage: Vec<String>,
    /// extendedKeyUsage purposes (non-critical); empty means no extension.
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// Write a subject key identifier.
    #[serde(default = "yes")]
    pub subject_key_identifier: bool,
    /// Write an authority key identifier (ignored for self-signed certificates).
    #[serde(default = "yes")]
    pub authority_key_identifier: bool,
}

fn yes() -> bool {
    true
}

impl Profile {
    /// Parses and checks a profile from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let p: Profile = toml::from_str(text).map_err(|e| Error::BadTemplate {
            path: origin.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        p.check().map_err(|reason| Error::BadTemplate {
            path: origin.to_path_buf(),
            reason,
        })?;
        Ok(p)
    }

    /// Reads a profile from a file (`--template FILE`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::home::fs::read_bounded(path, crate::home::MAX_INPUT_BYTES, "template")?;
        let text = String::from_utf8(bytes).map_err(|_| Error::BadTemplate {
            path: path.to_path_buf(),
            reason: "is not UTF-8 text".into(),
        })?;
        Self::from_toml(&text, path)
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Self> {
        let text = builtin_text(name)?;
        Self::from_toml(text, Path::new(&format!("<built-in {name}>")))
    }

    /// The built-in profile, or the file given with `--template`.
    pub fn builtin_or_file(name: &str, file: Option<&Path>) -> Result<Self> {
        match file {
            Some(f) => Self::from_file(f),
            None => Self::builtin(name),
        }
    }

    /// The key usages for a subject key (RSA keys add `rsa_key_usage`).
    pub fn key_usages_for(&self, rsa: bool) -> Vec<&str> {
        let mut v: Vec<&str> = self.key_usage.iter().map(String::as_str).collect();
        if rsa {
            for u in &self.rsa_key_usage {
                if !v.contains(&u.as_str()) {
                    v.push(u);
                }
            }
        }
        v
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(format!(
                "days = {} is out of range: 1 to {MAX_DAYS} (100 years), as on the command line",
                self.days
            ));
        }
        for u in self.key_usage.iter().chain(&self.rsa_key_usage) {
            if !KEY_USAGES.contains(&u.as_str()) {
                return Err(format!(
                    "unknown key usage '{u}'; known: {}",
                    KEY_USAGES.join(", ")
                ));
            }
        }
        for u in &self.extended_key_usage {
            if !EXTENDED_KEY_USAGES.contains(&u.as_str()) {
                return Err(format!(
                    "unknown extended key usage '{u}'; known: {}",
                    EXTENDED_KEY_USAGES.join(", ")
                ));
            }
        }
        if self.pathlen.is_some() && !self.ca {
            return Err("pathlen is only allowed when ca = true".into());
        }
        if self.ca && !self.key_usage.iter().any(|u| u == "keyCertSign") {
            return Err("a CA profile needs the keyCertSign key usage".into());
        }
        if !self.ca
            && self
                .key_usage
                .iter()
                .any(|u| u == "keyCertSign" || u == "cRLSign")
        {
            return Err("keyCertSign and cRLSign are for CA profiles (ca = true) only".into());
        }
        Ok(())
    }
}

/// The TOML text of a built-in profile.
pub fn builtin_text(name: &str) -> Result<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| Error::UnknownTemplate {
            name: name.into(),
            known: BUILTIN.map(|(n, _)| n).join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_match_design_section_4() {
        let root = Profile::builtin("root-ca").unwrap();
        assert!(root.ca && root.pathlen.is_none() && !root.authority_key_identifier);
        assert_eq!(root.days, 3650);
        assert_eq!(
            root.common_name.as_deref(),
            Some("Azure IoT Hub CA Cert Test Only")
        );
        let int = Profile::builtin("intermediate-ca").unwrap();
        assert_eq!(int.days, 1825);
        assert!(int.ca && int.authority_key_identifier);
        assert_eq!(
            int.common_name.as_deref(),
            Some("Azure IoT Hub Intermediate Cert Test Only")
        );
        for ca in [&root, &int] {
            assert_eq!(ca.key_usage, ["keyCertSign", "cRLSign", "digitalSignature"]);
            assert!(ca.extended_key_usage.is_empty());
        }
        let dev = Profile::builtin("device").unwrap();
        assert_eq!(dev.days, 365);
        assert!(!dev.ca);
        assert_eq!(dev.key_usages_for(false), ["digitalSignature"]);
        assert_eq!(
            dev.key_usages_for(true),
            ["digitalSignature", "keyEncipherment"]
        );
        assert_eq!(dev.extended_key_usage, ["clientAuth"]);
        let ver = Profile::builtin("verification").unwrap();
        assert_eq!(ver.days, 30);
        assert_eq!(ver.extended_key_usage, ["clientAuth"]);
        assert!(Profile::builtin("edge-ca").unwrap().ca);
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let p = Path::new("t.toml");
        let base = "name='x'\ndays=1\nca=false\nkey_usage=['digitalSignature']\n";
        assert!(Profile::from_toml(base, p).is_ok());
        for (bad, why) in [
            ("name='x'\ndays=0\nca=false\nkey_usage=[]\n", "days"),
            (
                "name='x'\ndays=3000000\nca=false\nkey_usage=[]\n",
                "out of range",
            ),
            (
                "name='x'\ndays=1\nca=false\nkey_usage=['sign']\n",
                "unknown key usage",
            ),
            (
                "name='x'\ndays=1\nca=true\nkey_usage=['cRLSign']\n",
                "keyCertSign",
            ),
            (
                "name='x'\ndays=1\nca=false\npathlen=1\nkey_usage=[]\n",
                "pathlen",
            ),
            (
                "name='x'\ndays=1\nca=false\nkey_usage=[]\nextended_key_usage=['x']\n",
                "extended",
            ),
            (
                "name='x'\ndays=1\nca=false\nkey_usage=[]\ncolour='red'\n",
                "colour",
            ),
            ("not toml", ""),
        ] {
            let e = Profile::from_toml(bad, p).unwrap_err().to_string();
            assert!(e.starts_with("t.toml: ") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_builtin_lists_the_known_ones() {
        let e = Profile::builtin("nope").unwrap_err().to_string();
        assert!(e.contains("device") && e.contains("root-ca"), "{e}");
    }
}
