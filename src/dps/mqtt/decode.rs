//! Decoding: bytes to [`Packet`], bounded by the caller's maximum.

use std::fmt;

use super::{Connect, ConnectReturnCode, Packet, Publish, Will};

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
