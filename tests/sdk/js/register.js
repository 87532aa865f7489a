// Registers one device with `iotca dps serve` through Microsoft's Node
// provisioning device client, over HTTPS (transport "http") or MQTT
// ("mqtt"), X.509 attestation. Prints one JSON line:
//   {"ok": true, "status", "assignedHub", "deviceId"} or
//   {"ok": false, "error": <class name>, "message"}
// Usage: node -r ./preload.js register.js http|mqtt SCOPE REGISTRATION_ID CERT KEY
'use strict';
const fs = require('fs');
const path = require('path');
const sdk = process.env.IOTCA_NODE_SDK;
const req = (m) => require(path.join(sdk, 'node_modules', m));
const { ProvisioningDeviceClient } = req('azure-iot-provisioning-device');
const { X509Security } = req('azure-iot-security-x509');
const [transportName, scope, registrationId, certFile, keyFile] = process.argv.slice(2);
const Transport =
  transportName === 'mqtt'
    ? req('azure-iot-provisioning-device-mqtt').Mqtt
    : req('azure-iot-provisioning-device-http').Http;
const security = new X509Security(registrationId, {
  cert: fs.readFileSync(certFile, 'utf8'),
  key: fs.readFileSync(keyFile, 'utf8'),
});
const client = ProvisioningDeviceClient.create('localhost', scope, new Transport(), security);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: 'Timeout', message: 'no answer in 60 s' }));
  process.exit(3);
}, 60000);
client.register((err, result) => {
  clearTimeout(timer);
  if (err) {
    console.log(JSON.stringify({ ok: false, error: err.constructor && err.constructor.name, message: String(err.message || err) }));
  } else {
    console.log(JSON.stringify({ ok: true, status: result.status, assignedHub: result.assignedHub, deviceId: result.deviceId }));
  }
  process.exit(0);
});
