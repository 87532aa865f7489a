//! Every file iotca reads or writes goes through here: bounded reads (DESIGN
//! section 3's limits, with an error naming the file and the bound), and the
//! atomic, never-replacing writes behind [`super::Locked`].
//!
//! Writing is only reachable through a [`super::Locked`] handle, so a write
//! without the home's lock does not compile.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::FileKind;
use crate::error::{Error, Result};

/// The bound on a single input file: a certificate, key, CSR, template,
/// passphrase or store record (DESIGN section 3).
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;
/// The bound on a PEM bundle given to `verify`, `audit` or `inspect`.
pub const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;
/// The bound on one line of `--ids-file` (or standard input).
pub const MAX_LINE_BYTES: usize = 1024;

/// Reads `path` whole, refusing a directory and anything over `limit` bytes
/// without reading the rest. `what` names the kind of file in the error
/// ("certificate file", "key file"...).
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            reason: format!("is a directory, not a {what}"),
        });
    }
    let too_large = || Error::TooLarge {
        path: path.to_path_buf(),
        reason: format!(
            "is larger than {}, the bound for a {what}",
            bound_text(limit)
        ),
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// [`read_bounded`] for a file holding a secret: the bytes are zeroized when
/// dropped.
pub fn read_secret(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    read_bounded(path, MAX_INPUT_BYTES, what).map(Zeroizing::new)
}

/// [`read_bounded`] with [`MAX_INPUT_BYTES`], or None when the file does not
/// exist (store records).
pub fn read_record(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
        Ok(m) if !m.is_file() => Err(Error::BadRecord {
            path: path.to_path_buf(),
            reason: "is not a regular file".into(),
        }),
        Ok(_) => match read_bounded(path, MAX_INPUT_BYTES, "store record") {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            other => other.map(Some),
        },
    }
}

/// Reads lines from `input` (an `--ids-file` or standard input), each at
/// most [`MAX_LINE_BYTES`]; `origin` names the input in errors, which give
/// the 1-based line number. Blank lines and `#` comments are skipped; the
/// values are trimmed.
pub fn read_lines(input: impl Read, origin: &str) -> Result<Vec<String>> {
    let mut reader = std::io::BufReader::new(input);
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        number += 1;
        let n = std::io::BufRead::read_until(
            &mut (&mut reader).take(MAX_LINE_BYTES as u64 + 2),
            b'\n',
            &mut line,
        )
        .map_err(|source| Error::LineRead {
            origin: origin.into(),
            line: number,
            source,
        })?;
        if n == 0 {
            return Ok(out);
        }
        let ended = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.len() > MAX_LINE_BYTES || (!ended && n > MAX_LINE_BYTES) {
            return Err(Error::LineTooLong {
                origin: origin.into(),
                line: number,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| Error::LineNotUtf8 {
            origin: origin.into(),
            line: number,
        })?;
        let text = text.trim();
        if !text.is_empty() && !text.starts_with('#') {
            out.push(text.to_string());
        }
    }
}

fn bound_text(limit: u64) -> String {
    if limit.is_multiple_of(1024 * 1024) {
        format!("{} MiB", limit / (1024 * 1024))
    } else {
        format!("{limit} bytes")
    }
}

/// True when `path` exists (a dangling symlink counts).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Creates `dir` (0700 for secrets, else 0755) if missing, and tightens a
/// secret directory to 0700 if it is looser. Public directories are never
/// changed.
pub(crate) fn ensure_dir(dir: &Path, kind: FileKind) -> Result<PathBuf> {
    let mode = if kind == FileKind::Secret {
        0o700
    } else {
        0o755
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    if kind == FileKind::Secret {
        let meta = fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(dir, e))?;
        }
    }
    Ok(dir.to_path_buf())
}

/// Writes `bytes` to `path` atomically without replacing anything.
pub(super) fn write_new(path: &Path, bytes: &[u8], kind: FileKind, sync: bool) -> Result<()> {
    let tmp = write_temp(path, bytes, kind, sync)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Exists {
                path: path.to_path_buf(),
            }
        } else {
            Error::io(path, e.error)
        }
    })?;
    if sync {
        sync_dir(path)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, replacing a regular file there.
pub(crate) fn write_replace(path: &Path, bytes: &[u8], kind: FileKind) -> Result<()> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Symlink {
            path: path.to_path_buf(),
        });
    }
    let tmp = write_temp(path, bytes, kind, true)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(path)
}

/// A temporary file beside `path` holding `bytes`, its mode set (0600 for a
/// secret, 0644 otherwise: the directory's mode is never derived from it).
fn write_temp(
    path: &Path,
    bytes: &[u8],
    kind: FileKind,
    sync: bool,
) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().ok_or_else(|| Error::NoDirectory {
        path: path.to_path_buf(),
    })?;
    let temp = || {
        tempfile::Builder::new()
            .prefix(".iotca-tmp-")
            .tempfile_in(dir)
    };
    // Secrets under private/: make sure of the directory's 0700 first, every
    // time. Anything else (certificates, PFX files in certs/, records):
    // create the directory only when it is missing, 0755, never tightened.
    let secret_dir = kind == FileKind::Secret && dir.file_name().is_some_and(|n| n == "private");
    let tmp = if secret_dir {
        ensure_dir(dir, FileKind::Secret)?;
        temp()
    } else {
        match temp() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ensure_dir(dir, FileKind::Public)?;
                temp()
            }
            other => other,
        }
    };
    let mut tmp = tmp.map_err(|e| Error::io(dir, e))?;
    let mode = if kind == FileKind::Secret {
        0o600
    } else {
        0o644
    };
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    if sync {
        tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(tmp)
}

/// fsyncs the directory holding `file_in_dir`.
pub(super) fn sync_dir(file_in_dir: &Path) -> Result<()> {
    if let Some(dir) = file_in_dir.parent() {
        let d = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_over_the_bound_are_refused_naming_file_and_bound() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("big.pem");
        fs::write(&p, vec![b'x'; 2048]).unwrap();
        let e = read_bounded(&p, 1024, "key file").unwrap_err().to_string();
        assert!(
            e.contains("big.pem") && e.contains("1024 bytes") && e.contains("key file"),
            "{e}"
        );
        assert_eq!(read_bounded(&p, 4096, "key file").unwrap().len(), 2048);
    }

    #[test]
    fn lines_are_bounded_and_numbered() {
        let ok = read_lines(&b"a\n\n# c\n b \r\nlast"[..], "ids").unwrap();
        assert_eq!(ok, ["a", "b", "last"]);
        let mut long = b"ok\n".to_vec();
        long.extend(vec![b'x'; 2000]);
        long.extend(b"\nmore\n");
        let e = read_lines(&long[..], "fleet.txt").unwrap_err().to_string();
        assert!(e.contains("fleet.txt: line 2"), "{e}");
        let e = read_lines(&b"a\n\xff\n"[..], "fleet.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2 is not UTF-8"), "{e}");
    }
}
