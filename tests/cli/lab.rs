//! The deprovisioning lab end to end against `iotca dps serve`, with
//! Microsoft's own SDKs as every client (issues 15 and 16): the Python
//! device SDK (azure-iot-device: ProvisioningDeviceClient through
//! `tests/dps/register.py`, IoTHubDeviceClient through
//! `tests/dps/hub_device.py`) and the Python service SDKs
//! (azure-iot-deviceprovisioning, azure-iot-hub, through
//! `tests/lab/service.py`), all from target/pyenv-sdk. Missing SDKs skip
//! visibly, and fail when CI is set.
//!
//! iotca only sets the lab up and does the step under test (`deprovision`,
//! `enroll check`); every outcome is what an SDK was told.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dps::hub::{SdkDevice, messages_json};
use crate::dps::{HUB, SCOPE, ServerGuard, TRUST, files, lab, ok, run, sdk_register};

const D1: &str = "sensor-thl-001";
const D2: &str = "sensor-thl-002";
const HUB2: &str = "lab-hub-2.azure-devices.net";

/// Registers devices of `home` through the Python device SDK (MQTT).
fn register(py: &Path, server: &ServerGuard, home: &Path, ids: &[&str]) -> Vec<Value> {
    let devices: Vec<(&str, PathBuf, PathBuf)> = ids
        .iter()
        .map(|id| {
            let (cert, key) = files(home, id);
            (*id, cert, key)
        })
        .collect();
    sdk_register(py, server, &home.join(TRUST), &devices)
}

fn assert_assigned(r: &Value, id: &str, server: &ServerGuard) {
    assert_eq!(r["ok"], true, "{r}\n{}", server.log());
    assert_eq!(r["status"], "assigned", "{r}");
    assert_eq!(r["device_id"], id, "{r}");
    assert_eq!(r["assigned_hub"], HUB, "{r}");
}

/// The Python SDK's registration was refused because the device's
/// enrollment is disabled.
fn assert_refused_disabled(r: &Value) {
    // The SDK's words: "ClientError: Unexpected failure <- ServiceError:
    // Query Status Operation encountered an invalid registration status
    // disabled with a status code of 200".
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"], "ClientError", "{r}");
    let m = r["message"].as_str().unwrap_or("");
    assert!(m.contains("registration status disabled"), "{r}");
}

/// One call of the Python service SDKs (tests/lab/service.py) with the
/// emulator's sdk connection strings (DPS, and `hub`'s registry).
fn service(py: &Path, server: &ServerGuard, home: &Path, hub: &str, args: &[&str]) -> Value {
    let ep = server.endpoint();
    let hub_cs = ep["hubs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == hub)
        .unwrap_or_else(|| panic!("no hub {hub} in the endpoint"))["sdk_connection_string"]
        .as_str()
        .unwrap()
        .to_string();
    let o = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/service.py"))
        .args(args)
        .env("DPS_CS", ep["dps"]["connection_string"].as_str().unwrap())
        .env("HUB_CS", hub_cs)
        .env("REQUESTS_CA_BUNDLE", home.join(TRUST))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        panic!(
            "service.py {args:?}: {out}{}\nserver log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            server.log()
        )
    })
}

/// A Python SDK hub device that connected; panics with the server log if not.
fn connected_device(py: &Path, server: &ServerGuard, home: &Path, id: &str) -> SdkDevice {
    let dev = SdkDevice::python(py, server, home, HUB, id);
    let first = dev.answer(server);
    assert_eq!(first["ok"], true, "{id} connect: {first}\n{}", server.log());
    dev
}

fn send_ok(dev: &mut SdkDevice, server: &ServerGuard, body: &str) {
    let r = dev.send(server, body);
    assert_eq!(r["ok"], true, "send {body}: {r}\n{}", server.log());
}

/// The bodies `iotca hub messages ID --json` shows, oldest first.
fn bodies(home: &Path, id: &str) -> Vec<String> {
    messages_json(home, &[id])
        .iter()
        .map(|m| {
            assert_eq!(m["deviceId"], id, "{m}");
            assert_eq!(m["hub"], HUB, "{m}");
            m["body"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `iotca enroll check` refuses ID for CERT (exit 1); the CN it read and
/// its problem codes.
fn refused_by_enroll_check(home: &Path, id: &str, cert: &Path) -> (String, Vec<String>) {
    let o = run(
        home,
        &[
            "--json",
            "enroll",
            "check",
            "--enrollment-id",
            id,
            "--cert",
            cert.to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "enroll check {id}: {out}");
    let check: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["enrollment_id"], id, "{check}");
    let codes = check["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect();
    (check["cn"].as_str().unwrap().to_string(), codes)
}

/// Issue 15: the whole lab, one device taken out while the server runs,
/// then the trap on purpose through the service SDK.
#[test]
fn the_deprovisioning_lab_with_microsoft_sdks_as_every_client() {
    let Some(py) = crate::dps_https::python() else {
        return;
    };
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[D1, D2]);
    let server = ServerGuard::start(&h, &["--id-scope", SCOPE, "--hub", HUB]);

    // Both devices register through the group and send telemetry.
    let r = register(&py, &server, &h, &[D1, D2]);
    assert_assigned(&r[0], D1, &server);
    assert_assigned(&r[1], D2, &server);
    let mut dev1 = connected_device(&py, &server, &h, D1);
    let mut dev2 = connected_device(&py, &server, &h, D2);
    send_ok(&mut dev1, &server, r#"{"temperature": 21.0}"#);
    send_ok(&mut dev2, &server, r#"{"temperature": 22.0}"#);
    assert_eq!(bodies(&h, D1), [r#"{"temperature": 21.0}"#]);
    assert_eq!(bodies(&h, D2), [r#"{"temperature": 22.0}"#]);

    // Take sensor-thl-002 out (local store, the default) while it is connected.
    let cert2 = h.join(format!("certs/{D2}.cert.pem"));
    ok(&h, &["deprovision", D2, "--cert", cert2.to_str().unwrap()]);
    // Its live connection is closed: the SDK sees itself disconnected.
    server.expect_log(&format!("device {D2}: closed: the device was deleted"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while dev2.connected(&server) {
        assert!(Instant::now() < deadline, "{D2} still connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = dev2.send(&server, r#"{"temperature": 99.0}"#);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"], "CredentialError", "{r}");
    drop(dev2);
    // A new connection is refused with CONNACK 5.
    let again = SdkDevice::python(&py, &server, &h, HUB, D2);
    let first = again.answer(&server);
    assert_eq!(first["ok"], false, "{first}");
    assert_eq!(first["error"], "CredentialError", "{first}");
    // paho's words for CONNACK return code 5.
    let m = first["message"].as_str().unwrap();
    assert!(m.contains("Connection Refused: not authorised"), "{first}");
    drop(again);
    server.expect_log(&format!(
        "device {D2}: refused (CONNACK 5): the device is not in the hub's registry"
    ));
    // DPS refuses its registration: the enrollment is disabled.
    let r = register(&py, &server, &h, &[D2]);
    assert_refused_disabled(&r[0]);
    assert_eq!(bodies(&h, D2).len(), 1, "nothing more from {D2}");
    // sensor-thl-001 keeps sending.
    send_ok(&mut dev1, &server, r#"{"temperature": 21.5}"#);
    assert_eq!(bodies(&h, D1).len(), 2);

    // The trap, on purpose, through the service SDK (which has no guard):
    // a disabled individual enrollment for sensor-thl-001 under an ID that
    // is not its CN. DPS (and the emulator) accept it, and it disables nothing.
    let cert1 = h.join(format!("certs/{D1}.cert.pem"));
    let wrong = "sensor-thl-01";
    let created = service(
        &py,
        &server,
        &h,
        HUB,
        &["enrollment-create-disabled", wrong, cert1.to_str().unwrap()],
    );
    assert_eq!(created["ok"], true, "{created}\n{}", server.log());
    assert_eq!(created["result"]["provisioningStatus"], "disabled");
    let read = service(&py, &server, &h, HUB, &["enrollment-get", wrong]);
    assert_eq!(read["result"]["registrationId"], wrong, "{read}");
    assert_eq!(read["result"]["provisioningStatus"], "disabled", "{read}");
    // sensor-thl-001 still registers (the group applies) and still sends.
    let r = register(&py, &server, &h, &[D1]);
    assert_assigned(&r[0], D1, &server);
    send_ok(&mut dev1, &server, r#"{"temperature": 21.7}"#);
    let mut dev1b = connected_device(&py, &server, &h, D1);
    send_ok(&mut dev1b, &server, r#"{"temperature": 21.9}"#);
    assert_eq!(
        bodies(&h, D1),
        [
            r#"{"temperature": 21.0}"#,
            r#"{"temperature": 21.5}"#,
            r#"{"temperature": 21.7}"#,
            r#"{"temperature": 21.9}"#
        ]
    );
    // iotca's pre-flight, on the same ID and certificate, refuses.
    assert_eq!(
        refused_by_enroll_check(&h, wrong, &cert1),
        (D1.to_string(), vec!["cn_mismatch".to_string()])
    );

    // The control: an ID that differs only in letter case is the device's
    // own for DPS (registration IDs match case-insensitively, DESIGN 6), so
    // the same SDK call does block it; iotca refuses that ID too (hub
    // device IDs are case-sensitive).
    let case = "Sensor-THL-001";
    let created = service(
        &py,
        &server,
        &h,
        HUB,
        &["enrollment-create-disabled", case, cert1.to_str().unwrap()],
    );
    assert_eq!(
        created["result"]["provisioningStatus"], "disabled",
        "{created}"
    );
    let r = register(&py, &server, &h, &[D1]);
    assert_refused_disabled(&r[0]);
    assert_eq!(
        refused_by_enroll_check(&h, case, &cert1),
        (D1.to_string(), vec!["cn_case_mismatch".to_string()])
    );
    eprintln!("the lab took {:?}", started.elapsed());
}

/// Issue 16: `deprovision --to azure` against the emulator's service API,
/// its outcome read by Microsoft's SDKs, not by iotca.
#[test]
fn deprovision_to_azure_as_microsoft_sdks_see_it() {
    let Some(py) = crate::dps_https::python() else {
        return;
    };
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let h = lab(t.path(), &[D1, D2]);
    let server = ServerGuard::start(&h, &["--id-scope", SCOPE, "--hub", HUB, "--hub", HUB2]);
    // iotca's connection strings, in files outside the home.
    let ep = server.endpoint();
    let dps_cs = ep["dps"]["connection_string"].as_str().unwrap().to_string();
    let hub_cs: Vec<String> = ep["hubs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["connection_string"].as_str().unwrap().to_string())
        .collect();
    let keys: Vec<String> = std::iter::once(&dps_cs)
        .chain(&hub_cs)
        .map(|c| {
            c.split(';')
                .find_map(|f| f.strip_prefix("SharedAccessKey="))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 3);
    let dps_file = t.path().join("dps.cs");
    let hubs_file = t.path().join("hubs.cs");
    std::fs::write(&dps_file, format!("{dps_cs}\n")).unwrap();
    std::fs::write(&hubs_file, hub_cs.join("\n") + "\n").unwrap();
    let mut seen = Vec::new();

    // Before: both registered; the SDKs see 002's device and no enrollment.
    let r = register(&py, &server, &h, &[D1, D2]);
    assert_assigned(&r[0], D1, &server);
    assert_assigned(&r[1], D2, &server);
    seen.push(serde_json::to_string(&r).unwrap());
    let before = service(&py, &server, &h, HUB, &["device-get", D2]);
    assert_eq!(before["ok"], true, "{before}");
    assert_eq!(before["result"]["status"], "enabled", "{before}");
    let none = service(&py, &server, &h, HUB, &["enrollment-get", D2]);
    assert_eq!(none["status"], 404, "{none}");
    seen.extend([before.to_string(), none.to_string()]);

    let o = run(
        &h,
        &[
            "--json",
            "deprovision",
            D2,
            "--cert",
            h.join(format!("certs/{D2}.cert.pem")).to_str().unwrap(),
            "--to",
            "azure",
            "--dps-connection-string-file",
            dps_file.to_str().unwrap(),
            "--hub-connection-string-file",
            hubs_file.to_str().unwrap(),
            "--service-ca",
            h.join(TRUST).to_str().unwrap(),
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{said}\n{}", server.log());
    seen.push(said);

    // The DPS service SDK reads the enrollment back disabled.
    let e = service(&py, &server, &h, HUB, &["enrollment-get", D2]);
    assert_eq!(e["ok"], true, "{e}");
    assert_eq!(e["result"]["registrationId"], D2, "{e}");
    assert_eq!(e["result"]["provisioningStatus"], "disabled", "{e}");
    // The hub SDK's get_device raises not found.
    let d = service(&py, &server, &h, HUB, &["device-get", D2]);
    assert_eq!(d["ok"], false, "{d}");
    assert_eq!(d["status"], 404, "{d}");
    assert!(
        d["text"].as_str().unwrap().contains("DeviceNotFound"),
        "{d}"
    );
    let d1 = service(&py, &server, &h, HUB, &["device-get", D1]);
    assert_eq!(d1["result"]["status"], "enabled", "{d1}");
    seen.extend([e.to_string(), d.to_string(), d1.to_string()]);

    // The device SDK: 002 is refused as disabled, 001 registers and sends.
    let r = register(&py, &server, &h, &[D2, D1]);
    assert_refused_disabled(&r[0]);
    assert_assigned(&r[1], D1, &server);
    seen.push(serde_json::to_string(&r).unwrap());
    let mut dev1 = connected_device(&py, &server, &h, D1);
    send_ok(&mut dev1, &server, r#"{"temperature": 20.5}"#);
    assert_eq!(bodies(&h, D1), [r#"{"temperature": 20.5}"#]);
    assert!(bodies(&h, D2).is_empty());
    drop(dev1);

    // No key, no SAS signature in anything said, nor in the server's log.
    seen.push(server.log());
    for s in &seen {
        for k in &keys {
            assert!(!s.contains(k.as_str()), "a service key leaked");
        }
        assert!(!s.contains("sig="), "a SAS signature leaked");
    }
    eprintln!(
        "deprovision --to azure, checked by the SDKs, took {:?}",
        started.elapsed()
    );
}
