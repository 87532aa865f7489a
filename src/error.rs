//! The library's error type: one enum, each variant a short lowercase phrase
//! naming the file or value at fault.

use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an iotca operation from running.
///
/// Every variant maps to exit code 2 ("could not run") in the CLI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file exists where iotca would write, and `--force` was not given.
    #[error("{path} already exists; use --force to archive it and issue anew")]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A certificate file held no readable certificate.
    #[error("{path}: {reason}")]
    BadCertificate {
        /// The file at fault (or a description of the input).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file could not be read or used.
    #[error("{path}: {reason}")]
    BadKey {
        /// The key file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A name or identifier broke the rules for its kind.
    #[error("{0}")]
    InvalidName(#[from] crate::ids::IdError),
    /// A value given on the command line or in a template is not usable.
    #[error("{0}")]
    Invalid(String),
    /// A key could not be generated or used (no file involved; a key read
    /// from a file is [`Error::BadKey`], which names it).
    #[error("{0}")]
    Key(#[from] crate::keys::KeyError),
    /// Certificate bytes that do not parse (no file involved; see
    /// [`Error::BadCertificate`] for one that names its file).
    #[error("{0}")]
    Parse(#[from] crate::cert::ParseError),
    /// A CA the command needs does not exist in the home.
    #[error("CA '{name}' not found: {path} does not exist{hint}")]
    CaNotFound {
        /// The CA name asked for.
        name: String,
        /// Where its certificate should be.
        path: PathBuf,
        /// How to make it.
        hint: String,
    },
    /// A profile template could not be read.
    #[error("{path}: {reason}")]
    BadTemplate {
        /// The template file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Signing or encoding a certificate failed.
    #[error("could not issue the certificate for '{subject}': {reason}")]
    Issue {
        /// The subject being issued.
        subject: String,
        /// The underlying reason.
        reason: String,
    },
    /// An input file is a directory or larger than its bound (DESIGN section 3).
    #[error("{path} {reason}")]
    TooLarge {
        /// The file at fault.
        path: PathBuf,
        /// Which bound it broke.
        reason: String,
    },
    /// iotca refuses to write through a symbolic link.
    #[error("{path} is a symbolic link; iotca does not write through links")]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A path to write has no parent directory.
    #[error("{path} has no directory")]
    NoDirectory {
        /// The path.
        path: PathBuf,
    },
    /// A thousand archives were made within one second.
    #[error("{dir}: too many archives in one second")]
    ArchiveFull {
        /// The archive directory.
        dir: PathBuf,
    },
    /// The home directory does not exist.
    #[error(
        "the home {path} does not exist; create a PKI there with `iotca --home {path} ca init`"
    )]
    NoHome {
        /// The home asked for.
        path: PathBuf,
    },
    /// The home path is not a directory.
    #[error("the home {path} is not a directory")]
    HomeNotDirectory {
        /// The home asked for.
        path: PathBuf,
    },
    /// A stored JSON record could not be read.
    #[error("{path}: {reason}")]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
