//! `iotca hub messages [ID] [--follow] [--last N] [--json]`: the telemetry
//! the local hub received (`hub/messages/<device-id>.jsonl`).

use std::io::Write as _;
use std::time::Duration;

use clap::Args;

use iotca::home::Home;
use iotca::hub_messages::{Message, MessageStore};
use iotca::text::escape;

use super::{CmdResult, Global};

pub const MESSAGES_HELP: &str = "\
Messages are the device-to-cloud (telemetry) messages `iotca dps serve` received on its hubs'
MQTT endpoint, oldest first: enqueued time (UTC), device, hub, properties from the topic
(system properties such as $.ct and $.ce under their names) and the body (text, or base64
when it is not UTF-8). Each device's file keeps about the newest 1 MiB.

With --json: a JSON array of records {deviceId, hub, enqueuedTimeUtc, properties, body,
bodyEncoding (only \"base64\")}; with --follow --json, one record a line.

EXIT CODES:
  0  printed (also when there are no messages)
  2  the home or the ID is invalid, or some record could not be read (named on stderr)

EXAMPLES:
  Everything the hub received:
    iotca --home pki hub messages
  The last 5 messages of one device, as JSON:
    iotca --home pki hub messages sensor-thl-001 --last 5 --json
  Watch telemetry arrive, like `az iot hub monitor-events` (Ctrl-C stops):
    iotca --home pki hub messages --follow";

/// `hub messages` arguments.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// Only this device's messages (case-sensitive ID).
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Keep printing new messages until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Only the newest N messages (then, with --follow, the new ones).
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
}

/// Runs `hub messages`.
pub fn run(a: &MessagesArgs, g: &Global) -> CmdResult {
    let home = Home::open(&g.home_dir())?;
    let store = MessageStore::new(home);
    if let Some(id) = &a.id {
        store.path(id)?;
    }
    // Start following before reading, so nothing falls between the two.
    let mut follower = if a.follow {
        Some(store.follow(a.id.as_deref())?)
    } else {
        None
    };
    let got = store.read(a.id.as_deref());
    for e in &got.errors {
        eprintln!("iotca: error: {e}");
    }
    let mut records = got.records;
    if let Some(n) = a.last {
        let from = records.len().saturating_sub(n);
        records.drain(..from);
    }
    let mut out = std::io::stdout().lock();
    let printed = if a.follow && g.json {
        records.iter().try_for_each(|m| json_line(&mut out, m))
    } else if g.json {
        serde_json::to_writer_pretty(&mut out, &records)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        records.iter().try_for_each(|m| text_line(&mut out, m))
    };
    if let Err(e) = printed.and_then(|_| out.flush()) {
        return closed_pipe(e);
    }
    let Some(follower) = follower.as_mut() else {
        return Ok(if got.errors.is_empty() { 0 } else { 2 });
    };
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let new = follower.poll();
        for e in &new.errors {
            eprintln!("iotca: error: {e}");
        }
        let printed = new.records.iter().try_for_each(|m| {
            if g.json {
                json_line(&mut out, m)
            } else {
                text_line(&mut out, m)
            }
        });
        if let Err(e) = printed.and_then(|_| out.flush()) {
            return closed_pipe(e);
        }
    }
}

fn closed_pipe(e: std::io::Error) -> CmdResult {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(0)
    } else {
        Err(e.into())
    }
}

fn json_line(out: &mut impl std::io::Write, m: &Message) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, m).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// `2026-12-02T14:44:22.123456Z sensor-thl-001 [$.ct=application/json] {"t": 21}`
fn text_line(out: &mut impl std::io::Write, m: &Message) -> std::io::Result<()> {
    let props: Vec<String> = m
        .properties
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect();
    let body = match m.body_encoding.as_deref() {
        Some(enc) => format!("({enc}) {}", escape(&m.body)),
        None => escape(&m.body).into_owned(),
    };
    writeln!(
        out,
        "{} {} [{}] {}",
        escape(&m.enqueued_time_utc),
        escape(&m.device_id),
        props.join(" "),
        body
    )
}
