//! What `ca` needs to know about the CAs already in the home: how many
//! devices a CA about to be replaced signed, and the key algorithm a new
//! intermediate inherits from its parent.

use std::path::Path;

use time::OffsetDateTime;

use iotca::cert;
use iotca::home::Home;
use iotca::home::inventory::{self, CaNode};
use iotca::keys::KeyAlgorithm;

/// The devices signed (directly or through CAs under them) by the home's
/// `root` and `intermediate`: those `ca init --force` strands.
pub fn devices_under_init_cas(dir: &Path, now: OffsetDateTime) -> usize {
    let Ok(home) = Home::open(dir) else {
        return 0;
    };
    let Ok(inv) = inventory::scan(&home, now) else {
        return 0;
    };
    fn find<'a>(n: &'a CaNode, name: &str) -> Option<&'a CaNode> {
        if n.ca.name == name {
            return Some(n);
        }
        n.children.iter().find_map(|c| find(c, name))
    }
    if let Some(root) = inv.cas.iter().find_map(|n| find(n, "root")) {
        return root.device_count();
    }
    inv.cas
        .iter()
        .find_map(|n| find(n, "intermediate"))
        .map_or(0, CaNode::device_count)
}

/// The sentence `ca init` adds when it replaces (or refuses to replace) CAs
/// that signed devices.
pub fn stranded(n: usize) -> String {
    format!(
        "the CA being replaced signed {n} device(s); they will no longer chain to the new CA \
         (verify says signature_invalid): re-issue them with `device create ID --force`"
    )
}

/// The key algorithm of CA `name`'s certificate, when iotca can issue it.
pub fn algorithm_of(home: &Home, name: &str) -> Option<KeyAlgorithm> {
    let files = home.ca_files(name).ok()?;
    let ders = cert::read_certificates(&files.cert).ok()?;
    let c = cert::parse_der(ders.first()?).ok()?;
    let alg = cert::key_algorithm(&c);
    let short = match alg.as_str() {
        "ECDSA P-256" => "p256".to_string(),
        "ECDSA P-384" => "p384".to_string(),
        other => other
            .strip_prefix("RSA ")?
            .parse::<u32>()
            .ok()
            .map(|b| format!("rsa{b}"))?,
    };
    short.parse().ok()
}
