//! The public verdict types: what `verify` answers, certificate by
//! certificate on the path.

use serde::Serialize;

use crate::cert::CertSummary;
use crate::problem::{Problem, ProblemCode, Warning};

/// Where a certificate on a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The device's leaf (first certificate presented).
    Leaf,
    /// Presented by the device after its leaf.
    Presented,
    /// Given with `--untrusted`: not sent by the device.
    Untrusted,
    /// One of the group CAs.
    GroupCa,
}

impl Source {
    /// A short label for text output.
    pub const fn label(self) -> &'static str {
        match self {
            Source::Leaf => "leaf",
            Source::Presented => "presented",
            Source::Untrusted => "untrusted",
            Source::GroupCa => "group CA",
        }
    }
}

/// One certificate on the verdict's path, with what text output shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCert {
    /// Subject name (`CN=...`).
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Where it came from.
    pub source: Source,
    /// 1-based position in its input (the presented chain, the untrusted
    /// certificates, or the group CAs).
    pub position: usize,
    /// The problems found on this certificate.
    pub problems: Vec<ProblemCode>,
}

/// The answer to "does this chain reach the group CA, and if not, why".
#[derive(Debug, Clone)]
pub struct Verdict {
    /// True when a path holds from the leaf to a group CA.
    pub chains: bool,
    /// The leaf, when it could be read.
    pub leaf: Option<CertSummary>,
    /// The path shown: leaf first, group CA last when `reaches_group_ca`;
    /// otherwise as far as it got.
    pub path: Vec<PathCert>,
    /// True when `path` ends at a group CA (it may still fail other rules).
    pub reaches_group_ca: bool,
    /// Index (into [`GroupCas::anchors`](super::GroupCas::anchors)) of the group CA the path ends at.
    pub group_ca: Option<usize>,
    /// Defects, most specific first; empty exactly when `chains`.
    pub problems: Vec<Problem>,
    /// Things worth knowing that do not fail the path.
    pub warnings: Vec<Warning>,
}

impl Verdict {
    /// The subjects on the path, leaf first (DESIGN's `path`).
    pub fn path_subjects(&self) -> Vec<&str> {
        self.path.iter().map(|p| p.subject.as_str()).collect()
    }

    /// True when some problem has `code`.
    pub fn has(&self, code: ProblemCode) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }

    /// The problem codes, in order.
    pub fn codes(&self) -> Vec<ProblemCode> {
        self.problems.iter().map(|p| p.code).collect()
    }

    pub(super) fn failed(leaf: Option<CertSummary>, problem: Problem) -> Verdict {
        Verdict {
            chains: false,
            leaf,
            path: Vec::new(),
            reaches_group_ca: false,
            group_ca: None,
            problems: vec![problem],
            warnings: Vec::new(),
        }
    }
}
