//! `iotca audit --ca GROUP_CA PATH...`: a fleet of device certificates
//! against a group CA.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use iotca::audit::{self, AuditOptions, Row, Summary};
use iotca::cert;
use iotca::text::escape;
use iotca::verify::GroupCas;

use super::{CmdResult, Global};

const HELP: &str = "\
Reads every certificate file under the PATHs (.pem .crt .cer .der, recursing
into directories; files named directly are read whatever their extension).
A file's first certificate is its leaf, the rest the chain it presents.
A device is one leaf: files holding the same leaf (<id>.cert.pem and
<id>-full-chain.cert.pem) make one row listing them under \"files\".
Not devices, counted in the summary instead: CA certificates (ca_certs: a
--ca certificate, a CA of the home, or the issuer of another certificate
found) and proof-of-possession certificates (verification_certs:
certs/verification-code.cert.pem, or a CN of 16+ hex digits signed by a CA
of the home that is not one of its devices). Files holding only a private
key are left out (skipped_keys). Any other CA:TRUE certificate is a device
row with `leaf_is_ca`. An unreadable file is a row with `malformed`, never
a stop. A device that chains but that DPS would refuse (a CN that is not a
registration ID, a `failed` decision) is listed in the table.
When the home holds a local DPS store (dps/), each row also shows the
device's individual enrollment and the simulated DPS decision.

EXIT CODES:
  0  every device chains to the group CA
  1  at least one device does not chain (or a file is unreadable)
  2  the audit could not run (unreadable --ca, bad arguments, --json with
     --format csv)

EXAMPLES:
  Which devices chain to the intermediate the enrollment group uses?
    iotca audit --ca pki/certs/azure-iot-test-only.intermediate.cert.pem pki/certs
  A spreadsheet of the fleet, expiring within 60 days flagged:
    iotca audit --ca root.pem /srv/fleet --format csv --expiring-within 60 > fleet.csv
  Failing devices as JSON for a script:
    iotca audit --ca root.pem fleet/ --json | jq '.devices[] | select(.chains | not) | .path'";

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Failing devices first, grouped by problem, then the summary.
    Table,
    /// One JSON document: {summary, devices}.
    Json,
    /// A header and one row per device.
    Csv,
}

/// `audit` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct AuditArgs {
    /// The enrollment group's CA certificate (root or intermediate): a file, or a CA name of the home (root, intermediate, NAME); repeatable.
    #[arg(long = "ca", required = true, value_name = "GROUP_CA")]
    pub ca: Vec<PathBuf>,
    /// Files and directories to audit.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Count still-valid certificates expiring within DAYS as `expiring`.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub expiring_within: i64,
    /// Audit at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

/// Runs `audit`.
pub fn run(a: &AuditArgs, g: &Global) -> CmdResult {
    if g.json && a.format == Format::Csv {
        return Err(super::Usage(
            "--json and --format csv cannot go together: choose one output".into(),
        )
        .into());
    }
    let at = match &a.at {
        Some(s) => OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            anyhow::anyhow!("--at '{s}' is not an RFC 3339 time such as 2027-01-31T12:00:00Z")
        })?,
        None => OffsetDateTime::now_utc(),
    };
    let mut ders = Vec::new();
    for f in &a.ca {
        let certs = cert::read_certificates(&super::ca_arg::ca_file(f, g)?)?;
        ders.push(certs.into_iter().next().unwrap_or_default());
    }
    let cas = GroupCas::new(&ders).map_err(|e| anyhow::anyhow!("--ca: {e}"))?;
    let known = super::audit_known::known(&ders, &g.home_dir());
    for p in &a.paths {
        if std::fs::metadata(p).is_err() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    let bar = spinner(g.quiet);
    let tick = || bar.inc(1);
    let lookup = super::enrollment_lookup(g)?;
    let opts = AuditOptions {
        at,
        expiring_within_days: a.expiring_within,
    };
    let format = if g.json { Format::Json } else { a.format };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Rows are written as they come (CSV, JSON) or only the ones the table
    // shows are kept: memory does not grow with the fleet.
    let mut shown: Vec<Row> = Vec::new();
    let mut first = true;
    let mut write_err: Option<std::io::Error> = None;
    match format {
        Format::Csv => writeln!(out, "{}", audit::CSV_HEADER)?,
        Format::Json => write!(out, "{{\n  \"devices\": [")?,
        Format::Table => {}
    }
    let window = a.expiring_within;
    let summary = audit::run(
        &a.paths,
        &cas,
        &known,
        lookup.as_deref(),
        &opts,
        &tick,
        &mut |row| {
            if write_err.is_some() {
                return;
            }
            let r = match format {
                Format::Csv => writeln!(out, "{}", audit::csv_line(&row)),
                Format::Json => {
                    let sep = if first { "\n    " } else { ",\n    " };
                    first = false;
                    write!(out, "{sep}").and_then(|_| {
                        serde_json::to_writer(&mut out, &row).map_err(std::io::Error::from)
                    })
                }
                Format::Table => {
                    if table_shows(&row, window) {
                        shown.push(row);
                    }
                    Ok(())
                }
            };
            if let Err(e) = r {
                write_err = Some(e);
            }
        },
    );
    bar.finish_and_clear();
    if let Some(e) = write_err {
        return Err(e.into());
    }
    match format {
        Format::Json => {
            let s = serde_json::to_string_pretty(&summary)?.replace('\n', "\n  ");
            writeln!(out, "\n  ],\n  \"summary\": {s}\n}}")?;
        }
        Format::Table if !g.quiet => print_table(&mut out, &summary, &shown, window)?,
        _ => {}
    }
    out.flush()?;
    Ok(if summary.not_chaining > 0 { 1 } else { 0 })
}

/// The rows the table lists: failing, blocked, or expiring soon.
fn table_shows(r: &Row, window: i64) -> bool {
    !r.chains
        || r.blocked()
        || r.dps_refusal().is_some()
        || r.days_left.is_some_and(|d| (0..window).contains(&d))
}

fn spinner(quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {pos} files audited ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

struct Paint {
    on: bool,
}

impl Paint {
    fn new() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Paint {
            on: !no_color && std::io::stdout().is_terminal(),
        }
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31;1", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn row_line(r: &Row) -> String {
    let cn = escape(r.cn.as_deref().unwrap_or("-"));
    let until = match (&r.not_after, r.days_left) {
        (Some(na), Some(d)) if d < 0 => format!("expired {}", &na[..10.min(na.len())]),
        (Some(na), Some(d)) => format!("until {} ({d} days)", &na[..10.min(na.len())]),
        _ => String::new(),
    };
    let dps = match (&r.enrollment, &r.provisioning) {
        (Some(e), Some(p)) => format!("  enrollment {e}, DPS: {p}"),
        (None, Some(p)) => format!("  DPS: {p}"),
        _ => String::new(),
    };
    let files: Vec<String> = r
        .files
        .iter()
        .map(|f| escape(&f.to_string_lossy()).into_owned())
        .collect();
    format!("{cn:<30} {until:<30} {}{dps}", files.join(" "))
}

fn print_table(
    out: &mut impl Write,
    s: &Summary,
    rows: &[Row],
    window: i64,
) -> std::io::Result<()> {
    let p = Paint::new();
    let failing: Vec<&Row> = rows.iter().filter(|r| !r.chains).collect();
    let mut codes: Vec<iotca::problem::ProblemCode> =
        failing.iter().filter_map(|r| r.main_problem()).collect();
    codes.sort_by_key(|c| c.as_str());
    codes.dedup();
    for code in codes {
        let group: Vec<&&Row> = failing
            .iter()
            .filter(|r| r.main_problem() == Some(code))
            .collect();
        writeln!(
            out,
            "{} ({} device(s)): {}",
            p.red(code.as_str()),
            group.len(),
            code.advice()
        )?;
        for r in group {
            writeln!(out, "  {}", row_line(r))?;
            if let Some(first) = r.problems.first() {
                writeln!(out, "      {}", escape(&first.message))?;
            }
        }
        writeln!(out)?;
    }
    let blocked: Vec<&Row> = rows.iter().filter(|r| r.blocked()).collect();
    if !blocked.is_empty() {
        writeln!(
            out,
            "{} ({}): chain to the CA, but a disabled individual enrollment stops them",
            p.yellow("blocked"),
            blocked.len()
        )?;
        for r in blocked {
            writeln!(out, "  {}", row_line(r))?;
        }
        writeln!(out)?;
    }
    let refused: Vec<(&Row, String)> = rows
        .iter()
        .filter_map(|r| r.dps_refusal().map(|why| (r, why)))
        .collect();
    if !refused.is_empty() {
        writeln!(
            out,
            "{} ({}): chain to the CA, but DPS would refuse them",
            p.yellow("refused_by_dps"),
            refused.len()
        )?;
        for (r, why) in refused {
            writeln!(out, "  {}", row_line(r))?;
            writeln!(out, "      {}", escape(&why))?;
        }
        writeln!(out)?;
    }
    let expiring: Vec<&Row> = rows
        .iter()
        .filter(|r| r.chains && r.days_left.is_some_and(|d| (0..window).contains(&d)))
        .collect();
    if !expiring.is_empty() {
        writeln!(
            out,
            "{} ({}): valid, but expire within {window} days",
            p.yellow("expiring"),
            expiring.len()
        )?;
        for r in expiring {
            writeln!(out, "  {}", row_line(r))?;
        }
        writeln!(out)?;
    }
    let verdict = if s.total == 0 {
        p.yellow("no device certificates found under the given paths")
    } else if s.not_chaining == 0 {
        p.green("every device chains to the group CA")
    } else {
        p.red(&format!(
            "{} of {} device(s) do not chain",
            s.not_chaining, s.total
        ))
    };
    writeln!(out, "{}", p.bold("Summary"))?;
    writeln!(
        out,
        "  total {}  chains {}  not_chaining {}  expired {}  expiring {}  unreadable {}  blocked {}",
        s.total, s.chains, s.not_chaining, s.expired, s.expiring, s.unreadable, s.blocked
    )?;
    if s.ca_certs + s.verification_certs + s.skipped_keys > 0 {
        writeln!(
            out,
            "  not devices: ca_certs {}  verification_certs {}  key files {}",
            s.ca_certs, s.verification_certs, s.skipped_keys
        )?;
    }
    writeln!(out, "  {verdict}")?;
    out.flush()
}
