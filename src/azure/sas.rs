//! SAS tokens as Microsoft's SDKs make them:
//! `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64
//! HMAC-SHA256 of "<url-encoded resource>\n<expiry>">&se=<expiry>&skn=<policy>`.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::ConnectionString;

/// What `encodeURIComponent` / `urllib.parse.quote(safe='')` leave alone.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// URL-encodes one component (resource URIs, IDs in paths).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The signature for `resource` expiring at `expiry` (unix seconds), base64.
pub fn signature(key: &[u8], resource: &str, expiry: u64) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let to_sign = format!("{}\n{expiry}", encode(resource));
    let tag = ring::hmac::sign(&k, to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The `Authorization` header value for `conn`'s `HostName`, expiring at `expiry`.
pub fn token(conn: &ConnectionString, expiry: u64) -> String {
    token_for(conn.key(), &conn.host_name, &conn.policy, expiry)
}

fn token_for(key: &[u8], resource: &str, policy: &str, expiry: u64) -> String {
    format!(
        "SharedAccessSignature sr={}&sig={}&se={expiry}&skn={}",
        encode(resource),
        encode(&signature(key, resource, expiry)),
        encode(policy)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .unwrap()
    }

    #[test]
    fn hub_signature() {
        assert_eq!(
            signature(&key(), "lab-hub.azure-devices.net", 1_700_000_000),
            "iC48vcZjFuOp4PMiIU/ViJphmH/9qhAXD3xJbmxbdF0="
        );
        assert_eq!(
            token_for(
                &key(),
                "lab-hub.azure-devices.net",
                "iothubowner",
                1_700_000_000
            ),
            "SharedAccessSignature sr=lab-hub.azure-devices.net&sig=iC48vcZjFuOp4PMiIU%2FViJphmH%2F9qhAXD3xJbmxbdF0%3D&se=1700000000&skn=iothubowner"
        );
    }

    #[test]
    fn dps_signature() {
        assert_eq!(
            signature(
                &key(),
                "lab-dps.azure-devices-provisioning.net",
                1_700_000_000
            ),
            "SQE6ykNlkK9bCw9kyEQ4EF5FFC4I9E36c4nfw3t5GlU="
        );
    }

    #[test]
    fn port_is_encoded_in_what_is_signed() {
        assert_eq!(encode("localhost:8443"), "localhost%3A8443");
        assert_eq!(
            signature(&key(), "localhost:8443", 1_700_000_000),
            "hmHVxQnu/qRJqi7kaiI97bG+DobgYyUY5bUQJI3nSFk="
        );
    }
}
