//! With `--json`, a command that cannot run (exit 2) still prints one JSON
//! document on stdout: `{"error": {"code": "...", "message": "..."}}`.
//! The code is the library's [`iotca::Error::code`] when a library error is
//! in the chain, else `usage` (flags that cannot go together), `io`,
//! `not_a_home`, `invalid_name`, `bad_certificate`, or `invalid`.

use std::io::Write;

use serde::Serialize;

/// Flags that cannot go together: exit 2, code `usage`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Doc<'a> {
    error: Body<'a>,
}

/// The stable code of an error that stopped a command.
pub fn code_of(e: &anyhow::Error) -> &'static str {
    for c in e.chain() {
        if let Some(lib) = c.downcast_ref::<iotca::Error>() {
            return lib.code();
        }
        if c.downcast_ref::<Usage>().is_some() {
            return "usage";
        }
        if c.downcast_ref::<super::home_check::NotAHome>().is_some() {
            return "not_a_home";
        }
        if c.downcast_ref::<iotca::ids::IdError>().is_some() {
            return "invalid_name";
        }
        if c.downcast_ref::<iotca::cert::ParseError>().is_some() {
            return "bad_certificate";
        }
        if c.downcast_ref::<std::io::Error>().is_some() {
            return "io";
        }
    }
    "invalid"
}

/// Prints the error document on stdout (best effort: stdout may be gone).
pub fn print(e: &anyhow::Error, message: &str) {
    let doc = Doc {
        error: Body {
            code: code_of(e),
            message,
        },
    };
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer_pretty(&mut out, &doc).is_ok() {
        let _ = writeln!(out);
    }
}
