//! Name canonicalisation: when two encodings of a distinguished name are
//! the same name (RFC 5280 section 7.1).

use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// A name in a form where two encodings of the same name compare equal:
/// per RDN, attributes sorted, string values trimmed, inner whitespace
/// collapsed and case folded (as RFC 5280 section 7.1 and OpenSSL compare).
pub(super) fn canonical_name(raw: &[u8]) -> Vec<u8> {
    let Ok((_, name)) = X509Name::from_der(raw) else {
        return raw.to_vec();
    };
    let mut out = Vec::with_capacity(raw.len());
    for rdn in name.iter_rdn() {
        let mut attrs: Vec<Vec<u8>> = rdn
            .iter()
            .map(|a| {
                let mut v = a.attr_type().as_bytes().to_vec();
                v.push(0);
                match a.as_str() {
                    Ok(s) => {
                        v.push(b's');
                        let folded = s
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .to_lowercase();
                        v.extend_from_slice(folded.as_bytes());
                    }
                    Err(_) => {
                        v.push(b'b');
                        v.extend_from_slice(a.as_slice());
                    }
                }
                v
            })
            .collect();
        attrs.sort();
        for a in attrs {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            out.extend_from_slice(&a);
        }
        out.push(0xff);
    }
    out
}
