//! `deprovision --to azure` end to end against `iotca dps serve` (HTTPS DPS
//! service API and two hubs' registries). Devices register over the DPS
//! device API with curl (client certificate); outcomes are read back from
//! the emulator's store with the local commands, not through iotca's Azure
//! client. Skipped visibly without curl; required when CI is set.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_iotca")
}

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("IOTCA_DPS_CONNECTION_STRING")
        .env_remove("IOTCA_HUB_CONNECTION_STRING")
        .env(
            "IOTCA_SERVICE_CA",
            home.join("certs/iotca-dps-server-ca.cert.pem"),
        )
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Lab {
    _dir: tempfile::TempDir,
    home: PathBuf,
    server: Child,
    log: PathBuf,
    https: u16,
    keys: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn have_curl() -> bool {
    if Command::new("curl").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "curl is required in CI");
    eprintln!("SKIPPED: curl not found");
    false
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("h");
        for args in [
            &["ca", "init"][..],
            &[
                "device",
                "create",
                "sensor-thl-001",
                "sensor-thl-002",
                "sensor-thl-003",
            ],
            &["enroll", "group", "create", "lab-group", "--ca"],
        ] {
            let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            if args[0] == "enroll" {
                a.push(
                    home.join("certs/azure-iot-test-only.intermediate.cert.pem")
                        .display()
                        .to_string(),
                );
            }
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let o = run(&home, &a);
            assert!(o.status.success(), "{}", text(&o));
        }
        let (mqtt, https) = (free_port(), free_port());
        let log = dir.path().join("serve.log");
        let server = Command::new(bin())
            .arg("--home")
            .arg(&home)
            .args([
                "dps",
                "serve",
                "--listen",
                &format!("127.0.0.1:{mqtt}"),
                "--https-listen",
                &format!("127.0.0.1:{https}"),
            ])
            .args([
                "--hub",
                "lab-hub.azure-devices.net",
                "--hub",
                "lab-hub-2.azure-devices.net",
            ])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lab = Lab {
            _dir: dir,
            home,
            server,
            log,
            https,
            keys: vec![],
        };
        let mut line = String::new();
        BufReader::new(lab.server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("listening"), "{line}");
        let o = run(&lab.home, &["dps", "connection-strings", "--json"]);
        let cs: Value = serde_json::from_slice(&o.stdout).unwrap();
        let dps = cs["dps"]["connection_string"].as_str().unwrap().to_string();
        std::fs::write(lab.home.join("../dps.cs"), format!("{dps}\n")).unwrap();
        let hubs: Vec<String> = cs["hubs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["connection_string"].as_str().unwrap().to_string())
            .collect();
        std::fs::write(lab.home.join("../hubs.cs"), hubs.join("\n")).unwrap();
        for c in std::iter::once(&dps).chain(&hubs) {
            let k = c
                .split(';')
                .find_map(|f| f.strip_prefix("SharedAccessKey="))
                .unwrap();
            lab.keys.push(k.to_string());
        }
        lab
    }

    /// Registers `id` over the DPS device API (HTTPS, client certificate).
    fn register(&self, id: &str) {
        let out = self.register_answer(id);
        assert!(out.contains("operationId"), "{out}");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self
                .home
                .join(format!("dps/registrations/{id}.json"))
                .exists()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{id} did not register");
    }

    /// The DPS device API's answer to `id`'s register request.
    fn register_answer(&self, id: &str) -> String {
        let h = &self.home;
        let o = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(h.join("certs/iotca-dps-server-ca.cert.pem"))
            .arg("--cert")
            .arg(h.join(format!("certs/{id}-full-chain.cert.pem")))
            .arg("--key")
            .arg(h.join(format!("private/{id}.key.pem")))
            .args([
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/json",
                "-d",
                &format!("{{\"registrationId\":\"{id}\"}}"),
            ])
            .arg(format!(
                "https://localhost:{}/0ne00LAB/registrations/{id}/register?api-version=2021-06-01",
                self.https
            ))
            .output()
            .unwrap();
        text(&o)
    }

    fn deprovision(&self, extra: &[&str]) -> Output {
        let dps = self.home.join("../dps.cs").display().to_string();
        let mut a = vec![
            "deprovision",
            "--to",
            "azure",
            "--dps-connection-string-file",
            &dps,
        ];
        a.extend_from_slice(extra);
        run(&self.home, &a)
    }

    fn hubs_file(&self) -> String {
        self.home.join("../hubs.cs").display().to_string()
    }

    fn cert(&self, id: &str) -> String {
        self.home
            .join(format!("certs/{id}.cert.pem"))
            .display()
            .to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn assert_no_key_in(&self, s: &str) {
        for k in &self.keys {
            assert!(!s.contains(k.as_str()), "a service key leaked");
        }
        assert!(!s.contains("sig="), "a SAS signature leaked");
    }
}

fn hub_of(lab: &Lab, id: &str) -> String {
    let v: Value = serde_json::from_slice(
        &std::fs::read(lab.home.join(format!("dps/registrations/{id}.json"))).unwrap(),
    )
    .unwrap();
    v["assignedHub"].as_str().unwrap().to_string()
}

#[test]
fn deprovision_finds_the_hub_confirms_and_is_idempotent() {
    if !have_curl() {
        return;
    }
    let lab = Lab::new();
    lab.register("sensor-thl-001");
    lab.register("sensor-thl-002");
    let hub = hub_of(&lab, "sensor-thl-002");
    let cert = lab.cert("sensor-thl-002");
    let hubs = lab.hubs_file();
    let o = lab.deprovision(&[
        "sensor-thl-002",
        "--cert",
        &cert,
        "--hub-connection-string-file",
        &hubs,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["steps"][0]["action"], "created");
    assert_eq!(r["steps"][2]["action"], "deleted");
    assert_eq!(r["steps"][2]["hub"], hub.as_str());
    // Read back by the local commands from the emulator's store.
    let show = run(&lab.home, &["enroll", "show", "sensor-thl-002", "--json"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("\"disabled\""),
        "{}",
        text(&show)
    );
    assert_eq!(
        run(&lab.home, &["hub", "device", "show", "sensor-thl-002"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(&lab.home, &["hub", "device", "show", "sensor-thl-001"])
            .status
            .code(),
        Some(0)
    );
    // Again: nothing written, exit 0.
    let before = lab.log().lines().count();
    let o2 = lab.deprovision(&[
        "sensor-thl-002",
        "--cert",
        &cert,
        "--hub-connection-string-file",
        &hubs,
    ]);
    assert_eq!(o2.status.code(), Some(0), "{}", text(&o2));
    let log = lab.log();
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert!(new.iter().all(|l| !l.contains(" PUT ")), "{new:?}");
    assert!(
        new.iter()
            .all(|l| !(l.contains(" DELETE ") && l.ends_with("204"))),
        "{new:?}"
    );
    for s in [text(&o), text(&o2), log] {
        lab.assert_no_key_in(&s);
    }
}

#[test]
fn the_guard_refuses_before_any_request() {
    if !have_curl() {
        return;
    }
    let lab = Lab::new();
    let hubs = lab.hubs_file();
    let ca = lab
        .home
        .join("certs/azure-iot-test-only.intermediate.cert.pem")
        .display()
        .to_string();
    let before = lab.log();
    for (id, cert) in [
        ("sensor-thl-003", lab.cert("sensor-thl-002")),
        ("Sensor-THL-002", lab.cert("sensor-thl-002")),
        ("sensor-thl-002", lab.cert("sensor-thl-001")),
        ("sensor-thl-002", ca.clone()),
    ] {
        let o = lab.deprovision(&[id, "--cert", &cert, "--hub-connection-string-file", &hubs]);
        assert_eq!(o.status.code(), Some(1), "{id} {cert}: {}", text(&o));
        assert!(text(&o).contains("nothing was changed"), "{}", text(&o));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lab.log(), before, "the emulator saw a request");
}

#[test]
fn a_hub_without_connection_string_is_exit_2_and_keeps_the_dps_step() {
    if !have_curl() {
        return;
    }
    let lab = Lab::new();
    lab.register("sensor-thl-002");
    let hub = hub_of(&lab, "sensor-thl-002");
    let cert = lab.cert("sensor-thl-002");
    let o = lab.deprovision(&["sensor-thl-002", "--cert", &cert]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&hub) && t.contains("not touched") && t.contains("the DPS step is kept"),
        "{t}"
    );
    let show = run(&lab.home, &["enroll", "show", "sensor-thl-002", "--json"]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("\"disabled\""));
    assert_eq!(
        run(&lab.home, &["hub", "device", "show", "sensor-thl-002"])
            .status
            .code(),
        Some(0)
    );
    // Given the connection strings, the same command finishes the job.
    let hubs = lab.hubs_file();
    let o = lab.deprovision(&[
        "sensor-thl-002",
        "--cert",
        &cert,
        "--hub-connection-string-file",
        &hubs,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("already is a disabled individual enrollment"),
        "{}",
        text(&o)
    );
    assert_eq!(
        run(&lab.home, &["hub", "device", "show", "sensor-thl-002"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn many_devices_from_an_ids_file() {
    if !have_curl() {
        return;
    }
    let lab = Lab::new();
    for id in ["sensor-thl-001", "sensor-thl-002"] {
        lab.register(id);
    }
    let ids = lab.home.join("../ids.txt");
    std::fs::write(&ids, "sensor-thl-001\nsensor-thl-002\nsensor-thl-003\n").unwrap();
    let certs = lab.home.join("certs").display().to_string();
    let hubs = lab.hubs_file();
    let ids = ids.display().to_string();
    let o = lab.deprovision(&[
        "--ids-file",
        &ids,
        "--certs-dir",
        &certs,
        "--hub-connection-string-file",
        &hubs,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["devices"].as_array().unwrap().len(), 3);
    // sensor-thl-003 never registered: said, not an error.
    let d3 = r["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["registration_id"] == "sensor-thl-003")
        .unwrap();
    assert_eq!(d3["steps"][1]["action"], "never_registered");
    for id in ["sensor-thl-001", "sensor-thl-002"] {
        assert_eq!(
            run(&lab.home, &["hub", "device", "show", id]).status.code(),
            Some(1)
        );
    }
}

/// The rollover of section 13 on the DPS service API: the group's secondary
/// certificate added, both generations provision, promotion refused while it
/// strands devices, then forced; the old generation is refused.
#[test]
fn group_rollover_through_the_dps_service_api() {
    if !have_curl() {
        return;
    }
    let lab = Lab::new();
    let h = &lab.home;
    let dps = h.join("../dps.cs").display().to_string();
    let ok = |args: &[&str]| {
        let o = run(h, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        lab.assert_no_key_in(&text(&o));
        o
    };
    ok(&["ca", "rollover", "intermediate"]);
    ok(&[
        "device",
        "create",
        "sensor-g2-001",
        "--ca",
        "intermediate-2",
    ]);
    const REFUSED: &str = "401002";
    assert!(lab.register_answer("sensor-g2-001").contains(REFUSED));
    let update = |extra: &[&str]| {
        let mut a = vec![
            "enroll",
            "group",
            "update",
            "lab-group",
            "--to",
            "azure",
            "--dps-connection-string-file",
            &dps,
        ];
        a.extend_from_slice(extra);
        run(h, &a)
    };
    // Not a CA: refused before any request.
    let before = lab.log().lines().count();
    let leaf = lab.cert("sensor-thl-001");
    let o = update(&["--secondary-ca", &leaf]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(lab.log().lines().count(), before, "a request was sent");

    let g2 = h
        .join("certs/intermediate-2.cert.pem")
        .display()
        .to_string();
    let o = update(&["--secondary-ca", &g2, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["confirmed"], true);
    assert!(r["secondary"].as_str().unwrap().contains("G2"), "{r}");
    let g2_pem = std::fs::read_to_string(&g2).unwrap();
    let back = run(h, &["enroll", "group", "show", "lab-group", "--json"]);
    let back: Value = serde_json::from_slice(&back.stdout).unwrap();
    let sec = back["attestation"]["x509"]["signingCertificates"]["secondary"]["certificate"]
        .as_str()
        .unwrap();
    assert_eq!(sec.trim(), g2_pem.trim());
    for id in ["sensor-thl-001", "sensor-g2-001"] {
        assert!(
            lab.register_answer(id).contains("operationId"),
            "{id} with both certificates"
        );
    }
    // Promotion strands sensor-thl-00x (under the old intermediate): refused.
    let before = lab.log().lines().count();
    let o = update(&["--promote-secondary"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("sensor-thl-001"), "{}", text(&o));
    let new: Vec<String> = lab.log().lines().skip(before).map(str::to_string).collect();
    assert!(new.iter().all(|l| !l.contains(" PUT ")), "{new:?}");
    let o = update(&["--promote-secondary", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("warning"), "{}", text(&o));
    assert!(lab.register_answer("sensor-thl-001").contains(REFUSED));
    assert!(lab.register_answer("sensor-g2-001").contains("operationId"));
    // Nothing left to promote: exit 2, naming the group.
    let o = update(&["--promote-secondary"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no secondary"), "{}", text(&o));
    lab.assert_no_key_in(&lab.log());
}

/// Copies `template` (a record of the local store) under `n` new IDs `{prefix}-NNN`.
fn bulk_records(lab: &Lab, dir: &str, field: &str, template: &str, prefix: &str, n: usize) {
    let path = lab.home.join(format!("dps/{dir}/{template}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for i in 0..n {
        let id = format!("{prefix}-{i:03}");
        v[field] = Value::String(id.clone());
        std::fs::write(
            lab.home.join(format!("dps/{dir}/{id}.json")),
            serde_json::to_vec(&v).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn a_list_longer_than_one_page_comes_back_whole() {
    let lab = Lab::new();
    let cert = lab.cert("sensor-thl-001");
    let o = run(
        &lab.home,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-001",
            "--cert",
            &cert,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // 250 individual enrollments (iotca asks for pages of 100) and 120 groups.
    bulk_records(
        &lab,
        "enrollments",
        "registrationId",
        "sensor-thl-001",
        "bulk",
        249,
    );
    bulk_records(
        &lab,
        "enrollmentGroups",
        "enrollmentGroupId",
        "lab-group",
        "grp",
        119,
    );
    let dps = lab.home.join("../dps.cs").display().to_string();
    let o = run(
        &lab.home,
        &[
            "enroll",
            "list",
            "--azure",
            "--dps-connection-string-file",
            &dps,
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids = |k: &str, f: &str| -> std::collections::BTreeSet<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|e| e[f].as_str().unwrap().to_string())
            .collect()
    };
    let individual = ids("individual", "registrationId");
    assert_eq!(individual.len(), 250);
    assert!(individual.contains("sensor-thl-001") && individual.contains("bulk-248"));
    let groups = ids("groups", "enrollmentGroupId");
    assert_eq!(groups.len(), 120);
    assert!(groups.contains("lab-group") && groups.contains("grp-118"));
    std::thread::sleep(Duration::from_millis(100));
    let log = lab.log();
    let count = |p: &str| log.lines().filter(|l| l.contains(p)).count();
    assert_eq!(count("POST /enrollments/query: 200"), 3, "{log}");
    assert_eq!(count("POST /enrollmentGroups/query: 200"), 2, "{log}");
    lab.assert_no_key_in(&log);
}

#[test]
fn the_system_trust_store_is_used_without_service_ca() {
    let lab = Lab::new();
    let dps = lab.home.join("../dps.cs");
    let list = |bundle: &Path| {
        Command::new(bin())
            .arg("--home")
            .arg(&lab.home)
            .args(["enroll", "list", "--azure", "--dps-connection-string-file"])
            .arg(&dps)
            .env_remove("IOTCA_SERVICE_CA")
            .env_remove("SSL_CERT_DIR")
            .env("SSL_CERT_FILE", bundle)
            .output()
            .unwrap()
    };
    // The emulator's CA as the system's bundle: trusted, no --service-ca.
    let o = list(&lab.home.join("certs/iotca-dps-server-ca.cert.pem"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("lab-group"), "{}", text(&o));
    // Another bundle: the emulator is not trusted, and the error says so.
    let o = list(&lab.home.join("certs/azure-iot-test-only.root.ca.cert.pem"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("POST /enrollments/query to localhost:")
            && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn enroll_check_azure_reports_what_dps_holds_and_reads_only() {
    let lab = Lab::new();
    // The trap, as an operator could leave it in DPS: a disabled enrollment
    // for sensor-thl-002 under another letter case (the guard would refuse
    // to write it, so it goes straight into the emulator's store).
    let chain2 = lab
        .home
        .join("certs/sensor-thl-002-full-chain.cert.pem")
        .display()
        .to_string();
    let o = run(
        &lab.home,
        &[
            "enroll",
            "create",
            "--enrollment-id",
            "sensor-thl-002",
            "--cert",
            &chain2,
            "--status",
            "disabled",
            "--to",
            "json",
        ],
    );
    let mut body: Value = serde_json::from_slice(&o.stdout).unwrap();
    body["registrationId"] = Value::String("Sensor-THL-002".into());
    std::fs::create_dir_all(lab.home.join("dps/enrollments")).unwrap();
    std::fs::write(
        lab.home.join("dps/enrollments/sensor-thl-002.json"),
        serde_json::to_vec(&body).unwrap(),
    )
    .unwrap();
    let dps = lab.home.join("../dps.cs").display().to_string();
    let before = lab.log().lines().count();
    let check = |id: &str, cert: &str, json: bool| {
        let mut a = vec![
            "enroll",
            "check",
            "--enrollment-id",
            id,
            "--cert",
            cert,
            "--azure",
            "--dps-connection-string-file",
            &dps,
        ];
        if json {
            a.push("--json");
        }
        run(&lab.home, &a)
    };
    let o = check("sensor-thl-002", &chain2, true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let d = &v["dps"];
    assert!(d["enrollment"].is_null(), "{d}");
    assert_eq!(d["other_case"][0]["registration_id"], "Sensor-THL-002");
    assert_eq!(d["other_case"][0]["provisioning_status"], "disabled");
    assert_eq!(d["other_case"][0]["certificate_matches"], true);
    assert_eq!(d["groups"][0]["enrollment_group_id"], "lab-group");
    assert_eq!(d["groups"][0]["provisioning_status"], "enabled");
    assert_eq!(d["groups"][0]["certificate"], "primary");
    assert_eq!(d["groups"][0]["chains"], true);
    assert_eq!(d["decision"]["status"], "disabled");
    assert_eq!(d["decision"]["enrollment"]["id"], "Sensor-THL-002");
    // The text says the same, for people.
    let t = text(&check("sensor-thl-002", &chain2, false));
    assert!(
        t.contains("'Sensor-THL-002': disabled")
            && t.contains("only in letter case")
            && t.contains(
                "lab-group  enabled  primary CA CN=Azure IoT Hub Intermediate Cert Test Only"
            )
            && t.contains("DPS would decide now: disabled"),
        "{t}"
    );
    // A device with no enrollment, presenting its leaf alone: the group's
    // CA is found among the home's CAs, and the group lets it in.
    let o = check("sensor-thl-001", &lab.cert("sensor-thl-001"), true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["dps"]["enrollment"].is_null() && v["dps"]["other_case"] == Value::Array(vec![]));
    assert_eq!(v["dps"]["groups"][0]["chains"], true);
    assert_eq!(v["dps"]["decision"]["status"], "assigned");
    assert_eq!(v["dps"]["decision"]["enrollment"]["kind"], "group");
    // A refused pre-flight still reports DPS, and exits 1.
    let o = check("sensor-thl-003", &chain2, true);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["problems"][0]["code"], "cn_mismatch");
    assert_eq!(v["dps"]["for_cn"]["registration_id"], "Sensor-THL-002");
    // Read-only: GETs and queries, nothing else.
    std::thread::sleep(Duration::from_millis(100));
    let log = lab.log();
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert!(!new.is_empty());
    assert!(
        new.iter().all(|l| l.contains(" GET /enrollments/")
            || l.contains(" POST /enrollments/query: 200")
            || l.contains(" POST /enrollmentGroups/query: 200")),
        "{new:?}"
    );
    lab.assert_no_key_in(&log);
}
