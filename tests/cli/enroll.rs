//! Enrollment, provisioning, the hub registry and deprovisioning, run with
//! the real binary against temporary homes (DESIGN section 6, issue 4).

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

const INTER: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
const ROOT: &str = "certs/azure-iot-test-only.root.ca.cert.pem";

fn iotca(home: &Path) -> Command {
    let mut c = Command::cargo_bin("iotca").unwrap();
    c.arg("--home").arg(home).env_remove("IOTCA_HOME");
    c
}

fn run(home: &Path, args: &[&str]) -> Output {
    iotca(home).args(args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// A PKI home with a root, the default intermediate and the given devices.
fn pki(dir: &Path, devices: &[&str]) -> PathBuf {
    let h = dir.to_path_buf();
    let o = run(&h, &["ca", "init"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut args = vec!["device", "create"];
    args.extend_from_slice(devices);
    let o = run(&h, &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    h
}

fn p(home: &Path, rel: &str) -> String {
    home.join(rel).to_string_lossy().into_owned()
}

fn full(home: &Path, id: &str) -> String {
    p(home, &format!("certs/{id}-full-chain.cert.pem"))
}

fn leaf(home: &Path, id: &str) -> String {
    p(home, &format!("certs/{id}.cert.pem"))
}

fn status(home: &Path, cert: &str) -> (i32, Value) {
    let o = run(home, &["provision", cert, "--json"]);
    (code(&o), json(&o))
}

/// Every file under `dir`, relative, sorted (to prove nothing was written).
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_path_buf());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn the_deprovisioning_scenario_end_to_end() {
    let t = tempfile::tempdir().unwrap();
    let h = pki(&t.path().join("pki"), &["sensor-thl-001", "sensor-thl-002"]);
    let foreign = pki(&t.path().join("foreign"), &["sensor-thl-002"]);

    // A group over the intermediate: both devices assigned.
    let o = run(
        &h,
        &["enroll", "group", "create", "fleet", "--ca", &p(&h, INTER)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for id in ["sensor-thl-001", "sensor-thl-002"] {
        let (c, d) = status(&h, &full(&h, id));
        assert_eq!(c, 0, "{d}");
        assert_eq!(d["status"], "assigned");
        assert_eq!(d["registration_id"], id);
        assert_eq!(d["device_id"], id);
        assert_eq!(d["assigned_hub"], "iotca-local-hub.azure-devices.net");
        assert_eq!(d["enrollment"]["kind"], "group");
        assert_eq!(d["enrollment"]["id"], "fleet");
    }
    // The foreign device (same CN, same CA names, other keys) is not in the group.
    let (c, d) = status(&h, &full(&foreign, "sensor-thl-002"));
    assert_eq!((c, d["status"].as_str()), (1, Some("failed")), "{d}");

    // A mismatched disabled enrollment is refused and nothing is stored.
    let before = tree(&h);
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-02",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
            "--status",
            "disabled",
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("cn_mismatch"), "{}", stderr(&o));
    assert_eq!(tree(&h), before);
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-002")).1["status"],
        "assigned"
    );

    // The correct disabled enrollment.
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &full(&h, "sensor-thl-002"),
            "--status",
            "disabled",
            "--group-ca",
            &p(&h, INTER),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("read back: provisioningStatus disabled"),
        "{}",
        stdout(&o)
    );
    let rec: Value = serde_json::from_slice(
        &std::fs::read(h.join("dps/enrollments/sensor-thl-002.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["provisioningStatus"], "disabled");

    // -002 disabled, -001 still assigned, the foreign -002 disabled too (DPS looks up by ID).
    let (c, d) = status(&h, &full(&h, "sensor-thl-002"));
    assert_eq!((c, d["status"].as_str()), (1, Some("disabled")), "{d}");
    assert_eq!(d["enrollment"]["kind"], "individual");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("registration status is disabled")
    );
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-001")).1["status"],
        "assigned"
    );
    assert_eq!(
        status(&h, &full(&foreign, "sensor-thl-002")).1["status"],
        "disabled"
    );
    let o = run(&h, &["provision", &full(&h, "sensor-thl-002")]);
    assert!(
        stdout(&o).starts_with("DISABLED: registration status is disabled"),
        "{}",
        stdout(&o)
    );

    // The enrollment deleted: -002 assigned again, the foreign device failed.
    let o = run(&h, &["enroll", "delete", "sensor-thl-002"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-002")).1["status"],
        "assigned"
    );
    assert_eq!(
        status(&h, &full(&foreign, "sensor-thl-002")).1["status"],
        "failed"
    );
    assert_eq!(code(&run(&h, &["enroll", "show", "sensor-thl-002"])), 1);

    // Deprovision with the wrong certificate changes nothing.
    let o = run(&h, &["hub", "device", "add", "sensor-thl-002"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = tree(&h);
    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &leaf(&h, "sensor-thl-001"),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("cn_mismatch"));
    assert_eq!(tree(&h), before);
    // A foreign certificate with the right CN fails the group check.
    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &full(&foreign, "sensor-thl-002"),
            "--group-ca",
            &p(&h, INTER),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does_not_chain"), "{}", stderr(&o));
    assert_eq!(tree(&h), before);

    // Deprovision in one step.
    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &full(&h, "sensor-thl-002"),
            "--group-ca",
            &p(&h, INTER),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d = json(&o);
    assert_eq!(d["ok"], true);
    assert_eq!(d["enrollment"]["action"], "created");
    assert_eq!(d["enrollment"]["provisioningStatus"], "disabled");
    assert_eq!(d["hub"]["action"], "deleted");
    assert_eq!(d["confirmed"]["enrollment_disabled"], true);
    assert_eq!(d["confirmed"]["device_not_found"], true);
    assert_eq!(d["provision"]["status"], "disabled");
    let o = run(&h, &["hub", "device", "show", "sensor-thl-002"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("DeviceNotFound"));
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-002")).1["status"],
        "disabled"
    );
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-001")).1["status"],
        "assigned"
    );
    // Again: idempotent.
    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["enrollment"]["action"], "unchanged");
    assert_eq!(json(&o)["hub"]["action"], "not_found");

    // An enabled enrollment for the ID is replaced (and archived).
    let o = run(&h, &["enroll", "delete", "sensor-thl-002"]);
    assert_eq!(code(&o), 0);
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-002")).1["enrollment"]["kind"],
        "individual"
    );
    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d = json(&o);
    assert_eq!(d["enrollment"]["action"], "replaced");
    assert!(
        Path::new(d["enrollment"]["archived_to"].as_str().unwrap())
            .join("dps/enrollments/sensor-thl-002.json")
            .exists()
    );

    // list shows both kinds.
    let o = run(&h, &["enroll", "list", "--json"]);
    assert_eq!(code(&o), 0);
    let l = json(&o);
    assert_eq!(l["enrollments"][0]["registrationId"], "sensor-thl-002");
    assert_eq!(l["enrollment_groups"][0]["enrollmentGroupId"], "fleet");
}

#[test]
fn the_rest_body_follows_the_dps_schema_field_by_field() {
    let t = tempfile::tempdir().unwrap();
    let h = pki(t.path(), &["sensor-thl-002"]);
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &full(&h, "sensor-thl-002"),
            "--status",
            "disabled",
            "--to",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let b = json(&o);
    let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "attestation",
            "capabilities",
            "provisioningStatus",
            "registrationId",
            "reprovisionPolicy"
        ]
    );
    assert_eq!(b["registrationId"], "sensor-thl-002");
    assert_eq!(b["provisioningStatus"], "disabled");
    assert_eq!(b["capabilities"], serde_json::json!({"iotEdge": false}));
    assert_eq!(
        b["reprovisionPolicy"],
        serde_json::json!({"updateHubAssignment": true, "migrateDeviceData": true})
    );
    assert_eq!(b["attestation"]["type"], "x509");
    let x509 = b["attestation"]["x509"].as_object().unwrap();
    assert_eq!(x509.keys().collect::<Vec<_>>(), ["clientCertificates"]);
    let primary = &b["attestation"]["x509"]["clientCertificates"]["primary"];
    assert_eq!(primary.as_object().unwrap().len(), 1);
    let pem = primary["certificate"].as_str().unwrap();
    // Only the leaf goes into the enrollment, byte for byte the device's certificate.
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(
        pem.trim(),
        std::fs::read_to_string(leaf(&h, "sensor-thl-002"))
            .unwrap()
            .trim()
    );
    // Nothing was written with --to json.
    assert!(!h.join("dps").exists());

    // The default status is enabled; optional fields appear when given.
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
            "--device-id",
            "thl-002",
            "--iot-hub",
            "hub-x.azure-devices.net",
            "--allocation-policy",
            "static",
            "--to",
            "json",
        ],
    );
    let b = json(&o);
    assert_eq!(b["provisioningStatus"], "enabled");
    assert_eq!(b["deviceId"], "thl-002");
    assert_eq!(b["iotHubs"], serde_json::json!(["hub-x.azure-devices.net"]));
    assert_eq!(b["allocationPolicy"], "static");

    // A group body.
    let o = run(
        &h,
        &[
            "enroll",
            "group",
            "create",
            "fleet",
            "--ca",
            &p(&h, INTER),
            "--to",
            "json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let g = json(&o);
    assert_eq!(g["enrollmentGroupId"], "fleet");
    assert_eq!(g["provisioningStatus"], "enabled");
    assert_eq!(g["attestation"]["type"], "x509");
    let ca_pem = g["attestation"]["x509"]["signingCertificates"]["primary"]["certificate"]
        .as_str()
        .unwrap();
    assert_eq!(
        ca_pem.trim(),
        std::fs::read_to_string(p(&h, INTER)).unwrap().trim()
    );
    assert!(g.get("registrationId").is_none());

    // A group over a leaf is refused.
    let o = run(
        &h,
        &[
            "enroll",
            "group",
            "create",
            "fleet",
            "--ca",
            &leaf(&h, "sensor-thl-002"),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("certificate_not_ca"));
    assert!(!h.join("dps").exists());
}

/// Runs the printed command lines through bash with `az` replaced by a
/// function printing one argument per line.
fn az_args(commands: &str, env: &[(&str, &str)]) -> Vec<Vec<String>> {
    commands
        .lines()
        .map(|line| {
            let script = format!("az() {{ printf '%s\\n' \"$@\"; }}\n{line}");
            let mut c = std::process::Command::new("bash");
            c.arg("-c").arg(script);
            for (k, v) in env {
                c.env(k, v);
            }
            let o = c.output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("{name} in {args:?}"));
    &args[i + 1]
}

#[test]
fn az_commands_are_exact_and_shell_safe() {
    let t = tempfile::tempdir().unwrap();
    let h = pki(&t.path().join("pki"), &["sensor-thl-002"]);
    // A certificate in a directory whose name a shell would mangle.
    let odd = t.path().join("odd dir's $HOME `x` !(y)");
    std::fs::create_dir(&odd).unwrap();
    let cert = odd.join("dev.pem");
    std::fs::copy(leaf(&h, "sensor-thl-002"), &cert).unwrap();
    let cert = cert.to_string_lossy().into_owned();

    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &cert,
            "--status",
            "disabled",
            "--to",
            "az",
            "--dps-name",
            "dps-X",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with(
        "az iot dps enrollment create --dps-name dps-X --enrollment-id sensor-thl-002 --attestation-type x509 --certificate-path '"
    ), "{text}");
    assert!(
        text.trim_end().ends_with("--provisioning-status disabled"),
        "{text}"
    );
    let args = &az_args(&text, &[])[0];
    assert_eq!(&args[..3], ["iot", "dps", "enrollment"]);
    assert_eq!(flag(args, "--certificate-path"), cert);
    assert_eq!(flag(args, "--enrollment-id"), "sensor-thl-002");
    assert_eq!(flag(args, "--provisioning-status"), "disabled");

    // A device ID with every odd character IoT hub allows round-trips.
    let odd_id = "it's$(id)*?!,=@%(x)$HOME";
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &cert,
            "--device-id",
            odd_id,
            "--to",
            "az",
            "--dps-name",
            "my dps",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let args = &az_args(&stdout(&o), &[])[0];
    assert_eq!(flag(args, "--device-id"), odd_id);
    assert_eq!(flag(args, "--dps-name"), "my dps");
    assert_eq!(flag(args, "--provisioning-status"), "enabled");

    // --to az needs --dps-name for enroll create.
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &cert,
            "--to",
            "az",
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(stdout(&o).is_empty());

    // deprovision --to az: the two commands, variables standing in for missing names;
    // the full-chain file is swapped for the home's leaf file (az sends the whole file).
    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &full(&h, "sensor-thl-002"),
            "--to",
            "az",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with(
        "az iot dps enrollment create --dps-name \"$DPS_NAME\" --enrollment-id sensor-thl-002"
    ));
    assert_eq!(
        lines[1],
        "az iot hub device-identity delete --hub-name \"$HUB_NAME\" --device-id sensor-thl-002"
    );
    let all = az_args(&text, &[("DPS_NAME", "dps X"), ("HUB_NAME", "hub-X")]);
    assert_eq!(flag(&all[0], "--dps-name"), "dps X");
    assert_eq!(
        flag(&all[0], "--certificate-path"),
        leaf(&h, "sensor-thl-002")
    );
    assert_eq!(flag(&all[0], "--provisioning-status"), "disabled");
    assert_eq!(&all[1][..3], ["iot", "hub", "device-identity"]);
    assert_eq!(flag(&all[1], "--hub-name"), "hub-X");
    assert_eq!(flag(&all[1], "--device-id"), "sensor-thl-002");
    // Nothing was touched locally.
    assert!(!h.join("dps").exists());

    let o = run(
        &h,
        &[
            "deprovision",
            "sensor-thl-002",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
            "--to",
            "az",
            "--dps-name",
            "dps-X",
            "--hub-name",
            "hub-X",
        ],
    );
    assert!(stdout(&o).contains("--dps-name dps-X "));
    assert!(stdout(&o).contains("--hub-name hub-X "));

    // Group command.
    let o = run(
        &h,
        &[
            "enroll",
            "group",
            "create",
            "fleet",
            "--ca",
            &p(&h, ROOT),
            "--to",
            "az",
            "--dps-name",
            "dps-X",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let args = &az_args(&stdout(&o), &[])[0];
    assert_eq!(&args[..3], ["iot", "dps", "enrollment-group"]);
    assert_eq!(flag(args, "--enrollment-id"), "fleet");
    assert_eq!(flag(args, "--certificate-path"), p(&h, ROOT));
}

/// Makes a self-signed certificate with openssl.
fn openssl_cert(dir: &Path, name: &str, subj: &str) -> String {
    let out = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-subj",
            subj,
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.to_string_lossy().into_owned()
}

/// Makes a certificate with rcgen.
fn rcgen_cert(dir: &Path, name: &str, cn: &str, ca: bool, expired: bool) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    if expired {
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(60);
        params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    path.to_string_lossy().into_owned()
}

fn check_codes(home: &Path, id: &str, cert: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "enroll",
        "check",
        "--enrollment-id",
        id,
        "--cert",
        cert,
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = run(home, &args);
    (code(&o), json(&o))
}

fn codes(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_check_code_from_a_real_certificate() {
    let t = tempfile::tempdir().unwrap();
    let h = pki(&t.path().join("pki"), &["sensor-thl-002"]);
    let foreign = pki(&t.path().join("foreign"), &["sensor-thl-002"]);
    let d = t.path();

    // ok
    let (c, v) = check_codes(
        &h,
        "sensor-thl-002",
        &full(&h, "sensor-thl-002"),
        &["--group-ca", &p(&h, INTER)],
    );
    assert_eq!((c, v["ok"].as_bool()), (0, Some(true)), "{v}");
    assert_eq!(v["enrollment_id"], "sensor-thl-002");
    assert_eq!(v["cn"], "sensor-thl-002");
    assert_eq!(v["problems"], serde_json::json!([]));

    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "bad/id..",
            leaf(&h, "sensor-thl-002"),
            vec![],
            "invalid_registration_id",
        ),
        (
            "no-cn",
            openssl_cert(d, "nocn", "/O=Contoso/OU=Lab"),
            vec![],
            "missing_cn",
        ),
        (
            "a-1",
            openssl_cert(d, "two", "/CN=a-1/CN=b-2"),
            vec![],
            "multiple_cn",
        ),
        (
            "sensor-thl-02",
            leaf(&h, "sensor-thl-002"),
            vec![],
            "cn_mismatch",
        ),
        (
            "SENSOR-thl-002",
            leaf(&h, "sensor-thl-002"),
            vec![],
            "cn_case_mismatch",
        ),
        (
            "ca-dev",
            rcgen_cert(d, "ca", "ca-dev", true, false),
            vec![],
            "certificate_is_ca",
        ),
        (
            "old-dev",
            rcgen_cert(d, "old", "old-dev", false, true),
            vec![],
            "certificate_expired",
        ),
    ];
    for (id, cert, extra, want) in &cases {
        let (c, v) = check_codes(&h, id, cert, extra);
        assert_eq!(c, 1, "{want}: {v}");
        assert_eq!(v["ok"], false);
        assert!(codes(&v).contains(&want.to_string()), "{want}: {v}");
        for p in v["problems"].as_array().unwrap() {
            assert!(!p["message"].as_str().unwrap().is_empty());
        }
    }
    // A foreign chain does not chain, with the verify problems attached.
    let (c, v) = check_codes(
        &h,
        "sensor-thl-002",
        &full(&foreign, "sensor-thl-002"),
        &["--group-ca", &p(&h, INTER)],
    );
    assert_eq!(c, 1);
    assert_eq!(codes(&v), ["does_not_chain"]);
    let vp = v["problems"][0]["problems"].as_array().unwrap();
    assert!(!vp.is_empty());
    assert!(vp[0]["code"].is_string() && vp[0]["subject"].is_string());
    // Every problem that applies is listed.
    let (_, v) = check_codes(
        &h,
        "bad id",
        &rcgen_cert(d, "both", "Bad-Id", true, true),
        &[],
    );
    let got = codes(&v);
    for want in [
        "invalid_registration_id",
        "cn_mismatch",
        "certificate_is_ca",
        "certificate_expired",
    ] {
        assert!(got.contains(&want.to_string()), "{want}: {got:?}");
    }

    // Text shows both strings and marks the first difference.
    let o = run(
        &h,
        &[
            "enroll",
            "check",
            "--enrollment-id",
            "sensor-thl-02",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
        ],
    );
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "enrollment ID:    sensor-thl-02");
    assert_eq!(lines[1], "certificate CN:   sensor-thl-002");
    let caret = lines[2].find('^').unwrap();
    assert_eq!(caret, "certificate CN:   sensor-thl-0".len());
    assert!(lines[2].contains("character 13"));
    assert!(text.contains("cn_mismatch"));
}

#[test]
fn bad_input_exits_2_or_refuses_with_a_code_never_panics() {
    let t = tempfile::tempdir().unwrap();
    let h = pki(&t.path().join("pki"), &["sensor-thl-001", "sensor-thl-002"]);
    let no_panic = |o: &Output| {
        let e = stderr(o);
        assert!(
            !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
            "{e}"
        );
    };

    // Unreadable files, a directory, a private key as --cert.
    for cert in [
        p(&h, "certs/missing.pem"),
        p(&h, "certs"),
        p(&h, "private/sensor-thl-002.key.pem"),
    ] {
        for args in [
            vec![
                "enroll",
                "check",
                "--enrollment-id",
                "sensor-thl-002",
                "--cert",
                &cert,
            ],
            vec![
                "enroll",
                "create",
                "--enrollment-id",
                "sensor-thl-002",
                "--cert",
                &cert,
            ],
            vec!["provision", &cert],
            vec!["deprovision", "sensor-thl-002", "--cert", &cert],
            vec!["hub", "device", "add", "x1", "--cert", &cert],
        ] {
            let o = run(&h, &args);
            assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
            no_panic(&o);
            assert!(
                stderr(&o).contains(&cert),
                "{args:?} names the file: {}",
                stderr(&o)
            );
        }
    }
    let o = run(
        &h,
        &[
            "enroll",
            "check",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &p(&h, "private/sensor-thl-002.key.pem"),
        ],
    );
    assert!(stderr(&o).contains("private key"), "{}", stderr(&o));

    // IDs that would leave the home.
    for id in ["../x", "../../etc/passwd", "a/b", "..", "é1"] {
        for args in [
            vec!["enroll", "show", id],
            vec!["enroll", "delete", id],
            vec!["hub", "device", "show", id],
            vec!["hub", "device", "add", id],
            vec!["hub", "device", "delete", id],
            vec!["enroll", "group", "create", id, "--ca", INTER],
        ] {
            let o = run(&h, &args);
            assert_eq!(code(&o), 2, "an invalid ID cannot run: {args:?}");
            no_panic(&o);
        }
        let o = run(
            &h,
            &[
                "enroll",
                "create",
                "--enrollment-id",
                id,
                "--cert",
                &leaf(&h, "sensor-thl-002"),
            ],
        );
        assert_eq!(code(&o), 2, "an invalid ID cannot run");
        assert!(stderr(&o).contains("registration ID"));
        let o = run(
            &h,
            &["deprovision", id, "--cert", &leaf(&h, "sensor-thl-002")],
        );
        assert_eq!(code(&o), 2, "an invalid ID cannot run");
    }
    assert!(!h.join("dps").exists() && !h.join("hub").exists());
    assert!(!t.path().join("x.json").exists());

    // Hand-broken JSON in the store: named, and the other records still usable.
    let o = run(
        &h,
        &["enroll", "group", "create", "fleet", "--ca", &p(&h, INTER)],
    );
    assert_eq!(code(&o), 0);
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            &leaf(&h, "sensor-thl-001"),
        ],
    );
    assert_eq!(code(&o), 0);
    let broken = h.join("dps/enrollments/sensor-thl-002.json");
    std::fs::write(
        &broken,
        "{\"registrationId\": \"sensor-thl-002\", \"provisioningStatus\": \"off\",",
    )
    .unwrap();
    std::fs::write(h.join("dps/enrollmentGroups/other.json"), "[]").unwrap();
    let o = run(&h, &["enroll", "list"]);
    assert_eq!(code(&o), 2);
    no_panic(&o);
    assert!(
        stderr(&o).contains("sensor-thl-002.json") && stderr(&o).contains("other.json"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("sensor-thl-001") && stdout(&o).contains("fleet"),
        "{}",
        stdout(&o)
    );
    // The broken record decides for -002: exit 2 naming it.
    let o = run(&h, &["provision", &full(&h, "sensor-thl-002")]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("sensor-thl-002.json"), "{}", stderr(&o));
    let o = run(&h, &["enroll", "show", "sensor-thl-002"]);
    assert_eq!(code(&o), 2);
    // -001 still provisions (by its individual enrollment); the broken group is a warning.
    let (c, d) = status(&h, &full(&h, "sensor-thl-001"));
    assert_eq!((c, d["status"].as_str()), (0, Some("assigned")), "{d}");
    assert_eq!(d["enrollment"]["kind"], "individual");
    // A record whose ID does not match its file name is broken too.
    std::fs::write(
        &broken,
        std::fs::read(h.join("dps/enrollments/sensor-thl-001.json")).unwrap(),
    )
    .unwrap();
    let o = run(&h, &["enroll", "show", "sensor-thl-002"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("does not match the file name"),
        "{}",
        stderr(&o)
    );

    // An existing enrollment is never silently overwritten.
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            &leaf(&h, "sensor-thl-001"),
            "--status",
            "disabled",
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = run(
        &h,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            &leaf(&h, "sensor-thl-001"),
            "--status",
            "disabled",
            "--force",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        status(&h, &full(&h, "sensor-thl-001")).1["status"],
        "disabled"
    );

    // Bad flag values.
    for args in [
        vec![
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            INTER,
            "--status",
            "off",
        ],
        vec![
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            INTER,
            "--to",
            "ftp",
        ],
        vec![
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            INTER,
            "--device-id",
            "a/b",
        ],
        vec![
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            INTER,
            "--iot-hub",
            "x y",
        ],
        vec!["provision", INTER, "--at", "yesterday"],
    ] {
        let o = run(&h, &args);
        assert_eq!(code(&o), 2, "{args:?}");
        no_panic(&o);
    }
}

#[test]
fn hub_registry_commands() {
    let t = tempfile::tempdir().unwrap();
    let h = pki(t.path(), &["sensor-thl-002"]);
    let o = run(&h, &["hub", "device", "list"]);
    assert_eq!(code(&o), 0);
    let o = run(
        &h,
        &[
            "hub",
            "device",
            "add",
            "Dev-1",
            "--cert",
            &leaf(&h, "sensor-thl-002"),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&h, &["hub", "device", "show", "Dev-1"]);
    assert_eq!(code(&o), 0);
    let d = json(&o);
    assert_eq!(d["deviceId"], "Dev-1");
    assert_eq!(d["status"], "enabled");
    assert_eq!(d["authentication"]["type"], "selfSigned");
    assert_eq!(
        d["authentication"]["x509Thumbprint"]["primaryThumbprint"]
            .as_str()
            .unwrap()
            .len(),
        40
    );
    // Case-sensitive, as IoT Hub.
    let o = run(&h, &["hub", "device", "show", "dev-1", "--json"]);
    assert_eq!(code(&o), 1);
    assert_eq!(json(&o)["error"], "DeviceNotFound");
    assert_eq!(code(&run(&h, &["hub", "device", "add", "Dev-1"])), 2);
    let o = run(&h, &["hub", "device", "list", "--json"]);
    assert_eq!(json(&o)["devices"][0]["deviceId"], "Dev-1");
    assert_eq!(code(&run(&h, &["hub", "device", "delete", "Dev-1"])), 0);
    let o = run(&h, &["hub", "device", "delete", "Dev-1"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("DeviceNotFound"));

    // provision --register adds an assigned device as DPS does.
    run(
        &h,
        &["enroll", "group", "create", "fleet", "--ca", &p(&h, INTER)],
    );
    let o = run(
        &h,
        &["provision", &full(&h, "sensor-thl-002"), "--register"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&h, &["hub", "device", "show", "sensor-thl-002"]);
    assert_eq!(json(&o)["authentication"]["type"], "certificateAuthority");
}

#[test]
fn help_has_exit_codes_and_examples() {
    let t = tempfile::tempdir().unwrap();
    for args in [
        vec!["enroll", "check", "--help"],
        vec!["enroll", "create", "--help"],
        vec!["enroll", "group", "create", "--help"],
        vec!["enroll", "list", "--help"],
        vec!["enroll", "show", "--help"],
        vec!["enroll", "delete", "--help"],
        vec!["provision", "--help"],
        vec!["hub", "device", "add", "--help"],
        vec!["hub", "device", "show", "--help"],
        vec!["hub", "device", "delete", "--help"],
        vec!["hub", "device", "list", "--help"],
        vec!["deprovision", "--help"],
    ] {
        let o = run(t.path(), &args);
        assert_eq!(code(&o), 0, "{args:?}");
        let s = stdout(&o);
        assert!(
            s.contains("EXIT CODES") && s.contains("EXAMPLES"),
            "{args:?}"
        );
    }
}
