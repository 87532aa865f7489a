//! DPS enrollments: the pre-flight guard, the DPS record shapes, the local
//! store and the `az` hand-off.
//!
//! - [`check`]: does an enrollment ID match the device certificate (and
//!   chain to the group CA)? Stable problem codes ([`CheckCode`]).
//! - [`schema`]: `IndividualEnrollment` and `EnrollmentGroup` as the DPS
//!   REST API 2021-10-01 spells them.
//! - [`store`]: the records under `dps/` in the home.
//! - [`az`]: the equivalent `az` commands, shell-quoted.
//!
//! The provisioning decision over these records is in [`crate::provision`].

pub mod az;
pub mod check;
pub mod schema;
pub mod store;

pub use check::{CheckCode, CheckProblem, Preflight, check_enrollment, check_group};
pub use schema::{EnrollmentGroup, IndividualEnrollment, ProvisioningStatus};
pub use store::{EnrollmentStore, Listing, StoredGroup, StoredIndividual, Written};

/// Which kind of enrollment a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentKind {
    /// An individual enrollment (one device, by registration ID).
    Individual,
    /// An enrollment group (every device whose chain reaches its CA).
    Group,
}

impl EnrollmentKind {
    /// `individual` or `group`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EnrollmentKind::Individual => "individual",
            EnrollmentKind::Group => "group",
        }
    }
}
