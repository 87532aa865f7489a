//! Issuing certificates: a plain-data [`CertRequest`] (what to issue), a
//! [`Signer`] (the CA that signs), and [`sign`] / [`self_signed`] joining them.
//!
//! Every certificate gets: a 16-byte random positive serial, notBefore
//! backdated [`BACKDATE`] for device clock skew, notAfter clamped to the
//! issuer's (with a warning), critical basicConstraints and keyUsage, and the
//! issuer's own subject key identifier, byte for byte, as its authority key
//! identifier (RFC 5280 section 4.2.1.1), so chains link whatever method made
//! the issuer's SKI (certGen.sh CAs use SHA-1 key IDs).

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use crate::cert;
use crate::error::{Error, Result};
use crate::keys::{KeyKind, PrivateKey};
use crate::profile::Profile;

/// How far notBefore is set before the moment of issuing.
pub const BACKDATE: Duration = Duration::minutes(5);

/// What to issue: plain data, no keys.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// Subject CN (the only subject attribute).
    pub common_name: String,
    /// The profile (extensions, default validity).
    pub profile: Profile,
    /// Validity in days; the profile's when None.
    pub days: Option<u32>,
    /// basicConstraints pathLenConstraint; the profile's when None.
    pub pathlen: Option<u8>,
    /// DNS names and IP addresses for a subjectAltName (server certificates only).
    pub subject_alt_names: Vec<String>,
}

impl CertRequest {
    /// A request for `common_name` with a profile's defaults.
    pub fn new(common_name: impl Into<String>, profile: Profile) -> Self {
        CertRequest {
            common_name: common_name.into(),
            profile,
            days: None,
            pathlen: None,
            subject_alt_names: Vec::new(),
        }
    }
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Things the user should know (for example, a clamped notAfter).
    pub warnings: Vec<String>,
}

impl Issued {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        cert::to_pem(&self.der)
    }
}

/// A CA ready to sign: its certificate and key, checked to belong together.
pub struct Signer {
    cert_der: Vec<u8>,
    subject: String,
    not_after: OffsetDateTime,
    kind: KeyKind,
    issuer: rcgen::Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

impl Signer {
    /// Joins a CA certificate (DER) and its key. Fails when the key does not
    /// belong to the certificate. The certificate is not otherwise validated
    /// (CA flag, validity): that is the caller's business.
    pub fn new(cert_der: &[u8], key: &PrivateKey) -> Result<Self> {
        let parsed = cert::parse_der(cert_der)?;
        let subject = cert::name_string(parsed.subject());
        let kp = key.signing_key()?;
        if !key_matches(&parsed, &kp) {
            return Err(Error::CaKeyMismatch { subject });
        }
        let not_after = parsed.validity().not_after.to_datetime();
        let der = rustls_pki_types::CertificateDer::from(cert_der.to_vec());
        let issuer = rcgen::Issuer::from_ca_cert_der(&der, kp).map_err(|e| Error::Issue {
            subject: subject.clone(),
            reason: e.to_string(),
        })?;
        Ok(Signer {
            cert_der: cert_der.to_vec(),
            subject,
            not_after,
            kind: key.kind(),
            issuer,
        })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's subject, `CN=...`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The CA's notAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The CA key's kind (decides the signature algorithm).
    pub fn key_kind(&self) -> KeyKind {
        self.kind
    }
}

/// True when `kp` is the private half of the certificate's public key.
pub fn key_matches(cert: &X509Certificate<'_>, kp: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    cert.public_key().raw == kp.subject_public_key_info().as_slice()
        || cert.public_key().subject_public_key.data.as_ref() == kp.der_bytes()
}

/// Issues a certificate for `subject_key` (a key pair, or only a public
/// key: a CSR's), signed by `signer`, at time `now`.
pub fn sign(
    req: &CertRequest,
    subject_key: &impl rcgen::PublicKeyData,
    signer: &Signer,
    now: OffsetDateTime,
) -> Result<Issued> {
    let alg = subject_key.algorithm();
    let rsa = alg == &rcgen::PKCS_RSA_SHA256
        || alg == &rcgen::PKCS_RSA_SHA384
        || alg == &rcgen::PKCS_RSA_SHA512;
    let (mut params, mut warnings) = params_for(req, rsa, now)?;
    if params.not_after > signer.not_after {
        warnings.push(format!(
            "'{}': notAfter clamped to its issuer's notAfter ({}), which ends sooner than {} days",
            req.common_name,
            cert::rfc3339(signer.not_after),
            req.days.unwrap_or(req.profile.days)
        ));
        params.not_after = signer.not_after;
    }
    params.use_authority_key_identifier_extension = req.profile.authority_key_identifier;
    let c = params
        .signed_by(subject_key, &signer.issuer)
        .map_err(|e| Error::Issue {
            subject: req.common_name.clone(),
            reason: e.to_string(),
        })?;
    Ok(Issued {
        der: c.der().to_vec(),
        warnings,
    })
}

/// Issues a certificate for the public key `spki_der` (a SubjectPublicKeyInfo,
/// DER: a CSR's, or an existing certificate's when renewing with the same
/// key). The issued certificate's SubjectPublicKeyInfo is checked to be
/// `spki_der` byte for byte.
pub fn sign_public_key(
    req: &CertRequest,
    spki_der: &[u8],
    signer: &Signer,
    now: OffsetDateTime,
) -> Result<Issued> {
    let fail = |reason: String| Error::Issue {
        subject: req.common_name.clone(),
        reason,
    };
    let public = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| fail(format!("the public key is not usable: {e}")))?;
    let issued = sign(req, &public, signer, now)?;
    let c = cert::parse_der(&issued.der)?;
    if c.public_key().raw != spki_der {
        return Err(fail(
            "the issued certificate's public key would differ from the one asked for".into(),
        ));
    }
    Ok(issued)
}

/// Issues a self-signed certificate (a root CA) for `key`.
pub fn self_signed(req: &CertRequest, key: &PrivateKey, now: OffsetDateTime) -> Result<Issued> {
    let kp = key.signing_key()?;
    let (params, warnings) = params_for(req, key.kind().is_rsa(), now)?;
    let c = params.self_signed(&kp).map_err(|e| Error::Issue {
        subject: req.common_name.clone(),
        reason: e.to_string(),
    })?;
    Ok(Issued {
        der: c.der().to_vec(),
        warnings,
    })
}

/// A fresh serial: 16 random bytes, positive, with the top byte non-zero so
/// the DER INTEGER is always 16 bytes long.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn params_for(
    req: &CertRequest,
    rsa: bool,
    now: OffsetDateTime,
) -> Result<(CertificateParams, Vec<String>)> {
    let profile = &req.profile;
    let days = req.days.unwrap_or(profile.days);
    if days == 0 || days > crate::profile::MAX_DAYS {
        return Err(Error::DaysOutOfRange { days });
    }
    if req.common_name.is_empty() || req.common_name.len() > 64 {
        return Err(Error::CnLength {
            cn: req.common_name.clone(),
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        DnValue::Utf8String(req.common_name.clone()),
    );
    let now = now.replace_nanosecond(0).unwrap_or(now);
    params.not_before = now - BACKDATE;
    params.not_after = now
        .checked_add(Duration::days(i64::from(days)))
        .ok_or(Error::DaysOverflow { days })?;
    params.serial_number = Some(random_serial());
    params.is_ca = if profile.ca {
        match req.pathlen.or(profile.pathlen) {
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
            None => IsCa::Ca(BasicConstraints::Unconstrained),
        }
    } else {
        IsCa::ExplicitNoCa
    };
    params.key_usages = profile
        .key_usages_for(rsa)
        .into_iter()
        .filter_map(key_usage)
        .collect();
    params.extended_key_usages = profile
        .extended_key_usage
        .iter()
        .filter_map(|u| extended_key_usage(u))
        .collect();
    for san in &req.subject_alt_names {
        params
            .subject_alt_names
            .push(match san.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    san.clone()
                        .try_into()
                        .map_err(|_| Error::BadDnsName { name: san.clone() })?,
                ),
            });
    }
    // rcgen writes the SKI for every certificate with basicConstraints; a
    // profile that turns it off gets a fixed empty identifier refused instead.
    if !profile.subject_key_identifier {
        return Err(Error::UnsupportedTemplateOption {
            template: profile.name.clone(),
            option: "subject_key_identifier = false".into(),
        });
    }
    Ok((params, Vec::new()))
}

fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "digitalSignature" => KeyUsagePurpose::DigitalSignature,
        "nonRepudiation" => KeyUsagePurpose::ContentCommitment,
        "keyEncipherment" => KeyUsagePurpose::KeyEncipherment,
        "dataEncipherment" => KeyUsagePurpose::DataEncipherment,
        "keyAgreement" => KeyUsagePurpose::KeyAgreement,
        "keyCertSign" => KeyUsagePurpose::KeyCertSign,
        "cRLSign" => KeyUsagePurpose::CrlSign,
        "encipherOnly" => KeyUsagePurpose::EncipherOnly,
        "decipherOnly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn extended_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name {
        "clientAuth" => ExtendedKeyUsagePurpose::ClientAuth,
        "serverAuth" => ExtendedKeyUsagePurpose::ServerAuth,
        "codeSigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "emailProtection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timeStamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "OCSPSigning" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    fn root(now: OffsetDateTime, days: u32) -> (Vec<u8>, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::P256).unwrap();
        let mut req = CertRequest::new("Test Root", Profile::builtin("root-ca").unwrap());
        req.days = Some(days);
        (self_signed(&req, &key, now).unwrap().der, key)
    }

    #[test]
    fn device_certificate_has_design_section_4_shape() {
        let now = OffsetDateTime::now_utc();
        let (root_der, root_key) = root(now, 3650);
        let signer = Signer::new(&root_der, &root_key).unwrap();
        let dev_key = PrivateKey::generate(KeyAlgorithm::P256).unwrap();
        let req = CertRequest::new("sensor-1", Profile::builtin("device").unwrap());
        let issued = sign(&req, &dev_key.signing_key().unwrap(), &signer, now).unwrap();
        assert!(issued.warnings.is_empty());
        let c = cert::parse_der(&issued.der).unwrap();
        let r = cert::parse_der(&root_der).unwrap();
        assert_eq!(cert::common_names(&c), ["sensor-1"]);
        assert_eq!(c.raw_serial().len(), 16);
        assert!(c.raw_serial()[0] & 0x80 == 0 && c.raw_serial()[0] != 0);
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && !bc.value.ca);
        let ku = c.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_encipherment());
        let eku = c.extended_key_usage().unwrap().unwrap();
        assert!(!eku.critical && eku.value.client_auth);
        assert_eq!(cert::authority_key_id(&c), cert::subject_key_id(&r));
        assert!(cert::subject_key_id(&c).is_some());
        let nb = c.validity().not_before.to_datetime();
        assert_eq!((now.unix_timestamp() - nb.unix_timestamp()) / 60, 5);
        assert_eq!(
            cert::days_between(
                now - Duration::seconds(1),
                c.validity().not_after.to_datetime()
            ),
            365
        );
        assert!(c.verify_signature(Some(r.public_key())).is_ok());
    }

    #[test]
    fn not_after_is_clamped_to_the_issuer() {
        let now = OffsetDateTime::now_utc();
        let (root_der, root_key) = root(now, 10);
        let signer = Signer::new(&root_der, &root_key).unwrap();
        let dev_key = PrivateKey::generate(KeyAlgorithm::P256).unwrap();
        let req = CertRequest::new("d", Profile::builtin("device").unwrap());
        let issued = sign(&req, &dev_key.signing_key().unwrap(), &signer, now).unwrap();
        assert_eq!(issued.warnings.len(), 1);
        let c = cert::parse_der(&issued.der).unwrap();
        let r = cert::parse_der(&root_der).unwrap();
        assert_eq!(c.validity().not_after, r.validity().not_after);
    }

    #[test]
    fn a_foreign_key_is_refused() {
        let now = OffsetDateTime::now_utc();
        let (root_der, _) = root(now, 10);
        let other = PrivateKey::generate(KeyAlgorithm::P256).unwrap();
        let e = Signer::new(&root_der, &other).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
    }

    #[test]
    fn serials_differ() {
        let a = random_serial();
        let b = random_serial();
        assert_ne!(a, b);
    }

    #[test]
    fn root_has_ski_but_no_aki_and_pathlen_only_when_asked() {
        let now = OffsetDateTime::now_utc();
        let key = PrivateKey::generate(KeyAlgorithm::P384).unwrap();
        let mut req = CertRequest::new("R", Profile::builtin("root-ca").unwrap());
        let r = self_signed(&req, &key, now).unwrap();
        let c = cert::parse_der(&r.der).unwrap();
        assert!(cert::subject_key_id(&c).is_some() && cert::authority_key_id(&c).is_none());
        assert_eq!(
            c.basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            None
        );
        req.pathlen = Some(1);
        let r = self_signed(&req, &key, now).unwrap();
        let c = cert::parse_der(&r.der).unwrap();
        assert_eq!(
            c.basic_constraints()
                .unwrap()
                .unwrap()
                .value
                .path_len_constraint,
            Some(1)
        );
        assert_eq!(cert::signature_algorithm_name(&c), "ecdsa-with-SHA384");
    }
}
