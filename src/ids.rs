//! Identifier rules: DPS registration IDs, IoT hub device IDs, and the names
//! that become file names in the home.
//!
//! Sources: the DPS service REST API 2021-10-01 (`registrationId`: "A
//! case-insensitive string (up to 128 characters long) of alphanumeric
//! characters plus certain special characters: `. _ - :`. The first and last
//! characters must be alphanumeric") and the IoT Hub identity registry docs
//! (device ID: "A case-sensitive string (up to 128 characters long) of ASCII
//! 7-bit alphanumeric characters plus certain special characters:
//! `- . % _ * ? ! ( ) , : = @ $ '`").

use std::fmt;

/// Longest DPS registration ID.
pub const REGISTRATION_ID_MAX: usize = 128;
/// Longest subject CN (RFC 5280 `ub-common-name`), so the longest
/// registration ID usable with X.509 attestation.
pub const CN_MAX: usize = 64;
/// Longest IoT hub device ID.
pub const DEVICE_ID_MAX: usize = 128;

/// What kind of identifier a value was checked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A DPS registration ID (also an enrollment group ID).
    RegistrationId,
    /// A registration ID that must also be an X.509 subject CN (64 max).
    X509RegistrationId,
    /// An IoT hub device ID.
    DeviceId,
    /// A CA name given to `ca intermediate` (registration ID rules).
    CaName,
    /// A device ID accepted with `--allow-any-cn`: any safe file name.
    FileName,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::RegistrationId => "DPS registration ID",
            IdKind::X509RegistrationId => "DPS registration ID (X.509 CN)",
            IdKind::DeviceId => "IoT hub device ID",
            IdKind::CaName => "CA name",
            IdKind::FileName => "name",
        })
    }
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What it was checked as.
        kind: IdKind,
    },
    /// The identifier is longer than its kind allows.
    #[error("{kind} '{shown}' is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// What it was checked as.
        kind: IdKind,
        /// The identifier, shortened for display.
        shown: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{kind} '{shown}' contains {ch:?} at position {pos}; allowed: {allowed}")]
    BadChar {
        /// What it was checked as.
        kind: IdKind,
        /// The identifier, shortened and escaped for display.
        shown: String,
        /// The offending character.
        ch: char,
        /// Its 1-based position.
        pos: usize,
        /// The allowed set, in words.
        allowed: &'static str,
    },
    /// The first or last character is not allowed there.
    #[error("{kind} '{shown}' {rule}")]
    BadEnds {
        /// What it was checked as.
        kind: IdKind,
        /// The identifier.
        shown: String,
        /// The rule, in words.
        rule: &'static str,
    },
}

const REG_ALLOWED: &str = "ASCII letters, digits and - . _ :";
const DEVICE_ALLOWED: &str = "ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ '";
const FILE_ALLOWED: &str =
    "printable ASCII except / and \\ (not starting with '.' or a space, not ending with a space)";

fn shown(id: &str) -> String {
    let mut s: String = id.chars().take(72).flat_map(char::escape_debug).collect();
    if id.chars().count() > 72 {
        s.push_str("...");
    }
    s
}

fn check(
    id: &str,
    kind: IdKind,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { kind });
    }
    let len = id.chars().count();
    if len > max {
        return Err(IdError::TooLong {
            kind,
            shown: shown(id),
            len,
            max,
        });
    }
    if let Some((pos, ch)) = id.chars().enumerate().find(|&(_, c)| !ok(c)) {
        return Err(IdError::BadChar {
            kind,
            shown: shown(id),
            ch,
            pos: pos + 1,
            allowed,
        });
    }
    Ok(())
}

fn reg_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')
}

fn alnum_ends(id: &str, kind: IdKind) -> Result<(), IdError> {
    let first = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let last = id.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if first && last {
        Ok(())
    } else {
        Err(IdError::BadEnds {
            kind,
            shown: shown(id),
            rule: "must start and end with a letter or digit",
        })
    }
}

/// Checks a DPS registration ID (1–128 of `[A-Za-z0-9-._:]`, alphanumeric at
/// both ends). Enrollment group IDs follow the same rule.
pub fn check_registration_id(id: &str) -> Result<(), IdError> {
    let kind = IdKind::RegistrationId;
    check(id, kind, REGISTRATION_ID_MAX, REG_ALLOWED, reg_char)?;
    alnum_ends(id, kind)
}

/// Checks a registration ID that must also be the subject CN of an X.509
/// device certificate: the registration ID rules with a 64-character limit.
pub fn check_x509_registration_id(id: &str) -> Result<(), IdError> {
    let kind = IdKind::X509RegistrationId;
    check(id, kind, CN_MAX, REG_ALLOWED, reg_char)?;
    alnum_ends(id, kind)
}

/// Checks an IoT hub device ID (1–128 ASCII characters from the documented set).
/// Device IDs are case-sensitive.
pub fn check_device_id(id: &str) -> Result<(), IdError> {
    check(id, IdKind::DeviceId, DEVICE_ID_MAX, DEVICE_ALLOWED, |c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '%'
                    | '_'
                    | '*'
                    | '?'
                    | '!'
                    | '('
                    | ')'
                    | ','
                    | ':'
                    | '='
                    | '@'
                    | '$'
                    | '\''
            )
    })
}

/// Checks a name that becomes (part of) a file name in the home: device IDs
/// accepted with `--allow-any-cn`. Any printable ASCII but the path
/// separators `/` and `\`, never starting with a dot (so never `.` or `..`)
/// or a space: such a name cannot leave the home, whatever it holds.
pub fn check_file_name(name: &str) -> Result<(), IdError> {
    let kind = IdKind::FileName;
    check(name, kind, REGISTRATION_ID_MAX, FILE_ALLOWED, |c| {
        (' '..='~').contains(&c) && c != '/' && c != '\\'
    })?;
    if name.starts_with(['.', ' ']) || name.ends_with(' ') {
        return Err(IdError::BadEnds {
            kind,
            shown: shown(name),
            rule: "must not start with '.' or a space, nor end with a space",
        });
    }
    Ok(())
}

/// Checks a CA name given to `ca intermediate` (registration ID rules, so
/// that a CA name is also a safe file name and a valid group ID).
pub fn check_ca_name(name: &str) -> Result<(), IdError> {
    let kind = IdKind::CaName;
    check(name, kind, REGISTRATION_ID_MAX, REG_ALLOWED, reg_char)?;
    alnum_ends(name, kind)
}

/// True when DPS would treat the two registration IDs as the same
/// (DPS matches registration IDs case-insensitively).
pub fn registration_ids_match(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The file stem under which a registration ID is stored locally: lower-cased,
/// so that lookups are case-insensitive as in DPS.
pub fn registration_file_stem(id: &str) -> String {
    id.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_ids() {
        for ok in ["a", "sensor-thl-002", "A.b_c:d-9", &"x".repeat(128)] {
            assert_eq!(check_registration_id(ok), Ok(()), "{ok}");
        }
        assert!(matches!(
            check_registration_id(""),
            Err(IdError::Empty { .. })
        ));
        assert!(matches!(
            check_registration_id(&"x".repeat(129)),
            Err(IdError::TooLong {
                len: 129,
                max: 128,
                ..
            })
        ));
        for bad_end in ["-a", "a-", ".a", "a:", "_"] {
            assert!(
                matches!(check_registration_id(bad_end), Err(IdError::BadEnds { .. })),
                "{bad_end}"
            );
        }
        for (bad, ch) in [
            ("a/b", '/'),
            ("a b", ' '),
            ("a\0b", '\0'),
            ("é1", 'é'),
            ("a\\b", '\\'),
            ("a@b", '@'),
        ] {
            match check_registration_id(bad) {
                Err(IdError::BadChar { ch: c, .. }) => assert_eq!(c, ch, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn x509_registration_ids_are_limited_to_64() {
        assert_eq!(check_x509_registration_id(&"a".repeat(64)), Ok(()));
        assert!(matches!(
            check_x509_registration_id(&"a".repeat(65)),
            Err(IdError::TooLong { max: 64, .. })
        ));
        assert_eq!(check_registration_id(&"a".repeat(65)), Ok(()));
    }

    #[test]
    fn device_ids() {
        assert_eq!(check_device_id("dev%(1)*?!,:=@$'x"), Ok(()));
        assert_eq!(check_device_id("-leading-ok"), Ok(()));
        assert!(check_device_id("a/b").is_err());
        assert!(check_device_id("a#b").is_err());
        assert!(check_device_id(&"d".repeat(129)).is_err());
        assert!(check_device_id("").is_err());
    }

    #[test]
    fn file_names_never_leave_the_home() {
        for bad in [
            "..",
            ".",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "a\0",
            ".hidden",
            "",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_file_name("-odd_but-safe."), Ok(()));
        for ok in ["a@b", "dev+1", "dev#1", "sp ace", "x_", "(1)=$"] {
            assert_eq!(check_file_name(ok), Ok(()), "{ok}");
        }
        for bad in [" lead", "trail ", "déjà", "tab\t"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        let e = check_ca_name("../x").unwrap_err().to_string();
        assert!(e.starts_with("CA name"), "{e}");
    }

    #[test]
    fn matching_is_case_insensitive_and_stems_lowercase() {
        assert!(registration_ids_match("Sensor-THL-002", "sensor-thl-002"));
        assert!(!registration_ids_match("sensor-thl-002", "sensor-thl-003"));
        assert_eq!(registration_file_stem("Sensor-THL"), "sensor-thl");
    }

    #[test]
    fn error_messages_name_the_value() {
        let e = check_registration_id("bad id").unwrap_err().to_string();
        assert!(e.contains("'bad id'") && e.contains("' '"), "{e}");
    }
}
