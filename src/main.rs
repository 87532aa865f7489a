//! The `iotca` binary: parses arguments and dispatches. All logic lives in
//! the library and in `cli/`, one file per command.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
