//! `iotca audit` on a generated fleet: every row's verdict and every summary
//! count, CSV and JSON shapes, bad input, and exit codes.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use serde_json::Value;

fn iotca(home: &Path) -> Command {
    let mut c = Command::cargo_bin("iotca").unwrap();
    c.arg("--home")
        .arg(home)
        .env_remove("IOTCA_HOME")
        .env("NO_COLOR", "1");
    c
}

fn ok(home: &Path, args: &[&str]) {
    iotca(home).args(args).arg("-q").assert().success();
}

struct Fleet {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    fleet: PathBuf,
    group_ca: PathBuf,
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// A fleet directory with one file per case, in nested folders.
fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let foreign = tmp.path().join("foreign");
    ok(&home, &["ca", "init"]);
    ok(&foreign, &["ca", "init"]);
    ok(&home, &["device", "create", "good-1", "good-2", "good-3"]);
    ok(&home, &["device", "create", "soon-1", "--days", "10"]);
    ok(&home, &["device", "create", "short-1", "--days", "1"]);
    ok(&foreign, &["device", "create", "alien-1"]);
    // Another PKI with other names: the issuer is simply not found.
    let other = tmp.path().join("other");
    ok(
        &other,
        &[
            "ca",
            "init",
            "--root-cn",
            "Other Root",
            "--intermediate-cn",
            "Other Devices",
        ],
    );
    ok(&other, &["device", "create", "stranger-1"]);
    let certs = home.join("certs");
    let fleet = tmp.path().join("fleet");
    copy(
        &certs.join("good-1-full-chain.cert.pem"),
        &fleet.join("line-a/good-1.pem"),
    );
    copy(
        &certs.join("good-2-full-chain.cert.pem"),
        &fleet.join("line-a/deeper/good-2.crt"),
    );
    copy(
        &certs.join("soon-1-full-chain.cert.pem"),
        &fleet.join("line-b/soon-1.pem"),
    );
    copy(
        &certs.join("short-1-full-chain.cert.pem"),
        &fleet.join("line-b/short-1.pem"),
    );
    copy(
        &foreign.join("certs/alien-1-full-chain.cert.pem"),
        &fleet.join("line-b/alien-1.pem"),
    );
    copy(
        &other.join("certs/stranger-1-full-chain.cert.pem"),
        &fleet.join("line-b/stranger-1.pem"),
    );
    // DER: a single certificate, so it must be checked against the root
    // only through the leaf; the group CA here is the intermediate.
    std::fs::create_dir_all(fleet.join("line-c")).unwrap();
    let st = Std::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(certs.join("good-3.cert.pem"))
        .arg("-out")
        .arg(fleet.join("line-c/good-3.der"))
        .status();
    assert!(st.unwrap().success());
    // Tampered: one bit of the leaf's signature flipped.
    let pem = std::fs::read_to_string(certs.join("good-1.cert.pem")).unwrap();
    let mut der = pem::parse(&pem).unwrap().into_contents();
    let n = der.len();
    der[n - 3] ^= 0x01;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE", der));
    std::fs::write(fleet.join("line-c/tampered.pem"), tampered).unwrap();
    // Garbage and a file that is not a certificate extension (ignored).
    std::fs::write(fleet.join("line-c/garbage.pem"), b"\x00\x01garbage bytes").unwrap();
    std::fs::write(fleet.join("line-c/empty.cer"), b"").unwrap();
    std::fs::write(fleet.join("line-c/notes.txt"), b"not audited").unwrap();
    // A CA certificate and a key: left out, counted.
    copy(
        &certs.join("azure-iot-test-only.root.ca.cert.pem"),
        &fleet.join("cas/root.pem"),
    );
    copy(
        &home.join("private/good-1.key.pem"),
        &fleet.join("keys/good-1.key.pem"),
    );
    let group_ca = certs.join("azure-iot-test-only.intermediate.cert.pem");
    Fleet {
        _tmp: tmp,
        home,
        fleet,
        group_ca,
    }
}

fn audit_json(f: &Fleet, extra: &[&str]) -> (i32, Value) {
    let out = iotca(&f.home)
        .args(["audit", "--ca"])
        .arg(&f.group_ca)
        .arg(&f.fleet)
        .args(extra)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn row<'a>(v: &'a Value, suffix: &str) -> &'a Value {
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no row for {suffix}"))
}

fn codes(r: &Value) -> Vec<String> {
    r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_row_and_every_count() {
    let f = fleet();
    let (code, v) = audit_json(&f, &[]);
    assert_eq!(code, 1, "a failing device makes the exit code 1");
    for good in [
        "line-a/good-1.pem",
        "line-a/deeper/good-2.crt",
        "line-b/soon-1.pem",
        "line-b/short-1.pem",
    ] {
        let r = row(&v, good);
        assert_eq!(r["chains"], true, "{good}: {r}");
        assert!(codes(r).is_empty(), "{good}");
    }
    assert_eq!(row(&v, "line-a/good-1.pem")["cn"], "good-1");
    // The DER file holds only the leaf; the group CA is its issuer, so it chains.
    assert_eq!(row(&v, "good-3.der")["chains"], true);
    assert_eq!(codes(row(&v, "alien-1.pem")), ["signature_invalid"]);
    assert_eq!(codes(row(&v, "stranger-1.pem")), ["issuer_not_found"]);
    assert_eq!(codes(row(&v, "tampered.pem")), ["signature_invalid"]);
    assert_eq!(codes(row(&v, "garbage.pem")), ["malformed"]);
    assert_eq!(codes(row(&v, "empty.cer")), ["no_certificate"]);
    let soon = row(&v, "soon-1.pem")["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&soon), "{soon}");
    let s = &v["summary"];
    assert_eq!(s["total"], 10, "{s}");
    assert_eq!(s["chains"], 5);
    assert_eq!(s["not_chaining"], 5);
    assert_eq!(s["unreadable"], 2);
    assert_eq!(s["expired"], 0);
    assert_eq!(s["expiring"], 2, "soon-1 and short-1 expire within 30 days");
    assert_eq!(s["blocked"], 0);
    assert_eq!(s["ca_certs"], 1);
    assert_eq!(s["skipped_keys"], 1);
    assert!(
        !v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("notes.txt")),
        "only .pem .crt .cer .der are read from directories"
    );
}

#[test]
fn at_a_later_time_short_lived_devices_are_expired() {
    let f = fleet();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    let at = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, v) = audit_json(&f, &["--at", &at, "--expiring-within", "5"]);
    let r = row(&v, "short-1.pem");
    assert_eq!(r["chains"], false);
    assert_eq!(codes(r), ["expired"]);
    assert!(r["days_left"].as_i64().unwrap() < 0);
    assert_eq!(v["summary"]["expired"], 1);
    assert_eq!(
        v["summary"]["expiring"], 0,
        "soon-1 has 7 days left, outside a 5-day window"
    );
}

#[test]
fn csv_has_a_header_and_one_row_per_device() {
    let f = fleet();
    let out = iotca(&f.home)
        .args(["audit", "--ca"])
        .arg(&f.group_ca)
        .arg(&f.fleet)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "path,cn,serial,chains,problems,not_after,days_left,enrollment,provisioning"
    );
    assert_eq!(lines.len(), 1 + 10);
    for l in &lines[1..] {
        assert_eq!(l.split(',').count(), 9, "{l}");
    }
    let stranger = lines.iter().find(|l| l.contains("stranger-1.pem")).unwrap();
    assert!(
        stranger.contains(",stranger-1,") && stranger.contains(",false,issuer_not_found,"),
        "{stranger}"
    );
}

#[test]
fn table_lists_failures_first_then_the_summary_without_colour_when_piped() {
    let f = fleet();
    let out = iotca(&f.home)
        .args(["audit", "--ca"])
        .arg(&f.group_ca)
        .arg(&f.fleet)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let first_problem = text.find("issuer_not_found").unwrap();
    let summary = text.find("Summary").unwrap();
    assert!(first_problem < summary);
    assert!(
        text.contains("total 10  chains 5  not_chaining 5"),
        "{text}"
    );
    assert!(text.contains("expiring (2)"), "{text}");
}

#[test]
fn all_good_exits_zero_and_json_flag_equals_format_json() {
    let f = fleet();
    let out = iotca(&f.home)
        .args(["audit", "--json", "--ca"])
        .arg(&f.group_ca)
        .arg(f.fleet.join("line-a"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["total"], 2);
    assert_eq!(v["summary"]["chains"], 2);
    for r in v["devices"].as_array().unwrap() {
        for key in [
            "path",
            "cn",
            "chains",
            "problems",
            "not_after",
            "enrollment",
            "provisioning",
        ] {
            assert!(r.get(key).is_some(), "row lacks {key}: {r}");
        }
    }
}

#[test]
fn the_root_as_group_ca_accepts_full_chains() {
    let f = fleet();
    let root = f.home.join("certs/azure-iot-test-only.root.ca.cert.pem");
    let out = iotca(&f.home)
        .args(["audit", "--json", "--ca"])
        .arg(&root)
        .arg(f.fleet.join("line-a"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_input_never_stops_the_audit() {
    let f = fleet();
    let odd = f.fleet.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    // A symlink loop, thousands of non-certificate files, and an 8 MB file of zeros.
    std::os::unix::fs::symlink(&f.fleet, odd.join("loop")).unwrap();
    for i in 0..3000 {
        std::fs::write(odd.join(format!("n{i}.txt")), b"x").unwrap();
    }
    std::fs::write(odd.join("zeros.pem"), vec![0u8; 8 << 20]).unwrap();
    let start = std::time::Instant::now();
    let (code, v) = audit_json(&f, &[]);
    assert_eq!(code, 1);
    assert_eq!(codes(row(&v, "zeros.pem")), ["malformed"]);
    assert_eq!(v["summary"]["total"], 11);
    assert!(
        start.elapsed().as_secs() < 60,
        "the loop must not be followed forever"
    );
}

#[test]
fn unusable_arguments_exit_2_with_a_sentence() {
    let f = fleet();
    // A CA file that is garbage.
    let bad = f.fleet.join("line-c/garbage.pem");
    let out = iotca(&f.home)
        .args(["audit", "--ca"])
        .arg(&bad)
        .arg(&f.fleet)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("garbage.pem") && !err.contains("panicked"),
        "{err}"
    );
    // A path that does not exist.
    let out = iotca(&f.home)
        .args(["audit", "--ca"])
        .arg(&f.group_ca)
        .arg(f.fleet.join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    // A bad --at.
    let out = iotca(&f.home)
        .args(["audit", "--at", "yesterday", "--ca"])
        .arg(&f.group_ca)
        .arg(&f.fleet)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("yesterday"));
}

#[test]
fn a_ca_that_is_not_a_ca_fails_every_device_but_the_audit_finishes() {
    let f = fleet();
    let leaf_as_ca = f.home.join("certs/good-2.cert.pem");
    let (code, v) = {
        let out = iotca(&f.home)
            .args(["audit", "--json", "--ca"])
            .arg(&leaf_as_ca)
            .arg(f.fleet.join("line-a"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(code, 1);
    assert_eq!(v["summary"]["chains"], 0);
    assert_eq!(v["summary"]["total"], 2);
}

#[test]
fn with_a_local_dps_store_rows_show_enrollment_and_the_dps_decision() {
    let f = fleet();
    let h = &f.home;
    let ca = f.group_ca.to_string_lossy().into_owned();
    ok(
        h,
        &["enroll", "group", "create", "fleet-group", "--ca", &ca],
    );
    let cert = h.join("certs/good-2.cert.pem");
    iotca(h)
        .args([
            "enroll",
            "create",
            "--enrollment-id",
            "good-2",
            "--status",
            "disabled",
            "--cert",
        ])
        .arg(&cert)
        .arg("-q")
        .assert()
        .success();
    let (code, v) = audit_json(&f, &[]);
    assert_eq!(code, 1);
    let g2 = row(&v, "deeper/good-2.crt");
    assert_eq!(g2["chains"], true, "it still chains: the CA did not change");
    assert_eq!(g2["enrollment"], "disabled");
    assert_eq!(g2["provisioning"], "disabled");
    let g1 = row(&v, "line-a/good-1.pem");
    assert_eq!(g1["enrollment"], Value::Null);
    assert_eq!(g1["provisioning"], "assigned");
    assert_eq!(row(&v, "stranger-1.pem")["provisioning"], "failed");
    assert_eq!(v["summary"]["blocked"], 1);
    // The table names the blocked device.
    let out = iotca(h)
        .args(["audit", "--ca"])
        .arg(&f.group_ca)
        .arg(&f.fleet)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let blocked = text.find("blocked (1)").expect(&text);
    assert!(text[blocked..].contains("good-2"), "{text}");
}
