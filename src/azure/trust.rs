//! The roots the HTTPS client trusts: the system's (through
//! `rustls-native-certs`: the platform store, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set) plus every certificate of `--service-ca` /
//! `IOTCA_SERVICE_CA` (for the emulator: `iotca dps trust`). Neither
//! yielding a root is an error, not a client that trusts nothing.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use super::http::AzureError;

/// A root store and where its roots came from.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The store the client verifies servers against.
    pub store: RootCertStore,
    /// Roots taken from the system.
    pub system: usize,
    /// Roots taken from the service CA file.
    pub service_ca: usize,
}

/// The system's roots as `rustls-native-certs` finds them, and the first
/// reason a source of them could not be read (when there was one).
pub fn system_roots() -> (Vec<CertificateDer<'static>>, Option<String>) {
    let found = rustls_native_certs::load_native_certs();
    let why = found.errors.first().map(|e| e.to_string());
    (found.certs, why)
}

/// The store of `system` roots (those rustls cannot use are skipped, as
/// any TLS client does) plus every certificate of `service_ca`, each of
/// which must be usable. `system_error` says why the system gave none, for
/// the error when nothing at all is trusted.
pub fn roots(
    system: Vec<CertificateDer<'static>>,
    system_error: Option<&str>,
    service_ca: Option<&Path>,
) -> Result<Roots, AzureError> {
    let mut store = RootCertStore::empty();
    let (system, _unusable) = store.add_parsable_certificates(system);
    let mut from_file = 0;
    if let Some(p) = service_ca {
        let ders = crate::cert::read_certificates(p).map_err(AzureError::ServiceCa)?;
        for der in ders {
            store
                .add(CertificateDer::from(der))
                .map_err(|e| AzureError::Trust {
                    path: p.display().to_string(),
                    reason: format!("holds a certificate rustls cannot use as a root: {e}"),
                })?;
            from_file += 1;
        }
    }
    if store.is_empty() {
        let why = system_error
            .map(|e| format!(" ({})", crate::text::escape(e)))
            .unwrap_or_default();
        return Err(AzureError::NoRoots { why });
    }
    Ok(Roots {
        store,
        system,
        service_ca: from_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(cn: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![cn.into()]).unwrap()
    }

    #[test]
    fn the_service_ca_adds_exactly_the_roots_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (ca("a.example"), ca("b.example"));
        let file = dir.path().join("two.pem");
        std::fs::write(&file, format!("{}{}", a.cert.pem(), b.cert.pem())).unwrap();
        let r = roots(vec![], None, Some(&file)).unwrap();
        assert_eq!((r.system, r.service_ca, r.store.len()), (0, 2, 2));
        let system = vec![ca("sys.example").cert.der().clone()];
        let r = roots(system, None, Some(&file)).unwrap();
        assert_eq!((r.system, r.service_ca, r.store.len()), (1, 2, 3));
    }

    #[test]
    fn the_system_roots_alone_are_enough() {
        let r = roots(vec![ca("sys.example").cert.der().clone()], None, None).unwrap();
        assert_eq!((r.system, r.service_ca), (1, 0));
        // Whatever this machine holds: loading never panics, and what it
        // finds is usable on its own.
        let (certs, why) = system_roots();
        if !certs.is_empty() {
            assert!(roots(certs, why.as_deref(), None).unwrap().system > 0);
        }
    }

    #[test]
    fn no_root_at_all_is_one_sentence_naming_both_sources() {
        let e = roots(vec![], Some("SSL_CERT_FILE: gone"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no TLS trust roots: the system store gave none (SSL_CERT_FILE: gone) and no --service-ca file (or IOTCA_SERVICE_CA) was given"
        );
        // An unusable system certificate does not count as a root.
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(matches!(
            roots(vec![junk], None, None),
            Err(AzureError::NoRoots { .. })
        ));
    }

    #[test]
    fn a_bad_service_ca_file_is_one_sentence_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, ca("k").signing_key.serialize_pem()).unwrap();
        let missing = dir.path().join("missing.pem");
        for (p, says) in [
            (&bad, "is not valid PEM"),
            (&key, "private key"),
            (&missing, "No such file"),
        ] {
            let e = roots(vec![ca("sys").cert.der().clone()], None, Some(p)).unwrap_err();
            let m = e.to_string();
            assert!(
                m.starts_with(&format!("the service CA file {}", p.display())),
                "{m}"
            );
            assert!(m.contains(says), "{m}");
            assert!(!m.trim_end_matches('.').contains(". "), "one sentence: {m}");
            assert!(!m.contains('\n'), "{m}");
        }
    }
}
