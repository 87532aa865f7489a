//! `iotca template list | show NAME`: the built-in certificate profiles.

use std::io::Write;

use clap::Subcommand;

use iotca::profile::{self, Profile};

use super::{CmdResult, Global, print_json};

const SHOW_HELP: &str = "\
EXIT CODES:
  0  printed
  2  no such template

EXAMPLES:
  Start a custom device profile from the default, then use it:
    iotca template show device > my-device.toml
    iotca --home pki device create sensor-1 --template my-device.toml";

/// Template commands.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List the built-in profiles.
    #[command(after_help = "EXAMPLES:\n  iotca template list\n  iotca template list --json")]
    List,
    /// Print a built-in profile's TOML, to copy and pass back with --template FILE.
    #[command(after_help = SHOW_HELP)]
    Show {
        /// root-ca, intermediate-ca, device, verification or edge-ca.
        name: String,
    },
}

/// Runs `template`.
pub fn run(cmd: &TemplateCommand, g: &Global) -> CmdResult {
    let mut out = std::io::stdout().lock();
    match cmd {
        TemplateCommand::List => {
            let all: Vec<Profile> = profile::BUILTIN
                .iter()
                .map(|(n, _)| Profile::builtin(n))
                .collect::<Result<_, _>>()?;
            if g.json {
                print_json(&all)?;
            } else {
                for p in all {
                    writeln!(out, "{:<16} {} days  {}", p.name, p.days, p.description)?;
                }
            }
        }
        TemplateCommand::Show { name } => {
            let text = profile::builtin_text(name)?;
            if g.json {
                print_json(&Profile::builtin(name)?)?;
            } else {
                out.write_all(text.as_bytes())?;
            }
        }
    }
    Ok(0)
}
