//! `iotca ca rollover NAME`: a successor for an intermediate CA, and the DPS procedure.

use std::path::PathBuf;

use clap::Args;
use time::OffsetDateTime;

use iotca::enroll::az::shell_quote;
use iotca::home::Home;
use iotca::keys::KeyAlgorithm;
use iotca::lifecycle::rollover::{self, RolloverOptions};
use iotca::profile::Profile;

use super::{CmdResult, Global, passphrase_from, print_json};

const HELP: &str = "\
Makes NEW (default NAME-2, then -3...): a new key, signed by NAME's parent,
the CN with \" G2\" (\" G3\"...) appended, NAME's pathlen and key algorithm.
NAME is kept, stays valid, and stays what `device create` uses until you
pass --ca NEW. The DPS procedure is printed: the group gets NEW as its
secondary certificate, devices are re-issued under NEW, then NEW is promoted.

EXIT CODES:
  0  the successor was made
  2  it could not be (NAME is a root or missing, NEW exists, a wrong passphrase)

EXAMPLES:
  iotca --home pki ca rollover intermediate
  iotca --home pki ca rollover line-7 --name line-7-2025 --cn 'Line 7 Devices 2025' --days 730";

fn parse_algorithm(s: &str) -> Result<KeyAlgorithm, String> {
    s.parse()
}

/// `ca rollover` flags.
#[derive(Debug, Args)]
#[command(after_help = HELP)]
pub struct RolloverArgs {
    /// The intermediate CA to roll over: intermediate, or a NAME made with `ca intermediate`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The successor's name [default: NAME-2, then NAME-3...].
    #[arg(long = "name", value_name = "NEW")]
    pub new_name: Option<String>,
    /// The successor's CN [default: NAME's CN with " G2" (" G3"...) appended].
    #[arg(long, value_name = "CN")]
    pub cn: Option<String>,
    /// Validity in days [default: 1825]; never beyond the parent's notAfter.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// Key algorithm [default: NAME's].
    #[arg(long, value_parser = parse_algorithm, value_name = "A")]
    pub algorithm: Option<KeyAlgorithm>,
    /// Passphrase (first line of FILE, or IOTCA_PASSPHRASE) for the parent's key; the new key is encrypted with it too.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Profile (TOML) instead of the built-in `intermediate-ca`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Runs `ca rollover`.
pub fn run(a: &RolloverArgs, g: &Global) -> CmdResult {
    if let Some(n) = &a.new_name {
        iotca::ids::check_ca_name(n)?;
        if matches!(n.as_str(), "root" | "intermediate") {
            anyhow::bail!("'{n}' is reserved for the CAs made by `ca init`; choose another --name");
        }
    }
    let home = Home::open(&g.home_dir())?;
    let opts = RolloverOptions {
        name: a.name.clone(),
        new_name: a.new_name.clone(),
        cn: a.cn.clone(),
        days: a.days,
        algorithm: a.algorithm,
        passphrase: passphrase_from(a.passphrase_file.as_deref())?,
        profile: Profile::builtin_or_file("intermediate-ca", a.template.as_deref())?,
    };
    let r = rollover::rollover(&home, &opts, OffsetDateTime::now_utc())?;
    for w in &r.report.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        print_json(&r)?;
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    let h = shell_quote(&home.root().to_string_lossy());
    let new_cert = shell_quote(&r.new_cert.to_string_lossy());
    for w in &r.report.written {
        println!("wrote {:<28} {}", w.what, w.path.display());
    }
    println!(
        "CA '{}' ({}) is the successor of '{}', under '{}'. '{}' stays valid and is still the default for `device create`.",
        r.new,
        iotca::text::escape(&r.cn),
        r.old,
        r.parent,
        r.old
    );
    println!();
    println!("The DPS rollover, step by step (GROUP is your enrollment group's ID):");
    println!(
        "  1. add the new CA as the group's secondary certificate (devices under either provision):"
    );
    println!("       iotca --home {h} enroll group update GROUP --secondary-ca {new_cert}");
    println!(
        "     for the real DPS: add --to az --dps-name NAME (and verify the new CA in DPS if the group uses a verified CA)"
    );
    println!(
        "  2. re-issue the devices under '{}' ({} in this home), same keys:",
        r.new,
        r.devices_under_old.len()
    );
    let sample: Vec<&str> = r
        .devices_under_old
        .iter()
        .take(3)
        .map(String::as_str)
        .collect();
    let ids = if sample.is_empty() {
        "ID...".to_string()
    } else if r.devices_under_old.len() > 3 {
        format!("{} ...", sample.join(" "))
    } else {
        sample.join(" ")
    };
    println!("       iotca --home {h} device renew {ids} --ca {}", r.new);
    println!(
        "     and for new devices: iotca --home {h} device create ID... --ca {}",
        r.new
    );
    println!(
        "  3. once every device presents the new chain, promote it (the old primary leaves the group):"
    );
    println!("       iotca --home {h} enroll group update GROUP --promote-secondary");
    Ok(0)
}
