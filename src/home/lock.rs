//! The home's write lock as a type: only a [`Locked`] handle can write,
//! archive or sync, so a write without the lock does not compile. Library
//! functions that write take `&Locked`; the workflow at the top takes the
//! lock once, before it loads a CA, and nothing below takes it again.

use std::fs;
use std::ops::Deref;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{FileKind, Home, LOCK_FILE, fs as hfs};
use crate::error::{Error, Result};

/// The home, locked for writing until dropped. Dereferences to [`Home`]
/// for everything that only reads.
#[derive(Debug)]
pub struct Locked<'h> {
    home: &'h Home,
    _file: fs::File,
}

impl Home {
    /// Takes the home's exclusive write lock, waiting for another iotca
    /// process (or thread) to release it rather than failing.
    pub fn lock(&self) -> Result<Locked<'_>> {
        let path = self.path(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(Locked {
            home: self,
            _file: file,
        })
    }
}

impl Deref for Locked<'_> {
    type Target = Home;
    fn deref(&self) -> &Home {
        self.home
    }
}

impl Locked<'_> {
    /// The home this lock holds.
    pub fn home(&self) -> &Home {
        self.home
    }

    /// Writes `bytes` to `path` atomically without replacing anything: a
    /// temporary file in the same directory, the mode set, fsynced when
    /// `sync`, then renamed into place only if nothing exists there (a
    /// symlink planted at `path` counts as existing and is never followed).
    pub fn write_new(&self, path: &Path, bytes: &[u8], kind: FileKind, sync: bool) -> Result<()> {
        hfs::write_new(path, bytes, kind, sync)
    }

    /// Writes `bytes` to `path` atomically, replacing what is there (for
    /// records that are updated in place, never for keys or certificates).
    pub fn write_replace(&self, path: &Path, bytes: &[u8], kind: FileKind) -> Result<()> {
        hfs::write_replace(path, bytes, kind)
    }

    /// Creates a directory inside the home (0700 for secrets) if missing.
    pub fn ensure_dir(&self, rel: &Path, kind: FileKind) -> Result<PathBuf> {
        hfs::ensure_dir(&self.path(rel), kind)
    }

    /// Flushes everything written so far to disk (one call per batch of
    /// device files, instead of an fsync per file).
    pub fn sync_batch(&self) -> Result<()> {
        let root = self.root();
        let dir = fs::File::open(root).map_err(|e| Error::io(root, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io(root, e.into()))
    }
}
