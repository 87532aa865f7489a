//! Private key reading: `PrivateKey::from_pem` (PKCS#8, encrypted PKCS#8,
//! PKCS#1, SEC1, DER) over any bytes, without a passphrase; a key that is
//! accepted must be usable for signing or say why not.
//!
//! The passphrase path is not fuzzed: an encrypted key's KDF parameters are
//! attacker-chosen (see SECURITY.md), so every accepted encrypted input
//! would cost a full PBKDF2/scrypt run.
#![no_main]

use iotca::keys::PrivateKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = PrivateKey::from_pem(data, None) {
        let _ = k.signing_key();
        let _ = k.public_key_der();
        let _ = k.to_pem();
    }
    let _ = PrivateKey::from_pkcs8_der(data);
});
