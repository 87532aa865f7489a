//! The local DPS store: one JSON file per enrollment in the home.
//!
//! ```text
//! dps/enrollments/<registration-id, lower-cased>.json      IndividualEnrollment
//! dps/enrollmentGroups/<group-id, lower-cased>.json        EnrollmentGroup
//! ```
//!
//! File stems are lower-cased because DPS matches registration IDs (and
//! enrollment group IDs) case-insensitively: `Sensor-01` and `sensor-01` are
//! one enrollment. Every ID is checked against the registration ID rules
//! before it becomes a file name, so no ID can name a path outside the home
//! (`/`, `..`, NUL and non-ASCII are all refused).
//!
//! Writes are atomic ([`Home::write_new`], [`Home::write_replace`]); records
//! are never overwritten silently: replacing or deleting one moves the old
//! file under `archive/<timestamp>/`. Callers hold [`Home::lock`] around a
//! read-modify-write; these functions do not take it themselves (a second
//! lock in the same process would wait for itself).
//!
//! A record a person edited badly is reported as [`Error::BadRecord`] naming
//! the file; listings collect such errors beside the readable records, so
//! one broken file never hides the others.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::schema::{EnrollmentGroup, IndividualEnrollment, X509Certificates};
use crate::cert;
use crate::error::{Error, Result};
use crate::home::{FileKind, Home, Locked};
use crate::ids;

/// Directory of individual enrollments, relative to the home.
pub const ENROLLMENTS_DIR: &str = "dps/enrollments";
/// Directory of enrollment groups, relative to the home.
pub const GROUPS_DIR: &str = "dps/enrollmentGroups";
/// Largest record file read (a record holds one or two certificates).
pub const MAX_RECORD_BYTES: u64 = crate::home::MAX_INPUT_BYTES;

/// An individual enrollment read from the store, with its certificates decoded.
#[derive(Debug, Clone)]
pub struct StoredIndividual {
    /// The record file.
    pub path: PathBuf,
    /// The record.
    pub enrollment: IndividualEnrollment,
    /// DER of the primary (then secondary) client certificate.
    pub certificates: Vec<Vec<u8>>,
}

/// An enrollment group read from the store, with its certificates decoded.
#[derive(Debug, Clone)]
pub struct StoredGroup {
    /// The record file.
    pub path: PathBuf,
    /// The record.
    pub group: EnrollmentGroup,
    /// DER of the primary (then secondary) signing certificate.
    pub certificates: Vec<Vec<u8>>,
}

/// Every record of one kind: the readable ones, and an error per broken file.
#[derive(Debug)]
pub struct Listing<T> {
    /// Readable records, sorted by file name.
    pub records: Vec<T>,
    /// One [`Error::BadRecord`] (or [`Error::Io`]) per file that could not be read.
    pub errors: Vec<Error>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The record file written.
    pub path: PathBuf,
    /// Where the record it replaced was moved, if one existed.
    pub archived_to: Option<PathBuf>,
}

/// The local DPS store of one home.
#[derive(Debug, Clone)]
pub struct EnrollmentStore {
    home: Home,
}

impl EnrollmentStore {
    /// The store inside `home` (its directories are made on first write).
    pub fn new(home: Home) -> Self {
        EnrollmentStore { home }
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// `dps/enrollments/<id lower-cased>.json`, after checking `id` is a
    /// registration ID.
    pub fn individual_path(&self, id: &str) -> Result<PathBuf> {
        ids::check_registration_id(id)?;
        Ok(self.home.path(format!(
            "{ENROLLMENTS_DIR}/{}.json",
            ids::registration_file_stem(id)
        )))
    }

    /// `dps/enrollmentGroups/<id lower-cased>.json`, after checking `id`
    /// (enrollment group IDs follow the registration ID rules).
    pub fn group_path(&self, id: &str) -> Result<PathBuf> {
        ids::check_registration_id(id)?;
        Ok(self.home.path(format!(
            "{GROUPS_DIR}/{}.json",
            ids::registration_file_stem(id)
        )))
    }

    /// The individual enrollment for `id` (case-insensitive), or None.
    pub fn individual(&self, id: &str) -> Result<Option<StoredIndividual>> {
        let path = self.individual_path(id)?;
        match read_record(&path)? {
            None => Ok(None),
            Some(bytes) => parse_individual(&path, &bytes).map(Some),
        }
    }

    /// The enrollment group `id` (case-insensitive), or None.
    pub fn group(&self, id: &str) -> Result<Option<StoredGroup>> {
        let path = self.group_path(id)?;
        match read_record(&path)? {
            None => Ok(None),
            Some(bytes) => parse_group(&path, &bytes).map(Some),
        }
    }

    /// Writes a new individual enrollment; refuses ([`Error::Exists`]) when
    /// one exists for that registration ID.
    pub fn create_individual(
        &self,
        lock: &Locked<'_>,
        e: &IndividualEnrollment,
    ) -> Result<Written> {
        let path = self.individual_path(&e.registration_id)?;
        self.write(lock, &path, e, false)
    }

    /// Writes an individual enrollment, moving any existing one for that
    /// registration ID under `archive/<timestamp>/` first.
    pub fn replace_individual(
        &self,
        lock: &Locked<'_>,
        e: &IndividualEnrollment,
    ) -> Result<Written> {
        let path = self.individual_path(&e.registration_id)?;
        self.write(lock, &path, e, true)
    }

    /// Writes a new enrollment group; refuses ([`Error::Exists`]) when it exists.
    pub fn create_group(&self, lock: &Locked<'_>, g: &EnrollmentGroup) -> Result<Written> {
        let path = self.group_path(&g.enrollment_group_id)?;
        self.write(lock, &path, g, false)
    }

    /// Writes an enrollment group, archiving any existing one with that ID.
    pub fn replace_group(&self, lock: &Locked<'_>, g: &EnrollmentGroup) -> Result<Written> {
        let path = self.group_path(&g.enrollment_group_id)?;
        self.write(lock, &path, g, true)
    }

    /// Stores an individual enrollment under the home's lock (an existing
    /// one for that registration ID is refused, or archived when `replace`),
    /// then reads it back and checks the stored provisioningStatus is the
    /// one written: what `enroll create --to local` promises.
    pub fn store_individual(
        &self,
        e: &IndividualEnrollment,
        replace: bool,
    ) -> Result<(Written, StoredIndividual)> {
        let lock = self.home.lock()?;
        let written = if replace {
            self.replace_individual(&lock, e)?
        } else {
            self.create_individual(&lock, e).map_err(|err| match err {
                Error::Exists { path } => Error::EnrollmentExists {
                    id: e.registration_id.clone(),
                    path,
                },
                other => other,
            })?
        };
        let back = self.individual(&e.registration_id)?;
        let back = confirm(
            &written.path,
            back,
            |b| b.enrollment.provisioning_status,
            e.provisioning_status,
        )?;
        Ok((written, back))
    }

    /// Stores an enrollment group, as [`EnrollmentStore::store_individual`] does.
    pub fn store_group(
        &self,
        g: &EnrollmentGroup,
        replace: bool,
    ) -> Result<(Written, StoredGroup)> {
        let lock = self.home.lock()?;
        let written = if replace {
            self.replace_group(&lock, g)?
        } else {
            self.create_group(&lock, g).map_err(|err| match err {
                Error::Exists { path } => Error::GroupExists {
                    id: g.enrollment_group_id.clone(),
                    path,
                },
                other => other,
            })?
        };
        let back = self.group(&g.enrollment_group_id)?;
        let back = confirm(
            &written.path,
            back,
            |b| b.group.provisioning_status,
            g.provisioning_status,
        )?;
        Ok((written, back))
    }

    /// Changes the enrollment group `id` under the home's lock: `change`
    /// edits the record (it may refuse), the old record is archived, the
    /// new one written and read back (provisioningStatus confirmed).
    /// Returns what was written, the group before and the group after.
    pub fn update_group(
        &self,
        id: &str,
        change: impl FnOnce(&StoredGroup, &mut EnrollmentGroup) -> Result<()>,
    ) -> Result<(Written, StoredGroup, StoredGroup)> {
        let lock = self.home.lock()?;
        let before = self.group(id)?.ok_or_else(|| {
            Error::Invalid(format!(
                "no enrollment group '{id}' in the local store; create it with `iotca enroll group create {id} --ca CERT`"
            ))
        })?;
        let mut g = before.group.clone();
        change(&before, &mut g)?;
        let written = self.replace_group(&lock, &g)?;
        let back = confirm(
            &written.path,
            self.group(id)?,
            |b| b.group.provisioning_status,
            g.provisioning_status,
        )?;
        Ok((written, before, back))
    }

    /// Changes the individual enrollment `id`, as [`EnrollmentStore::update_group`].
    pub fn update_individual(
        &self,
        id: &str,
        change: impl FnOnce(&StoredIndividual, &mut IndividualEnrollment) -> Result<()>,
    ) -> Result<(Written, StoredIndividual, StoredIndividual)> {
        let lock = self.home.lock()?;
        let before = self.individual(id)?.ok_or_else(|| {
            Error::Invalid(format!(
                "no individual enrollment '{id}' in the local store; create it with `iotca enroll create --enrollment-id {id} --cert CERT`"
            ))
        })?;
        let mut e = before.enrollment.clone();
        change(&before, &mut e)?;
        let written = self.replace_individual(&lock, &e)?;
        let back = confirm(
            &written.path,
            self.individual(id)?,
            |b| b.enrollment.provisioning_status,
            e.provisioning_status,
        )?;
        Ok((written, before, back))
    }

    /// Deletes the individual enrollment `id` by moving its file under
    /// `archive/<timestamp>/`. Returns the archive directory, or None when
    /// there was no such enrollment.
    pub fn delete_individual(&self, lock: &Locked<'_>, id: &str) -> Result<Option<PathBuf>> {
        let path = self.individual_path(id)?;
        lock.archive(&[&path])
    }

    /// Deletes the enrollment group `id` (moved under `archive/`), as
    /// [`EnrollmentStore::delete_individual`].
    pub fn delete_group(&self, lock: &Locked<'_>, id: &str) -> Result<Option<PathBuf>> {
        let path = self.group_path(id)?;
        lock.archive(&[&path])
    }

    /// Every individual enrollment; broken files are listed in `errors`.
    pub fn individuals(&self) -> Listing<StoredIndividual> {
        self.list(ENROLLMENTS_DIR, parse_individual)
    }

    /// Every enrollment group; broken files are listed in `errors`.
    pub fn groups(&self) -> Listing<StoredGroup> {
        self.list(GROUPS_DIR, parse_group)
    }

    fn write<T: serde::Serialize>(
        &self,
        lock: &Locked<'_>,
        path: &Path,
        record: &T,
        replace: bool,
    ) -> Result<Written> {
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|source| Error::Encode {
            what: "record",
            source,
        })?;
        bytes.push(b'\n');
        let archived_to = if replace {
            lock.archive(&[path])?
        } else {
            None
        };
        lock.write_new(path, &bytes, FileKind::Public, true)?;
        Ok(Written {
            path: path.to_path_buf(),
            archived_to,
        })
    }

    fn list<T>(&self, dir: &str, parse: fn(&Path, &[u8]) -> Result<T>) -> Listing<T> {
        let mut listing = Listing {
            records: Vec::new(),
            errors: Vec::new(),
        };
        let paths = match self.home.record_files(dir) {
            Ok(p) => p,
            Err(e) => {
                listing.errors.push(e);
                return listing;
            }
        };
        for path in paths {
            let result = read_record(&path).and_then(|bytes| match bytes {
                Some(b) => parse(&path, &b).map(Some),
                None => Ok(None),
            });
            match result {
                Ok(Some(r)) => listing.records.push(r),
                Ok(None) => {}
                Err(e) => listing.errors.push(e),
            }
        }
        listing
    }
}

/// The record read back after writing it, with the status that was written.
fn confirm<T>(
    path: &Path,
    back: Option<T>,
    status: impl Fn(&T) -> super::schema::ProvisioningStatus,
    wrote: super::schema::ProvisioningStatus,
) -> Result<T> {
    let back = back.ok_or_else(|| bad(path, "vanished right after it was written"))?;
    if status(&back) != wrote {
        return Err(bad(
            path,
            format!(
                "reads back provisioningStatus {}, not {wrote}",
                status(&back)
            ),
        ));
    }
    Ok(back)
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadRecord {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a record file (at most [`MAX_RECORD_BYTES`]); None when it does not exist.
fn read_record(path: &Path) -> Result<Option<Vec<u8>>> {
    crate::home::fs::read_record(path)
}

fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| bad(path, format!("is not a valid DPS record: {e}")))
}

/// The file stem must be the record's ID lower-cased, or lookups by ID would miss it.
fn check_stem(path: &Path, id: &str, field: &str) -> Result<()> {
    ids::check_registration_id(id).map_err(|e| bad(path, format!("{field}: {e}")))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != ids::registration_file_stem(id) {
        return Err(bad(
            path,
            format!(
                "{field} '{id}' does not match the file name (expected {}.json)",
                ids::registration_file_stem(id)
            ),
        ));
    }
    Ok(())
}

fn decode_certificates(
    path: &Path,
    kind: &str,
    certs: Option<&X509Certificates>,
) -> Result<Vec<Vec<u8>>> {
    let certs = certs.ok_or_else(|| {
        bad(
            path,
            format!("attestation.x509.{kind}.primary.certificate is missing"),
        )
    })?;
    let mut out = Vec::new();
    for (i, pem) in certs.pems().enumerate() {
        let which = if i == 0 { "primary" } else { "secondary" };
        let ders = cert::split_certificates(pem.as_bytes()).map_err(|e| {
            bad(
                path,
                format!("attestation.x509.{kind}.{which}.certificate {e}"),
            )
        })?;
        out.push(ders.into_iter().next().unwrap_or_default());
    }
    Ok(out)
}

fn check_attestation_type(path: &Path, kind: &str) -> Result<()> {
    if kind != "x509" {
        return Err(bad(
            path,
            format!("attestation type '{kind}' is not supported; iotca handles x509 only"),
        ));
    }
    Ok(())
}

/// Parses and checks an individual enrollment record read from `path`.
pub fn parse_individual(path: &Path, bytes: &[u8]) -> Result<StoredIndividual> {
    let enrollment: IndividualEnrollment = parse_json(path, bytes)?;
    check_stem(path, &enrollment.registration_id, "registrationId")?;
    if let Some(d) = &enrollment.device_id {
        ids::check_device_id(d).map_err(|e| bad(path, format!("deviceId: {e}")))?;
    }
    check_attestation_type(path, &enrollment.attestation.kind)?;
    let certificates =
        decode_certificates(path, "clientCertificates", enrollment.client_certificates())?;
    Ok(StoredIndividual {
        path: path.to_path_buf(),
        enrollment,
        certificates,
    })
}

/// Parses and checks an enrollment group record read from `path`.
pub fn parse_group(path: &Path, bytes: &[u8]) -> Result<StoredGroup> {
    let group: EnrollmentGroup = parse_json(path, bytes)?;
    check_stem(path, &group.enrollment_group_id, "enrollmentGroupId")?;
    check_attestation_type(path, &group.attestation.kind)?;
    let certificates =
        decode_certificates(path, "signingCertificates", group.signing_certificates())?;
    Ok(StoredGroup {
        path: path.to_path_buf(),
        group,
        certificates,
    })
}
