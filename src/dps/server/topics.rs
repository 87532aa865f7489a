//! The DPS user name and request topics.

/// The parts of the DPS user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UserName {
    pub(super) id_scope: String,
    pub(super) registration_id: String,
}

/// `{idScope}/registrations/{registrationId}/api-version=...`.
pub(super) fn parse_username(u: &str) -> Option<UserName> {
    let mut parts = u.splitn(4, '/');
    let scope = parts.next()?;
    let fixed = parts.next()?;
    let id = parts.next()?;
    let rest = parts.next()?;
    if scope.is_empty() || fixed != "registrations" || id.is_empty() {
        return None;
    }
    let has_version = rest
        .trim_start_matches('?')
        .split('&')
        .any(|kv| kv.starts_with("api-version="));
    has_version.then(|| UserName {
        id_scope: scope.to_string(),
        registration_id: id.to_string(),
    })
}

/// The `key=value` pairs after `?` in a request topic (keys without `$`),
/// values percent-decoded.
pub(super) fn topic_query(topic: &str) -> Vec<(String, String)> {
    let Some((_, q)) = topic.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k.trim_start_matches('$')), percent_decode(v))
        })
        .collect()
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                b.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request ID echoed back in the reply topic: it must not be able to
/// change the topic's shape (the SDKs split reply topics on `$`, `&`, `=`).
pub(super) fn valid_rid(rid: &str) -> bool {
    !rid.is_empty()
        && rid.len() <= 128
        && rid
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'%'))
}

/// The raw (still encoded) value of `$rid` in a request topic.
pub(super) fn raw_rid(topic: &str) -> Option<&str> {
    let (_, q) = topic.split_once('?')?;
    q.split('&').find_map(|kv| kv.strip_prefix("$rid="))
}

pub(super) fn reply_topic(status: u16, rid: &str, retry_after: Option<u32>) -> String {
    match retry_after {
        Some(s) => format!("$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}"),
        None => format!("$dps/registrations/res/{status}/?$rid={rid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        let u = parse_username(
            "0ne000FFFFF/registrations/sensor-thl-001/api-version=2019-03-31&ClientVersion=azure-iot-device%2F2.14.0",
        )
        .unwrap();
        assert_eq!(u.id_scope, "0ne000FFFFF");
        assert_eq!(u.registration_id, "sensor-thl-001");
        assert!(parse_username("s/registrations/x/").is_none());
        assert!(parse_username("s/devices/x/api-version=1").is_none());
        assert!(parse_username("/registrations/x/api-version=1").is_none());
        assert!(parse_username("s/registrations//api-version=1").is_none());
        assert!(parse_username("").is_none());
    }

    #[test]
    fn topics() {
        let t =
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=abc-1&operationId=4.a.b%2Dc";
        assert_eq!(raw_rid(t), Some("abc-1"));
        let q = topic_query(t);
        assert_eq!(q[1], ("operationId".into(), "4.a.b-c".into()));
        assert!(valid_rid("0c6e3b5e-61a7-4b6a-9c8b-0d7f9a1b2c3d"));
        assert!(valid_rid("42"));
        assert!(!valid_rid("a$b"));
        assert!(!valid_rid("a/b"));
        assert!(!valid_rid(""));
        assert_eq!(
            reply_topic(202, "7", Some(1)),
            "$dps/registrations/res/202/?$rid=7&retry-after=1"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
