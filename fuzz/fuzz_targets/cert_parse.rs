//! Certificate reading: `split_certificates` / `split_unchecked` over any
//! bytes, then every accepted certificate parsed and described
//! (`CertDetails::new`) and the chain verified against a fixed group CA
//! (`GroupCas::verify`), as `verify`, `inspect` and `audit` do.
#![no_main]

use std::sync::OnceLock;

use iotca::cert::{self, CertDetails};
use iotca::verify::GroupCas;
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

/// The group CA: `seeds/ca.pem` (the root of the seed chains), or the file
/// named by `IOTCA_FUZZ_CA`. The input's own last certificate is tried as a
/// second anchor below, so self-consistent chains reach deep checks too.
fn anchors() -> &'static Option<GroupCas> {
    static CAS: OnceLock<Option<GroupCas>> = OnceLock::new();
    CAS.get_or_init(|| {
        let pem = std::env::var_os("IOTCA_FUZZ_CA")
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_else(|| include_bytes!("../seeds/ca.pem").to_vec());
        let ders = cert::split_certificates(&pem).ok()?;
        GroupCas::new(&ders).ok()
    })
}

fuzz_target!(|data: &[u8]| {
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let _ = cert::split_unchecked(data);
    let Ok(ders) = cert::split_certificates(data) else {
        return;
    };
    for der in &ders {
        let c = cert::parse_der(der).expect("split_certificates accepted unparsable DER");
        let _ = CertDetails::new(&c, der, now);
    }
    if let Some(cas) = anchors() {
        let _ = cas.verify(&ders, now);
    }
    // The input's own certificates as group CAs (self-consistent chains).
    if let Ok(own) = GroupCas::new(&ders[ders.len() - 1..]) {
        let _ = own.verify(&ders, now);
    }
});
