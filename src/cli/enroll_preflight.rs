//! The enrollment pre-flight as the CLI runs and prints it: shared by
//! `enroll check`, `enroll create`, `enroll update` and `deprovision`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use iotca::cert;
use iotca::enroll::{self, CheckProblem, Preflight};
use iotca::verify::GroupCas;

// ---------------------------------------------------------------------------
// Shared with `deprovision`.

/// Reads a certificate file into DER certificates (exit 2 on failure).
pub(super) fn read_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(cert::read_certificates(path)?)
}

/// Reads `--group-ca`: every certificate in the file is a candidate group CA.
pub(super) fn read_group_cas(path: Option<&Path>) -> anyhow::Result<Option<GroupCas>> {
    let Some(path) = path else { return Ok(None) };
    let ders = read_certs(path)?;
    let cas = GroupCas::new(&ders).with_context(|| format!("{}", path.display()))?;
    Ok(Some(cas))
}

/// Runs the pre-flight for `--enrollment-id` / `--cert` / `--group-ca`.
pub(super) fn preflight(
    id: &str,
    cert_path: &Path,
    group_ca: Option<&Path>,
) -> anyhow::Result<(Preflight, Vec<Vec<u8>>)> {
    let chain = read_certs(cert_path)?;
    let cas = read_group_cas(group_ca)?;
    let p = enroll::check_enrollment(id, &chain, cas.as_ref(), OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?;
    Ok((p, chain))
}

/// `enroll check --json`: `{"ok", "enrollment_id", "cn", "problems": [{"code", "message"}]}`.
#[derive(Serialize)]
pub(super) struct JsonPreflight<'a> {
    ok: bool,
    enrollment_id: &'a str,
    cn: Option<&'a str>,
    problems: &'a [CheckProblem],
}

pub(super) fn preflight_json(p: &Preflight) -> JsonPreflight<'_> {
    JsonPreflight {
        ok: p.ok,
        enrollment_id: &p.enrollment_id,
        cn: p.cn.as_deref(),
        problems: &p.problems,
    }
}

/// The pre-flight for people: both strings, a caret under the first
/// difference, then the verdict and every problem.
pub(super) fn render_preflight(p: &Preflight) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "enrollment ID:    {}", shown(&p.enrollment_id));
    match &p.cn {
        Some(cn) => {
            let _ = writeln!(s, "certificate CN:   {}", shown(cn));
            if let Some(i) = p.first_difference {
                let _ = writeln!(
                    s,
                    "                  {}^ first difference, character {}",
                    " ".repeat(i),
                    i + 1
                );
            }
        }
        None => {
            let _ = writeln!(s, "certificate CN:   (none usable)");
        }
    }
    if p.ok {
        let _ = writeln!(
            s,
            "OK: the enrollment ID matches the certificate's CN exactly; the enrollment will match this device."
        );
    } else {
        let _ = writeln!(s, "REFUSED:");
        for problem in &p.problems {
            let _ = writeln!(s, "  ✗ {}: {}", problem.code, problem.message);
            for vp in &problem.problems {
                let _ = writeln!(s, "      {}: {} ({})", vp.code, vp.message, vp.subject);
            }
        }
    }
    s
}

/// An ID as text, control characters escaped so the caret lines up for ASCII.
pub(super) fn shown(s: &str) -> String {
    s.chars().flat_map(char::escape_default).collect()
}
