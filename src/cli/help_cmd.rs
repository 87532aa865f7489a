//! `iotca help [COMMAND]...`: the help of iotca or of a subcommand, as
//! `COMMAND --help` prints it. iotca's own (clap's built-in one does not
//! take `--help` itself).

use clap::{Args, CommandFactory};

use super::{CmdResult, Usage};

pub(super) const HELP: &str = "\
EXIT CODES:
  0  the help was printed
  2  no such command

EXAMPLES:
  iotca help
  iotca help enroll group create";

/// `help` arguments.
#[derive(Debug, Args)]
pub struct HelpArgs {
    /// The command whose help to print (e.g. `enroll group create`).
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Prints the help of the named command.
pub fn run(a: &HelpArgs) -> CmdResult {
    let mut cmd = super::Cli::command();
    cmd.build();
    let mut at = &mut cmd;
    for name in &a.command {
        let known: Vec<String> = at
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        at = match at.find_subcommand_mut(name) {
            Some(c) => c,
            None => {
                return Err(Usage(format!(
                    "no command '{}' (commands here: {})",
                    iotca::text::escape(name),
                    known.join(", ")
                ))
                .into());
            }
        };
    }
    at.print_long_help()?;
    Ok(0)
}
