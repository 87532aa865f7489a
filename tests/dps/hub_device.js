// A device app on the hub of `iotca dps serve`, through the real Azure IoT
// Node device SDK (azure-iot-device + azure-iot-device-mqtt): a Client over
// MQTT with an X509AuthenticationProvider whose gatewayHostName is
// localhost:PORT, and NoRetry, so every failure shows at once.
//
//   NODE_PATH=target/node-sdk/node_modules node tests/dps/hub_device.js \
//       HUB DEVICE_ID FULLCHAIN KEY TRUST PORT
//
// Reads commands from stdin, one a line, answering each with one JSON line
// on stdout (the first line answers open()):
//   send BODY   -> {"ok": true} or {"ok": false, "error": "<class>", "message": "..."}
//   quit        closes the client and exits
'use strict';

const fs = require('fs');
const readline = require('readline');
const { Client, Message, X509AuthenticationProvider } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { NoRetry } = require('azure-iot-common');

const [hub, deviceId, certFile, keyFile, trustFile, port] = process.argv.slice(2);

function answer(err) {
  const out = err
    ? { ok: false, error: err.constructor.name, message: String(err.message || err) }
    : { ok: true };
  process.stdout.write(JSON.stringify(out) + '\n');
}

async function main() {
  const provider = new X509AuthenticationProvider({
    host: hub,
    deviceId,
    gatewayHostName: 'localhost:' + port,
    x509: { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') },
  });
  const client = Client.fromAuthenticationProvider(provider, Mqtt);
  client.setRetryPolicy(new NoRetry());
  client.on('error', () => {});
  client.on('disconnect', () => {});
  await client.setOptions({ ca: fs.readFileSync(trustFile, 'utf8') });
  try {
    await client.open();
    answer(null);
  } catch (e) {
    answer(e);
  }
  let seq = 0;
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const sp = line.indexOf(' ');
    const cmd = sp < 0 ? line : line.slice(0, sp);
    if (cmd === 'send') {
      seq += 1;
      const m = new Message(line.slice(sp + 1));
      m.contentType = 'application/json';
      m.contentEncoding = 'utf-8';
      m.properties.add('seq', String(seq));
      try {
        await client.sendEvent(m);
        answer(null);
      } catch (e) {
        answer(e);
      }
    } else if (cmd === 'quit') {
      break;
    }
  }
  try {
    await client.close();
  } catch (e) {
    // a refused device cannot close cleanly
  }
  process.exit(0);
}

main().catch((e) => {
  answer(e);
  process.exit(1);
});
