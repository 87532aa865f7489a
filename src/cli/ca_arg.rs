//! `--ca`, one meaning everywhere: a CA of the home by name (`root`,
//! `intermediate`, NAME from `ca intermediate`) or a certificate file.
//!
//! Commands that read a certificate (`verify`, `audit`, `enroll group
//! create`) take a file, or a home CA name that stands for its certificate
//! (certs/...). Commands that sign (`device create`, `verification-cert`)
//! need the CA's key, so they take a name; given a file, they map it to the
//! home CA whose certificate it is, or say which names there are.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use iotca::cert;
use iotca::home::Home;
use iotca::home::inventory::{self, CaNode};

use super::Global;

/// The home's CAs: (name, certificate file).
fn home_cas(g: &Global) -> Vec<(String, PathBuf)> {
    let Ok(home) = Home::open(&g.home_dir()) else {
        return Vec::new();
    };
    let Ok(inv) = inventory::scan(&home, OffsetDateTime::now_utc()) else {
        return Vec::new();
    };
    fn walk(n: &CaNode, out: &mut Vec<(String, PathBuf)>) {
        out.push((n.ca.name.clone(), n.ca.file.clone()));
        for c in &n.children {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for n in &inv.cas {
        walk(n, &mut out);
    }
    out
}

fn names(cas: &[(String, PathBuf)]) -> String {
    if cas.is_empty() {
        return "none".into();
    }
    cas.iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--ca` for a command that reads a certificate: the file itself when it
/// exists, else the certificate of the home CA of that name.
pub fn ca_file(arg: &Path, g: &Global) -> anyhow::Result<PathBuf> {
    if arg.exists() {
        return Ok(arg.to_path_buf());
    }
    let cas = home_cas(g);
    let text = arg.to_string_lossy();
    if let Some((_, file)) = cas.iter().find(|(n, _)| *n == text) {
        return Ok(file.clone());
    }
    let home = g.home_dir();
    match cas.iter().find(|(n, _)| n.eq_ignore_ascii_case(&text)) {
        Some((n, file)) => anyhow::bail!(
            "--ca {}: no such file; did you mean the home's CA '{n}' ({})?",
            iotca::text::escape(&text),
            file.display()
        ),
        None => anyhow::bail!(
            "--ca {}: no such file, and no CA of that name in the home {} (its CAs: {}); \
             give a certificate file or a CA name",
            iotca::text::escape(&text),
            home.display(),
            names(&cas)
        ),
    }
}

/// `--ca` for a command that signs: a CA name of the home; a file is
/// mapped to the home CA whose certificate it holds.
pub fn ca_name(arg: &str, g: &Global) -> anyhow::Result<String> {
    let looks_like_file = arg.contains('/') || arg.ends_with(".pem") || Path::new(arg).is_file();
    if !looks_like_file {
        return Ok(arg.to_string());
    }
    let cas = home_cas(g);
    let wanted = cert::read_certificates(Path::new(arg))
        .ok()
        .and_then(|d| d.into_iter().next());
    if let Some(der) = wanted {
        for (name, file) in &cas {
            let same = cert::read_certificates(file)
                .ok()
                .and_then(|d| d.into_iter().next())
                .is_some_and(|d| d == der);
            if same {
                return Ok(name.clone());
            }
        }
    }
    anyhow::bail!(
        "--ca {} is a file, but this command signs with a CA of the home and takes its name \
         (the home's CAs: {}); did you mean `--ca {}`?",
        iotca::text::escape(arg),
        names(&cas),
        cas.first().map_or("root", |(n, _)| n.as_str())
    )
}
