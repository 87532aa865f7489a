//! A hub's device endpoint over MQTT, as the Azure IoT device SDKs speak
//! it: X.509 authentication against the registry ([`super::hub_auth`]),
//! telemetry on `devices/{deviceId}/messages/events/{properties}` recorded
//! in `hub/messages/` ([`crate::hub_messages`]), SUBSCRIBE/UNSUBSCRIBE
//! acknowledged, PINGREQ, DISCONNECT; the connection closes when the
//! device is deleted or disabled ([`super::watch`]).
//!
//! Clean session 0 and 1 are both accepted; the emulator keeps no session
//! state between connections, so CONNACK always says "no session present".
//! A PUBLISH to `$iothub/...` (twin, methods) is acknowledged and not
//! answered; one to any other device's topic closes the connection, as
//! IoT Hub does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{Conn, ConnError};
use super::hub_auth::Thumbprints;
use super::topics::{HubUserName, telemetry_properties};
use super::{Shared, log};
use crate::dps::mqtt::{Connect, ConnectReturnCode, Packet, Publish};

/// Serves one hub client after its CONNECT.
pub(super) async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut conn: Conn<S>,
    peer: SocketAddr,
    chain: Vec<Vec<u8>>,
    connect: &Connect,
    user: HubUserName,
) -> Result<(), ConnError> {
    let limits = shared.config.limits.clone();
    let device_id = user.device_id.clone();
    let who = format!("{peer} hub {} device {device_id}", user.hub);
    let refuse = async |conn: &mut Conn<S>, why: String| {
        log(&format!("{who}: refused (CONNACK 5): {why}"));
        conn.write(&Packet::ConnAck {
            session_present: false,
            code: ConnectReturnCode::NotAuthorized,
        })
        .await?;
        Ok(())
    };
    // The hub is the one the record names (an enrollment's `iotHubs` may
    // name hubs beyond `--hub`); records without one belong to the first hub.
    let hub = user.hub.clone();
    if connect.client_id != device_id {
        let why = format!(
            "the client ID '{}' is not the device ID of the user name",
            connect.client_id
        );
        return refuse(&mut conn, why).await;
    }
    let s = shared.clone();
    let (h, d, c) = (hub.clone(), device_id.clone(), chain.clone());
    let decided = tokio::task::spawn_blocking(move || {
        s.hub_auth.authorize(&h, &d, &c, OffsetDateTime::now_utc())
    })
    .await
    .map_err(|e| ConnError::Protocol(format!("the authorization task failed: {e}")))?;
    let stamp = match decided {
        Ok(stamp) => stamp,
        Err(why) => return refuse(&mut conn, why).await,
    };
    let thumbs = Thumbprints::of(&chain[0]);
    let mut watched = shared.watcher.watch(&device_id, &hub, thumbs, stamp);
    conn.write(&Packet::ConnAck {
        session_present: false,
        code: ConnectReturnCode::Accepted,
    })
    .await?;
    log(&format!("{who}: connected"));
    let idle = if connect.keep_alive == 0 {
        limits.idle_without_keep_alive
    } else {
        Duration::from_millis(u64::from(connect.keep_alive) * 1500)
    };
    let mut subscriptions: Vec<String> = Vec::new();
    let mut received: u64 = 0;
    loop {
        let packet = tokio::select! {
            r = tokio::time::timeout(idle, conn.read()) => match r {
                Ok(r) => r?,
                Err(_) => return Err(ConnError::Timeout("waiting for the client (keep-alive)")),
            },
            why = watched.close.wait_for(Option::is_some) => {
                let why = why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default();
                log(&format!("{who}: closed: {why}"));
                return Ok(());
            }
        };
        let Some(packet) = packet else {
            log(&format!("{who}: gone ({received} messages)"));
            return Ok(());
        };
        match packet {
            Packet::PingReq => conn.write(&Packet::PingResp).await?,
            Packet::Disconnect => {
                log(&format!("{who}: disconnected ({received} messages)"));
                return Ok(());
            }
            Packet::PubAck { .. } => {}
            Packet::Subscribe { packet_id, filters } => {
                let mut codes = Vec::with_capacity(filters.len());
                for (filter, qos) in filters {
                    let own = filter
                        .strip_prefix("devices/")
                        .and_then(|r| r.strip_prefix(device_id.as_str()))
                        .is_some_and(|r| r.starts_with('/'));
                    let allowed = own || filter.starts_with("$iothub/");
                    let room = subscriptions.len() < limits.max_subscriptions
                        || subscriptions.contains(&filter);
                    if allowed && room {
                        if !subscriptions.contains(&filter) {
                            subscriptions.push(filter);
                        }
                        codes.push(qos.min(1));
                    } else {
                        codes.push(0x80);
                    }
                }
                conn.write(&Packet::SubAck { packet_id, codes }).await?;
            }
            Packet::Unsubscribe { packet_id, filters } => {
                subscriptions.retain(|f| !filters.contains(f));
                conn.write(&Packet::UnsubAck { packet_id }).await?;
            }
            Packet::Publish(p) => {
                telemetry(&shared, &hub, &device_id, &who, &p).await?;
                received += 1;
                if let Some(packet_id) = p.packet_id {
                    conn.write(&Packet::PubAck { packet_id }).await?;
                }
            }
            other => {
                return Err(ConnError::Protocol(format!(
                    "a client does not send {}",
                    other.name()
                )));
            }
        }
    }
}

/// Records a device-to-cloud message (before it is acknowledged).
async fn telemetry(
    shared: &Arc<Shared>,
    hub: &str,
    device_id: &str,
    who: &str,
    p: &Publish,
) -> Result<(), ConnError> {
    let Some(properties) = telemetry_properties(&p.topic, device_id) else {
        if p.topic.starts_with("$iothub/") {
            // Twin and method requests: acknowledged, not served.
            return Ok(());
        }
        return Err(ConnError::Protocol(format!(
            "PUBLISH to {:?}, which is not this device's telemetry topic",
            p.topic
        )));
    };
    let s = shared.clone();
    let (h, d, payload) = (hub.to_string(), device_id.to_string(), p.payload.clone());
    let stored =
        tokio::task::spawn_blocking(move || s.messages.receive(&d, &h, properties, &payload))
            .await
            .map_err(|e| ConnError::Protocol(format!("the message task failed: {e}")))?;
    if let Err(e) = stored {
        // Not acknowledged: the device SDK sends it again after reconnecting.
        log(&format!("{who}: could not record a message: {e}"));
        return Err(ConnError::Protocol("message not recorded".into()));
    }
    Ok(())
}
