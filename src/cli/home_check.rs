//! Commands that only read or add to an existing home (`dps trust`)
//! refuse a directory that is not one, rather than turning it into one.

use std::path::Path;

/// The directory is not an iotca (or certGen.sh) home: exit 2, code `not_a_home`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} is not an iotca home (it has no certs/, private/ or dps/): make one with \
     `iotca --home {0} ca init`, or point --home (or IOTCA_HOME) at one"
)]
pub struct NotAHome(pub String);

/// Refuses `dir` unless it holds `certs/`, `private/` or `dps/`.
pub fn require_home(dir: &Path) -> Result<(), NotAHome> {
    if ["certs", "private", "dps"]
        .iter()
        .any(|d| dir.join(d).is_dir())
    {
        Ok(())
    } else {
        Err(NotAHome(dir.display().to_string()))
    }
}
