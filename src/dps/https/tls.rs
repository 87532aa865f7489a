//! TLS for the HTTPS listener: the MQTT listener's configuration
//! ([`crate::dps::server`]'s), with the client certificate requested but not
//! required (the DPS device API authenticates by it, the service APIs by
//! SAS), and HTTP/1.1 by ALPN.

use crate::dps::emulator::ServerIdentity;
use crate::error::Result;

/// The rustls configuration of the HTTPS listener.
pub fn config(identity: &ServerIdentity) -> Result<rustls::ServerConfig> {
    let mut c = crate::dps::server::tls_config(identity, false)?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}
