//! PKCS#12 (`.pfx`) files for device applications.
//!
//! The .NET and C Azure IoT device samples load a `.pfx` that holds the
//! device's private key, its leaf certificate and the CA chain. [`build_pfx`]
//! writes such a file with the [`p12_keystore`] crate, in one of two
//! encryptions:
//!
//! | | [`PfxEncryption::Modern`] (default) | [`PfxEncryption::Legacy`] |
//! |---|---|---|
//! | key bag (shrouded) | PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC | pbeWithSHAAnd3-KeyTripleDES-CBC |
//! | certificate bags (encrypted data) | PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC | pbeWithSHAAnd3-KeyTripleDES-CBC |
//! | MAC | HMAC-SHA-256 (PKCS#12 KDF) | HMAC-SHA-1 (PKCS#12 KDF) |
//! | iterations (encryption and MAC) | [`PFX_ITERATIONS`] | [`PFX_ITERATIONS`] |
//!
//! Modern is what `openssl pkcs12 -export` writes under OpenSSL 3; Legacy is
//! what older Windows (before Server 2019 / Windows 10 1709) can import and
//! matches `openssl pkcs12 -export -legacy` except that the certificates are
//! encrypted with 3DES rather than 40-bit RC2 (so OpenSSL 3 opens it even
//! without its legacy provider).
//!
//! Every file gets fresh random salts (32 bytes for PBES2, 20 for the PKCS#12
//! PBE, 8 for the MAC) and a fresh AES IV.
//!
//! The key bag carries `friendly_name` and a `localKeyId` (the SHA-1 of the
//! leaf certificate, as OpenSSL computes it); the leaf certificate bag carries
//! the same `localKeyId`, which is what links key and certificate for
//! OpenSSL, Windows and .NET.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use pkcs8::{DecodePrivateKey, ObjectIdentifier, PrivateKeyInfo};

/// Iteration count for every key derivation in a PFX (encryption and MAC),
/// the same as OpenSSL 3's `openssl pkcs12 -export` default.
pub const PFX_ITERATIONS: u32 = 2048;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Which PKCS#12 encryption to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PfxEncryption {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the key and the
    /// certificates, SHA-256 MAC: OpenSSL 3's default.
    #[default]
    Modern,
    /// pbeWithSHAAnd3-KeyTripleDES-CBC for the key and the certificates,
    /// SHA-1 MAC: what older Windows imports.
    Legacy,
}

/// Why a PKCS#12 file could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PfxError {
    /// The key is not a PKCS#8 DER private key.
    #[error("private key is not a valid pkcs#8 der key")]
    InvalidKey,
    /// The key is PKCS#8 but of an algorithm other than RSA, P-256 or P-384.
    #[error("unsupported private key algorithm {0}")]
    UnsupportedKey(String),
    /// The leaf certificate is not a DER X.509 certificate.
    #[error("leaf certificate is not a valid der x.509 certificate")]
    InvalidLeaf,
    /// A chain certificate (0-based index in `chain`) is not a DER X.509 certificate.
    #[error("chain certificate {0} is not a valid der x.509 certificate")]
    InvalidChainCert(usize),
    /// The private key's public half differs from the leaf certificate's key.
    #[error("private key does not match the leaf certificate")]
    KeyMismatch,
    /// The password is empty.
    #[error("pfx password is empty")]
    EmptyPassword,
    /// The password holds a character outside the Basic Multilingual Plane,
    /// which the PKCS#12 key derivation (BMPString) cannot encode.
    #[error("pfx password has a character pkcs#12 cannot encode")]
    PasswordEncoding,
    /// The friendly name is empty or holds a character outside the Basic
    /// Multilingual Plane (friendlyName is a BMPString).
    #[error("friendly name is empty or has a character pkcs#12 cannot encode")]
    FriendlyName,
    /// The PKCS#12 encoder failed.
    #[error("pkcs#12 encoding failed: {0}")]
    Encode(String),
}

/// Builds a PKCS#12 file: the private key (PKCS#8 DER, EC P-256/P-384 or
/// RSA), the leaf certificate (DER) with `friendly_name` and a localKeyId
/// linking key and cert, and the CA chain (DER, issuer order) as further
/// certificate bags.
///
/// The key must belong to the leaf certificate ([`PfxError::KeyMismatch`]
/// otherwise) and the password must not be empty. `friendly_name` is set on
/// the key bag; the leaf's certificate bag is named after its subject DN by
/// the underlying PKCS#12 writer. The certificates are written leaf first,
/// then `chain` in the order given.
///
/// Key material decoded here for the match check is zeroized when dropped;
/// the caller owns (and should zeroize) `key_pkcs8_der` and `password`.
pub fn build_pfx(
    key_pkcs8_der: &[u8],
    leaf_der: &[u8],
    chain: &[Vec<u8>],
    password: &str,
    friendly_name: &str,
    enc: PfxEncryption,
) -> Result<Vec<u8>, PfxError> {
    if password.is_empty() {
        return Err(PfxError::EmptyPassword);
    }
    if !is_bmp(password) {
        return Err(PfxError::PasswordEncoding);
    }
    if friendly_name.is_empty() || !is_bmp(friendly_name) {
        return Err(PfxError::FriendlyName);
    }

    check_key_matches_leaf(key_pkcs8_der, leaf_der)?;

    let leaf = Certificate::from_der(leaf_der).map_err(|_| PfxError::InvalidLeaf)?;
    let mut certs = Vec::with_capacity(chain.len() + 1);
    certs.push(leaf);
    for (i, der) in chain.iter().enumerate() {
        let (rest, _) =
            x509_parser::parse_x509_certificate(der).map_err(|_| PfxError::InvalidChainCert(i))?;
        if !rest.is_empty() {
            return Err(PfxError::InvalidChainCert(i));
        }
        certs.push(Certificate::from_der(der).map_err(|_| PfxError::InvalidChainCert(i))?);
    }

    // localKeyId as OpenSSL computes it: SHA-1 over the leaf certificate.
    let local_key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf_der)
        .as_ref()
        .to_vec();

    let key = PrivateKey::from_der(key_pkcs8_der).map_err(|_| PfxError::InvalidKey)?;
    let mut store = KeyStore::new();
    store.add_entry(
        friendly_name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
    );

    let (encryption, mac) = match enc {
        PfxEncryption::Modern => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ),
        PfxEncryption::Legacy => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ),
    };
    store
        .writer(password)
        .encryption_algorithm(encryption)
        .encryption_iterations(PFX_ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(PFX_ITERATIONS)
        .write()
        .map_err(|e| PfxError::Encode(e.to_string().to_lowercase()))
}

/// PKCS#12 encodes passwords and friendly names as BMPString (UCS-2).
fn is_bmp(s: &str) -> bool {
    s.chars().all(|c| u32::from(c) <= 0xffff)
}

/// Refuses a key that is not the leaf certificate's: a PFX whose key and
/// certificate differ loads, but the device then fails its TLS handshake.
fn check_key_matches_leaf(key_der: &[u8], leaf_der: &[u8]) -> Result<(), PfxError> {
    let (rest, leaf) =
        x509_parser::parse_x509_certificate(leaf_der).map_err(|_| PfxError::InvalidLeaf)?;
    if !rest.is_empty() {
        return Err(PfxError::InvalidLeaf);
    }
    let leaf_key: &[u8] = &leaf.tbs_certificate.subject_pki.subject_public_key.data;

    let info = PrivateKeyInfo::try_from(key_der).map_err(|_| PfxError::InvalidKey)?;
    let matches = match info.algorithm.oid {
        RSA_ENCRYPTION => {
            use rsa::pkcs1::EncodeRsaPublicKey;
            let key =
                rsa::RsaPrivateKey::from_pkcs8_der(key_der).map_err(|_| PfxError::InvalidKey)?;
            let public = rsa::RsaPublicKey::from(&key)
                .to_pkcs1_der()
                .map_err(|_| PfxError::InvalidKey)?;
            public.as_bytes() == leaf_key
        }
        EC_PUBLIC_KEY => match info.algorithm.parameters_oid() {
            Ok(SECP256R1) => {
                let key =
                    p256::SecretKey::from_pkcs8_der(key_der).map_err(|_| PfxError::InvalidKey)?;
                p256::PublicKey::from_sec1_bytes(leaf_key).is_ok_and(|p| p == key.public_key())
            }
            Ok(SECP384R1) => {
                let key =
                    p384::SecretKey::from_pkcs8_der(key_der).map_err(|_| PfxError::InvalidKey)?;
                p384::PublicKey::from_sec1_bytes(leaf_key).is_ok_and(|p| p == key.public_key())
            }
            Ok(curve) => return Err(PfxError::UnsupportedKey(format!("ec curve {curve}"))),
            Err(_) => return Err(PfxError::InvalidKey),
        },
        other => return Err(PfxError::UnsupportedKey(other.to_string())),
    };
    if matches {
        Ok(())
    } else {
        Err(PfxError::KeyMismatch)
    }
}

#[cfg(test)]
mod tests {
    //! Every PFX written here is opened by tools nobody on this team wrote:
    //! the `openssl` command line (OpenSSL 3) and pyca/cryptography.

    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    };
    use std::path::Path;
    use std::process::{Command, Output};

    const PW: &str = "device-pfx-Pw1";

    /// A device key with its leaf and a two-level CA chain (intermediate, root).
    struct Pki {
        key: Vec<u8>,
        leaf: Vec<u8>,
        chain: Vec<Vec<u8>>,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    }

    fn pki_for(leaf_key: &KeyPair, cn: &str) -> Pki {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let root_params = ca_params("PFX Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, &root_key);

        let int_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let int_params = ca_params("PFX Test Intermediate");
        let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, &int_key);

        let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf_params.distinguished_name = DistinguishedName::new();
        leaf_params.distinguished_name.push(DnType::CommonName, cn);
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = leaf_params.signed_by(leaf_key, &int_issuer).unwrap();

        Pki {
            key: leaf_key.serialize_der(),
            leaf: leaf.der().to_vec(),
            chain: vec![int.der().to_vec(), root.der().to_vec()],
        }
    }

    fn p256_pki(cn: &str) -> Pki {
        pki_for(&KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(), cn)
    }

    /// An RSA-2048 device key made by `openssl genpkey` (its PEM output is
    /// PKCS#8; its DER output would be PKCS#1, which `build_pfx` refuses).
    fn rsa_pki(cn: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("rsa.pem");
        let out = run(Command::new("openssl").args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            key_path.to_str().unwrap(),
        ]));
        assert!(
            out.status.success(),
            "openssl genpkey failed: {}",
            text(&out.stderr)
        );
        let pem = pem::parse(std::fs::read(&key_path).unwrap()).unwrap();
        assert_eq!(pem.tag(), "PRIVATE KEY");
        let der = pem.into_contents();
        let key = KeyPair::try_from(der.as_slice()).unwrap();
        let pki = pki_for(&key, cn);
        assert_eq!(
            pki.key, der,
            "rcgen must hand back the openssl key unchanged"
        );
        pki
    }

    fn run(cmd: &mut Command) -> Output {
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (the test needs it installed)"))
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn pem_blocks(s: &str, tag: &str) -> Vec<Vec<u8>> {
        pem::parse_many(s)
            .unwrap()
            .into_iter()
            .filter(|p| p.tag() == tag)
            .map(|p| p.into_contents())
            .collect()
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// `openssl pkcs12` (with `-legacy` when asked) on a file.
    fn pkcs12(file: &str, pw: &str, legacy: bool, extra: &[&str]) -> Output {
        let mut cmd = Command::new("openssl");
        cmd.arg("pkcs12");
        if legacy {
            cmd.arg("-legacy");
        }
        cmd.args(["-in", file, "-passin", &format!("pass:{pw}")]);
        cmd.args(extra);
        run(&mut cmd)
    }

    /// Opens the PFX with `openssl pkcs12` and checks key, certificates,
    /// key/leaf match, algorithms, friendly name, localKeyId and the wrong
    /// password.
    fn check_openssl(
        pki: &Pki,
        pfx: &[u8],
        pw: &str,
        name: &str,
        enc: PfxEncryption,
        legacy_flag: bool,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "device.pfx", pfx);

        let out = pkcs12(&file, pw, legacy_flag, &["-nodes"]);
        assert!(
            out.status.success(),
            "openssl pkcs12 failed: {}",
            text(&out.stderr)
        );
        let pem_out = text(&out.stdout);

        let certs = pem_blocks(&pem_out, "CERTIFICATE");
        let mut expected = vec![pki.leaf.clone()];
        expected.extend(pki.chain.iter().cloned());
        assert_eq!(
            certs, expected,
            "certificates must be exactly leaf then chain"
        );

        let keys = pem_blocks(&pem_out, "PRIVATE KEY");
        assert_eq!(keys.len(), 1, "exactly one private key: {pem_out}");

        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", keys[0].clone()));
        let leaf_pem = pem::encode(&pem::Pem::new("CERTIFICATE", pki.leaf.clone()));
        let key_file = write(dir.path(), "key.pem", key_pem.as_bytes());
        let leaf_file = write(dir.path(), "leaf.pem", leaf_pem.as_bytes());
        let key_pub = run(Command::new("openssl").args(["pkey", "-in", &key_file, "-pubout"]));
        let leaf_pub =
            run(Command::new("openssl").args(["x509", "-in", &leaf_file, "-pubkey", "-noout"]));
        assert!(key_pub.status.success() && leaf_pub.status.success());
        assert!(text(&key_pub.stdout).contains("BEGIN PUBLIC KEY"));
        assert_eq!(
            text(&key_pub.stdout),
            text(&leaf_pub.stdout),
            "key does not match leaf"
        );

        let info = pkcs12(&file, pw, legacy_flag, &["-info", "-nodes"]);
        assert!(
            info.status.success(),
            "openssl pkcs12 -info failed: {}",
            text(&info.stderr)
        );
        let report = format!("{}\n{}", text(&info.stderr), text(&info.stdout));
        let expected_lines: &[&str] = match enc {
            PfxEncryption::Modern => &[
                "MAC: sha256, Iteration 2048",
                "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 2048, PRF hmacWithSHA256",
            ],
            PfxEncryption::Legacy => &[
                "MAC: sha1, Iteration 2048",
                "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
                "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
            ],
        };
        for line in expected_lines {
            assert!(report.contains(line), "missing {line:?} in:\n{report}");
        }
        assert!(!report.contains("RC2"), "no 40-bit RC2 anywhere:\n{report}");
        assert!(
            report.contains(&format!("friendlyName: {name}\n")),
            "friendly name {name:?} missing:\n{report}"
        );
        // The same localKeyID on the key bag and on the leaf's bag only.
        let ids: Vec<&str> = report
            .lines()
            .filter_map(|l| l.trim().strip_prefix("localKeyID: "))
            .collect();
        assert_eq!(ids.len(), 2, "localKeyID on key and leaf only:\n{report}");
        assert_eq!(ids[0], ids[1]);
        // ... and it is the leaf's SHA-1 fingerprint, as OpenSSL makes it.
        let fp = run(Command::new("openssl").args([
            "x509",
            "-in",
            &leaf_file,
            "-noout",
            "-fingerprint",
            "-sha1",
        ]));
        let fp = text(&fp.stdout);
        let fp = fp.trim().rsplit('=').next().unwrap().replace(':', " ");
        assert_eq!(ids[0].trim(), fp, "localKeyID is not the leaf's SHA-1");

        let wrong = pkcs12(&file, "not-the-password", legacy_flag, &["-nodes"]);
        assert!(
            !wrong.status.success(),
            "wrong password must not open the file"
        );
        assert!(!text(&wrong.stdout).contains("PRIVATE KEY"));
    }

    const PY_READ: &str = r#"
import json, sys
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding, PublicFormat
from cryptography.x509.oid import NameOID
data = open(sys.argv[1], "rb").read()
p = pkcs12.load_pkcs12(data, sys.argv[2].encode())
spki = lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo).hex()
try:
    pkcs12.load_pkcs12(data, b"not-the-password")
    wrong = "opened"
except ValueError:
    wrong = "refused"
leaf = p.cert.certificate
print(json.dumps({
    "key_spki": spki(p.key.public_key()),
    "leaf_spki": spki(leaf.public_key()),
    "leaf_cn": leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
    "leaf_der": leaf.public_bytes(Encoding.DER).hex(),
    "chain": [c.certificate.public_bytes(Encoding.DER).hex() for c in p.additional_certs],
    "wrong": wrong,
}))
"#;

    /// Reads the PFX back with pyca/cryptography.
    fn check_cryptography(pki: &Pki, pfx: &[u8], pw: &str, cn: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "device.pfx", pfx);
        let out = run(Command::new("python3").args(["-c", PY_READ, &file, pw]));
        assert!(
            out.status.success(),
            "cryptography failed: {}",
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["key_spki"], v["leaf_spki"], "key does not match leaf");
        assert_eq!(v["leaf_cn"], cn);
        assert_eq!(v["leaf_der"], hex(&pki.leaf));
        let chain: Vec<String> = pki.chain.iter().map(|c| hex(c)).collect();
        assert_eq!(v["chain"], serde_json::json!(chain));
        assert_eq!(v["wrong"], "refused");
    }

    #[test]
    fn modern_p256_opens_in_openssl_and_cryptography() {
        let pki = p256_pki("sensor-thl-001");
        let pfx = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "sensor-thl-001",
            PfxEncryption::Modern,
        )
        .unwrap();
        check_openssl(
            &pki,
            &pfx,
            PW,
            "sensor-thl-001",
            PfxEncryption::Modern,
            false,
        );
        check_cryptography(&pki, &pfx, PW, "sensor-thl-001");
    }

    #[test]
    fn legacy_p256_opens_in_openssl_and_cryptography() {
        let pki = p256_pki("sensor-thl-002");
        let pfx = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "legacy device",
            PfxEncryption::Legacy,
        )
        .unwrap();
        check_openssl(&pki, &pfx, PW, "legacy device", PfxEncryption::Legacy, true);
        // 3DES throughout (no RC2): OpenSSL 3 opens it without -legacy too.
        check_openssl(
            &pki,
            &pfx,
            PW,
            "legacy device",
            PfxEncryption::Legacy,
            false,
        );
        check_cryptography(&pki, &pfx, PW, "sensor-thl-002");
    }

    #[test]
    fn rsa2048_key_from_openssl_both_modes() {
        let pki = rsa_pki("rsa-device");
        for (enc, legacy) in [
            (PfxEncryption::Modern, false),
            (PfxEncryption::Legacy, true),
        ] {
            let pfx = build_pfx(&pki.key, &pki.leaf, &pki.chain, PW, "rsa-device", enc).unwrap();
            check_openssl(&pki, &pfx, PW, "rsa-device", enc, legacy);
            check_cryptography(&pki, &pfx, PW, "rsa-device");
        }
    }

    #[test]
    fn p384_key_modern() {
        let pki = pki_for(
            &KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
            "p384-dev",
        );
        let pfx = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "p384-dev",
            PfxEncryption::default(),
        )
        .unwrap();
        check_openssl(&pki, &pfx, PW, "p384-dev", PfxEncryption::Modern, false);
        check_cryptography(&pki, &pfx, PW, "p384-dev");
    }

    #[test]
    fn non_ascii_password_interoperates() {
        let pki = p256_pki("umlaut-device");
        let pw = "pässwörd-Ω-1234";
        for (enc, legacy) in [
            (PfxEncryption::Modern, false),
            (PfxEncryption::Legacy, true),
        ] {
            let pfx = build_pfx(&pki.key, &pki.leaf, &pki.chain, pw, "umlaut-device", enc).unwrap();
            check_openssl(&pki, &pfx, pw, "umlaut-device", enc, legacy);
            check_cryptography(&pki, &pfx, pw, "umlaut-device");
        }
    }

    #[test]
    fn leaf_without_chain() {
        let pki = p256_pki("lonely");
        let pki = Pki {
            chain: vec![],
            ..pki
        };
        let pfx = build_pfx(
            &pki.key,
            &pki.leaf,
            &[],
            PW,
            "lonely",
            PfxEncryption::Modern,
        )
        .unwrap();
        check_openssl(&pki, &pfx, PW, "lonely", PfxEncryption::Modern, false);
    }

    #[test]
    fn fresh_salts_every_file() {
        let pki = p256_pki("salty");
        let a = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "salty",
            PfxEncryption::Modern,
        )
        .unwrap();
        let b = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "salty",
            PfxEncryption::Modern,
        )
        .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len(), "same structure, different salts/IVs");
        let c = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "salty",
            PfxEncryption::Legacy,
        )
        .unwrap();
        let d = build_pfx(
            &pki.key,
            &pki.leaf,
            &pki.chain,
            PW,
            "salty",
            PfxEncryption::Legacy,
        )
        .unwrap();
        assert_ne!(c, d);
    }

    #[test]
    fn refuses_a_key_that_is_not_the_leafs() {
        let pki = p256_pki("victim");
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_der();
        let err = build_pfx(
            &other,
            &pki.leaf,
            &pki.chain,
            PW,
            "victim",
            PfxEncryption::Modern,
        )
        .unwrap_err();
        assert!(matches!(err, PfxError::KeyMismatch), "{err}");
        // A P-384 key against a P-256 leaf.
        let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_der();
        let err = build_pfx(
            &p384,
            &pki.leaf,
            &pki.chain,
            PW,
            "victim",
            PfxEncryption::Modern,
        )
        .unwrap_err();
        assert!(matches!(err, PfxError::KeyMismatch), "{err}");
        assert_eq!(
            err.to_string(),
            "private key does not match the leaf certificate"
        );
    }

    #[test]
    fn refuses_bad_inputs() {
        let pki = p256_pki("bad-inputs");
        let build = |key: &[u8], leaf: &[u8], chain: &[Vec<u8>], pw: &str, name: &str| {
            build_pfx(key, leaf, chain, pw, name, PfxEncryption::Modern).unwrap_err()
        };
        assert!(matches!(
            build(&pki.key, &pki.leaf, &pki.chain, "", "n"),
            PfxError::EmptyPassword
        ));
        assert!(matches!(
            build(&pki.key, &pki.leaf, &pki.chain, "pw-🔑", "n"),
            PfxError::PasswordEncoding
        ));
        assert!(matches!(
            build(&pki.key, &pki.leaf, &pki.chain, PW, ""),
            PfxError::FriendlyName
        ));
        assert!(matches!(
            build(&pki.key, &pki.leaf, &pki.chain, PW, "dev-🔑"),
            PfxError::FriendlyName
        ));
        assert!(matches!(
            build(b"not a key", &pki.leaf, &pki.chain, PW, "n"),
            PfxError::InvalidKey
        ));
        assert!(matches!(
            build(&pki.key, b"not a cert", &pki.chain, PW, "n"),
            PfxError::InvalidLeaf
        ));
        let mut trailing = pki.leaf.clone();
        trailing.push(0);
        assert!(matches!(
            build(&pki.key, &trailing, &pki.chain, PW, "n"),
            PfxError::InvalidLeaf
        ));
        let chain = vec![pki.chain[0].clone(), b"junk".to_vec()];
        assert!(matches!(
            build(&pki.key, &pki.leaf, &chain, PW, "n"),
            PfxError::InvalidChainCert(1)
        ));
        // An Ed25519 PKCS#8 key is well formed but not a supported device key.
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_der();
        assert!(matches!(
            build(&ed, &pki.leaf, &pki.chain, PW, "n"),
            PfxError::UnsupportedKey(_)
        ));
        for e in [
            PfxError::InvalidKey,
            PfxError::EmptyPassword,
            PfxError::InvalidChainCert(2),
        ] {
            let s = e.to_string();
            assert_eq!(s, s.to_lowercase());
            assert!(!s.ends_with('.'));
        }
    }
}
