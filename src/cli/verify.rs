//! `iotca verify`: does a device's chain reach the group's CA, and if not, why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use iotca::cert;
use iotca::problem::{Problem, Warning};
use iotca::text::escape;
use iotca::verify::{GroupCas, Verdict, VerifyOptions};

use super::{CmdResult, Global};

const AFTER_HELP: &str = "\
POSITIONAL ARGUMENTS:
  CERT  A PEM file holding the device's leaf first, then the intermediates the
        device presents, in any order (a full-chain file); the root may be
        included. A single DER certificate is accepted too.

WHAT HOLDS:
  Every link from the leaf to a group CA (same subject and same public key)
  has a valid signature; every issuer is a CA (critical basicConstraints
  CA:TRUE, keyCertSign when keyUsage is present, pathlen respected); every
  certificate on the path, the group CA included, is valid at --at (to the
  second, as X.509 dates are); the leaf is not a CA, has exactly one CN and,
  when it has an extendedKeyUsage, includes clientAuth itself
  (anyExtendedKeyUsage alone is not enough); no certificate has a critical
  extension iotca does not process (a critical AKI or SKI included). RSA
  (PKCS#1 v1.5, SHA-256/384/512) and ECDSA P-256/P-384 are supported.
  Each certificate in a --ca file is a candidate group CA; one that is not
  a CA certificate is named in the problems.

PROBLEM CODES:
  malformed, no_certificate, issuer_not_found, signature_invalid, expired,
  not_yet_valid, issuer_not_ca, issuer_missing_keycertsign, pathlen_exceeded,
  leaf_is_ca, leaf_eku_lacks_client_auth, leaf_missing_cn, leaf_multiple_cn,
  unsupported_critical_extension, unsupported_algorithm, chain_incomplete
  (the path needs an --untrusted certificate the device does not send).
  Warnings (they do not fail a path on their own): leaf_expiring_soon,
  weak_rsa_key, sha1_signature,
  certificate_not_on_path, chain_out_of_order (the file's first certificate
  is a CA and a later one looks like the leaf).

EXIT CODES:
  0  the chain reaches a group CA and every rule holds
  1  it does not; the problems say why
  2  verify could not run (unreadable or malformed file, bad --at)

EXAMPLES:
  Does the device's full chain reach the group's intermediate CA?
    iotca verify certs/sensor-thl-002-full-chain.cert.pem --ca certs/azure-iot-test-only.intermediate.cert.pem

  The group's CA is the root; the device presents leaf and intermediate:
    iotca verify certs/sensor-thl-002-full-chain.cert.pem --ca certs/azure-iot-test-only.root.ca.cert.pem

  A device that sends only its leaf: which certificate must it add?
    iotca verify certs/sensor-thl-002.cert.pem --ca root.pem --untrusted certs/azure-iot-test-only.intermediate.cert.pem

  Two enrollment groups: does the device belong to either?
    iotca verify device.pem --ca group-a.pem --ca group-b.pem

  Will the chain still hold on a given date?
    iotca verify device.pem --ca root.pem --at 2027-01-01T00:00:00Z

  For scripts: the verdict as JSON, the first problem code only:
    iotca verify device.pem --ca root.pem --json | jq -r '.problems[0].code'";

/// Does a device's chain reach the group's CA, and if not, why?
///
/// Builds the path from the device's leaf to the enrollment group's CA the
/// way DPS does (by signature, through the certificates the device
/// presents), checks every rule on it and names the defect and the
/// certificate that carries it.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct VerifyArgs {
    /// The device's certificate: leaf first, then the intermediates it presents.
    pub cert: PathBuf,
    /// The enrollment group's CA certificate (root or intermediate): a file, or a CA name of the home (root, intermediate, NAME); repeatable.
    #[arg(long = "ca", required = true, value_name = "GROUP_CA")]
    pub ca: Vec<PathBuf>,
    /// Certificates that may complete the path but that the device does not send.
    ///
    /// A path that needs one fails with chain_incomplete, naming the
    /// certificate the device must add to its chain.
    #[arg(long, value_name = "FILE")]
    pub untrusted: Vec<PathBuf>,
    /// Verify at this time (RFC 3339, e.g. 2027-01-01T00:00:00Z) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

/// The `--json` document (DESIGN section 5, "verify"):
///
/// ```json
/// {"chains": false,
///  "leaf": {"subject": "CN=sensor-thl-002", "cn": "sensor-thl-002", "serial": "hex",
///           "not_before": "RFC3339", "not_after": "RFC3339", "sha256": "HEX", "sha1": "HEX"},
///  "path": ["CN=sensor-thl-002", "CN=Azure IoT Hub Intermediate Cert Test Only"],
///  "problems": [{"code": "expired", "subject": "CN=...", "message": "..."}],
///  "warnings": []}
/// ```
#[derive(Serialize)]
struct JsonVerdict<'a> {
    chains: bool,
    leaf: Option<super::wire::JsonLeaf<'a>>,
    path: Vec<&'a str>,
    problems: &'a [Problem],
    warnings: &'a [Warning],
}

/// Runs `verify`.
pub fn run(args: &VerifyArgs, g: &Global) -> CmdResult {
    let at = match &args.at {
        Some(s) => OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
            anyhow::anyhow!("--at '{s}' is not an RFC 3339 time such as 2027-01-01T00:00:00Z ({e})")
        })?,
        None => OffsetDateTime::now_utc(),
    };
    let presented = read(&args.cert)?;
    let mut ca_ders = Vec::new();
    for path in &args.ca {
        ca_ders.extend(read(&super::ca_arg::ca_file(path, g)?)?);
    }
    let cas = GroupCas::new(&ca_ders).context("reading the group CA certificates")?;
    let mut untrusted = Vec::new();
    for path in &args.untrusted {
        untrusted.extend(read(path)?);
    }
    let verdict = cas.verify_with(&presented, &untrusted, &VerifyOptions::at(at));
    if g.json {
        super::print_json(&JsonVerdict {
            chains: verdict.chains,
            leaf: verdict.leaf.as_ref().map(Into::into),
            path: verdict.path_subjects(),
            problems: &verdict.problems,
            warnings: &verdict.warnings,
        })?;
    } else if !g.quiet {
        let text = render(&verdict, &cas, at);
        use std::io::Write;
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }
    Ok(if verdict.chains { 0 } else { 1 })
}

fn read(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(cert::read_certificates(path)?)
}

/// The verdict for people: the path drawn leaf to CA, then the answer and
/// what to do.
fn render(v: &Verdict, cas: &GroupCas, at: OffsetDateTime) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Path from the device's leaf toward the group CA (checked at {}):",
        cert::rfc3339(at)
    );
    for (i, p) in v.path.iter().enumerate() {
        let indent = "   ".repeat(i);
        let arrow = if i == 0 { "" } else { "└─ " };
        let mark = if p.problems.is_empty() {
            "ok".to_string()
        } else {
            format!(
                "✗ {}",
                p.problems
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let _ = writeln!(
            s,
            "  {indent}{arrow}[{}] {}   {mark}",
            source_label(p.source, p.position),
            escape(&p.subject)
        );
        let pad = if i == 0 { "" } else { "   " };
        let _ = writeln!(
            s,
            "  {indent}{pad}    valid {} → {}",
            p.not_before, p.not_after
        );
    }
    if !v.reaches_group_ca && !v.path.is_empty() {
        let indent = "   ".repeat(v.path.len());
        let names: Vec<String> = cas
            .anchors()
            .iter()
            .map(|a| escape(a.subject()).into_owned())
            .collect();
        let _ = writeln!(
            s,
            "  {indent}└─ ✗ no link to the group CA ({})",
            names.join(", ")
        );
    }
    let _ = writeln!(s);
    if v.chains {
        let ca = v.path.last().map(|p| p.subject.as_str()).unwrap_or("");
        let leaf = v.path.first().map(|p| p.subject.as_str()).unwrap_or("");
        let _ = writeln!(
            s,
            "CHAINS: {} reaches the group CA {}.",
            escape(leaf),
            escape(ca)
        );
    } else {
        let _ = writeln!(s, "DOES NOT CHAIN:");
        for p in &v.problems {
            let _ = writeln!(s, "  ✗ {}: {}", p.code, escape(&p.message));
            let _ = writeln!(s, "    what to do: {}", p.code.advice());
        }
    }
    for w in &v.warnings {
        let _ = writeln!(s, "  warning: {}: {}", w.code, escape(&w.message));
    }
    s
}

fn source_label(source: iotca::verify::Source, position: usize) -> String {
    use iotca::verify::Source;
    match source {
        Source::Leaf => "leaf".into(),
        Source::Presented => format!("presented #{position}"),
        Source::Untrusted => format!("untrusted #{position}, NOT sent by the device"),
        Source::GroupCa => "group CA".into(),
    }
}
