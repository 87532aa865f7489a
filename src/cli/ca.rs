//! `iotca ca init | intermediate | list`: make and list certificate authorities.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use iotca::home::Home;
use iotca::home::{self, InitOptions, IntermediateOptions};
use iotca::keys::KeyAlgorithm;
use iotca::profile::Profile;

use super::{CmdResult, Global, passphrase_from, print_report};

/// Make and list CAs.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the root CA and the default intermediate CA in the home.
    #[command(after_help = INIT_HELP)]
    Init(InitArgs),
    /// Create a further intermediate CA NAME, signed by the root or another CA.
    #[command(after_help = INTERMEDIATE_HELP)]
    Intermediate(IntermediateArgs),
    /// Make a successor for an intermediate CA (new key, same parent) and print the DPS rollover.
    Rollover(super::ca_rollover::RolloverArgs),
    /// Show the CAs in the home as a tree, with the devices under each.
    #[command(after_help = LIST_HELP)]
    List,
}

const INIT_HELP: &str = "\
FILES (certGen.sh's names):
  certs/azure-iot-test-only.root.ca.cert.pem        private/azure-iot-test-only.root.ca.key.pem
  certs/azure-iot-test-only.intermediate.cert.pem   private/azure-iot-test-only.intermediate.key.pem
  certs/azure-iot-test-only.chain.ca.cert.pem       (intermediate, then root)

EXIT CODES:
  0  the CAs were made
  2  they could not be made (a CA already exists without --force, bad arguments, unwritable home)

REPLACING A CA:
  Without --force, an existing CA is never replaced. With --force, the old
  files move under archive/ and iotca warns with the number of devices the
  old CA signed: they no longer chain to the new CA (re-issue them).

EXAMPLES:
  A P-256 root and intermediate in ./pki:
    iotca --home pki ca init
  RSA-4096 with custom names, the keys encrypted with a passphrase from a file:
    iotca --home pki ca init --algorithm rsa4096 --root-cn 'Contoso Root' --intermediate-cn 'Contoso Devices' --passphrase-file pass.txt
  A root only; devices are then signed by the root:
    iotca --home pki ca init --no-intermediate
  Replace an existing PKI (the old files are moved under archive/, never deleted):
    iotca --home pki ca init --force";

const INTERMEDIATE_HELP: &str = "\
KEY ALGORITHM:
  A new CA inherits its parent's key algorithm (an RSA-4096 root gives an
  RSA-4096 intermediate) unless --algorithm says otherwise. Devices keep
  P-256 as their default whatever their CA (device create --algorithm).

EXIT CODES:
  0  the CA was made
  2  it could not be made (it exists without --force, the parent is missing, a wrong passphrase)

EXAMPLES:
  A CA for the factory line, signed by the root, that may sign only devices:
    iotca --home pki ca intermediate factory-a --pathlen 0
  A CA under the default intermediate:
    iotca --home pki ca intermediate line-7 --parent intermediate --cn 'Line 7 Devices'
  Then issue devices with it:
    iotca --home pki device create sensor-100 --ca factory-a";

const LIST_HELP: &str = "\
EXIT CODES:
  0  listed
  2  the home is missing or unreadable

EXAMPLES:
  iotca --home pki ca list
  iotca --home ~/certificates ca list --json     (a certGen.sh directory works too)";

fn parse_algorithm(s: &str) -> Result<KeyAlgorithm, String> {
    s.parse()
}

/// `ca init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Key algorithm for both CAs: p256 (default), p384, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p256", value_parser = parse_algorithm, value_name = "A")]
    pub algorithm: KeyAlgorithm,
    /// Root CA subject CN [default: Azure IoT Hub CA Cert Test Only].
    #[arg(long, value_name = "CN")]
    pub root_cn: Option<String>,
    /// Intermediate CA subject CN [default: Azure IoT Hub Intermediate Cert Test Only].
    #[arg(long, value_name = "CN")]
    pub intermediate_cn: Option<String>,
    /// Root CA validity in days [default: 3650].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// Intermediate CA validity in days [default: 1825].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub intermediate_days: Option<u32>,
    /// Make only the root CA; devices are then signed by the root.
    #[arg(long)]
    pub no_intermediate: bool,
    /// Encrypt the CA keys with the first line of FILE (or set IOTCA_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Move existing CA files to archive/<timestamp>/ and make new ones.
    #[arg(long)]
    pub force: bool,
    /// Root CA profile (TOML) instead of the built-in `root-ca`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Intermediate CA profile (TOML) instead of the built-in `intermediate-ca`.
    #[arg(long, value_name = "FILE")]
    pub intermediate_template: Option<PathBuf>,
}

/// `ca intermediate` flags.
#[derive(Debug, Args)]
pub struct IntermediateArgs {
    /// The new CA's name (letters, digits, - . _ :); its files are certs/NAME.cert.pem and private/NAME.key.pem.
    pub name: String,
    /// The CA that signs it: root, intermediate, or a NAME made before.
    #[arg(long, default_value = "root", value_name = "NAME")]
    pub parent: String,
    /// Subject CN [default: NAME].
    #[arg(long, value_name = "CN")]
    pub cn: Option<String>,
    /// basicConstraints pathLenConstraint: how many CAs may follow below this one (0: it signs only devices).
    #[arg(long, value_name = "N")]
    pub pathlen: Option<u8>,
    /// Validity in days [default: 1825].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: Option<u32>,
    /// Key algorithm: p256, p384, rsa2048, rsa3072 or rsa4096 [default: the parent's].
    #[arg(long, value_parser = parse_algorithm, value_name = "A")]
    pub algorithm: Option<KeyAlgorithm>,
    /// Passphrase (first line of FILE, or IOTCA_PASSPHRASE) for the parent's key; the new key is encrypted with it too.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Write the new CA key unencrypted even when a passphrase unlocks the parent
    /// (an IoT Edge device CA, whose key the Edge runtime reads as is).
    #[arg(long)]
    pub unencrypted_key: bool,
    /// Move an existing CA of that name to archive/ and make a new one.
    #[arg(long)]
    pub force: bool,
    /// Profile (TOML) instead of the built-in `intermediate-ca`.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Runs `ca`.
pub fn run(cmd: &CaCommand, g: &Global) -> CmdResult {
    let now = OffsetDateTime::now_utc();
    match cmd {
        CaCommand::Init(a) => {
            let opts = InitOptions {
                algorithm: a.algorithm,
                root_cn: a.root_cn.clone(),
                intermediate_cn: a.intermediate_cn.clone(),
                days: a.days,
                intermediate_days: a.intermediate_days,
                no_intermediate: a.no_intermediate,
                passphrase: passphrase_from(a.passphrase_file.as_deref())?,
                force: a.force,
                root_profile: Profile::builtin_or_file("root-ca", a.template.as_deref())?,
                intermediate_profile: Profile::builtin_or_file(
                    "intermediate-ca",
                    a.intermediate_template.as_deref(),
                )?,
            };
            let stranded = super::ca_replace::devices_under_init_cas(&g.home_dir(), now);
            let mut report = match home::init_ca(&g.home_dir(), &opts, now) {
                Ok(r) => r,
                Err(e) if stranded > 0 => {
                    return Err(
                        anyhow::Error::from(e).context(super::ca_replace::stranded(stranded))
                    );
                }
                Err(e) => return Err(e.into()),
            };
            if stranded > 0 {
                report.warnings.push(super::ca_replace::stranded(stranded));
            }
            print_report(&report, g)?;
            Ok(0)
        }
        CaCommand::Intermediate(a) => {
            let home = Home::open(&g.home_dir())?;
            let algorithm = a
                .algorithm
                .or_else(|| super::ca_replace::algorithm_of(&home, &a.parent))
                .unwrap_or(KeyAlgorithm::P256);
            let opts = IntermediateOptions {
                name: a.name.clone(),
                parent: a.parent.clone(),
                cn: a.cn.clone(),
                pathlen: a.pathlen,
                days: a.days,
                algorithm,
                passphrase: passphrase_from(a.passphrase_file.as_deref())?,
                unencrypted_key: a.unencrypted_key,
                force: a.force,
                profile: Profile::builtin_or_file("intermediate-ca", a.template.as_deref())?,
            };
            let report = home::create_intermediate(&home, &opts, now)?;
            print_report(&report, g)?;
            Ok(0)
        }
        CaCommand::Rollover(a) => super::ca_rollover::run(a, g),
        CaCommand::List => super::ca_list::run(g, now),
    }
}
