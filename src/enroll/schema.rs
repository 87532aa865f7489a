//! The DPS enrollment records, as the DPS service REST API 2021-10-01 spells
//! them (`IndividualEnrollment`, `EnrollmentGroup`, camelCase).
//!
//! These types are both the wire format (the body of
//! `PUT /enrollments/{id}?api-version=2021-10-01` and
//! `PUT /enrollmentGroups/{id}?api-version=2021-10-01`) and the local record
//! stored under `dps/enrollments/` and `dps/enrollmentGroups/`. Only X.509
//! attestation is modelled; fields iotca does not know (copied from
//! `az iot dps enrollment show`, say) are kept as they are in `other` so a
//! record round-trips.
//!
//! An individual enrollment body:
//!
//! ```json
//! {"registrationId": "sensor-thl-002",
//!  "attestation": {"type": "x509",
//!                  "x509": {"clientCertificates": {"primary": {"certificate": "-----BEGIN CERTIFICATE-----..."}}}},
//!  "provisioningStatus": "disabled",
//!  "capabilities": {"iotEdge": false},
//!  "reprovisionPolicy": {"updateHubAssignment": true, "migrateDeviceData": true}}
//! ```
//!
//! An enrollment group uses `enrollmentGroupId` and
//! `attestation.x509.signingCertificates.primary.certificate`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The DPS REST API version these shapes follow.
pub const API_VERSION: &str = "2021-10-01";

/// `provisioningStatus`: whether DPS provisions devices of this enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningStatus {
    /// Devices are provisioned (the DPS default).
    #[default]
    Enabled,
    /// Devices are refused with "registration status is disabled".
    Disabled,
}

impl ProvisioningStatus {
    /// `enabled` or `disabled`, as in the JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProvisioningStatus::Enabled => "enabled",
            ProvisioningStatus::Disabled => "disabled",
        }
    }
}

impl fmt::Display for ProvisioningStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProvisioningStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(ProvisioningStatus::Enabled),
            "disabled" => Ok(ProvisioningStatus::Disabled),
            other => Err(format!(
                "'{other}' is not a provisioning status; use enabled or disabled"
            )),
        }
    }
}

/// `allocationPolicy`: how DPS picks among the linked hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AllocationPolicy {
    /// Evenly weighted distribution across the hubs.
    Hashed,
    /// The hub with the lowest latency to the device.
    GeoLatency,
    /// The one hub listed (the first of `iotHubs`).
    Static,
    /// An Azure Function decides (not simulated: treated as static).
    Custom,
}

impl AllocationPolicy {
    /// The JSON name (`hashed`, `geoLatency`, `static`, `custom`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AllocationPolicy::Hashed => "hashed",
            AllocationPolicy::GeoLatency => "geoLatency",
            AllocationPolicy::Static => "static",
            AllocationPolicy::Custom => "custom",
        }
    }
}

impl FromStr for AllocationPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hashed" => Ok(AllocationPolicy::Hashed),
            "geoLatency" | "geolatency" => Ok(AllocationPolicy::GeoLatency),
            "static" => Ok(AllocationPolicy::Static),
            "custom" => Ok(AllocationPolicy::Custom),
            other => Err(format!(
                "'{other}' is not an allocation policy; use hashed, geoLatency, static or custom"
            )),
        }
    }
}

/// `capabilities`: `{"iotEdge": false}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// True for an IoT Edge device.
    pub iot_edge: bool,
}

/// `reprovisionPolicy`: what happens when a provisioned device asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPolicy {
    /// Re-evaluate the hub assignment on re-provisioning.
    pub update_hub_assignment: bool,
    /// Move the device's twin data when the hub changes.
    pub migrate_device_data: bool,
}

impl Default for ReprovisionPolicy {
    /// Both true, as DPS creates enrollments by default.
    fn default() -> Self {
        ReprovisionPolicy {
            update_hub_assignment: true,
            migrate_device_data: true,
        }
    }
}

/// `X509CertificateWithInfo`: one certificate as PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateWithInfo {
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----...`).
    pub certificate: String,
    /// Fields DPS returns (`info`) or iotca does not model, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `X509Certificates`: a primary and optionally a secondary certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Certificates {
    /// The primary certificate.
    pub primary: X509CertificateWithInfo,
    /// The secondary certificate (for rollover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<X509CertificateWithInfo>,
}

impl X509Certificates {
    /// Only a primary certificate.
    pub fn primary(pem: String) -> Self {
        X509Certificates {
            primary: X509CertificateWithInfo {
                certificate: pem,
                other: BTreeMap::new(),
            },
            secondary: None,
        }
    }

    /// Sets the secondary certificate (PEM), replacing any.
    pub fn set_secondary(&mut self, pem: String) {
        self.secondary = Some(X509CertificateWithInfo {
            certificate: pem,
            other: BTreeMap::new(),
        });
    }

    /// The secondary becomes the primary; the old primary is dropped.
    /// False (and nothing changes) when there is no secondary.
    pub fn promote_secondary(&mut self) -> bool {
        match self.secondary.take() {
            Some(s) => {
                self.primary = s;
                true
            }
            None => false,
        }
    }

    /// Drops the secondary; false when there was none.
    pub fn remove_secondary(&mut self) -> bool {
        self.secondary.take().is_some()
    }

    /// The primary, then the secondary certificate's PEM.
    pub fn pems(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary.certificate.as_str())
            .chain(self.secondary.as_ref().map(|s| s.certificate.as_str()))
    }
}

/// `X509Attestation`: client certificates (individual enrollments) or
/// signing certificates (enrollment groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct X509Attestation {
    /// The device's own certificate (individual enrollments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<X509Certificates>,
    /// The group's CA certificate (enrollment groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificates: Option<X509Certificates>,
    /// Fields iotca does not model (`caReferences`...), kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `AttestationMechanism`, X.509 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// `x509` (the only type iotca handles; others are refused on reading).
    #[serde(rename = "type")]
    pub kind: String,
    /// The X.509 attestation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509Attestation>,
    /// Fields iotca does not model (`tpm`, `symmetricKey`), kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Attestation {
    /// X.509 attestation with the device's certificate.
    pub fn client_certificate(pem: String) -> Self {
        Attestation {
            kind: "x509".into(),
            x509: Some(X509Attestation {
                client_certificates: Some(X509Certificates::primary(pem)),
                ..X509Attestation::default()
            }),
            other: BTreeMap::new(),
        }
    }

    /// X.509 attestation with a group's CA certificate.
    pub fn signing_certificate(pem: String) -> Self {
        Attestation {
            kind: "x509".into(),
            x509: Some(X509Attestation {
                signing_certificates: Some(X509Certificates::primary(pem)),
                ..X509Attestation::default()
            }),
            other: BTreeMap::new(),
        }
    }
}

/// A DPS `IndividualEnrollment` (REST API 2021-10-01), X.509 attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualEnrollment {
    /// The registration ID: with X.509 attestation, the device certificate's CN.
    pub registration_id: String,
    /// The IoT hub device ID to create (default: the registration ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// How the device proves its identity.
    pub attestation: Attestation,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    /// `{"iotEdge": false}`.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// What happens on re-provisioning.
    #[serde(default)]
    pub reprovision_policy: ReprovisionPolicy,
    /// The hubs this enrollment may assign to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    /// How a hub is picked among `iotHubs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// Fields iotca does not model (`etag`, `initialTwin`, timestamps...), kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl IndividualEnrollment {
    /// An X.509 individual enrollment for the device certificate `leaf_pem`.
    pub fn x509(registration_id: &str, leaf_pem: String, status: ProvisioningStatus) -> Self {
        IndividualEnrollment {
            registration_id: registration_id.to_string(),
            device_id: None,
            attestation: Attestation::client_certificate(leaf_pem),
            provisioning_status: status,
            capabilities: Capabilities::default(),
            reprovision_policy: ReprovisionPolicy::default(),
            iot_hubs: None,
            allocation_policy: None,
            other: BTreeMap::new(),
        }
    }

    /// The client certificates, to change them.
    pub fn client_certificates_mut(&mut self) -> Option<&mut X509Certificates> {
        self.attestation.x509.as_mut()?.client_certificates.as_mut()
    }

    /// The client certificates (primary, secondary), if the attestation has them.
    pub fn client_certificates(&self) -> Option<&X509Certificates> {
        self.attestation.x509.as_ref()?.client_certificates.as_ref()
    }
}

/// A DPS `EnrollmentGroup` (REST API 2021-10-01), X.509 attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    /// The group's ID.
    pub enrollment_group_id: String,
    /// The group's CA as signing certificate.
    pub attestation: Attestation,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    /// `{"iotEdge": false}`.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// What happens on re-provisioning.
    #[serde(default)]
    pub reprovision_policy: ReprovisionPolicy,
    /// The hubs this group may assign to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    /// How a hub is picked among `iotHubs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// Fields iotca does not model, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl EnrollmentGroup {
    /// An X.509 enrollment group whose signing certificate is `ca_pem`.
    pub fn x509(group_id: &str, ca_pem: String, status: ProvisioningStatus) -> Self {
        EnrollmentGroup {
            enrollment_group_id: group_id.to_string(),
            attestation: Attestation::signing_certificate(ca_pem),
            provisioning_status: status,
            capabilities: Capabilities::default(),
            reprovision_policy: ReprovisionPolicy::default(),
            iot_hubs: None,
            allocation_policy: None,
            other: BTreeMap::new(),
        }
    }

    /// The signing certificates, to change them.
    pub fn signing_certificates_mut(&mut self) -> Option<&mut X509Certificates> {
        self.attestation
            .x509
            .as_mut()?
            .signing_certificates
            .as_mut()
    }

    /// The signing certificates (primary, secondary), if the attestation has them.
    pub fn signing_certificates(&self) -> Option<&X509Certificates> {
        self.attestation
            .x509
            .as_ref()?
            .signing_certificates
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn individual_body_has_the_dps_shape() {
        let e = IndividualEnrollment::x509(
            "sensor-thl-002",
            "PEM".into(),
            ProvisioningStatus::Disabled,
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"registrationId": "sensor-thl-002",
                   "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": "PEM"}}}},
                   "provisioningStatus": "disabled",
                   "capabilities": {"iotEdge": false},
                   "reprovisionPolicy": {"updateHubAssignment": true, "migrateDeviceData": true}})
        );
    }

    #[test]
    fn optional_fields_appear_when_given_and_unknown_fields_round_trip() {
        let mut e = IndividualEnrollment::x509("d", "PEM".into(), ProvisioningStatus::Enabled);
        e.device_id = Some("dev".into());
        e.iot_hubs = Some(vec!["h.azure-devices.net".into()]);
        e.allocation_policy = Some(AllocationPolicy::GeoLatency);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["deviceId"], "dev");
        assert_eq!(v["iotHubs"], json!(["h.azure-devices.net"]));
        assert_eq!(v["allocationPolicy"], "geoLatency");
        let mut v2 = v.clone();
        v2["etag"] = json!("\"abc\"");
        let back: IndividualEnrollment = serde_json::from_value(v2.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), v2);
    }

    #[test]
    fn group_body_has_the_dps_shape() {
        let g = EnrollmentGroup::x509("fleet", "CA".into(), ProvisioningStatus::Enabled);
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["enrollmentGroupId"], "fleet");
        assert_eq!(
            v["attestation"],
            json!({"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": "CA"}}}})
        );
        assert_eq!(v["provisioningStatus"], "enabled");
    }

    #[test]
    fn a_group_rolls_over_through_its_secondary() {
        let mut g = EnrollmentGroup::x509("fleet", "OLD".into(), ProvisioningStatus::Enabled);
        let c = g.signing_certificates_mut().unwrap();
        assert!(!c.promote_secondary());
        c.set_secondary("NEW".into());
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(
            v["attestation"]["x509"]["signingCertificates"],
            json!({"primary": {"certificate": "OLD"}, "secondary": {"certificate": "NEW"}})
        );
        let c = g.signing_certificates_mut().unwrap();
        assert!(c.promote_secondary());
        assert_eq!(c.pems().collect::<Vec<_>>(), ["NEW"]);
        assert!(!c.remove_secondary());
    }

    #[test]
    fn statuses_parse_strictly() {
        assert_eq!("disabled".parse(), Ok(ProvisioningStatus::Disabled));
        assert!("Disabled".parse::<ProvisioningStatus>().is_err());
        assert!(serde_json::from_value::<ProvisioningStatus>(json!("off")).is_err());
    }
}
