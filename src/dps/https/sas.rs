//! Shared access signature (SAS) tokens, verified as the Azure services
//! verify them: `SharedAccessSignature sr=..&sig=..&se=..&skn=..` in any
//! field order, `sig` the URL-encoded base64 HMAC-SHA256, under the policy
//! key, of `"{sr}\n{se}"` where `sr` is the value as it stands in the token
//! (the Python SDKs URL-encode the host, the Node SDKs send it raw; both
//! sign what they send).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

/// Why a token was refused (never holds the signature or a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// No `Authorization` header.
    #[error("no Authorization header with a SharedAccessSignature")]
    Missing,
    /// The header is not a SAS token.
    #[error("the Authorization header is not a well-formed SharedAccessSignature")]
    Malformed,
    /// `se` is in the past.
    #[error("the SAS token expired")]
    Expired,
    /// `skn` names a policy this service does not have.
    #[error("the SAS token's policy is not one of this service")]
    UnknownPolicy,
    /// `sr` names another resource.
    #[error("the SAS token's resource (sr) is not this service")]
    WrongResource,
    /// The signature does not verify under the policy's key.
    #[error("the SAS token's signature does not verify")]
    BadSignature,
}

/// A parsed token (the raw field values as they stand in the header).
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// `sr`, as sent.
    pub sr: String,
    sig: String,
    /// `se`: expiry, seconds since the epoch.
    pub se: u64,
    /// `skn`, URL-decoded.
    pub skn: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("sr", &self.sr)
            .field("se", &self.se)
            .field("skn", &self.skn)
            .finish_non_exhaustive()
    }
}

fn decode(s: &str) -> Option<String> {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

impl Token {
    /// Parses an `Authorization` header value.
    pub fn parse(header: &str) -> Result<Token, SasError> {
        let rest = header
            .trim()
            .strip_prefix("SharedAccessSignature ")
            .ok_or(SasError::Malformed)?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for field in rest.trim().split('&') {
            let (k, v) = field.split_once('=').ok_or(SasError::Malformed)?;
            let slot = match k {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => continue,
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(SasError::Malformed);
            }
        }
        let (Some(sr), Some(sig), Some(se)) = (sr, sig, se) else {
            return Err(SasError::Malformed);
        };
        let se = se.parse::<u64>().map_err(|_| SasError::Malformed)?;
        let skn = match skn {
            Some(s) => Some(decode(&s).ok_or(SasError::Malformed)?),
            None => None,
        };
        Ok(Token { sr, sig, se, skn })
    }

    /// The resource (`sr` URL-decoded, lower-cased, without a scheme).
    pub fn resource(&self) -> String {
        let r = decode(&self.sr).unwrap_or_else(|| self.sr.clone());
        let r = r.to_ascii_lowercase();
        r.strip_prefix("https://").map(str::to_string).unwrap_or(r)
    }

    /// The host part of the resource (before the first `/`).
    pub fn resource_host(&self) -> String {
        let r = self.resource();
        r.split('/').next().unwrap_or("").to_string()
    }

    /// True when the signature verifies under `key` (the raw key bytes).
    pub fn signed_by(&self, key: &[u8]) -> bool {
        let Some(sig_b64) = decode(&self.sig) else {
            return false;
        };
        let Ok(sig) = STANDARD.decode(sig_b64.as_bytes()) else {
            return false;
        };
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        // What the client signed: the sr as it sent it (both SDKs), or,
        // for a client that URL-encodes only on the wire, the decoded form.
        let mut candidates = vec![self.sr.clone()];
        if let Some(d) = decode(&self.sr)
            && d != self.sr
        {
            candidates.push(d);
        }
        candidates.iter().any(|sr| {
            let msg = format!("{sr}\n{}", self.se);
            ring::hmac::verify(&k, msg.as_bytes(), &sig).is_ok()
        })
    }
}

/// A SAS policy: its name and key (32 random bytes).
pub struct Policy {
    /// `provisioningserviceowner`, `iothubowner`.
    pub name: String,
    /// The key's bytes (the connection string holds their base64).
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Checks `header` against `policy` at `now` (seconds since the epoch):
/// `resource_ok` says whether the token's resource host names the service.
pub fn verify(
    header: Option<&str>,
    policy: &Policy,
    now: u64,
    resource_ok: impl Fn(&str) -> bool,
) -> Result<Token, SasError> {
    let token = Token::parse(header.ok_or(SasError::Missing)?)?;
    match &token.skn {
        Some(n) if n.eq_ignore_ascii_case(&policy.name) => {}
        _ => return Err(SasError::UnknownPolicy),
    }
    if !token.signed_by(&policy.key) {
        return Err(SasError::BadSignature);
    }
    if token.se < now {
        return Err(SasError::Expired);
    }
    if !resource_ok(&token.resource_host()) {
        return Err(SasError::WrongResource);
    }
    Ok(token)
}

/// Makes a token (for tests and for the emulator's own clients).
pub fn sign(resource: &str, policy: &str, key: &[u8], expiry: u64) -> String {
    let sr: String =
        percent_encoding::utf8_percent_encode(resource, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let sig = STANDARD.encode(ring::hmac::sign(&k, format!("{sr}\n{expiry}").as_bytes()));
    let sig: String =
        percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}&skn={policy}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // DESIGN issue 16's vector, computed by Microsoft's SDK helpers.
    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn policy(name: &str) -> Policy {
        Policy {
            name: name.into(),
            key: Zeroizing::new(STANDARD.decode(KEY_B64).unwrap()),
        }
    }

    fn any(_: &str) -> bool {
        true
    }

    #[test]
    fn python_form_url_encoded_sr() {
        // azure-iot-deviceprovisioning's generate_sas_token: urlencode of
        // sr, sig, se, skn; the signed string is quote_plus(host).
        let h = "SharedAccessSignature sr=localhost%3A8443&sig=hmHVxQnu%2FqRJqi7kaiI97bG%2BDobgYyUY5bUQJI3nSFk%3D&se=1700000000&skn=provisioningserviceowner";
        let t = verify(
            Some(h),
            &policy("provisioningserviceowner"),
            1_600_000_000,
            |h| h == "localhost:8443",
        )
        .unwrap();
        assert_eq!(t.resource_host(), "localhost:8443");
    }

    #[test]
    fn node_form_raw_sr_other_order() {
        // azure-iot-common: sr as given, then sig, skn, se.
        let h = "SharedAccessSignature sr=lab-hub.azure-devices.net&sig=iC48vcZjFuOp4PMiIU%2FViJphmH%2F9qhAXD3xJbmxbdF0%3D&skn=iothubowner&se=1700000000";
        verify(Some(h), &policy("iothubowner"), 1_600_000_000, |h| {
            h == "lab-hub.azure-devices.net"
        })
        .unwrap();
        let dps = "SharedAccessSignature sr=lab-dps.azure-devices-provisioning.net&sig=SQE6ykNlkK9bCw9kyEQ4EF5FFC4I9E36c4nfw3t5GlU%3D&skn=provisioningserviceowner&se=1700000000";
        verify(Some(dps), &policy("provisioningserviceowner"), 0, any).unwrap();
    }

    #[test]
    fn refusals() {
        let good = sign("localhost:8443", "iothubowner", &policy("x").key, 2_000);
        let p = policy("iothubowner");
        assert!(verify(Some(&good), &p, 1_000, any).is_ok());
        assert_eq!(verify(Some(&good), &p, 2_001, any), Err(SasError::Expired));
        assert_eq!(
            verify(Some(&good), &policy("registryRead"), 1_000, any),
            Err(SasError::UnknownPolicy)
        );
        let wrong = Policy {
            name: "iothubowner".into(),
            key: Zeroizing::new(vec![7; 32]),
        };
        assert_eq!(
            verify(Some(&good), &wrong, 1_000, any),
            Err(SasError::BadSignature)
        );
        assert_eq!(
            verify(Some(&good), &p, 1_000, |h| h == "other"),
            Err(SasError::WrongResource)
        );
        // A changed expiry invalidates the signature.
        let forged = good.replace("se=2000", "se=9999");
        assert_eq!(
            verify(Some(&forged), &p, 1_000, any),
            Err(SasError::BadSignature)
        );
        assert_eq!(verify(None, &p, 0, any), Err(SasError::Missing));
        for bad in [
            "Bearer x",
            "SharedAccessSignature sr=a&se=1",
            "SharedAccessSignature sr=a&sig=b&se=x&skn=iothubowner",
            "SharedAccessSignature sr=a&sr=b&sig=c&se=1",
        ] {
            assert_eq!(
                verify(Some(bad), &p, 0, any),
                Err(SasError::Malformed),
                "{bad}"
            );
        }
        // Debug never shows the signature.
        let t = Token::parse(&good).unwrap();
        assert!(!format!("{t:?}").contains(&t.sig));
    }
}
