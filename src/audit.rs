//! Fleet audit: which of thousands of device certificates chain to a group
//! CA, which have expired or expire soon, which are unreadable, and (with a
//! local DPS store) which a disabled enrollment blocks.
//!
//! Files are discovered lazily and verified on all cores; each file yields
//! one small [`Row`] (a few hundred bytes), kept until the scan ends so that
//! files holding the same leaf merge into one row and CAs found anywhere in
//! the scan are told apart from devices: memory grows with the number of
//! files, never with certificate contents. The group CAs are
//! parsed once ([`GroupCas`]) and shared by every thread.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cert::{self, ParseError};
use crate::problem::{Problem, ProblemCode};
use crate::verify::{GroupCas, VerifyOptions};

mod classify;

use classify::LeafMeta;
pub use classify::{Known, VERIFICATION_FILE, looks_like_verification_code};

/// File extensions audit reads (case-insensitive).
pub const EXTENSIONS: [&str; 4] = ["pem", "crt", "cer", "der"];

/// What the local DPS store says about one device (filled in by the caller
/// that owns the store; see [`EnrollmentLookup`]).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EnrollmentInfo {
    /// The individual enrollment for the device's CN: `enabled`, `disabled`,
    /// or None when there is none.
    pub enrollment: Option<String>,
    /// The simulated DPS decision: `assigned`, `disabled` or `failed`.
    pub provisioning: Option<String>,
}

/// Looks up a device in a local DPS store. Implemented over the enrollment
/// store; must be cheap and thread-safe (called once per device, from many threads).
pub trait EnrollmentLookup: Sync {
    /// The enrollment state and provisioning decision for a device whose
    /// leaf has `cn` and which presents `chain` (leaf first).
    fn lookup(&self, cn: &str, chain: &[Vec<u8>], at: OffsetDateTime) -> EnrollmentInfo;
}

/// One audited file.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The first file holding the device's leaf.
    pub path: PathBuf,
    /// Every file holding the device's leaf (`<id>.cert.pem`,
    /// `<id>-full-chain.cert.pem`...), `path` first.
    pub files: Vec<PathBuf>,
    /// The leaf's CN (None when unreadable, missing or repeated).
    pub cn: Option<String>,
    /// The leaf's serial, lower-case hex.
    pub serial: Option<String>,
    /// True when the device's chain reaches a group CA.
    pub chains: bool,
    /// Verify problems (or `malformed` for an unreadable file).
    pub problems: Vec<Problem>,
    /// The leaf's notAfter, RFC 3339.
    pub not_after: Option<String>,
    /// Whole days until notAfter (negative once expired).
    pub days_left: Option<i64>,
    /// Individual enrollment state, with a local DPS store.
    pub enrollment: Option<String>,
    /// Simulated DPS decision, with a local DPS store.
    pub provisioning: Option<String>,
}

impl Row {
    /// True when the file could not be read as a certificate.
    pub fn unreadable(&self) -> bool {
        self.problems
            .iter()
            .any(|p| matches!(p.code, ProblemCode::Malformed | ProblemCode::NoCertificate))
            && self.serial.is_none()
    }

    /// True when the leaf is past its notAfter.
    pub fn expired(&self) -> bool {
        self.days_left.is_some_and(|d| d < 0)
    }

    /// True when the device chains but a disabled enrollment stops it.
    pub fn blocked(&self) -> bool {
        self.chains && self.provisioning.as_deref() == Some("disabled")
    }

    /// Why DPS would refuse a device that chains, if it would: its CN is
    /// not a registration ID DPS accepts, or the simulated decision failed.
    pub fn dps_refusal(&self) -> Option<String> {
        if !self.chains {
            return None;
        }
        if let Some(cn) = &self.cn
            && let Err(e) = crate::ids::check_x509_registration_id(cn)
        {
            return Some(format!("its CN is not a registration ID DPS accepts: {e}"));
        }
        (self.provisioning.as_deref() == Some("failed"))
            .then(|| "the simulated DPS decision is `failed`".to_string())
    }

    /// The most specific problem code, for grouping.
    pub fn main_problem(&self) -> Option<ProblemCode> {
        self.problems.first().map(|p| p.code)
    }
}

/// The audit's counts (DESIGN section 7's `summary`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Devices audited (one per distinct leaf, unreadable files included).
    pub total: usize,
    /// Devices whose chain reaches the group CA.
    pub chains: usize,
    /// Devices that do not chain (unreadable files included).
    pub not_chaining: usize,
    /// Leaves past their notAfter.
    pub expired: usize,
    /// Leaves still valid but expiring within the window.
    pub expiring: usize,
    /// Files that are not readable certificates.
    pub unreadable: usize,
    /// Devices that chain but a disabled enrollment blocks.
    pub blocked: usize,
    /// CA certificates found among the files (the group CA, a home CA, or
    /// the issuer of another certificate found), not devices.
    pub ca_certs: usize,
    /// Proof-of-possession certificates found among the files, not devices.
    pub verification_certs: usize,
    /// Files holding only private keys, left out of the audit.
    pub skipped_keys: usize,
}

/// How to audit.
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// The time every certificate must be valid at.
    pub at: OffsetDateTime,
    /// A still-valid leaf expiring within this many days counts as `expiring`.
    pub expiring_within_days: i64,
}

/// Files audited in parallel at a time: rows are handed to the caller chunk
/// by chunk, in discovery order, so memory does not grow with the fleet.
pub const CHUNK: usize = 4096;

/// What a file turned out to be (nearly every file is a device).
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Device(Row, Option<LeafMeta>),
    KeyOnly,
}

impl Summary {
    /// Counts one audited device.
    pub fn add(&mut self, row: &Row, expiring_within_days: i64) {
        self.total += 1;
        if row.chains {
            self.chains += 1;
        } else {
            self.not_chaining += 1;
        }
        if row.unreadable() {
            self.unreadable += 1;
        }
        if row.expired() {
            self.expired += 1;
        } else if row.days_left.is_some_and(|d| d < expiring_within_days) {
            self.expiring += 1;
        }
        if row.blocked() {
            self.blocked += 1;
        }
    }
}

/// Audits every certificate file under `paths` (recursing into
/// directories, following symlinks without looping) against `cas`, on all
/// cores, [`CHUNK`] files at a time; `progress` is called once per file.
/// Files holding the same leaf make one row; CA and proof-of-possession
/// certificates (see [`Known`]) are counted, not rows. Each device's row
/// goes to `sink` in discovery order (directories in file-name order).
/// Returns the counts.
pub fn run(
    paths: &[PathBuf],
    cas: &GroupCas,
    known: &Known,
    enrollments: Option<&dyn EnrollmentLookup>,
    opts: &AuditOptions,
    progress: &(dyn Fn() + Sync),
    sink: &mut dyn FnMut(Row),
) -> Summary {
    let mut summary = Summary::default();
    let mut files = discover(paths).peekable();
    let mut chunk: Vec<PathBuf> = Vec::with_capacity(CHUNK);
    let mut found = Vec::new();
    while files.peek().is_some() {
        chunk.clear();
        chunk.extend(files.by_ref().take(CHUNK));
        let outcomes: Vec<Outcome> = chunk
            .par_drain(..)
            .map(|path| {
                let o = audit_file(path, cas, enrollments, opts);
                progress();
                o
            })
            .collect();
        for o in outcomes {
            match o {
                Outcome::Device(row, meta) => found.push((row, meta)),
                Outcome::KeyOnly => summary.skipped_keys += 1,
            }
        }
    }
    let (rows, counts) = classify::classify(found, known);
    summary.ca_certs = counts.ca_certs;
    summary.verification_certs = counts.verification_certs;
    for row in rows {
        summary.add(&row, opts.expiring_within_days);
        sink(row);
    }
    summary
}

/// Lazily lists the certificate files under `paths`: files given directly
/// are always included; directories are walked recursively for the
/// [`EXTENSIONS`], following symlinks (walkdir detects loops).
pub fn discover(paths: &[PathBuf]) -> impl Iterator<Item = PathBuf> + Send + '_ {
    paths.iter().flat_map(|p| {
        let direct = std::fs::metadata(p).map(|m| !m.is_dir()).unwrap_or(true);
        let walker = walkdir::WalkDir::new(p)
            .follow_links(true)
            .sort_by_file_name();
        walker.into_iter().filter_map(move |entry| match entry {
            Ok(e) if e.file_type().is_file() => {
                (direct || has_cert_extension(e.path())).then(|| e.into_path())
            }
            Ok(_) => None,
            // Loops and unreadable directories are skipped; an unreadable
            // *file* given directly still becomes a malformed row.
            Err(e) => e.path().filter(|_| direct).map(Path::to_path_buf),
        })
    })
}

fn has_cert_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn unreadable_row(path: PathBuf, code: ProblemCode, message: String) -> Row {
    Row {
        files: vec![path.clone()],
        path,
        cn: None,
        serial: None,
        chains: false,
        problems: vec![Problem::new(code, "", message)],
        not_after: None,
        days_left: None,
        enrollment: None,
        provisioning: None,
    }
}

fn audit_file(
    path: PathBuf,
    cas: &GroupCas,
    enrollments: Option<&dyn EnrollmentLookup>,
    opts: &AuditOptions,
) -> Outcome {
    let bytes = match cert::read_limited(&path) {
        Ok(b) => b,
        Err(e) => {
            let msg = e.to_string();
            return Outcome::Device(unreadable_row(path, ProblemCode::Malformed, msg), None);
        }
    };
    let chain = match cert::split_unchecked(&bytes) {
        Ok(c) => c,
        Err(ParseError::PrivateKey(_)) => return Outcome::KeyOnly,
        Err(e @ (ParseError::Empty | ParseError::NoCertificate(_))) => {
            let msg = format!("{}: {e}", path.display());
            return Outcome::Device(unreadable_row(path, ProblemCode::NoCertificate, msg), None);
        }
        Err(e) => {
            let msg = format!("{}: {e}", path.display());
            return Outcome::Device(unreadable_row(path, ProblemCode::Malformed, msg), None);
        }
    };
    drop(bytes);
    let verdict = cas.verify_with(
        &chain,
        &[] as &[&[u8]],
        &VerifyOptions {
            at: opts.at,
            expiring_within_days: opts.expiring_within_days,
        },
    );
    let Some(leaf) = verdict.leaf else {
        return Outcome::Device(
            Row {
                problems: verdict.problems,
                ..unreadable_row(path, ProblemCode::Malformed, String::new())
            },
            None,
        );
    };
    let meta = leaf_meta(&chain, &leaf.sha256);
    let mut problems = verdict.problems;
    let mut chains = verdict.chains;
    if meta.as_ref().is_some_and(|m| m.is_ca) {
        // A CA:TRUE certificate that is no CA of the scan is a device row
        // that cannot be a device: say so first, whatever else verify found.
        let p = match problems
            .iter()
            .position(|p| p.code == ProblemCode::LeafIsCa)
        {
            Some(i) => problems.remove(i),
            None => Problem::new(
                ProblemCode::LeafIsCa,
                &leaf.subject,
                format!(
                    "{} is a CA certificate (basicConstraints CA:TRUE), not a device certificate",
                    leaf.subject
                ),
            ),
        };
        problems.insert(0, p);
        chains = false;
    }
    let not_after = OffsetDateTime::parse(&leaf.not_after, &Rfc3339).ok();
    let info = match (enrollments, &leaf.cn) {
        (Some(store), Some(cn)) => store.lookup(cn, &chain, opts.at),
        _ => EnrollmentInfo::default(),
    };
    Outcome::Device(
        Row {
            files: vec![path.clone()],
            path,
            cn: leaf.cn,
            serial: Some(leaf.serial),
            chains,
            problems,
            days_left: not_after.map(|t| cert::days_between(opts.at, t)),
            not_after: Some(leaf.not_after),
            enrollment: info.enrollment,
            provisioning: info.provisioning,
        },
        meta,
    )
}

/// The leaf's names and CA flag, and the issuers named in the file.
fn leaf_meta(chain: &[Vec<u8>], sha256: &str) -> Option<LeafMeta> {
    let leaf = cert::parse_der(chain.first()?).ok()?;
    let issuers = chain
        .iter()
        .filter_map(|der| cert::parse_der(der).ok())
        .filter(|c| c.subject().as_raw() != c.issuer().as_raw())
        .map(|c| c.issuer().as_raw().to_vec())
        .collect();
    Some(LeafMeta {
        sha256: sha256.to_string(),
        subject_raw: leaf.subject().as_raw().to_vec(),
        issuer_raw: leaf.issuer().as_raw().to_vec(),
        is_ca: matches!(leaf.basic_constraints(), Ok(Some(bc)) if bc.value.ca),
        issuers,
        holds_leaf_later: chain.iter().skip(1).any(|der| {
            cert::parse_der(der)
                .is_ok_and(|c| !matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca))
        }),
    })
}

/// Quotes a CSV field when needed (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV header.
pub const CSV_HEADER: &str =
    "path,cn,serial,chains,problems,not_after,days_left,enrollment,provisioning";

/// One CSV line for a row (problem codes joined with `;`).
pub fn csv_line(row: &Row) -> String {
    let codes: Vec<&str> = row.problems.iter().map(|p| p.code.as_str()).collect();
    [
        csv_field(&row.path.to_string_lossy()),
        csv_field(row.cn.as_deref().unwrap_or("")),
        row.serial.clone().unwrap_or_default(),
        row.chains.to_string(),
        codes.join(";"),
        row.not_after.clone().unwrap_or_default(),
        row.days_left.map(|d| d.to_string()).unwrap_or_default(),
        row.enrollment.clone().unwrap_or_default(),
        row.provisioning.clone().unwrap_or_default(),
    ]
    .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn discovery_filters_extensions_and_survives_loops() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        for f in ["a/x.pem", "a/b/y.DER", "a/b/z.crt", "a/n.txt", "a/k.cer"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink(d.join("a"), d.join("a/b/loop")).unwrap();
        let mut found: Vec<String> = discover(&[d.join("a")])
            .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(found, ["a/b/y.DER", "a/b/z.crt", "a/k.cer", "a/x.pem"]);
        let direct: Vec<PathBuf> = discover(&[d.join("a/n.txt")]).collect();
        assert_eq!(direct, [d.join("a/n.txt")]);
    }
}
