//! Encoding: [`Packet`] to bytes.

use std::fmt;

use super::{MAX_REMAINING_LENGTH, Packet};

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
