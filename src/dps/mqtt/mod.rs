//! A small, bounded MQTT 3.1.1 codec: the packets the DPS device protocol
//! uses (CONNECT/CONNACK, SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PUBLISH
//! at QoS 0 and 1, PUBACK, PINGREQ/PINGRESP, DISCONNECT).
//!
//! [`decode`] never panics and never allocates more than the packet it is
//! given: the remaining length is checked against a caller's maximum before
//! any body is read, so a hostile peer cannot make the server buffer more
//! than `max_packet` bytes. Every protocol violation the OASIS standard
//! calls "malformed" (reserved flags, bad UTF-8, wildcards in a PUBLISH
//! topic, QoS 3, a zero packet identifier, trailing bytes...) is a
//! [`DecodeError`]; the server closes that connection and nothing else.

mod decode;
mod encode;
mod topics;

pub use decode::{DecodeError, decode};
pub use encode::{EncodeError, encode, to_bytes};
pub use topics::topic_matches;

/// The largest remaining length the MQTT encoding can express (268,435,455).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// What the CONNACK return code says (MQTT 3.1.1 section 3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0: connection accepted.
    Accepted = 0,
    /// 1: the server does not support this protocol level.
    UnacceptableProtocolVersion = 1,
    /// 2: the client identifier is not allowed.
    IdentifierRejected = 2,
    /// 3: the service is unavailable.
    ServerUnavailable = 3,
    /// 4: the user name or password is malformed.
    BadUsernameOrPassword = 4,
    /// 5: the client is not authorized to connect.
    NotAuthorized = 5,
}

/// The Will message of a CONNECT (decoded, and ignored by the DPS server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// The Will topic.
    pub topic: String,
    /// The Will payload.
    pub payload: Vec<u8>,
    /// The Will QoS (0 to 2).
    pub qos: u8,
    /// The Will retain flag.
    pub retain: bool,
}

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol name: `MQTT` for 3.1.1 (`MQIsdp` for 3.1).
    pub protocol_name: String,
    /// The protocol level: 4 for MQTT 3.1.1.
    pub protocol_level: u8,
    /// The Clean Session flag.
    pub clean_session: bool,
    /// The keep-alive interval in seconds (0 turns it off).
    pub keep_alive: u16,
    /// The client identifier (DPS: the registration ID).
    pub client_id: String,
    /// The Will message, if any.
    pub will: Option<Will>,
    /// The user name (DPS: `{idScope}/registrations/{registrationId}/api-version=...`).
    pub username: Option<String>,
    /// The password (unused with X.509 authentication).
    pub password: Option<Vec<u8>>,
}

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The DUP flag.
    pub dup: bool,
    /// QoS 0 or 1 (QoS 2 is refused as unsupported, as IoT Hub and DPS do).
    pub qos: u8,
    /// The RETAIN flag.
    pub retain: bool,
    /// The topic name (no wildcards).
    pub topic: String,
    /// The packet identifier, present exactly when `qos > 0`.
    pub packet_id: Option<u16>,
    /// The application payload.
    pub payload: Vec<u8>,
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client to server: open a session.
    Connect(Box<Connect>),
    /// Server to client: the answer to CONNECT.
    ConnAck {
        /// Whether the server holds a session for the client.
        session_present: bool,
        /// Accepted, or why not.
        code: ConnectReturnCode,
    },
    /// Either way: an application message.
    Publish(Publish),
    /// Either way: QoS 1 acknowledgement.
    PubAck {
        /// The acknowledged packet identifier.
        packet_id: u16,
    },
    /// Client to server: subscribe to topic filters.
    Subscribe {
        /// The packet identifier.
        packet_id: u16,
        /// Topic filters with their requested QoS.
        filters: Vec<(String, u8)>,
    },
    /// Server to client: one return code per filter (granted QoS, or 0x80).
    SubAck {
        /// The packet identifier of the SUBSCRIBE.
        packet_id: u16,
        /// The granted QoS per filter, or 0x80 for failure.
        codes: Vec<u8>,
    },
    /// Client to server: unsubscribe from topic filters.
    Unsubscribe {
        /// The packet identifier.
        packet_id: u16,
        /// The topic filters.
        filters: Vec<String>,
    },
    /// Server to client: the answer to UNSUBSCRIBE.
    UnsubAck {
        /// The packet identifier of the UNSUBSCRIBE.
        packet_id: u16,
    },
    /// Client to server: keep-alive ping.
    PingReq,
    /// Server to client: the answer to PINGREQ.
    PingResp,
    /// Client to server: a clean close.
    Disconnect,
}

impl Packet {
    /// The packet type's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck { .. } => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck { .. } => "PUBACK",
            Packet::Subscribe { .. } => "SUBSCRIBE",
            Packet::SubAck { .. } => "SUBACK",
            Packet::Unsubscribe { .. } => "UNSUBSCRIBE",
            Packet::UnsubAck { .. } => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}

#[cfg(test)]
mod tests;
