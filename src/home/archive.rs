//! `archive/<UTC timestamp>/`: where whatever `--force` (or a delete)
//! replaces goes. Nothing iotca replaces is ever deleted.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{FileKind, Locked, fs as hfs};
use crate::error::{Error, Result};

impl Locked<'_> {
    /// Moves the existing files among `paths` to `archive/<UTC timestamp>/`,
    /// keeping their path relative to the home. Returns the archive
    /// directory, or None when none of the files existed.
    pub fn archive(&self, paths: &[&Path]) -> Result<Option<PathBuf>> {
        let existing: Vec<&Path> = paths
            .iter()
            .copied()
            .filter(|p| fs::symlink_metadata(p).is_ok())
            .collect();
        if existing.is_empty() {
            return Ok(None);
        }
        let dir = self.new_archive_dir()?;
        for p in existing {
            let rel = p.strip_prefix(self.root()).unwrap_or(p);
            let rel = rel.strip_prefix("./").unwrap_or(rel);
            let dest = dir.join(rel);
            let parent = dest.parent().unwrap_or(&dir);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Error::io(parent, e))?;
            fs::rename(p, &dest).map_err(|e| Error::io(p, e))?;
        }
        hfs::sync_dir(&dir.join("x"))?;
        Ok(Some(dir))
    }

    fn new_archive_dir(&self) -> Result<PathBuf> {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let base = self.ensure_dir(Path::new("archive"), FileKind::Secret)?;
        for n in 0..1000 {
            let name = if n == 0 {
                stamp.clone()
            } else {
                format!("{stamp}-{n}")
            };
            let dir = base.join(name);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        Err(Error::ArchiveFull { dir: base })
    }
}
