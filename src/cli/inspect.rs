//! `iotca inspect FILE...`: describe certificates.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use iotca::cert::{self, CertDetails};
use iotca::text::escape;

use super::{CmdResult, Global, print_json};

const HELP: &str = "\
Every certificate in every FILE (PEM bundles or DER) is described: subject,
issuer, serial, validity and days left, key algorithm and size, CA flag and
pathlen, key usages, EKUs, SKI/AKI, and the SHA-1 and SHA-256 thumbprints as
IoT Hub shows them (upper-case hex, no colons).

With --key KEY, says whether the private key KEY belongs to the (first)
certificate of FILE instead: the SDK's KEY_VALUES_MISMATCH caught before a
device is flashed.

EXIT CODES:
  0  every file was read (with --key: the key matches the certificate)
  1  with --key: the key does not match the certificate
  2  a file could not be read or holds no certificate

EXAMPLES:
  iotca inspect pki/certs/sensor-thl-002.cert.pem
  The whole chain a device presents:
    iotca inspect pki/certs/sensor-thl-002-full-chain.cert.pem
  The thumbprint to paste into a self-signed individual enrollment:
    iotca inspect device.pem --json | jq -r '.[0].sha1'
  Does the key belong to the certificate?
    iotca inspect --key pki/private/sensor-thl-002.key.pem pki/certs/sensor-thl-002.cert.pem";

/// `inspect` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct InspectArgs {
    /// Certificate files (PEM, possibly several certificates, or DER).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A private key file: check it matches the certificate (exit 0 yes, 1 no).
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
}

/// `inspect --key --json`.
#[derive(serde::Serialize)]
struct JsonKeyMatch {
    key_matches: bool,
    key: String,
    cert: String,
    subject: String,
}

fn key_match(key_path: &std::path::Path, a: &InspectArgs, g: &Global) -> CmdResult {
    if a.files.len() != 1 {
        anyhow::bail!("--key checks one certificate: give exactly one FILE");
    }
    let file = &a.files[0];
    let der = cert::read_certificates(file)?.swap_remove(0);
    let c = cert::parse_der(&der).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let pass = super::passphrase_from(None)?;
    let key = iotca::home::load_key(key_path, pass.as_ref())?;
    let matches = key.public_key_der()? == c.public_key().raw;
    let subject = cert::name_string(c.subject());
    if g.json {
        print_json(&JsonKeyMatch {
            key_matches: matches,
            key: key_path.display().to_string(),
            cert: file.display().to_string(),
            subject,
        })?;
    } else if !g.quiet {
        if matches {
            println!(
                "MATCH: {} is the private key of {} ({})",
                key_path.display(),
                file.display(),
                iotca::text::escape(&subject)
            );
        } else {
            println!(
                "NO MATCH: {} is not the private key of {} ({}); a device with both would fail the TLS handshake (KEY_VALUES_MISMATCH)",
                key_path.display(),
                file.display(),
                iotca::text::escape(&subject)
            );
        }
    }
    Ok(if matches { 0 } else { 1 })
}

/// Runs `inspect`.
pub fn run(a: &InspectArgs, g: &Global) -> CmdResult {
    if let Some(k) = &a.key {
        return key_match(k, a, g);
    }
    let now = OffsetDateTime::now_utc();
    let mut all: Vec<(PathBuf, CertDetails)> = Vec::new();
    for f in &a.files {
        for der in cert::read_certificates(f)? {
            let c = cert::parse_der(&der).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            all.push((f.clone(), CertDetails::new(&c, &der, now)));
        }
    }
    if g.json {
        let v: Vec<super::wire::JsonCertDetails> = all.iter().map(|(_, d)| d.into()).collect();
        print_json(&v)?;
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    for (i, (file, d)) in all.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        print_one(&mut out, file, d)?;
    }
    Ok(0)
}

fn print_one(out: &mut impl Write, file: &std::path::Path, d: &CertDetails) -> std::io::Result<()> {
    let s = &d.summary;
    let left = if d.days_left < 0 {
        format!("EXPIRED {} days ago", -d.days_left)
    } else {
        format!("{} days left", d.days_left)
    };
    // Everything below that comes from the certificate is attacker-chosen
    // text: escaped so no control character reaches the terminal.
    let role = if d.is_ca {
        match d.pathlen {
            Some(n) => format!("CA (pathlen {n})"),
            None => "CA".to_string(),
        }
    } else {
        "end entity (not a CA)".to_string()
    };
    let none = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    writeln!(out, "{}", escape(&file.display().to_string()))?;
    writeln!(out, "  Subject:        {}", escape(&s.subject))?;
    writeln!(
        out,
        "  Issuer:         {}{}",
        escape(&d.issuer),
        if d.self_issued { "  (self-issued)" } else { "" }
    )?;
    writeln!(out, "  Serial:         {}", s.serial)?;
    writeln!(
        out,
        "  Valid:          {} to {}  ({left})",
        s.not_before, s.not_after
    )?;
    writeln!(out, "  Key:            {}", d.key_algorithm)?;
    writeln!(out, "  Signature:      {}", d.signature_algorithm)?;
    writeln!(out, "  Role:           {role}")?;
    writeln!(out, "  Key usage:      {}", none(&d.key_usage))?;
    writeln!(out, "  Extended usage: {}", none(&d.extended_key_usage))?;
    if !d.subject_alt_names.is_empty() {
        writeln!(
            out,
            "  Alt names:      {}",
            escape(&d.subject_alt_names.join(", "))
        )?;
    }
    writeln!(
        out,
        "  SKI:            {}",
        d.subject_key_id.as_deref().unwrap_or("(none)")
    )?;
    writeln!(
        out,
        "  AKI:            {}",
        d.authority_key_id.as_deref().unwrap_or("(none)")
    )?;
    writeln!(out, "  SHA-1:          {}", s.sha1)?;
    writeln!(out, "  SHA-256:        {}", s.sha256)?;
    Ok(())
}
