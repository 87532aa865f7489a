//! Stable machine-readable codes for [`Error`]: the `code` of the
//! `{"error": {"code", "message"}}` document `--json` prints when a command
//! cannot run (exit 2). Several variants share a code; the message says which.
//!
//! | code | what could not be used |
//! |---|---|
//! | `io` | a file could not be read, written or renamed |
//! | `exists` | something is already there and `--force` was not given |
//! | `bad_certificate` | a certificate file, or a certificate in it |
//! | `bad_key` | a key file, a passphrase, or a CA key that does not match |
//! | `invalid_name` | a device, registration, CA or hub ID, or a verification code |
//! | `ca_not_found` | a CA the command needs is not in the home |
//! | `not_a_home` | the home directory is missing or not a directory |
//! | `bad_template` | a profile template |
//! | `too_large` | an input over its bound, or a directory given as a file |
//! | `bad_record` | a stored record of the local DPS or hub |
//! | `invalid` | any other value that is not usable (days, pathlen, lines of an ID list, ...) |
//! | `internal` | signing or encoding failed |
//!
//! The CLI adds `usage` (flags that cannot go together).

use crate::error::Error;

/// Every code [`Error::code`] can return, for documentation and tests.
pub const CODES: [&str; 12] = [
    "io",
    "exists",
    "bad_certificate",
    "bad_key",
    "invalid_name",
    "ca_not_found",
    "not_a_home",
    "bad_template",
    "too_large",
    "bad_record",
    "invalid",
    "internal",
];

impl Error {
    /// The stable code of this error (see the module's table).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::Symlink { .. } | Error::NoDirectory { .. } => "io",
            Error::Exists { .. }
            | Error::ArchiveFull { .. }
            | Error::AlreadyIssued { .. }
            | Error::DevicesExist { .. }
            | Error::CaseTwin { .. }
            | Error::HubDeviceExists { .. }
            | Error::EnrollmentExists { .. }
            | Error::GroupExists { .. } => "exists",
            Error::BadCertificate { .. } | Error::Parse(_) => "bad_certificate",
            Error::BadKey { .. }
            | Error::Key(_)
            | Error::CaKeyMismatch { .. }
            | Error::PassphraseNotUtf8 { .. } => "bad_key",
            Error::InvalidName(_)
            | Error::ReservedCaName { .. }
            | Error::BadVerificationCode { .. }
            | Error::HiddenDeviceId { .. }
            | Error::DuplicateId { .. } => "invalid_name",
            Error::CaNotFound { .. } => "ca_not_found",
            Error::NoHome { .. } | Error::HomeNotDirectory { .. } => "not_a_home",
            Error::BadTemplate { .. }
            | Error::UnsupportedTemplateOption { .. }
            | Error::UnknownTemplate { .. } => "bad_template",
            Error::TooLarge { .. } => "too_large",
            Error::BadRecord { .. } => "bad_record",
            Error::Issue { .. } | Error::Encode { .. } => "internal",
            _ => "invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_and_snake_case() {
        let e = Error::Invalid("x".into());
        assert!(CODES.contains(&e.code()));
        for c in CODES {
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
    }
}
