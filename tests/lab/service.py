"""One call of Microsoft's Python service SDKs against `iotca dps serve`
(tests/cli/lab.rs): azure-iot-deviceprovisioning (DeviceProvisioningClient,
which has no guard against an enrollment ID that is not the certificate's
CN) on the DPS service API, azure-iot-hub (IoTHubRegistryManager) on a
hub's identity registry.

    python tests/lab/service.py enrollment-get ID
    python tests/lab/service.py enrollment-create-disabled ID CERT.pem
    python tests/lab/service.py device-get ID

Environment: DPS_CS, HUB_CS (the emulator's sdk connection strings),
REQUESTS_CA_BUNDLE (the emulator CA).

Prints one JSON line and exits 0 whatever the service answered:
    {"ok": true, "result": {...}}            the SDK call returned
    {"ok": false, "error": "<exception class>", "status": <HTTP status>,
     "text": "<the service's error body>"}   the SDK call raised
The result of enrollment-* is the enrollment as the SDK returned it; of
device-get {"deviceId", "status", "authenticationType"}. Nothing printed
holds a key: only the services' answers are.
"""
import json
import os
import sys

from azure.core.exceptions import HttpResponseError
from azure.iot.deviceprovisioning import DeviceProvisioningClient
from azure.iot.hub import IoTHubRegistryManager
from msrest.exceptions import HttpOperationError


def dps():
    return DeviceProvisioningClient.from_connection_string(os.environ["DPS_CS"])


def hub():
    return IoTHubRegistryManager.from_connection_string(os.environ["HUB_CS"])


def call(cmd, args):
    if cmd == "enrollment-get":
        return dps().enrollment.get(id=args[0])
    if cmd == "enrollment-create-disabled":
        eid, cert = args
        with open(cert) as f:
            pem = f.read()
        return dps().enrollment.create_or_update(
            id=eid,
            enrollment={
                "registrationId": eid,
                "attestation": {
                    "type": "x509",
                    "x509": {"clientCertificates": {"primary": {"certificate": pem}}},
                },
                "provisioningStatus": "disabled",
            },
        )
    if cmd == "device-get":
        d = hub().get_device(args[0])
        return {
            "deviceId": d.device_id,
            "status": d.status,
            "authenticationType": d.authentication.type,
        }
    raise SystemExit("service.py: unknown command {!r}".format(cmd))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        out = {"ok": True, "result": call(cmd, args)}
    except HttpResponseError as e:  # azure-core (the DPS SDK)
        text = e.response.text() if e.response is not None else ""
        out = {"ok": False, "error": type(e).__name__, "status": e.status_code, "text": text}
    except HttpOperationError as e:  # msrest (the hub SDK)
        out = {
            "ok": False,
            "error": type(e).__name__,
            "status": e.response.status_code,
            "text": e.response.text,
        }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
