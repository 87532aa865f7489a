//! The MQTT 3.1.1 decoder, the only parser that faces the network
//! (`iotca dps serve`). Any bytes, with a packet limit taken from the input:
//! decode must not panic, must not claim more bytes than it was given or
//! than the limit allows, and whatever it decodes must encode and decode
//! back to the same packet (the server and the tests share the codec).
#![no_main]

use iotca::dps::mqtt::{decode, to_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // Small limits reach the TooLarge path; 255 * 256 covers the server's.
    let max = usize::from(first) * 256;
    let mut buf = rest;
    // Like the server's read loop: packet after packet from one buffer.
    while let Ok(Some((packet, n))) = decode(buf, max) {
        assert!(n > 0 && n <= buf.len() && n <= max + 5);
        let bytes = to_bytes(&packet).expect("a decoded packet encodes");
        let (again, m) = decode(&bytes, usize::MAX).unwrap().unwrap();
        assert_eq!(m, bytes.len());
        assert_eq!(again, packet);
        buf = &buf[n..];
    }
});
