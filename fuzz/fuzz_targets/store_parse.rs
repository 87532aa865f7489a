//! The local DPS store's records: `parse_individual` and `parse_group` over
//! any bytes (JSON or not), as `enroll list`, `provision` and `audit` read
//! `dps/enrollments/*.json` and `dps/enrollmentGroups/*.json` (file stems
//! `d1` and `grp`, as in the seeds, so inputs get past the stem check).
#![no_main]

use std::path::Path;

use iotca::enroll::store::{parse_group, parse_individual};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_individual(Path::new("dps/enrollments/d1.json"), data);
    let _ = parse_group(Path::new("dps/enrollmentGroups/grp.json"), data);
});
