//! Closing the hub connections of a device that was deleted or disabled.
//!
//! One task for the whole server: every [`TICK`] it stats the registry
//! file of each device that has a live hub connection (one `stat` per
//! device, however many connections it has); only a file whose stamp
//! changed is read and judged again. A connection whose device no longer
//! may connect is told to close. Whoever changed the record (the CLI in
//! another process, the REST API, `deprovision`), the connection is closed
//! within about [`TICK`] plus the time to read the changed records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::hub_auth::{HubAuth, Stamp, Thumbprints};

/// How often the registry files of connected devices are checked.
pub(super) const TICK: Duration = Duration::from_millis(300);

struct Live {
    hub: String,
    thumbs: Thumbprints,
    close: watch::Sender<Option<String>>,
}

struct Device {
    stamp: Option<Stamp>,
    conns: HashMap<u64, Live>,
}

/// The live hub connections, by device ID.
#[derive(Default)]
pub(super) struct Watcher {
    devices: Mutex<HashMap<String, Device>>,
    next_id: Mutex<u64>,
}

/// Held by a connection; dropping it stops watching.
pub(super) struct Watched {
    watcher: Arc<Watcher>,
    device_id: String,
    id: u64,
    /// Changes to `Some(why)` when the connection must close.
    pub(super) close: watch::Receiver<Option<String>>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut devices = self
            .watcher
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(d) = devices.get_mut(&self.device_id) {
            d.conns.remove(&self.id);
            if d.conns.is_empty() {
                devices.remove(&self.device_id);
            }
        }
    }
}

impl Watcher {
    /// Watches a connection authorized when the record had `stamp`.
    pub(super) fn watch(
        self: &Arc<Self>,
        device_id: &str,
        hub: &str,
        thumbs: Thumbprints,
        stamp: Option<Stamp>,
    ) -> Watched {
        let id = {
            let mut n = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            *n
        };
        let (tx, rx) = watch::channel(None);
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let d = devices.entry(device_id.to_string()).or_insert(Device {
            stamp,
            conns: HashMap::new(),
        });
        // A device seen with another stamp than this connection's: judge
        // them all again on the next tick.
        if d.stamp != stamp {
            d.stamp = None;
        }
        d.conns.insert(
            id,
            Live {
                hub: hub.to_string(),
                thumbs,
                close: tx,
            },
        );
        Watched {
            watcher: self.clone(),
            device_id: device_id.to_string(),
            id,
            close: rx,
        }
    }

    /// The number of devices with live connections.
    pub(super) fn devices(&self) -> usize {
        self.devices.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// One check of every watched device (blocking: stats and reads files).
    pub(super) fn check(&self, auth: &HubAuth) {
        let ids: Vec<(String, Option<Stamp>)> = {
            let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
            devices
                .iter()
                .map(|(id, d)| (id.clone(), d.stamp))
                .collect()
        };
        for (id, old) in ids {
            let Ok(path) = auth.registry().path(&id) else {
                continue;
            };
            let now = Stamp::of(&path);
            if now.is_some() && now == old {
                continue;
            }
            let record = auth.registry().get(&id);
            let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
            let Some(d) = devices.get_mut(&id) else {
                continue;
            };
            d.stamp = now;
            for live in d.conns.values() {
                let why = match &record {
                    Ok(None) => Some("the device was deleted from the registry".to_string()),
                    Ok(Some(dev)) => auth.record_refuses(dev, &live.hub, &live.thumbs),
                    Err(e) => Some(format!("the registry record cannot be read: {e}")),
                };
                if let Some(why) = why {
                    let _ = live.close.send(Some(why));
                }
            }
        }
    }

    /// Checks every [`TICK`] until `stop` turns true.
    pub(super) async fn run(self: Arc<Self>, auth: Arc<HubAuth>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            if self.devices() == 0 {
                continue;
            }
            let (w, a) = (self.clone(), auth.clone());
            let _ = tokio::task::spawn_blocking(move || w.check(&a)).await;
        }
    }
}
