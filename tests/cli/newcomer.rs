//! What a newcomer trips over (issue 13): audit of a home's certs/, JSON
//! errors, exit codes for invalid IDs, CA replacement and algorithms, `--ca`
//! as a name or a file, the az-style commands, and the help.

use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn home_with_devices(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("home");
    ok(iotca(&home).args(["ca", "init"]));
    ok(iotca(&home).args(["device", "create", "d-1", "d-2"]));
    home
}

#[test]
fn audit_of_a_homes_certs_counts_each_device_once_and_cas_apart() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    ok(iotca(&home).args(["verification-cert", "1A2B3C4D5E6F7081"]));
    ok(iotca(&home).args(["ca", "intermediate", "edge"]));
    ok(iotca(&home).args(["device", "create", "e-1", "--ca", "edge"]));
    let int = home.join(INT_CERT);
    let certs = home.join("certs");
    // The help's own example, on a home with a verification certificate.
    let o = run(iotca(&home)
        .args(["audit", "--ca"])
        .arg(&int)
        .arg(&certs)
        .arg("--json"));
    assert_eq!(
        code(&o),
        1,
        "e-1 is under edge, not the intermediate\n{}",
        show(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["summary"];
    let devices = v["devices"].as_array().unwrap();
    let cns: Vec<&str> = devices.iter().map(|d| d["cn"].as_str().unwrap()).collect();
    assert_eq!(cns.len(), 3, "one row a device: {cns:?}");
    for cn in ["d-1", "d-2", "e-1"] {
        let d = devices.iter().find(|d| d["cn"] == cn).unwrap();
        assert_eq!(d["files"].as_array().unwrap().len(), 2, "{d}");
    }
    assert_eq!(s["total"], 3, "{s}");
    assert_eq!(s["verification_certs"], 1, "{s}");
    // root, intermediate (and the chain file holding it), edge.
    assert_eq!(s["ca_certs"], 3, "{s}");
    assert_eq!(s["not_chaining"], 1, "{s}");
    // Without edge's device the example exits 0.
    let o = run(iotca(&home)
        .args(["audit", "--ca"])
        .arg(&int)
        .arg(certs.join("d-1.cert.pem"))
        .arg(certs.join("d-1-full-chain.cert.pem"))
        .arg(certs.join("verification-code.cert.pem"))
        .arg(&int)
        .arg(home.join(ROOT_CERT)));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(stdout(&o).contains("verification_certs 1"), "{}", show(&o));
}

#[test]
fn audit_shows_a_ca_device_and_one_dps_would_refuse() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let foreign = t.path().join("foreign");
    ok(iotca(&foreign).args(["ca", "init", "--root-cn", "Stray Root"]));
    ok(iotca(&home).args(["device", "create", "odd_", "--allow-any-cn"]));
    let fleet = t.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    for f in ["d-1-full-chain.cert.pem", "odd_-full-chain.cert.pem"] {
        std::fs::copy(home.join("certs").join(f), fleet.join(f)).unwrap();
    }
    std::fs::copy(foreign.join(ROOT_CERT), fleet.join("stray.pem")).unwrap();
    // A certificate whose CN holds an escape sequence.
    let o = openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "evil.key",
            "-out",
            "fleet/evil.pem",
            "-days",
            "5",
            "-subj",
            "/CN=evil\x1b[2Jx",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
        t.path(),
    );
    assert!(o.status.success(), "{}", show(&o));
    let int = home.join(INT_CERT);
    let o = run(iotca(&home)
        .env("NO_COLOR", "1")
        .args(["audit", "--ca"])
        .arg(&int)
        .arg(&fleet));
    assert_eq!(code(&o), 1, "{}", show(&o));
    let text = stdout(&o);
    assert!(text.contains("leaf_is_ca"), "{text}");
    assert!(text.contains("stray.pem"), "{text}");
    assert!(text.contains("refused_by_dps"), "{text}");
    assert!(text.contains("odd_"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "untrusted text is escaped: {text:?}"
    );
    assert!(text.contains("evil\\u{1b}"), "{text}");
    let o = run(iotca(&home)
        .args(["audit", "--ca"])
        .arg(&int)
        .arg(&fleet)
        .arg("--json"));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let stray = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("stray.pem"))
        .expect("a CA:TRUE certificate that issues nothing is a device row");
    assert_eq!(stray["chains"], false);
    assert_eq!(stray["problems"][0]["code"], "leaf_is_ca", "{stray}");
    assert_eq!(v["summary"]["not_chaining"], 2, "{}", v["summary"]);
    assert_eq!(v["summary"]["ca_certs"], 0, "{}", v["summary"]);
}

fn json_error(o: &std::process::Output) -> (String, String) {
    assert_eq!(code(o), 2, "{}", show(o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e})\n{}", show(o)));
    let c = v["error"]["code"].as_str().expect("error.code").to_string();
    let m = v["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_string();
    assert!(!stderr(o).trim().is_empty(), "the sentence stays on stderr");
    assert!(stderr(o).contains(&m), "{}", show(o));
    (c, m)
}

#[test]
fn with_json_a_command_that_cannot_run_prints_an_error_document() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let (c, m) = json_error(&run(iotca(&home).args(["ca", "init", "--json"])));
    assert_eq!(c, "exists", "{m}");
    let (c, m) = json_error(&run(iotca(&home)
        .args(["--json", "verify", "nope.pem", "--ca"])
        .arg(home.join(INT_CERT))));
    assert_eq!(c, "io", "{m}");
    assert!(m.contains("nope.pem"), "{m}");
    let (c, _) = json_error(&run(
        iotca(&home).args(["device", "create", "bad/id", "--json"])
    ));
    assert_eq!(c, "invalid_name");
    let garbage = t.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (c, _) = json_error(&run(iotca(&home).args(["inspect", "--json"]).arg(&garbage)));
    assert_eq!(c, "bad_certificate");
    // --json with --format csv is a usage error, not a silent switch.
    let (c, m) = json_error(&run(iotca(&home)
        .args(["audit", "--json", "--format", "csv", "--ca"])
        .arg(home.join(INT_CERT))
        .arg(home.join("certs"))));
    assert_eq!(c, "usage", "{m}");
    assert!(m.contains("--format csv"), "{m}");
    // Without --json, no JSON.
    let o = run(iotca(&home).args(["ca", "init"]));
    assert_eq!(code(&o), 2);
    assert!(o.stdout.is_empty(), "{}", show(&o));
}

#[test]
fn an_invalid_id_exits_2_in_every_command_that_takes_one() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let leaf = home.join("certs/d-1.cert.pem");
    let leaf = leaf.to_str().unwrap();
    let int = home.join(INT_CERT);
    let int = int.to_str().unwrap();
    for id in ["bad/id", "-dash-first", "trailing_"] {
        let cases: Vec<Vec<&str>> = vec![
            vec!["device", "create", id],
            vec!["ca", "intermediate", id],
            vec!["verification-cert", id],
            vec!["enroll", "show", id],
            vec!["enroll", "delete", id],
            vec!["enroll", "create", "--enrollment-id", id, "--cert", leaf],
            vec!["enroll", "group", "create", id, "--ca", int],
            vec!["hub", "device", "add", id],
            vec!["hub", "device", "show", id],
            vec!["hub", "device", "delete", id],
            vec!["deprovision", id, "--cert", leaf],
            vec![
                "enroll",
                "create",
                "--enrollment-id",
                "d-1",
                "--device-id",
                id,
                "--cert",
                leaf,
            ],
            vec!["device", "create", "x-1", "--ca", id],
        ];
        for args in cases {
            if id == "trailing_" && args[0] == "verification-cert" {
                continue; // a verification code may end with '_'
            }
            if id == "trailing_" && args[0] == "hub" {
                continue; // hub device IDs allow it
            }
            if id == "trailing_" && args.contains(&"--device-id") {
                continue;
            }
            // A leading dash reads as a flag: clap's usage error, exit 2 too.
            let o = run(iotca(&home).args(&args));
            assert_eq!(code(&o), 2, "{args:?}\n{}", show(&o));
            assert!(
                stderr(&o).contains(id) || id.starts_with('-'),
                "{args:?}\n{}",
                show(&o)
            );
        }
    }
    assert!(!home.join("dps").exists() && !home.join("hub").exists());
}

#[test]
fn certgen_usage_errors_exit_2() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/certGen.sh");
    let t = tempfile::tempdir().unwrap();
    for args in [
        &[][..],
        &["create_everything"][..],
        &["create_device_certificate"][..],
    ] {
        let o = run(std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .current_dir(t.path())
            .env("IOTCA_BIN", IOTCA));
        assert_eq!(code(&o), 2, "{args:?}\n{}", show(&o));
        assert!(stderr(&o).contains("Usage"), "{}", show(&o));
    }
}
