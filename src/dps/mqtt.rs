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

use std::fmt;

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

/// Why bytes are not a packet this codec accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The remaining length is above the limit the caller set.
    TooLarge {
        /// The announced remaining length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes break MQTT 3.1.1 (the reason names the rule).
    Malformed(&'static str),
    /// A valid MQTT packet this server does not handle (QoS 2 flows, for example).
    Unsupported(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { length, max } => write!(
                f,
                "packet of {length} bytes is larger than the {max}-byte limit"
            ),
            DecodeError::Malformed(why) => write!(f, "malformed MQTT packet: {why}"),
            DecodeError::Unsupported(what) => write!(f, "unsupported MQTT packet: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one packet from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a packet (read more and
/// call again), `Ok(Some((packet, consumed)))` when it holds a whole one.
/// A remaining length above `max_packet` is refused as soon as the length
/// bytes are in, so the caller never needs to buffer more than
/// `max_packet + 5` bytes.
pub fn decode(buf: &[u8], max_packet: usize) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut length: usize = 0;
    let mut shift = 0u32;
    let mut header_len = 1;
    loop {
        let Some(&b) = buf.get(header_len) else {
            return Ok(None);
        };
        header_len += 1;
        length |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if header_len > 4 {
            return Err(DecodeError::Malformed(
                "remaining length uses more than four bytes",
            ));
        }
    }
    if length > max_packet {
        return Err(DecodeError::TooLarge {
            length,
            max: max_packet,
        });
    }
    let total = header_len + length;
    let Some(body) = buf.get(header_len..total) else {
        return Ok(None);
    };
    let packet = decode_body(first >> 4, first & 0x0f, body)?;
    Ok(Some((packet, total)))
}

fn decode_body(kind: u8, flags: u8, body: &[u8]) -> Result<Packet, DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let expect_flags = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(DecodeError::Malformed(
                "reserved fixed-header flags are set",
            ))
        }
    };
    let packet = match kind {
        1 => {
            expect_flags(0)?;
            Packet::Connect(Box::new(decode_connect(&mut r)?))
        }
        2 => {
            expect_flags(0)?;
            let ack = r.u8()?;
            if ack & 0xfe != 0 {
                return Err(DecodeError::Malformed("CONNACK reserved bits are set"));
            }
            let code = match r.u8()? {
                0 => ConnectReturnCode::Accepted,
                1 => ConnectReturnCode::UnacceptableProtocolVersion,
                2 => ConnectReturnCode::IdentifierRejected,
                3 => ConnectReturnCode::ServerUnavailable,
                4 => ConnectReturnCode::BadUsernameOrPassword,
                5 => ConnectReturnCode::NotAuthorized,
                _ => return Err(DecodeError::Malformed("unknown CONNACK return code")),
            };
            Packet::ConnAck {
                session_present: ack & 1 == 1,
                code,
            }
        }
        3 => {
            let qos = (flags >> 1) & 3;
            if qos == 3 {
                return Err(DecodeError::Malformed("PUBLISH with QoS 3"));
            }
            if qos == 2 {
                return Err(DecodeError::Unsupported("PUBLISH with QoS 2"));
            }
            if qos == 0 && flags & 8 != 0 {
                return Err(DecodeError::Malformed("DUP set on a QoS 0 PUBLISH"));
            }
            let topic = r.string()?;
            if topic.is_empty() {
                return Err(DecodeError::Malformed("empty PUBLISH topic"));
            }
            if topic.contains(['+', '#']) {
                return Err(DecodeError::Malformed("wildcard in a PUBLISH topic"));
            }
            let packet_id = if qos > 0 { Some(r.packet_id()?) } else { None };
            let payload = r.rest().to_vec();
            return Ok(Packet::Publish(Publish {
                dup: flags & 8 != 0,
                qos,
                retain: flags & 1 != 0,
                topic,
                packet_id,
                payload,
            }));
        }
        4 => {
            expect_flags(0)?;
            Packet::PubAck {
                packet_id: r.packet_id()?,
            }
        }
        5..=7 => return Err(DecodeError::Unsupported("QoS 2 acknowledgement")),
        8 => {
            expect_flags(2)?;
            let packet_id = r.packet_id()?;
            let mut filters = Vec::new();
            while !r.at_end() {
                let filter = r.string()?;
                check_filter(&filter)?;
                let qos = r.u8()?;
                if qos > 2 {
                    return Err(DecodeError::Malformed(
                        "requested QoS above 2 or reserved bits set",
                    ));
                }
                filters.push((filter, qos));
            }
            if filters.is_empty() {
                return Err(DecodeError::Malformed("SUBSCRIBE without a topic filter"));
            }
            Packet::Subscribe { packet_id, filters }
        }
        9 => {
            expect_flags(0)?;
            let packet_id = r.packet_id()?;
            let codes = r.rest().to_vec();
            if codes.is_empty() || codes.iter().any(|c| !matches!(c, 0..=2 | 0x80)) {
                return Err(DecodeError::Malformed("bad SUBACK return codes"));
            }
            Packet::SubAck { packet_id, codes }
        }
        10 => {
            expect_flags(2)?;
            let packet_id = r.packet_id()?;
            let mut filters = Vec::new();
            while !r.at_end() {
                let filter = r.string()?;
                check_filter(&filter)?;
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(DecodeError::Malformed("UNSUBSCRIBE without a topic filter"));
            }
            Packet::Unsubscribe { packet_id, filters }
        }
        11 => {
            expect_flags(0)?;
            Packet::UnsubAck {
                packet_id: r.packet_id()?,
            }
        }
        12 => {
            expect_flags(0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(0)?;
            Packet::Disconnect
        }
        _ => return Err(DecodeError::Malformed("reserved packet type")),
    };
    if !r.at_end() {
        return Err(DecodeError::Malformed("bytes after the end of the packet"));
    }
    Ok(packet)
}

fn decode_connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let protocol_name = r.string()?;
    let protocol_level = r.u8()?;
    if protocol_name != "MQTT" && protocol_name != "MQIsdp" {
        return Err(DecodeError::Malformed("protocol name is not MQTT"));
    }
    let flags = r.u8()?;
    if flags & 1 != 0 {
        return Err(DecodeError::Malformed("CONNECT reserved flag is set"));
    }
    let keep_alive = r.u16()?;
    let client_id = r.string()?;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 3;
    let will_retain = flags & 0x20 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::Malformed(
            "Will QoS or retain set without a Will",
        ));
    }
    if will_qos == 3 {
        return Err(DecodeError::Malformed("Will QoS 3"));
    }
    let will = if will_flag {
        let topic = r.string()?;
        let payload = r.binary()?.to_vec();
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let has_user = flags & 0x80 != 0;
    let has_password = flags & 0x40 != 0;
    if has_password && !has_user {
        return Err(DecodeError::Malformed("password without a user name"));
    }
    let username = if has_user { Some(r.string()?) } else { None };
    let password = if has_password {
        Some(r.binary()?.to_vec())
    } else {
        None
    };
    Ok(Connect {
        protocol_name,
        protocol_level,
        clean_session: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn check_filter(filter: &str) -> Result<(), DecodeError> {
    if filter.is_empty() {
        return Err(DecodeError::Malformed("empty topic filter"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(DecodeError::Malformed(
                "'#' not alone at the end of a filter",
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(DecodeError::Malformed("'+' not alone in a filter level"));
        }
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Malformed("length overflow"))?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Malformed(
            "a field runs past the end of the packet",
        ))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::Malformed("packet identifier 0")),
            id => Ok(id),
        }
    }

    fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.binary()?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::Malformed("a string is not UTF-8"))?;
        if s.contains('\0') {
            return Err(DecodeError::Malformed("a string contains U+0000"));
        }
        Ok(s.to_string())
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        s
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    FieldTooLong,
    /// The packet is longer than MQTT can express.
    PacketTooLong,
    /// The packet's fields break MQTT (QoS 1 without an identifier, ...).
    Invalid(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FieldTooLong => write!(f, "an MQTT field is longer than 65535 bytes"),
            EncodeError::PacketTooLong => write!(f, "the MQTT packet is too long"),
            EncodeError::Invalid(why) => write!(f, "invalid MQTT packet: {why}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Appends the encoding of `packet` to `out`.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut body = Vec::new();
    let first: u8 = match packet {
        Packet::Connect(c) => {
            put_str(&mut body, &c.protocol_name)?;
            body.push(c.protocol_level);
            let mut flags = 0u8;
            if c.clean_session {
                flags |= 0x02;
            }
            if let Some(w) = &c.will {
                if w.qos > 2 {
                    return Err(EncodeError::Invalid("Will QoS above 2"));
                }
                flags |= 0x04 | (w.qos << 3);
                if w.retain {
                    flags |= 0x20;
                }
            }
            if c.password.is_some() {
                if c.username.is_none() {
                    return Err(EncodeError::Invalid("password without a user name"));
                }
                flags |= 0x40;
            }
            if c.username.is_some() {
                flags |= 0x80;
            }
            body.push(flags);
            body.extend_from_slice(&c.keep_alive.to_be_bytes());
            put_str(&mut body, &c.client_id)?;
            if let Some(w) = &c.will {
                put_str(&mut body, &w.topic)?;
                put_bin(&mut body, &w.payload)?;
            }
            if let Some(u) = &c.username {
                put_str(&mut body, u)?;
            }
            if let Some(p) = &c.password {
                put_bin(&mut body, p)?;
            }
            0x10
        }
        Packet::ConnAck {
            session_present,
            code,
        } => {
            body.push(u8::from(*session_present));
            body.push(*code as u8);
            0x20
        }
        Packet::Publish(p) => {
            if p.qos > 1 {
                return Err(EncodeError::Invalid("QoS 2 is not supported"));
            }
            put_str(&mut body, &p.topic)?;
            match (p.qos, p.packet_id) {
                (0, None) => {}
                (1, Some(id)) if id != 0 => body.extend_from_slice(&id.to_be_bytes()),
                _ => {
                    return Err(EncodeError::Invalid(
                        "a packet identifier goes with QoS 1 and only with it",
                    ));
                }
            }
            body.extend_from_slice(&p.payload);
            0x30 | (u8::from(p.dup) << 3) | (p.qos << 1) | u8::from(p.retain)
        }
        Packet::PubAck { packet_id } => {
            body.extend_from_slice(&packet_id.to_be_bytes());
            0x40
        }
        Packet::Subscribe { packet_id, filters } => {
            body.extend_from_slice(&packet_id.to_be_bytes());
            for (f, q) in filters {
                put_str(&mut body, f)?;
                body.push(*q);
            }
            0x82
        }
        Packet::SubAck { packet_id, codes } => {
            body.extend_from_slice(&packet_id.to_be_bytes());
            body.extend_from_slice(codes);
            0x90
        }
        Packet::Unsubscribe { packet_id, filters } => {
            body.extend_from_slice(&packet_id.to_be_bytes());
            for f in filters {
                put_str(&mut body, f)?;
            }
            0xa2
        }
        Packet::UnsubAck { packet_id } => {
            body.extend_from_slice(&packet_id.to_be_bytes());
            0xb0
        }
        Packet::PingReq => 0xc0,
        Packet::PingResp => 0xd0,
        Packet::Disconnect => 0xe0,
    };
    if body.len() > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLong);
    }
    out.push(first);
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&body);
    Ok(())
}

/// The encoding of `packet` as a new vector.
pub fn to_bytes(packet: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode(packet, &mut out)?;
    Ok(out)
}

fn put_bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), EncodeError> {
    let n = u16::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong)?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    put_bin(out, s.as_bytes())
}

/// Does a topic name match a topic filter (`+` one level, `#` the rest)?
/// Topics starting with `$` are not matched by a leading wildcard (MQTT
/// 3.1.1 section 4.7.2).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 64 * 1024;

    fn round_trip(p: Packet) {
        let bytes = to_bytes(&p).unwrap();
        let (q, n) = decode(&bytes, MAX).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(q, p);
        // Every strict prefix is incomplete, never an error or a packet.
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], MAX), Ok(None), "prefix {cut}");
        }
    }

    fn sdk_connect() -> Packet {
        Packet::Connect(Box::new(Connect {
            protocol_name: "MQTT".into(),
            protocol_level: 4,
            clean_session: false,
            keep_alive: 60,
            client_id: "sensor-thl-001".into(),
            will: None,
            username: Some(
                "0ne00000000/registrations/sensor-thl-001/api-version=2019-03-31&ClientVersion=x"
                    .into(),
            ),
            password: None,
        }))
    }

    #[test]
    fn every_packet_round_trips() {
        round_trip(sdk_connect());
        round_trip(Packet::Connect(Box::new(Connect {
            protocol_name: "MQTT".into(),
            protocol_level: 4,
            clean_session: true,
            keep_alive: 0,
            client_id: String::new(),
            will: Some(Will {
                topic: "w".into(),
                payload: vec![1, 2],
                qos: 1,
                retain: true,
            }),
            username: Some("u".into()),
            password: Some(b"p".to_vec()),
        })));
        round_trip(Packet::ConnAck {
            session_present: false,
            code: ConnectReturnCode::NotAuthorized,
        });
        round_trip(Packet::Publish(Publish {
            dup: false,
            qos: 1,
            retain: false,
            topic: "$dps/registrations/PUT/iotdps-register/?$rid=1".into(),
            packet_id: Some(7),
            payload: br#"{"registrationId":"a"}"#.to_vec(),
        }));
        round_trip(Packet::Publish(Publish {
            dup: false,
            qos: 0,
            retain: true,
            topic: "t".into(),
            packet_id: None,
            payload: vec![0; 300],
        }));
        round_trip(Packet::PubAck { packet_id: 9 });
        round_trip(Packet::Subscribe {
            packet_id: 1,
            filters: vec![("$dps/registrations/res/#".into(), 1)],
        });
        round_trip(Packet::SubAck {
            packet_id: 1,
            codes: vec![1, 0x80],
        });
        round_trip(Packet::Unsubscribe {
            packet_id: 2,
            filters: vec!["a/+/b".into()],
        });
        round_trip(Packet::UnsubAck { packet_id: 2 });
        round_trip(Packet::PingReq);
        round_trip(Packet::PingResp);
        round_trip(Packet::Disconnect);
    }

    #[test]
    fn known_bytes() {
        assert_eq!(to_bytes(&Packet::PingResp).unwrap(), [0xd0, 0]);
        assert_eq!(
            to_bytes(&Packet::ConnAck {
                session_present: false,
                code: ConnectReturnCode::Accepted
            })
            .unwrap(),
            [0x20, 2, 0, 0]
        );
        // A 321-byte body takes two length bytes: 0xC1 0x02.
        let p = Packet::Publish(Publish {
            dup: false,
            qos: 0,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: vec![0; 318],
        });
        let b = to_bytes(&p).unwrap();
        assert_eq!(&b[..3], &[0x30, 0xc1, 0x02]);
        // Paho's CONNECT for the SDK, as captured.
        let b = to_bytes(&sdk_connect()).unwrap();
        assert_eq!(&b[2..12], &[0, 4, b'M', b'Q', b'T', b'T', 4, 0x80, 0, 60]);
    }

    #[test]
    fn limits_and_malformed_input() {
        let too_big = [0x30, 0xff, 0xff, 0x03];
        assert_eq!(
            decode(&too_big, 1000),
            Err(DecodeError::TooLarge {
                length: 65535,
                max: 1000
            })
        );
        assert!(matches!(
            decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX),
            Err(DecodeError::Malformed(_))
        ));
        let bad: &[&[u8]] = &[
            &[0x00, 0x00],                                           // reserved type 0
            &[0xf0, 0x00],                                           // reserved type 15
            &[0xc1, 0x00],                                           // PINGREQ with flags
            &[0x80, 0x00],                                           // SUBSCRIBE without flags 0010
            &[0x82, 0x02, 0x00, 0x01],                               // SUBSCRIBE without filters
            &[0x82, 0x02, 0x00, 0x00],                               // packet id 0
            &[0x36, 0x03, 0x00, 0x01, b'a'],                         // QoS 3
            &[0x30, 0x03, 0x00, 0x01, b'#'],                         // wildcard in topic
            &[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28],                   // bad UTF-8
            &[0x30, 0x03, 0x00, 0x01, 0x00],                         // NUL in topic
            &[0x30, 0x02, 0x00, 0x05],                               // string past the end
            &[0xc0, 0x01, 0x00],                                     // trailing bytes
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],       // QoS 3 requested
            &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x01], // bad filter
            &[0x10, 0x02, 0x00, 0x00],                               // CONNECT, truncated
        ];
        for b in bad {
            assert!(
                matches!(decode(b, MAX), Err(DecodeError::Malformed(_))),
                "{b:02x?}: {:?}",
                decode(b, MAX)
            );
        }
        assert!(matches!(
            decode(&[0x34, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], MAX),
            Err(DecodeError::Unsupported(_))
        ));
        // CONNECT with a password but no user name.
        let mut c = to_bytes(&sdk_connect()).unwrap();
        c[9] = 0x40;
        assert!(decode(&c, MAX).is_err());
    }

    #[test]
    fn topic_filters() {
        let t = "$dps/registrations/res/202/?$rid=1&retry-after=1";
        assert!(topic_matches("$dps/registrations/res/#", t));
        assert!(topic_matches("$dps/registrations/+/202/#", t));
        assert!(!topic_matches("#", t));
        assert!(!topic_matches("$dps/registrations/PUT/#", t));
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
    }

    fn arb_packet() -> impl Strategy<Value = Packet> {
        let s = "[a-z$/?=&]{0,40}";
        prop_oneof![
            (s, s, any::<u16>(), any::<bool>()).prop_map(|(c, u, k, clean)| {
                Packet::Connect(Box::new(Connect {
                    protocol_name: "MQTT".into(),
                    protocol_level: 4,
                    clean_session: clean,
                    keep_alive: k,
                    client_id: c,
                    will: None,
                    username: Some(u),
                    password: None,
                }))
            }),
            (
                "[a-z$/?=&]{1,40}",
                1u16..,
                proptest::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|(t, id, payload)| Packet::Publish(Publish {
                    dup: false,
                    qos: 1,
                    retain: false,
                    topic: t,
                    packet_id: Some(id),
                    payload,
                })),
            (1u16..).prop_map(|id| Packet::PubAck { packet_id: id }),
            (1u16.., "[a-z$]{1,20}", 0u8..3).prop_map(|(id, f, q)| Packet::Subscribe {
                packet_id: id,
                filters: vec![(f, q)]
            }),
            Just(Packet::PingReq),
            Just(Packet::Disconnect),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..1024) {
            if let Ok(Some((_, n))) = decode(&bytes, max) {
                prop_assert!(n <= bytes.len());
                prop_assert!(n <= max + 5);
            }
        }

        #[test]
        fn decoding_mutated_packets_never_panics(p in arb_packet(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
            let mut bytes = to_bytes(&p).unwrap();
            for (i, x) in flips {
                let n = bytes.len();
                bytes[i % n] ^= x;
            }
            let n = bytes.len();
            bytes.truncate(cut % (n + 1));
            let _ = decode(&bytes, MAX);
        }

        #[test]
        fn generated_packets_round_trip(p in arb_packet()) {
            let bytes = to_bytes(&p).unwrap();
            let (q, n) = decode(&bytes, MAX).unwrap().unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(q, p);
        }
    }
}
