//! The signature algorithm table and the signature check.

use ring::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

use super::facts::{Facts, Key, SigAlg};

pub(super) enum SigCheck {
    Valid,
    Invalid(String),
    Unsupported(String),
}

/// RFC 5280 section 6.1.3 (a)(1) and 4.1.1.2: the child's signature must
/// verify with the issuer's public key, with the algorithm named in both
/// signature fields. RSA PKCS#1 v1.5 with SHA-1/256/384/512 and ECDSA
/// P-256/P-384 with SHA-256/384 are supported.
pub(super) fn check_signature(child: &Facts<'_>, issuer: &Facts<'_>) -> SigCheck {
    if child.sig_alg_mismatch {
        return SigCheck::Invalid(
            "its TBS signature algorithm differs from its outer signatureAlgorithm".into(),
        );
    }
    let alg: &'static dyn VerificationAlgorithm = match (&child.sig_alg, &issuer.key) {
        (SigAlg::Other(name), _) => {
            return SigCheck::Unsupported(format!("it is signed with {name}"));
        }
        (_, Key::Other(name)) => {
            return SigCheck::Unsupported(format!(
                "its issuer {} has a {name} key",
                issuer.subject
            ));
        }
        (SigAlg::RsaSha256, Key::Rsa(b)) if (2048..=8192).contains(b) => {
            &sig::RSA_PKCS1_2048_8192_SHA256
        }
        (SigAlg::RsaSha384, Key::Rsa(b)) if (2048..=8192).contains(b) => {
            &sig::RSA_PKCS1_2048_8192_SHA384
        }
        (SigAlg::RsaSha512, Key::Rsa(b)) if (2048..=8192).contains(b) => {
            &sig::RSA_PKCS1_2048_8192_SHA512
        }
        (SigAlg::RsaSha256, Key::Rsa(b)) if (1024..2048).contains(b) => {
            &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
        }
        (SigAlg::RsaSha512, Key::Rsa(b)) if (1024..2048).contains(b) => {
            &sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
        }
        (SigAlg::RsaSha1, Key::Rsa(b)) if (1024..=8192).contains(b) => {
            &sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (
            SigAlg::RsaSha1 | SigAlg::RsaSha256 | SigAlg::RsaSha384 | SigAlg::RsaSha512,
            Key::Rsa(b),
        ) => {
            return SigCheck::Unsupported(format!(
                "its issuer {} has an RSA {b}-bit key, outside what iotca verifies with this hash",
                issuer.subject
            ));
        }
        (SigAlg::EcdsaSha256, Key::P256) => &sig::ECDSA_P256_SHA256_ASN1,
        (SigAlg::EcdsaSha384, Key::P256) => &sig::ECDSA_P256_SHA384_ASN1,
        (SigAlg::EcdsaSha256, Key::P384) => &sig::ECDSA_P384_SHA256_ASN1,
        (SigAlg::EcdsaSha384, Key::P384) => &sig::ECDSA_P384_SHA384_ASN1,
        (s, k) => {
            return SigCheck::Invalid(format!(
                "its signature algorithm ({}) cannot come from the issuer's {} key",
                sig_alg_name(s),
                key_name(k)
            ));
        }
    };
    match UnparsedPublicKey::new(alg, &issuer.key_bytes[..]).verify(&child.tbs, &child.signature) {
        Ok(()) => SigCheck::Valid,
        Err(_) => SigCheck::Invalid(format!(
            "its signature does not verify with the public key of {}",
            issuer.subject
        )),
    }
}

pub(super) fn sig_alg_name(s: &SigAlg) -> &str {
    match s {
        SigAlg::RsaSha1 => "sha1WithRSAEncryption",
        SigAlg::RsaSha256 => "sha256WithRSAEncryption",
        SigAlg::RsaSha384 => "sha384WithRSAEncryption",
        SigAlg::RsaSha512 => "sha512WithRSAEncryption",
        SigAlg::EcdsaSha256 => "ecdsa-with-SHA256",
        SigAlg::EcdsaSha384 => "ecdsa-with-SHA384",
        SigAlg::Other(n) => n,
    }
}

pub(super) fn key_name(k: &Key) -> String {
    match k {
        Key::Rsa(b) => format!("RSA {b}"),
        Key::P256 => "ECDSA P-256".into(),
        Key::P384 => "ECDSA P-384".into(),
        Key::Other(n) => n.clone(),
    }
}
