"""Microsoft's Python service SDKs against `iotca dps serve` (tests/dps_https.rs).

azure-iot-deviceprovisioning (DeviceProvisioningClient) and azure-iot-hub
(IoTHubRegistryManager) drive the DPS service API and a hub's identity
registry. Every check raises AssertionError on a mismatch; the last line
printed is "OK".

Environment: DPS_CS, HUB_CS (the emulator's sdk connection strings),
REQUESTS_CA_BUNDLE (the emulator CA), LEAF (a device certificate PEM, its CN
is not the enrollment ID on purpose: the emulator takes it, as DPS does),
GROUP_CA (the group's CA PEM), GROUP_ID, REGISTERED (a registration ID that
already registered through GROUP_ID, or empty).
"""
import os
import sys

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.iot.deviceprovisioning import DeviceProvisioningClient
from azure.iot.hub import IoTHubRegistryManager
from msrest.exceptions import HttpOperationError

env = os.environ
dps = DeviceProvisioningClient.from_connection_string(env["DPS_CS"])
leaf = open(env["LEAF"]).read()
ca = open(env["GROUP_CA"]).read()
eid = "py-disabled-enrollment"


def status_of(e):
    return getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)


# --- individual enrollment: create disabled, read back, 409, 412, delete, 404
body = {
    "registrationId": eid,
    "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": leaf}}}},
    "provisioningStatus": "disabled",
}
created = dps.enrollment.create_or_update(id=eid, enrollment=body)
assert created["provisioningStatus"] == "disabled", created
etag = created["etag"]
got = dps.enrollment.get(id=eid)
assert got["provisioningStatus"] == "disabled", got
info = got["attestation"]["x509"]["clientCertificates"]["primary"]["info"]
assert info["sha256Thumbprint"] and info["subjectName"], info
try:
    dps.enrollment.create_or_update(id=eid, enrollment=body)
    raise AssertionError("second create without etag did not fail")
except (ResourceExistsError, HttpResponseError) as e:
    assert status_of(e) == 409, status_of(e)
body["provisioningStatus"] = "enabled"
updated = dps.enrollment.create_or_update(id=eid, enrollment=body, if_match=etag)
assert updated["provisioningStatus"] == "enabled" and updated["etag"] != etag
try:
    dps.enrollment.create_or_update(id=eid, enrollment=body, if_match=etag)
    raise AssertionError("a stale etag did not fail")
except (ResourceModifiedError, HttpResponseError) as e:
    assert status_of(e) == 412, status_of(e)
ids = [e["registrationId"] for e in dps.enrollment.query(query_specification={"query": "*"})]
assert eid in ids, ids
dps.enrollment.delete(id=eid)
try:
    dps.enrollment.get(id=eid)
    raise AssertionError("get after delete did not fail")
except (ResourceNotFoundError, HttpResponseError) as e:
    assert status_of(e) == 404, status_of(e)

# --- enrollment groups
gid = "py-group"
g = dps.enrollment_group.create_or_update(
    id=gid,
    enrollment_group={
        "enrollmentGroupId": gid,
        "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": ca}}}},
        "provisioningStatus": "enabled",
    },
)
assert g["provisioningStatus"] == "enabled", g
assert dps.enrollment_group.get(id=gid)["enrollmentGroupId"] == gid
gids = [x["enrollmentGroupId"] for x in dps.enrollment_group.query(query_specification={"query": "*"})]
assert gid in gids, gids
dps.enrollment_group.delete(id=gid)
try:
    dps.enrollment_group.get(id=gid)
    raise AssertionError("group get after delete did not fail")
except (ResourceNotFoundError, HttpResponseError) as e:
    assert status_of(e) == 404

# --- registration states
reg = env.get("REGISTERED")
if reg:
    state = dps.device_registration_state.get(id=reg)
    assert state["status"] == "assigned" and state["assignedHub"], state
    states = list(dps.device_registration_state.query(id=env["GROUP_ID"]))
    assert reg in [s["registrationId"] for s in states], states
try:
    dps.device_registration_state.get(id="never-registered")
    raise AssertionError("registration get of an unknown ID did not fail")
except (ResourceNotFoundError, HttpResponseError) as e:
    assert status_of(e) == 404

# --- the hub registry
hub = IoTHubRegistryManager.from_connection_string(env["HUB_CS"])
did = "py-hub-device"
try:
    hub.get_device(did)
    raise AssertionError("get of a missing device did not fail")
except HttpOperationError as e:
    assert e.response.status_code == 404, e.response.status_code
    assert "ErrorCode:DeviceNotFound" in e.response.text, e.response.text
d = hub.create_device_with_certificate_authority(did, "enabled")
assert d.status == "enabled" and d.authentication.type == "certificateAuthority", d
try:
    hub.create_device_with_certificate_authority(did, "enabled")
    raise AssertionError("second create did not fail")
except HttpOperationError as e:
    assert e.response.status_code == 409, e.response.status_code
d2 = hub.update_device_with_certificate_authority(did, d.etag, "disabled")
assert d2.status == "disabled", d2
try:
    hub.update_device_with_certificate_authority(did, d.etag, "enabled")
    raise AssertionError("a stale etag did not fail")
except HttpOperationError as e:
    assert e.response.status_code == 412, e.response.status_code
assert hub.get_device(did).status == "disabled"
hub.delete_device(did)
try:
    hub.get_device(did)
    raise AssertionError("get after delete did not fail")
except HttpOperationError as e:
    assert e.response.status_code == 404
    assert "ErrorCode:DeviceNotFound" in e.response.text

# --- the trap, on purpose: a disabled enrollment under an ID that is not
# the certificate's CN is accepted, exactly as DPS accepts it.
keep = env.get("KEEP_ID")
if keep:
    kept = dps.enrollment.create_or_update(
        id=keep,
        enrollment={
            "registrationId": keep,
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": leaf}}}},
            "provisioningStatus": "disabled",
        },
    )
    assert kept["provisioningStatus"] == "disabled", kept
    # A group the CLI made is what the SDK reads.
    assert dps.enrollment_group.get(id=env["GROUP_ID"])["provisioningStatus"] == "enabled"

print("OK")
sys.stdout.flush()
