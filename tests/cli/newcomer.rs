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

#[test]
fn ca_init_over_a_ca_says_how_many_devices_it_strands() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let o = run(iotca(&home).args(["ca", "init"]));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(stderr(&o).contains("2 device(s)"), "{}", show(&o));
    let o = ok(iotca(&home).args(["ca", "init", "--force"]));
    let err = stderr(&o);
    assert!(
        err.contains("warning:") && err.contains("2 device(s)"),
        "{err}"
    );
    assert!(err.contains("no longer chain"), "{err}");
    // And it is true: openssl no longer links d-1 to the new CAs.
    assert!(!verifies(
        &home,
        ROOT_CERT,
        Some(INT_CERT),
        "certs/d-1.cert.pem"
    ));
    // A fresh CA with no devices replaces silently (nothing stranded).
    let fresh = t.path().join("fresh");
    ok(iotca(&fresh).args(["ca", "init"]));
    let o = ok(iotca(&fresh).args(["ca", "init", "--force"]));
    assert!(!stderr(&o).contains("no longer chain"), "{}", show(&o));
}

#[test]
fn an_intermediate_inherits_its_parents_algorithm_and_devices_stay_p256() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    ok(iotca(&home).args(["ca", "init", "--algorithm", "rsa2048", "--no-intermediate"]));
    ok(iotca(&home).args(["ca", "intermediate", "line-1"]));
    ok(iotca(&home).args(["ca", "intermediate", "line-2", "--algorithm", "p384"]));
    ok(iotca(&home).args(["device", "create", "d-1", "--ca", "line-1"]));
    let text = cert_text(&home, "certs/line-1.cert.pem");
    assert!(
        text.contains("rsaEncryption") && text.contains("2048 bit"),
        "{text}"
    );
    let text = cert_text(&home, "certs/line-2.cert.pem");
    assert!(
        text.contains("secp384r1") || text.contains("P-384"),
        "{text}"
    );
    let text = cert_text(&home, "certs/d-1.cert.pem");
    assert!(
        text.contains("prime256v1") || text.contains("P-256"),
        "{text}"
    );
    assert!(verifies(
        &home,
        ROOT_CERT,
        Some("certs/line-1.cert.pem"),
        "certs/d-1.cert.pem"
    ));
    let help = stdout(&ok(iotca(&home).args(["ca", "intermediate", "--help"])));
    assert!(
        help.contains("inherits its parent's key algorithm"),
        "{help}"
    );
}

#[test]
fn ca_list_shows_a_copied_edge_ca_once_and_no_verification_device() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    ok(iotca(&home).args(["verification-cert", "1A2B3C4D5E6F7081"]));
    ok(iotca(&home).args(["ca", "intermediate", "edge", "--parent", "intermediate"]));
    // certGen.sh keeps a copy of an edge CA under its own name.
    std::fs::copy(
        home.join("certs/edge.cert.pem"),
        home.join("certs/new-edge-device.cert.pem"),
    )
    .unwrap();
    std::fs::copy(
        home.join("private/edge.key.pem"),
        home.join("private/new-edge-device.key.pem"),
    )
    .unwrap();
    ok(iotca(&home).args(["ca", "init", "--force"]));
    let o = ok(iotca(&home).args(["ca", "list"]));
    let text = stdout(&o);
    assert_eq!(text.matches("CN=edge").count(), 1, "{text}");
    assert!(
        text.contains("verification certificate (not a device)"),
        "{text}"
    );
    assert_eq!(text.matches("1A2B3C4D5E6F7081").count(), 1, "{text}");
    let v: Value =
        serde_json::from_slice(&ok(iotca(&home).args(["ca", "list", "--json"])).stdout).unwrap();
    assert_eq!(v["verification_certs"].as_array().unwrap().len(), 1, "{v}");
    let orphans: Vec<&str> = v["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(!orphans.contains(&"verification-code"), "{orphans:?}");
}

#[test]
fn ca_takes_a_home_name_or_a_file_and_says_which_it_expected() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let full = "certs/d-1-full-chain.cert.pem";
    // A name where a file is read: the home's CA certificate.
    ok(iotca(&home)
        .current_dir(&home)
        .args(["verify", full, "--ca", "intermediate"]));
    ok(iotca(&home)
        .args(["audit", "--ca", "root"])
        .arg(home.join(full)));
    ok(iotca(&home).args(["enroll", "group", "create", "fleet", "--ca", "intermediate"]));
    let rec: Value = serde_json::from_slice(
        &std::fs::read(home.join("dps/enrollmentGroups/fleet.json")).unwrap(),
    )
    .unwrap();
    let pem = rec["attestation"]["x509"]["signingCertificates"]["primary"]["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    let int_pem = std::fs::read_to_string(home.join(INT_CERT)).unwrap();
    assert_eq!(
        pem.trim(),
        int_pem.trim(),
        "the group holds the home's intermediate"
    );
    // A wrong name: says there is no such file and which CAs there are.
    let o = run(iotca(&home)
        .current_dir(&home)
        .args(["verify", full, "--ca", "Intermediate"]));
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no such file; did you mean the home's CA 'intermediate'"),
        "{}",
        show(&o)
    );
    let o = run(iotca(&home)
        .current_dir(&home)
        .args(["verify", full, "--ca", "nope"]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("root, intermediate"), "{}", show(&o));
    // A file where a name is needed: mapped to the home CA it holds.
    ok(iotca(&home)
        .args(["device", "create", "d-3", "--ca"])
        .arg(home.join(ROOT_CERT)));
    assert!(verifies(&home, ROOT_CERT, None, "certs/d-3.cert.pem"));
    ok(iotca(&home)
        .args(["verification-cert", "1A2B3C4D5E6F7081", "--ca"])
        .arg(home.join(INT_CERT)));
    assert_eq!(
        issuer(&home, "certs/verification-code.cert.pem"),
        subject(&home, INT_CERT)
    );
    // A file that is no CA of the home: says a name is expected.
    let o = run(iotca(&home)
        .args(["device", "create", "d-4", "--ca"])
        .arg(home.join("certs/d-1.cert.pem")));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("takes its name"), "{}", show(&o));
    assert!(stderr(&o).contains("--ca root"), "{}", show(&o));
}

#[test]
fn enroll_group_list_show_delete() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    ok(iotca(&home)
        .args(["enroll", "group", "create", "fleet", "--ca"])
        .arg(home.join(INT_CERT)));
    ok(iotca(&home)
        .args(["enroll", "group", "create", "roots", "--ca"])
        .arg(home.join(ROOT_CERT)));
    let o = ok(iotca(&home).args(["enroll", "group", "list"]));
    assert!(
        stdout(&o).contains("fleet") && stdout(&o).contains("roots"),
        "{}",
        show(&o)
    );
    let v: Value = serde_json::from_slice(
        &ok(iotca(&home).args(["enroll", "group", "list", "--json"])).stdout,
    )
    .unwrap();
    let ids: Vec<&str> = v["enrollment_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["enrollmentGroupId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fleet", "roots"]);
    let v: Value =
        serde_json::from_slice(&ok(iotca(&home).args(["enroll", "group", "show", "FLEET"])).stdout)
            .unwrap();
    assert_eq!(v["enrollmentGroupId"], "fleet");
    ok(iotca(&home).args(["enroll", "group", "delete", "fleet"]));
    let o = run(iotca(&home).args(["enroll", "group", "show", "fleet"]));
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("EnrollmentNotFound"), "{}", show(&o));
    let o = run(iotca(&home).args(["enroll", "group", "delete", "fleet"]));
    assert_eq!(code(&o), 1);
    assert_eq!(
        code(&run(
            iotca(&home).args(["enroll", "group", "show", "bad/id"])
        )),
        2
    );
}

#[test]
fn hub_device_update_sets_the_status() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    ok(iotca(&home).args(["hub", "device", "add", "d-1"]));
    ok(iotca(&home).args(["hub", "device", "update", "d-1", "--status", "disabled"]));
    let v: Value =
        serde_json::from_slice(&ok(iotca(&home).args(["hub", "device", "show", "d-1"])).stdout)
            .unwrap();
    assert_eq!(v["status"], "disabled");
    assert_eq!(v["deviceId"], "d-1");
    ok(iotca(&home).args(["hub", "device", "update", "d-1", "--status", "enabled"]));
    let rec: Value =
        serde_json::from_slice(&std::fs::read(home.join("hub/devices/d-1.json")).unwrap()).unwrap();
    assert_eq!(rec["status"], "enabled");
    let o = run(iotca(&home).args(["hub", "device", "update", "nobody", "--status", "enabled"]));
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("DeviceNotFound"), "{}", show(&o));
    let o = run(iotca(&home).args(["hub", "device", "update", "d-1", "--status", "paused"]));
    assert_eq!(code(&o), 2);
}

#[test]
fn skip_existing_with_pfx_writes_the_missing_pfx() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let pw = t.path().join("pw");
    std::fs::write(&pw, "s3cret-pfx\n").unwrap();
    let key_before = std::fs::read(home.join("private/d-1.key.pem")).unwrap();
    let cert_before = std::fs::read(home.join("certs/d-1.cert.pem")).unwrap();
    let o = ok(iotca(&home)
        .args([
            "device",
            "create",
            "d-1",
            "d-2",
            "d-3",
            "--pfx",
            "--skip-existing",
            "--pfx-password-file",
        ])
        .arg(&pw));
    for id in ["d-1", "d-2", "d-3"] {
        let pfx = format!("certs/{id}.cert.pfx");
        assert!(home.join(&pfx).exists(), "{id}: no PFX\n{}", show(&o));
        let out = openssl_ok(
            &[
                "pkcs12",
                "-in",
                &pfx,
                "-passin",
                "pass:s3cret-pfx",
                "-nokeys",
            ],
            &home,
        );
        assert!(
            out.contains(&format!("subject=CN={id}")) || out.contains(&format!("CN = {id}")),
            "{out}"
        );
        assert_eq!(
            out.matches("BEGIN CERTIFICATE").count(),
            3,
            "leaf, intermediate, root: {out}"
        );
    }
    // The existing device was not re-issued.
    assert_eq!(
        std::fs::read(home.join("private/d-1.key.pem")).unwrap(),
        key_before
    );
    assert_eq!(
        std::fs::read(home.join("certs/d-1.cert.pem")).unwrap(),
        cert_before
    );
    // And the key in the PFX is the device's own.
    let key_pub = openssl_ok(&["pkey", "-in", "private/d-1.key.pem", "-pubout"], &home);
    let pfx_key = openssl_ok(
        &[
            "pkcs12",
            "-in",
            "certs/d-1.cert.pfx",
            "-passin",
            "pass:s3cret-pfx",
            "-nocerts",
            "-nodes",
        ],
        &home,
    );
    std::fs::write(home.join("k.pem"), pfx_key).unwrap();
    assert_eq!(
        openssl_ok(&["pkey", "-in", "k.pem", "-pubout"], &home),
        key_pub
    );
}

#[test]
fn dps_trust_outside_a_home_refuses() {
    let t = tempfile::tempdir().unwrap();
    let plain = t.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let o = run(iotca(&plain).args(["dps", "trust"]));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(stderr(&o).contains("not an iotca home"), "{}", show(&o));
    assert_eq!(
        std::fs::read_dir(&plain).unwrap().count(),
        0,
        "nothing was made"
    );
    let (c, _) = json_error(&run(iotca(&plain).args(["dps", "trust", "--json"])));
    assert_eq!(c, "not_a_home");
    let home = home_with_devices(t.path());
    let o = ok(iotca(&home).args(["dps", "trust"]));
    assert!(stdout(&o).contains("BEGIN CERTIFICATE"), "{}", show(&o));
}

#[test]
fn parent_commands_have_exit_codes_and_global_flags_have_their_heading() {
    let t = tempfile::tempdir().unwrap();
    let parents: [&[&str]; 8] = [
        &["ca"],
        &["device"],
        &["enroll"],
        &["enroll", "group"],
        &["hub"],
        &["hub", "device"],
        &["dps"],
        &["template"],
    ];
    for p in parents {
        let o = ok(iotca(t.path()).args(p).arg("--help"));
        let h = stdout(&o);
        assert!(h.contains("EXIT CODES"), "{p:?}: {h}");
        assert!(h.contains("EXAMPLES"), "{p:?}: {h}");
    }
    for cmd in [
        &["verify"][..],
        &["audit"],
        &["device", "create"],
        &["help"],
    ] {
        let h = stdout(&ok(iotca(t.path()).args(cmd).arg("--help")));
        let (options, global) = h
            .split_once("Global options:")
            .unwrap_or_else(|| panic!("{cmd:?}: {h}"));
        assert!(
            !options.contains("--home"),
            "{cmd:?}: --home mixed into the flags\n{h}"
        );
        assert!(
            global.contains("--home") && global.contains("--json") && global.contains("--quiet")
        );
    }
    let o = ok(iotca(t.path()).args(["help", "--help"]));
    assert!(stdout(&o).contains("Usage: iotca help"), "{}", show(&o));
    let a = stdout(&ok(
        iotca(t.path()).args(["help", "enroll", "group", "create"])
    ));
    let b = stdout(&ok(
        iotca(t.path()).args(["enroll", "group", "create", "--help"])
    ));
    assert_eq!(a, b);
    assert_eq!(code(&run(iotca(t.path()).args(["help", "nope"]))), 2);
}

/// The commands listed under `Commands:` in a help text (without `help`).
fn listed_commands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim().is_empty() || !line.starts_with(' ') {
            break;
        }
        if line.starts_with("  ") && !line.starts_with("   ") {
            out.push(line.split_whitespace().next().unwrap().to_string());
        }
    }
    out
}

/// The long flags under `Options:` (not the global ones, not --help/--version).
fn listed_flags(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            inside = line == "Options:";
            continue;
        }
        if !inside {
            continue;
        }
        let t = line.trim_start();
        let t = t
            .strip_prefix("-")
            .and_then(|r| r.get(3..).filter(|_| !t.starts_with("--")))
            .unwrap_or(t);
        if let Some(flag) = t
            .split([' ', '='])
            .next()
            .filter(|f| f.starts_with("--") && *f != "--help" && *f != "--version")
        {
            out.push(flag.to_string());
        }
    }
    out
}

#[test]
fn reference_matches_the_help_and_the_codes() {
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let help = |path: &[String]| stdout(&ok(iotca(t.path()).args(path).arg("-h")));
    let mut todo: Vec<Vec<String>> = listed_commands(&help(&[]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    assert!(todo.len() >= 10);
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let h = help(&path);
        let heading = format!("### `iotca {}`", path.join(" "));
        let start = reference
            .find(&format!("{heading}\n"))
            .unwrap_or_else(|| panic!("docs/reference.md lacks the section {heading}"));
        let rest = &reference[start + heading.len()..];
        let section = &rest[..rest.find("\n### ").unwrap_or(rest.len())];
        for flag in listed_flags(&h) {
            assert!(
                section.contains(&format!("`{flag}")),
                "docs/reference.md: {heading} lacks {flag}"
            );
        }
        seen += 1;
        if path.last().map(String::as_str) != Some("help") {
            for c in listed_commands(&h) {
                if c != "help" {
                    let mut p = path.clone();
                    p.push(c);
                    todo.push(p);
                }
            }
        }
    }
    assert!(seen >= 30, "{seen} commands walked");
    let codes = iotca::problem::ProblemCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(iotca::problem::WarningCode::ALL.iter().map(|c| c.as_str()))
        .chain(iotca::ERROR_CODES.iter().copied())
        .chain([
            "usage",
            "not_a_home",
            "invalid_registration_id",
            "cn_mismatch",
            "cn_case_mismatch",
        ]);
    for code in codes {
        assert!(
            reference.contains(&format!("`{code}`")),
            "docs/reference.md lacks `{code}`"
        );
    }
    for key in [
        "ca_certs",
        "verification_certs",
        "files",
        "EnrollmentNotFound",
        "DeviceNotFound",
    ] {
        assert!(reference.contains(key), "docs/reference.md lacks {key}");
    }
}

#[test]
fn audit_keeps_a_full_chain_in_the_wrong_order_as_a_device_row() {
    let t = tempfile::tempdir().unwrap();
    let home = home_with_devices(t.path());
    let fleet = t.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    let pems = |f: &str| std::fs::read_to_string(home.join(f)).unwrap();
    // intermediate, leaf, root: what a hand-made bundle often looks like.
    let wrong = format!(
        "{}{}{}",
        pems(INT_CERT),
        pems("certs/d-1.cert.pem"),
        pems(ROOT_CERT)
    );
    std::fs::write(fleet.join("d-1-bundle.pem"), wrong).unwrap();
    std::fs::copy(
        home.join("certs/d-2-full-chain.cert.pem"),
        fleet.join("d-2.pem"),
    )
    .unwrap();
    let o = run(iotca(&home)
        .args(["audit", "--json", "--ca"])
        .arg(home.join(ROOT_CERT))
        .arg(&fleet));
    assert_eq!(code(&o), 1, "{}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["devices"].as_array().unwrap();
    let bundle = rows
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("d-1-bundle.pem"))
        .unwrap_or_else(|| panic!("the wrong-order bundle is a device row: {v}"));
    assert_eq!(bundle["chains"], false);
    assert_eq!(bundle["problems"][0]["code"], "leaf_is_ca", "{bundle}");
    assert_eq!(v["summary"]["total"], 2, "{}", v["summary"]);
}

/// Issue 13: `inspect` on a key, a CSR (PEM and DER) or a PFX says what the
/// file is (exit 2), instead of the parser's internals.
#[test]
fn inspect_says_what_a_non_certificate_file_is() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("pki");
    ok(iotca(&home).args(["ca", "init", "-q"]));
    let pw = t.path().join("pw.txt");
    std::fs::write(&pw, "pw\n").unwrap();
    ok(iotca(&home)
        .args(["device", "create", "d1", "--pfx", "--pfx-password-file"])
        .arg(&pw));
    let key = home.join("private/d1.key.pem");
    let d = t.path();
    let k = key.to_str().unwrap();
    openssl_ok(
        &[
            "req", "-new", "-key", k, "-subj", "/CN=d1", "-out", "d1.csr",
        ],
        d,
    );
    openssl_ok(
        &[
            "req",
            "-in",
            "d1.csr",
            "-outform",
            "DER",
            "-out",
            "d1.csr.der",
        ],
        d,
    );
    openssl_ok(
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            k,
            "-outform",
            "DER",
            "-out",
            "d1.key.der",
        ],
        d,
    );
    for (file, says) in [
        (key.clone(), "holds a private key"),
        (d.join("d1.csr"), "certificate signing request"),
        (d.join("d1.csr.der"), "certificate signing request"),
        (d.join("d1.key.der"), "DER private key"),
        (home.join("certs/d1.cert.pfx"), "PKCS#12 (PFX)"),
    ] {
        let o = run(iotca(&home).arg("inspect").arg(&file));
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let e = stderr(&o);
        assert!(
            e.contains(says) && !e.contains("Parsing Error"),
            "{}: {e}",
            file.display()
        );
    }
}
