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
    /// Issuing over an existing CA without `--force`.
    #[error(
        "{path} already exists; {what} was made before: use --force to archive the old files under archive/ and make new ones"
    )]
    AlreadyIssued {
        /// The existing file.
        path: PathBuf,
        /// What was made before ("the root CA", "CA 'factory-a'").
        what: String,
    },
    /// Devices of the list already exist and neither `--skip-existing` nor `--force` was given.
    #[error(
        "{count} device(s) already exist in {home}: {shown}; nothing was written. Use --skip-existing to issue only the missing ones, or --force to archive the old files and issue anew"
    )]
    DevicesExist {
        /// How many.
        count: usize,
        /// The home.
        home: PathBuf,
        /// The first ten IDs (and how many more).
        shown: String,
    },
    /// Two devices whose IDs differ only in letter case (one DPS registration).
    #[error(
        "device ID '{id}' differs only in letter case from the existing device '{other}'; DPS matches registration IDs case-insensitively, so both would claim one registration: nothing was written"
    )]
    CaseTwin {
        /// The new ID.
        id: String,
        /// The device already in the home.
        other: String,
    },
    /// The same device ID twice in one run.
    #[error("device ID '{id}' is given twice (DPS matches registration IDs case-insensitively)")]
    DuplicateId {
        /// The repeated ID.
        id: String,
    },
    /// No device ID at all.
    #[error("no device IDs given")]
    NoIds,
    /// `root` or `intermediate` given to `ca intermediate`.
    #[error("'{name}' is reserved for the CAs made by `ca init`; choose another name")]
    ReservedCaName {
        /// The name.
        name: String,
    },
    /// A CA under a parent whose pathlen leaves no room for devices.
    #[error(
        "{ca} has pathlen {pathlen}, so a CA under '{parent}' could sign no device that chains; sign devices with --ca {parent}, or put the new CA under another parent"
    )]
    PathlenBudget {
        /// The constraining CA's subject.
        ca: String,
        /// Its pathlen.
        pathlen: u32,
        /// The parent asked for.
        parent: String,
    },
    /// A proof-of-possession code that DPS would not have issued.
    #[error("verification code '{}' must be 1 to 64 letters, digits or - . _ : (copy it from the portal or `az iot dps certificate generate-verification-code`)", .code.escape_default())]
    BadVerificationCode {
        /// The code given.
        code: String,
    },
    /// A validity outside 1 to [`crate::profile::MAX_DAYS`] days.
    #[error("--days {days} is out of range: 1 to {max} (100 years)", max = crate::profile::MAX_DAYS)]
    DaysOutOfRange {
        /// The days asked for.
        days: u32,
    },
    /// A validity that ends past what X.509 time can say.
    #[error("--days {days} reaches past the year 9999")]
    DaysOverflow {
        /// The days asked for.
        days: u32,
    },
    /// A subject CN outside 1 to 64 characters (RFC 5280's upper bound).
    #[error("the subject CN '{cn}' must be 1 to 64 characters long")]
    CnLength {
        /// The CN.
        cn: String,
    },
    /// A subject alternative name that is neither an IP address nor a DNS name.
    #[error("'{name}' is not a valid DNS name")]
    BadDnsName {
        /// The name.
        name: String,
    },
    /// A template option iotca cannot honour.
    #[error("template '{template}': {option} is not supported")]
    UnsupportedTemplateOption {
        /// The template's name.
        template: String,
        /// The option.
        option: String,
    },
    /// No built-in template by that name.
    #[error("no built-in template named '{name}'; known: {known}")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
        /// The built-in names.
        known: String,
    },
    /// A CA key that does not belong to its certificate.
    #[error("the CA key does not belong to the certificate '{subject}'")]
    CaKeyMismatch {
        /// The certificate's subject.
        subject: String,
    },
    /// A line of an ID list that could not be read.
    #[error("{origin}: line {line}: {source}")]
    LineRead {
        /// The list (file name or standard input).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line of an ID list over [`crate::home::MAX_LINE_BYTES`].
    #[error("{origin}: line {line} is longer than {max} bytes", max = crate::home::MAX_LINE_BYTES)]
    LineTooLong {
        /// The list.
        origin: String,
        /// 1-based line number.
        line: usize,
    },
    /// A line of an ID list that is not UTF-8.
    #[error("{origin}: line {line} is not UTF-8")]
    LineNotUtf8 {
        /// The list.
        origin: String,
        /// 1-based line number.
        line: usize,
    },
    /// A passphrase file whose first line is not UTF-8.
    #[error("{path}: the passphrase is not UTF-8")]
    PassphraseNotUtf8 {
        /// The passphrase file.
        path: PathBuf,
    },
    /// A device already in the local hub registry.
    #[error("device '{id}' already exists in the hub registry ({path}); delete it first")]
    HubDeviceExists {
        /// The device ID.
        id: String,
        /// Its record.
        path: PathBuf,
    },
    /// A device ID the local registry cannot store as a file name.
    #[error("device ID '{id}' starts with '.'; iotca's local hub registry does not store such IDs")]
    HiddenDeviceId {
        /// The ID.
        id: String,
    },
    /// An enrollment already stored under that ID.
    #[error(
        "an enrollment for '{id}' already exists ({path}); delete it with `iotca enroll delete {id}` or replace it with --force"
    )]
    EnrollmentExists {
        /// The registration ID.
        id: String,
        /// Its record.
        path: PathBuf,
    },
    /// An enrollment group already stored under that ID.
    #[error(
        "enrollment group '{id}' already exists ({path}); delete it with `iotca enroll delete {id} --group` or replace it with --force"
    )]
    GroupExists {
        /// The group ID.
        id: String,
        /// Its record.
        path: PathBuf,
    },
    /// A record that could not be encoded as JSON.
    #[error("could not encode the {what}: {source}")]
    Encode {
        /// What was being encoded ("record", "device").
        what: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
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
