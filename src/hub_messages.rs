//! Telemetry the local IoT hub received: `hub/messages/<device-id>.jsonl`,
//! one message a line, oldest first, each file capped at [`MAX_FILE`]
//! bytes (when a line would pass the cap, the oldest half of the file is
//! dropped).
//!
//! Appends are serialised per file: in the process by a striped mutex, and
//! across processes by an exclusive `flock` on the file. Trimming writes
//! the kept half and the new line to a temporary file and renames it over
//! the old one, so a reader sees the old file or the new one, never a torn
//! one; an appender that waited on the old file's lock notices the rename
//! and opens the new file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::home::{FileKind, Home};
use crate::hub::check_registry_id;

/// Directory of the message files, relative to the home.
pub const MESSAGES_DIR: &str = "hub/messages";

/// The largest a message file grows to, in bytes (1 MiB).
pub const MAX_FILE: u64 = 1024 * 1024;

/// One received device-to-cloud message, as stored and as `hub messages
/// --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The sending device.
    pub device_id: String,
    /// The hub (host name) it was sent to.
    pub hub: String,
    /// When the hub received it (RFC 3339, UTC, microseconds; unique among
    /// the messages one server recorded).
    pub enqueued_time_utc: String,
    /// The properties from the topic, system ones (`$.ct`, `$.ce`, `$.mid`...)
    /// under their names, values percent-decoded.
    pub properties: BTreeMap<String, String>,
    /// The body: UTF-8 text as it is, anything else in base64.
    pub body: String,
    /// `base64` when the body is base64 of bytes that are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<String>,
}

impl Message {
    /// The record of a message received at `now`.
    pub fn new(
        device_id: &str,
        hub: &str,
        properties: BTreeMap<String, String>,
        payload: &[u8],
        now: OffsetDateTime,
    ) -> Message {
        let (body, body_encoding) = match std::str::from_utf8(payload) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(payload),
                Some("base64".to_string()),
            ),
        };
        Message {
            device_id: device_id.to_string(),
            hub: hub.to_string(),
            enqueued_time_utc: enqueued_time(now),
            properties,
            body,
            body_encoding,
        }
    }

    /// The body's bytes (decoding base64 when `bodyEncoding` says so).
    pub fn body_bytes(&self) -> Option<Vec<u8>> {
        match self.body_encoding.as_deref() {
            None => Some(self.body.as_bytes().to_vec()),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&self.body)
                .ok(),
            Some(_) => None,
        }
    }
}

/// `2026-12-02T14:44:22.123456Z`: sorts as text in time order.
pub fn enqueued_time(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The messages of one home's hub.
#[derive(Debug)]
pub struct MessageStore {
    home: Home,
    stripes: Vec<Mutex<()>>,
    /// The last enqueued time handed out (Unix microseconds).
    clock: Mutex<i128>,
}

/// Messages read, and one error per file or line that could not be read.
#[derive(Debug, Default)]
pub struct Messages {
    /// Readable messages, oldest first.
    pub records: Vec<Message>,
    /// What could not be read (the others are still listed).
    pub errors: Vec<Error>,
}

impl MessageStore {
    /// The message store inside `home`.
    pub fn new(home: Home) -> MessageStore {
        MessageStore {
            home,
            stripes: (0..32).map(|_| Mutex::new(())).collect(),
            clock: Mutex::new(0),
        }
    }

    /// Records a message the hub received now: its enqueued time is later
    /// than every other this store handed out, so each line is unique
    /// (which lets a follower find its place again after a trim).
    pub fn receive(
        &self,
        device_id: &str,
        hub: &str,
        properties: BTreeMap<String, String>,
        payload: &[u8],
    ) -> Result<Message> {
        let now = {
            let mut last = self.clock.lock().unwrap_or_else(|p| p.into_inner());
            let t = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).max(*last + 1);
            *last = t;
            OffsetDateTime::from_unix_timestamp_nanos(t * 1000)
                .unwrap_or_else(|_| OffsetDateTime::now_utc())
        };
        let m = Message::new(device_id, hub, properties, payload, now);
        self.append(&m)?;
        Ok(m)
    }

    /// `hub/messages/<device-id>.jsonl`, after checking the ID.
    pub fn path(&self, device_id: &str) -> Result<PathBuf> {
        check_registry_id(device_id)?;
        Ok(self.home.path(format!("{MESSAGES_DIR}/{device_id}.jsonl")))
    }

    /// Appends one message to its device's file, trimming the file first
    /// when the line would take it past [`MAX_FILE`].
    pub fn append(&self, m: &Message) -> Result<()> {
        let path = self.path(&m.device_id)?;
        let mut line = serde_json::to_vec(m)
            .map_err(|e| Error::Invalid(format!("could not encode the message: {e}")))?;
        line.push(b'\n');
        let stripe = stripe_of(&m.device_id, self.stripes.len());
        let _inner = self.stripes[stripe]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let file = self.open_locked(&path)?;
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if size + line.len() as u64 <= MAX_FILE {
            let mut f = &file;
            return f.write_all(&line).map_err(|e| Error::io(&path, e));
        }
        self.trim_and_append(&path, &file, &line)
    }

    /// Opens (creating) the file for appending with its exclusive lock
    /// held, making sure the locked file is still the one at `path`.
    fn open_locked(&self, path: &Path) -> Result<fs::File> {
        for _ in 0..8 {
            let open = || {
                fs::OpenOptions::new()
                    .append(true)
                    .read(true)
                    .create(true)
                    .mode(0o644)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(path)
            };
            let file = match open() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    crate::home::fs::ensure_dir(&self.home.path(MESSAGES_DIR), FileKind::Public)?;
                    open()
                }
                other => other,
            }
            .map_err(|e| Error::io(path, e))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| Error::io(path, e.into()))?;
            let held = file.metadata().map_err(|e| Error::io(path, e))?;
            match fs::symlink_metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(file),
                // Trimmed (renamed over) while we waited: open the new file.
                _ => continue,
            }
        }
        Err(Error::Invalid(format!(
            "{} keeps being replaced; message not recorded",
            path.display()
        )))
    }

    fn trim_and_append(&self, path: &Path, file: &fs::File, line: &[u8]) -> Result<()> {
        let mut old = Vec::new();
        let mut f = file;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.take(MAX_FILE + (1 << 20)).read_to_end(&mut old))
            .map_err(|e| Error::io(path, e))?;
        let keep = kept_tail(&old, (MAX_FILE / 2) as usize);
        let mut bytes = Vec::with_capacity(keep.len() + line.len());
        bytes.extend_from_slice(keep);
        if line.len() as u64 <= MAX_FILE {
            bytes.extend_from_slice(line);
        }
        // Rename the new file over the old one while holding the old one's
        // lock: waiting appenders see the inode change and reopen.
        // Telemetry files are serialised by their own lock (held here), not
        // the home's: devices append while the CLI writes records.
        crate::home::fs::write_replace(path, &bytes, FileKind::Public)
    }

    /// The messages of one device, or of every device (merged by time),
    /// oldest first.
    pub fn read(&self, device_id: Option<&str>) -> Messages {
        let mut out = Messages::default();
        let paths = match device_id {
            Some(id) => match self.path(id) {
                Ok(p) => vec![p],
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            },
            None => match self.files() {
                Ok(p) => p,
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            },
        };
        for path in paths {
            match read_bounded(&path) {
                Ok(None) => {}
                Ok(Some(bytes)) => parse_lines(&path, &bytes, &mut out),
                Err(e) => out.errors.push(e),
            }
        }
        sort(&mut out.records);
        out
    }

    /// Every `hub/messages/*.jsonl` file.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.home.path(MESSAGES_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "jsonl")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// A follower that yields the messages added after it was made.
    pub fn follow(&self, device_id: Option<&str>) -> Result<Follower> {
        if let Some(id) = device_id {
            check_registry_id(id)?;
        }
        let mut f = Follower {
            store: MessageStore::new(self.home.clone()),
            device_id: device_id.map(str::to_string),
            files: BTreeMap::new(),
            started: false,
        };
        // Everything present now counts as seen.
        let _ = f.poll();
        f.started = true;
        Ok(f)
    }
}

/// Sorts by time, then device (stable, so a device's order is kept).
fn sort(records: &mut [Message]) {
    records.sort_by(|a, b| {
        a.enqueued_time_utc
            .cmp(&b.enqueued_time_utc)
            .then_with(|| a.device_id.cmp(&b.device_id))
    });
}

fn stripe_of(id: &str, n: usize) -> usize {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % n as u64) as usize
}

/// The newest whole lines of `old` that fit in `budget` bytes.
fn kept_tail(old: &[u8], budget: usize) -> &[u8] {
    // Only whole lines: cut an unterminated tail (a torn write) away.
    let end = old.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let old = &old[..end];
    if old.len() <= budget {
        return old;
    }
    let from = old.len() - budget;
    match old[from..].iter().position(|&b| b == b'\n') {
        Some(i) => &old[from + i + 1..],
        None => &[],
    }
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>> {
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE * 2)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(Some(bytes))
}

fn parse_lines(path: &Path, bytes: &[u8], out: &mut Messages) {
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Message>(line) {
            Ok(m) => out.records.push(m),
            Err(e) => out.errors.push(Error::BadRecord {
                path: path.to_path_buf(),
                reason: format!("line {} is not a message record: {e}", i + 1),
            }),
        }
    }
}

/// Yields new messages as they are appended (see [`MessageStore::follow`]).
#[derive(Debug)]
pub struct Follower {
    store: MessageStore,
    device_id: Option<String>,
    files: BTreeMap<PathBuf, FileState>,
    /// False during the first poll, which only notes where files end.
    started: bool,
}

#[derive(Debug)]
struct FileState {
    ino: u64,
    offset: u64,
    /// The last whole line read, to find our place after a trim.
    last_line: Vec<u8>,
}

impl Follower {
    /// The messages appended since the last poll, oldest first.
    pub fn poll(&mut self) -> Messages {
        let mut out = Messages::default();
        let paths = match &self.device_id {
            Some(id) => match self.store.path(id) {
                Ok(p) => vec![p],
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            },
            None => match self.store.files() {
                Ok(p) => p,
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            },
        };
        for path in paths {
            if let Err(e) = self.poll_file(&path, &mut out) {
                out.errors.push(e);
            }
        }
        sort(&mut out.records);
        out
    }

    fn poll_file(&mut self, path: &Path, out: &mut Messages) -> Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let state = self.files.get(path);
        let unchanged = state.is_some_and(|s| s.ino == meta.ino() && s.offset == meta.len());
        if unchanged {
            return Ok(());
        }
        let Some(bytes) = read_bounded(path)? else {
            return Ok(());
        };
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let whole = &bytes[..end];
        let start = match state {
            // A file there when following began: nothing in it is new. A
            // file made later: all of it is.
            None if !self.started => end,
            None => 0,
            Some(s) if s.ino == meta.ino() && (s.offset as usize) <= end => s.offset as usize,
            // Trimmed: new lines follow the last line we printed.
            Some(s) => find_after(whole, &s.last_line),
        };
        parse_lines(path, &whole[start..], out);
        let last_line = last_line(whole).to_vec();
        self.files.insert(
            path.to_path_buf(),
            FileState {
                ino: meta.ino(),
                offset: end as u64,
                last_line,
            },
        );
        Ok(())
    }
}

fn last_line(whole: &[u8]) -> &[u8] {
    let body = whole.strip_suffix(b"\n").unwrap_or(whole);
    match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    }
}

/// The offset just after the last occurrence of `line` (a whole line) in
/// `whole`, or 0 when it is not there (everything is new).
fn find_after(whole: &[u8], line: &[u8]) -> usize {
    if line.is_empty() {
        return 0;
    }
    let mut pos = whole.len();
    let body = whole.strip_suffix(b"\n").unwrap_or(whole);
    for l in body.rsplit(|&b| b == b'\n') {
        // `pos` is the offset just after this line's newline.
        if l == line {
            return pos;
        }
        pos = pos.saturating_sub(l.len() + 1);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MessageStore) {
        let t = tempfile::tempdir().unwrap();
        let h = Home::create(t.path()).unwrap();
        (t, MessageStore::new(h))
    }

    fn msg(id: &str, body: &[u8]) -> Message {
        let mut p = BTreeMap::new();
        p.insert("$.ct".to_string(), "application/json".to_string());
        Message::new(
            id,
            "h.azure-devices.net",
            p,
            body,
            OffsetDateTime::now_utc(),
        )
    }

    #[test]
    fn bodies_are_text_or_base64() {
        let m = msg("d", b"{\"t\": 1}");
        assert_eq!(m.body, "{\"t\": 1}");
        assert_eq!(m.body_encoding, None);
        let m = msg("d", &[0xff, 0, 1]);
        assert_eq!(m.body_encoding.as_deref(), Some("base64"));
        assert_eq!(m.body, "/wAB");
        assert_eq!(m.body_bytes().unwrap(), vec![0xff, 0, 1]);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(enqueued_time(t), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn a_file_is_capped_and_keeps_the_newest_half() {
        let (_t, s) = store();
        let body = vec![b'x'; 1000];
        for i in 0..2000 {
            let mut m = msg("dev-1", &body);
            m.properties.insert("n".into(), i.to_string());
            s.append(&m).unwrap();
            let len = fs::metadata(s.path("dev-1").unwrap()).unwrap().len();
            assert!(len <= MAX_FILE, "{len}");
        }
        let got = s.read(Some("dev-1"));
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        let n: Vec<usize> = got
            .records
            .iter()
            .map(|m| m.properties["n"].parse().unwrap())
            .collect();
        assert_eq!(*n.last().unwrap(), 1999);
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "consecutive");
        assert!(n.len() > 400 && n.len() < 1100, "{}", n.len());
    }

    #[test]
    fn concurrent_appends_lose_nothing_and_tear_nothing() {
        let (_t, s) = store();
        let s = std::sync::Arc::new(s);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let mut m = msg("dev-2", b"hello");
                        m.properties.insert("k".into(), format!("{t}-{i}"));
                        s.append(&m).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = s.read(None);
        assert!(got.errors.is_empty());
        assert_eq!(got.records.len(), 1600);
    }

    #[test]
    fn a_follower_sees_new_lines_across_a_trim() {
        let (_t, s) = store();
        s.append(&msg("dev-3", b"before")).unwrap();
        let mut f = s.follow(None).unwrap();
        assert!(f.poll().records.is_empty());
        // A device's first message, in a file made after following began.
        s.append(&msg("dev-4", b"first")).unwrap();
        assert_eq!(f.poll().records[0].body, "first");
        let p = BTreeMap::new();
        s.receive("dev-3", "h", p.clone(), b"one").unwrap();
        let got = f.poll();
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].body, "one");
        // Enough to trim the file several times over, polled as it goes.
        let big = vec![b'y'; 30_000];
        let mut seen = 0;
        for _ in 0..100 {
            s.receive("dev-3", "h", p.clone(), &big).unwrap();
            seen += f.poll().records.len();
        }
        assert_eq!(seen, 100);
        assert!(s.path("../x").is_err());
    }

    #[test]
    fn tails() {
        assert_eq!(kept_tail(b"a\nbb\nccc\n", 5), b"ccc\n");
        assert_eq!(kept_tail(b"a\nbb\nccc\ntorn", 100), b"a\nbb\nccc\n");
        assert_eq!(find_after(b"a\nb\nc\n", b"b"), 4);
        assert_eq!(find_after(b"a\nb\nc\n", b"z"), 0);
        assert_eq!(last_line(b"a\nb\n"), b"b");
    }
}
