// Microsoft's Node service SDKs against `iotca dps serve`:
// azure-iot-provisioning-service (enrollment round trip: disabled create,
// read back, 409 without etag, 412 with a stale one, delete, 404) and
// azure-iothub (Registry: get 404 DeviceNotFound, create CA-signed, update
// to disabled, delete, get 404). Prints "OK" last; exits 1 on a mismatch.
// Env: DPS_CS, HUB_CS, LEAF (a certificate PEM file), IOTCA_NODE_SDK, and
// (with preload.js) IOTCA_HTTPS_PORT, NODE_EXTRA_CA_CERTS.
'use strict';
const fs = require('fs');
const path = require('path');
const assert = require('assert');
const req = (m) => require(path.join(process.env.IOTCA_NODE_SDK, 'node_modules', m));
const { ProvisioningServiceClient } = req('azure-iot-provisioning-service');
const { Registry } = req('azure-iothub');

const body = (x) => (x && x.responseBody !== undefined ? x.responseBody : x && x.result !== undefined ? x.result : x);
const status = (e) => (e && e.response && e.response.statusCode) || (e && e.statusCode);
async function fails(p, code, what) {
  try {
    await p;
  } catch (e) {
    assert.strictEqual(status(e), code, `${what}: ${e}`);
    return e;
  }
  throw new Error(`${what}: did not fail`);
}

(async () => {
  // The service SDK's connection string parser wants a plain host; the
  // preload maps localhost:443 to the emulator's port.
  const dpsCs = process.env.DPS_CS.replace(/HostName=localhost:\d+/, 'HostName=localhost');
  const dps = ProvisioningServiceClient.fromConnectionString(dpsCs);
  const id = 'node-disabled-enrollment';
  const leaf = fs.readFileSync(process.env.LEAF, 'utf8');
  const enrollment = {
    registrationId: id,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: leaf } } } },
    provisioningStatus: 'disabled',
  };
  const created = body(await dps.createOrUpdateIndividualEnrollment(enrollment));
  assert.strictEqual(created.provisioningStatus, 'disabled');
  const got = body(await dps.getIndividualEnrollment(id));
  assert.strictEqual(got.provisioningStatus, 'disabled');
  await fails(dps.createOrUpdateIndividualEnrollment(enrollment), 409, 'second create');
  const updated = body(await dps.createOrUpdateIndividualEnrollment({ ...enrollment, etag: created.etag, provisioningStatus: 'enabled' }));
  assert.strictEqual(updated.provisioningStatus, 'enabled');
  await fails(dps.createOrUpdateIndividualEnrollment({ ...enrollment, etag: created.etag }), 412, 'stale etag');
  await dps.deleteIndividualEnrollment(id);
  await fails(dps.getIndividualEnrollment(id), 404, 'get after delete');

  const hubCs = process.env.HUB_CS.replace(/HostName=localhost:\d+/, 'HostName=localhost');
  const registry = Registry.fromConnectionString(hubCs);
  const did = 'node-hub-device';
  const e = await fails(registry.get(did), 404, 'get of a missing device');
  assert.strictEqual(e.constructor.name, 'DeviceNotFoundError', String(e));
  const d = body(await registry.create({ deviceId: did, status: 'enabled', authentication: { type: 'certificateAuthority' } }));
  assert.strictEqual(d.status, 'enabled');
  await registry.update({ deviceId: did, status: 'disabled', authentication: { type: 'certificateAuthority' } });
  assert.strictEqual(body(await registry.get(did)).status, 'disabled');
  await registry.delete(did);
  await fails(registry.get(did), 404, 'get after delete');
  console.log('OK');
})().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
