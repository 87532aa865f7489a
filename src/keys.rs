//! Private keys: generation, reading every format certGen.sh and openssl
//! write, PKCS#8 encryption, and secrets that are zeroized when dropped.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use pkcs8::der::Decode;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand::RngCore;
use zeroize::Zeroizing;

/// PBKDF2 iterations used when iotca encrypts a CA key.
pub const PBKDF2_ITERATIONS: u32 = 100_000;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// The key algorithms iotca issues with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256, signs with SHA-256 (the default).
    P256,
    /// ECDSA on NIST P-384, signs with SHA-384.
    P384,
    /// RSA 2048, PKCS#1 v1.5 with SHA-256.
    Rsa2048,
    /// RSA 3072, PKCS#1 v1.5 with SHA-256.
    Rsa3072,
    /// RSA 4096, PKCS#1 v1.5 with SHA-256 (certGen.sh's only choice).
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order help text lists them.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::P256,
        KeyAlgorithm::P384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    /// The name used on the command line (`p256`, `rsa4096`...).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::P256 => "p256",
            KeyAlgorithm::P384 => "p384",
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::Rsa3072 => "rsa3072",
            KeyAlgorithm::Rsa4096 => "rsa4096",
        }
    }

    /// RSA modulus size, or None for EC.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyAlgorithm::Rsa2048 => Some(2048),
            KeyAlgorithm::Rsa3072 => Some(3072),
            KeyAlgorithm::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase().replace(['-', '_'], "");
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == lower)
            .ok_or_else(|| {
                format!(
                    "unknown key algorithm '{s}'; use one of p256, p384, rsa2048, rsa3072, rsa4096"
                )
            })
    }
}

/// What a loaded key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA with this many modulus bits.
    Rsa(usize),
}

impl KeyKind {
    /// True for RSA keys (device certificates then add keyEncipherment).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyKind::Rsa(_))
    }

    /// The signature algorithm a certificate signed by this key uses:
    /// SHA-256 for P-256 and RSA, SHA-384 for P-384 (DESIGN section 4).
    pub fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyKind::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::P256 => f.write_str("ECDSA P-256"),
            KeyKind::P384 => f.write_str("ECDSA P-384"),
            KeyKind::Rsa(bits) => write!(f, "RSA {bits}"),
        }
    }
}

/// Why a key could not be generated, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is encrypted and no passphrase was given.
    #[error(
        "the key is encrypted; give its passphrase with --passphrase-file FILE or the IOTCA_PASSPHRASE environment variable"
    )]
    NeedsPassphrase,
    /// The passphrase did not decrypt the key.
    #[error(
        "the passphrase does not decrypt the key (wrong passphrase, or an unsupported encryption scheme)"
    )]
    WrongPassphrase,
    /// Legacy OpenSSL PEM encryption (`Proc-Type: 4,ENCRYPTED`).
    #[error(
        "the key uses legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED), which iotca does not read; convert it to encrypted PKCS#8 with: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in KEY -out KEY.new (then move KEY.new over KEY)"
    )]
    LegacyEncrypted,
    /// Not a key iotca can use.
    #[error("{0}")]
    Unsupported(String),
    /// The bytes are not a well-formed key.
    #[error("is not a readable private key: {0}")]
    Malformed(String),
}

/// A passphrase or password, zeroized when dropped and never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret string.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(Zeroizing::new(s.into()))
    }

    /// Reads the first line of a file, without its line ending, as
    /// `openssl -passin file:` does.
    pub fn from_file_first_line(path: &Path) -> crate::Result<Self> {
        let bytes = crate::home::fs::read_secret(path, "passphrase file")?;
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let s = std::str::from_utf8(line).map_err(|_| crate::Error::PassphraseNotUtf8 {
            path: path.to_path_buf(),
        })?;
        Ok(Secret::new(s))
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([elided])")
    }
}

/// A private key held as unencrypted PKCS#8 DER, zeroized when dropped.
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    kind: KeyKind,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, [secret key elided])", self.kind)
    }
}

impl PrivateKey {
    /// Generates a new key. EC keys come from ring, RSA keys from the `rsa` crate.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, KeyError> {
        Self::generate_with_signing_key(alg).map(|(k, _)| k)
    }

    /// Generates a new key and returns it with its rcgen signing key, saving
    /// the second PKCS#8 parse (a P-256 base-point multiplication) that
    /// [`PrivateKey::signing_key`] would do: bulk issuance uses this.
    pub fn generate_with_signing_key(
        alg: KeyAlgorithm,
    ) -> Result<(Self, rcgen::KeyPair), KeyError> {
        match alg {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => {
                let (sig, kind) = if alg == KeyAlgorithm::P256 {
                    (&rcgen::PKCS_ECDSA_P256_SHA256, KeyKind::P256)
                } else {
                    (&rcgen::PKCS_ECDSA_P384_SHA384, KeyKind::P384)
                };
                let kp = rcgen::KeyPair::generate_for(sig)
                    .map_err(|e| KeyError::Unsupported(format!("key generation failed: {e}")))?;
                let key = PrivateKey {
                    pkcs8: Zeroizing::new(kp.serialize_der()),
                    kind,
                };
                Ok((key, kp))
            }
            _ => {
                let bits = alg.rsa_bits().unwrap_or(2048);
                let key = generate_rsa(bits)?;
                let doc = key
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                let key = PrivateKey {
                    pkcs8: Zeroizing::new(doc.as_bytes().to_vec()),
                    kind: KeyKind::Rsa(bits),
                };
                let kp = key.signing_key()?;
                Ok((key, kp))
            }
        }
    }

    /// Reads a PEM key: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8
    /// (`ENCRYPTED PRIVATE KEY`, PBES2 as OpenSSL 3 writes), PKCS#1
    /// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). A DER PKCS#8 key is
    /// accepted too. The passphrase is only used when the key is encrypted.
    pub fn from_pem(bytes: &[u8], passphrase: Option<&Secret>) -> Result<Self, KeyError> {
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Self::from_pkcs8_der(bytes);
        }
        // Every parsed block's contents move into a zeroizing buffer, the
        // key's and any other's, so no decoded key bytes outlive this call.
        let mut found: Option<(String, bool, Zeroizing<Vec<u8>>)> = None;
        for block in pem::parse_many(bytes).map_err(|e| KeyError::Malformed(e.to_string()))? {
            let tag = block.tag().to_string();
            let legacy = block
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"));
            let contents = Zeroizing::new(block.into_contents());
            if found.is_none() && tag.ends_with("PRIVATE KEY") {
                found = Some((tag, legacy, contents));
            }
        }
        let (tag, legacy, der) =
            found.ok_or_else(|| KeyError::Malformed("no PRIVATE KEY block in the PEM".into()))?;
        if legacy {
            return Err(KeyError::LegacyEncrypted);
        }
        match tag.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase.ok_or(KeyError::NeedsPassphrase)?;
                let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| {
                    KeyError::Unsupported(format!(
                        "the key is encrypted with a scheme iotca does not read ({e}); iotca reads PBES2 with PBKDF2 and AES, as OpenSSL 3 writes by default: convert it with openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in KEY -out KEY.new (then move KEY.new over KEY)"
                    ))
                })?;
                check_kdf_cost(&info.encryption_algorithm)?;
                let plain = info
                    .decrypt(pass.expose().as_bytes())
                    .map_err(|_| KeyError::WrongPassphrase)?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let key = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| KeyError::Malformed(format!("PKCS#1: {e}")))?;
                let doc = key
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                Self::from_pkcs8_der(doc.as_bytes())
            }
            "EC PRIVATE KEY" => {
                let ec = sec1::EcPrivateKey::from_der(&der)
                    .map_err(|e| KeyError::Malformed(format!("SEC1: {e}")))?;
                // SEC1 keys may leave the curve out (RFC 5915 makes the
                // parameters optional): then the private key's length says it.
                let curve = match ec.parameters.and_then(|p| p.named_curve()) {
                    Some(oid) => oid.to_string(),
                    None if ec.private_key.len() == 32 => OID_P256.to_string(),
                    None if ec.private_key.len() == 48 => OID_P384.to_string(),
                    None => String::new(),
                };
                let doc = match curve.as_str() {
                    OID_P256 => p256::SecretKey::from_sec1_der(&der)
                        .map_err(|e| KeyError::Malformed(e.to_string()))?
                        .to_pkcs8_der(),
                    OID_P384 => p384::SecretKey::from_sec1_der(&der)
                        .map_err(|e| KeyError::Malformed(e.to_string()))?
                        .to_pkcs8_der(),
                    other => {
                        return Err(KeyError::Unsupported(format!(
                            "EC curve {} is not supported; use P-256 or P-384",
                            if other.is_empty() { "(unnamed)" } else { other }
                        )));
                    }
                }
                .map_err(|e| KeyError::Malformed(e.to_string()))?;
                Self::from_pkcs8_der(doc.as_bytes())
            }
            other => Err(KeyError::Unsupported(format!(
                "unsupported key type '{other}'"
            ))),
        }
    }

    /// Reads an unencrypted PKCS#8 DER key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info =
            pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let alg = info.algorithm.oid.to_string();
        let kind = match alg.as_str() {
            OID_RSA => {
                let key = rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| KeyError::Malformed(format!("RSA: {e}")))?;
                let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(KeyError::Unsupported(format!(
                        "RSA keys of {bits} bits are not supported; use 2048 to 4096"
                    )));
                }
                KeyKind::Rsa(bits)
            }
            OID_EC => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    OID_P256 => KeyKind::P256,
                    OID_P384 => KeyKind::P384,
                    _ => {
                        return Err(KeyError::Unsupported(format!(
                            "EC curve {curve} is not supported; use P-256 or P-384"
                        )));
                    }
                }
            }
            other => {
                return Err(KeyError::Unsupported(format!(
                    "key algorithm {other} is not supported; use EC P-256/P-384 or RSA"
                )));
            }
        };
        // ring needs the public key inside an EC PKCS#8; re-encode through
        // the RustCrypto types when it is missing.
        let pkcs8 = match kind {
            KeyKind::P256 if rcgen_ok(der, kind).is_err() => p256::SecretKey::from_pkcs8_der(der)
                .and_then(|k| k.to_pkcs8_der())
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| KeyError::Malformed(e.to_string()))?,
            KeyKind::P384 if rcgen_ok(der, kind).is_err() => p384::SecretKey::from_pkcs8_der(der)
                .and_then(|k| k.to_pkcs8_der())
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| KeyError::Malformed(e.to_string()))?,
            _ => der.to_vec(),
        };
        Ok(PrivateKey {
            pkcs8: Zeroizing::new(pkcs8),
            kind,
        })
    }

    /// What the key is.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The unencrypted PKCS#8 DER (secret).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Unencrypted PKCS#8 PEM (`PRIVATE KEY`), zeroized when dropped.
    pub fn to_pem(&self) -> Zeroizing<String> {
        secret_pem("PRIVATE KEY", &self.pkcs8)
    }

    /// Encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`): PBES2 with
    /// PBKDF2-HMAC-SHA256 ([`PBKDF2_ITERATIONS`]) and AES-256-CBC, as
    /// `openssl pkey -passin` reads it.
    pub fn to_encrypted_pem(&self, passphrase: &Secret) -> Result<Zeroizing<String>, KeyError> {
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
                .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let info = pkcs8::PrivateKeyInfo::from_der(&self.pkcs8)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let doc = info
            .encrypt_with_params(params, passphrase.expose().as_bytes())
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(secret_pem("ENCRYPTED PRIVATE KEY", doc.as_bytes()))
    }

    /// The key as an rcgen signing key.
    pub fn signing_key(&self) -> Result<rcgen::KeyPair, KeyError> {
        rcgen_ok(&self.pkcs8, self.kind)
    }

    /// The DER SubjectPublicKeyInfo of this key.
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        use rcgen::PublicKeyData;
        Ok(self.signing_key()?.subject_public_key_info())
    }
}

/// Generates an RSA key with e = 65537, searching for its two primes on two
/// threads at once: RSA key generation is dominated by the prime search, and
/// this halves the wall time per key (the `rsa` crate searches serially).
/// The key is then built and validated by the `rsa` crate.
fn generate_rsa(bits: usize) -> Result<rsa::RsaPrivateKey, KeyError> {
    use num_bigint_dig::RandPrime;
    let e = rsa::BigUint::from(65_537u32);
    for _ in 0..64 {
        let (p, q) = rayon::join(
            || rand::rngs::OsRng.gen_prime(bits / 2),
            || rand::rngs::OsRng.gen_prime(bits / 2),
        );
        if p == q || (&p * &q).bits() != bits {
            continue;
        }
        // Fails when e is not invertible modulo lcm(p-1, q-1): try new primes.
        let Ok(key) = rsa::RsaPrivateKey::from_p_q(p, q, e.clone()) else {
            continue;
        };
        key.validate()
            .map_err(|err| KeyError::Unsupported(format!("RSA key generation failed: {err}")))?;
        return Ok(key);
    }
    Err(KeyError::Unsupported(
        "RSA key generation failed: no suitable primes found".into(),
    ))
}

/// Most PBKDF2 iterations iotca runs to open a key (iotca writes
/// [`PBKDF2_ITERATIONS`], OpenSSL 3 writes 2,048): a key file must not be
/// able to make iotca spin for minutes.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Refuses key-derivation parameters that would take unbounded time or
/// memory before any work is done: PBKDF2 above [`MAX_PBKDF2_ITERATIONS`],
/// scrypt above N = 2^17, r = 8, p = 1 (128 MiB).
fn check_kdf_cost(scheme: &pkcs8::pkcs5::EncryptionScheme<'_>) -> Result<(), KeyError> {
    use pkcs8::pkcs5::EncryptionScheme;
    use pkcs8::pkcs5::pbes2::Kdf;
    let EncryptionScheme::Pbes2(params) = scheme else {
        return Ok(());
    };
    match &params.kdf {
        Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => {
            Err(KeyError::Unsupported(format!(
                "the key asks for {} PBKDF2 iterations; iotca opens keys with at most {MAX_PBKDF2_ITERATIONS}: re-encrypt it with openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in KEY -out KEY.new",
                p.iteration_count
            )))
        }
        Kdf::Scrypt(s)
            if s.cost_parameter > (1 << 17) || s.block_size > 8 || s.parallelization > 1 =>
        {
            Err(KeyError::Unsupported(format!(
                "the key asks for scrypt with N={}, r={}, p={}; iotca opens scrypt keys up to N=131072, r=8, p=1: re-encrypt it with openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in KEY -out KEY.new",
                s.cost_parameter, s.block_size, s.parallelization
            )))
        }
        _ => Ok(()),
    }
}

fn rcgen_ok(der: &[u8], kind: KeyKind) -> Result<rcgen::KeyPair, KeyError> {
    let der = rustls_pki_types_der(der);
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, kind.signature_algorithm())
        .map_err(|e| KeyError::Unsupported(format!("the key cannot sign: {e}")))
}

fn rustls_pki_types_der(der: &[u8]) -> rustls_pki_types::PrivatePkcs8KeyDer<'_> {
    rustls_pki_types::PrivatePkcs8KeyDer::from(der)
}

/// PEM (RFC 7468, 64-column lines, LF) of secret DER, built in buffers
/// that are zeroized when dropped: the base64 text is the key too.
fn secret_pem(tag: &str, der: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    let mut b64 = Zeroizing::new(String::with_capacity(der.len().div_ceil(3) * 4));
    base64::engine::general_purpose::STANDARD.encode_string(der, &mut b64);
    let lines = b64.len().div_ceil(64);
    let mut out = Zeroizing::new(String::with_capacity(
        b64.len() + lines + 2 * tag.len() + 40,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(tag);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(tag);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_pem_matches_the_pem_crate() {
        for len in [0usize, 1, 47, 48, 49, 121, 1217] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let want = pem::encode_config(
                &pem::Pem::new("PRIVATE KEY", der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            assert_eq!(*super::secret_pem("PRIVATE KEY", &der), want, "{len}");
        }
    }

    use super::*;

    #[test]
    fn algorithm_names_round_trip() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(a.name().parse::<KeyAlgorithm>(), Ok(a));
        }
        assert_eq!("P-256".parse::<KeyAlgorithm>(), Ok(KeyAlgorithm::P256));
        assert!(
            "ed25519"
                .parse::<KeyAlgorithm>()
                .unwrap_err()
                .contains("p256")
        );
    }

    #[test]
    fn ec_keys_round_trip_through_pem_and_encryption() {
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let k = PrivateKey::generate(alg).unwrap();
            let again = PrivateKey::from_pem(k.to_pem().as_bytes(), None).unwrap();
            assert_eq!(again.pkcs8_der(), k.pkcs8_der());
            let pass = Secret::new("correct horse");
            let enc = k.to_encrypted_pem(&pass).unwrap();
            assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            assert!(matches!(
                PrivateKey::from_pem(enc.as_bytes(), None),
                Err(KeyError::NeedsPassphrase)
            ));
            assert!(matches!(
                PrivateKey::from_pem(enc.as_bytes(), Some(&Secret::new("wrong"))),
                Err(KeyError::WrongPassphrase)
            ));
            let dec = PrivateKey::from_pem(enc.as_bytes(), Some(&pass)).unwrap();
            assert_eq!(dec.pkcs8_der(), k.pkcs8_der());
            assert!(dec.signing_key().is_ok());
        }
    }

    #[test]
    fn legacy_encrypted_pem_is_refused_with_a_conversion_hint() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nMAA=\n-----END RSA PRIVATE KEY-----\n";
        let e = PrivateKey::from_pem(pem.as_bytes(), None).unwrap_err();
        assert!(matches!(e, KeyError::LegacyEncrypted));
        assert!(e.to_string().contains("openssl pkcs8 -topk8"));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [
            &b""[..],
            b"garbage",
            b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(PrivateKey::from_pem(input, None).is_err());
        }
    }

    #[test]
    fn sec1_keys_without_curve_parameters_are_read_by_key_length() {
        use sec1::der::Encode;
        for (alg, kind) in [
            (KeyAlgorithm::P256, KeyKind::P256),
            (KeyAlgorithm::P384, KeyKind::P384),
        ] {
            let k = PrivateKey::generate(alg).unwrap();
            let info = pkcs8::PrivateKeyInfo::from_der(k.pkcs8_der()).unwrap();
            let mut ec = sec1::EcPrivateKey::from_der(info.private_key).unwrap();
            ec.parameters = None;
            let der = ec.to_der().unwrap();
            let pem = pem::encode(&pem::Pem::new("EC PRIVATE KEY", der));
            let back = PrivateKey::from_pem(pem.as_bytes(), None).unwrap();
            assert_eq!(back.kind(), kind);
            assert_eq!(back.public_key_der().unwrap(), k.public_key_der().unwrap());
        }
    }

    #[test]
    fn secret_debug_is_elided() {
        assert_eq!(format!("{:?}", Secret::new("1234")), "Secret([elided])");
    }
}
