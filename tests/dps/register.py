"""Registers devices with `iotca dps serve` through the real Azure IoT
Python device SDK (azure-iot-device), as a device app would.

By hand, for devices of an iotca home (certs/<id>-full-chain.cert.pem and
private/<id>.key.pem; the trusted CA defaults to the home's emulator CA):
    python tests/dps/register.py --home pki sensor-thl-001 sensor-thl-002

Used by tests/dps.rs, which passes a JSON list of devices on stdin:
    [{"registration_id": "...", "cert": "full-chain.pem", "key": "key.pem"}, ...]
registers them (concurrently, one SDK client and one connection each) and
prints one JSON object per device on stdout, in input order:
    {"registration_id", "ok", "status", "device_id", "assigned_hub",
     "substatus", "error", "message"}
`ok` is true when register() returned a result (whatever its status);
otherwise `error` is the exception's class and `message` the whole cause
chain ("ClientError: Unexpected failure <- ServiceError: ...").

Exit status: 0 when every device was assigned, 1 when at least one
registration was refused or failed (the JSON lines say which), 2 for bad
arguments (argparse).

The SDK always connects to port 8883; --port patches paho's
Client.connect so that a test can use a free port instead.
"""

import argparse
import json
import os
import sys
import threading

import paho.mqtt.client as mqtt
from azure.iot.device import ProvisioningDeviceClient, X509


def patch_port(port):
    original = mqtt.Client.connect

    def connect(self, *args, **kwargs):
        if "port" in kwargs:
            kwargs["port"] = port
        elif len(args) >= 2:
            args = (args[0], port) + tuple(args[2:])
        else:
            kwargs["port"] = port
        return original(self, *args, **kwargs)

    mqtt.Client.connect = connect


def cause_chain(e):
    parts = []
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        parts.append("{}: {}".format(type(e).__name__, e))
        e = e.__cause__ or e.__context__
    return " <- ".join(parts)


def register(args, trust, device):
    out = {"registration_id": device["registration_id"], "ok": False}
    client = None
    try:
        client = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=args.host,
            registration_id=device["registration_id"],
            id_scope=args.id_scope,
            x509=X509(cert_file=device["cert"], key_file=device["key"]),
            server_verification_cert=trust,
        )
        result = client.register()
        out["ok"] = True
        out["status"] = result.status
        state = result.registration_state
        if state is not None:
            out["device_id"] = state.device_id
            out["assigned_hub"] = state.assigned_hub
            out["substatus"] = state.sub_status
    except Exception as e:  # noqa: BLE001 - the test reads every failure
        out["error"] = type(e).__name__
        out["message"] = cause_chain(e)
    finally:
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--id-scope", default="0ne00IOTCA0")
    p.add_argument("--home", help="an iotca home holding the devices' files")
    p.add_argument("--trust", help="the emulator CA PEM (iotca dps trust) [default: HOME/certs/iotca-dps-server-ca.cert.pem]")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per device")
    p.add_argument("ids", nargs="*", help="registration IDs of devices in --home (else JSON on stdin)")
    args = p.parse_args()
    if args.trust is None:
        if args.home is None:
            p.error("give --trust, or --home to use its emulator CA")
        args.trust = os.path.join(args.home, "certs", "iotca-dps-server-ca.cert.pem")
    if args.port != 8883:
        patch_port(args.port)
    with open(args.trust) as f:
        trust = f.read()
    if args.ids:
        if args.home is None:
            p.error("registration IDs need --home")
        devices = [
            {
                "registration_id": i,
                "cert": os.path.join(args.home, "certs", i + "-full-chain.cert.pem"),
                "key": os.path.join(args.home, "private", i + ".key.pem"),
            }
            for i in args.ids
        ]
    else:
        devices = json.load(sys.stdin)
    results = [None] * len(devices)

    def run(i, d):
        results[i] = register(args, trust, d)

    threads = [threading.Thread(target=run, args=(i, d), daemon=True) for i, d in enumerate(devices)]
    for t in threads:
        t.start()
    for i, t in enumerate(threads):
        t.join(args.timeout)
        if results[i] is None:
            results[i] = {
                "registration_id": devices[i]["registration_id"],
                "ok": False,
                "error": "Timeout",
                "message": "register() did not finish within {} s".format(args.timeout),
            }
    for r in results:
        print(json.dumps(r), flush=True)
    refused = [r for r in results if not (r.get("ok") and r.get("status") == "assigned")]
    for r in refused:
        print(
            "register.py: {} was not assigned: {}".format(
                r["registration_id"], r.get("status") or r.get("message") or r.get("error")
            ),
            file=sys.stderr,
        )
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
