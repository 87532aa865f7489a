// Preloaded (`node -r ./preload.js`) by the tests: Microsoft's Node SDKs
// cannot take a port, so connections to localhost on the services' ports
// (443 HTTPS, 8883 MQTT) go to the emulator's test ports instead:
// IOTCA_HTTPS_PORT and IOTCA_MQTT_PORT. Trust comes from NODE_EXTRA_CA_CERTS.
'use strict';
const tls = require('tls');
const original = tls.connect;
const ports = { 443: process.env.IOTCA_HTTPS_PORT, 8883: process.env.IOTCA_MQTT_PORT };
tls.connect = function (...args) {
  let opts = args.find((a) => a && typeof a === 'object');
  if (!opts && typeof args[0] === 'number') {
    // tls.connect(port, host, options, cb)
    const port = args[0];
    const host = typeof args[1] === 'string' ? args[1] : 'localhost';
    if ((host === 'localhost' || host === '127.0.0.1') && ports[port]) args[0] = Number(ports[port]);
    return original.apply(this, args);
  }
  if (opts) {
    const host = opts.host || opts.servername || 'localhost';
    const port = Number(opts.port || 443);
    if ((host === 'localhost' || host === '127.0.0.1') && ports[port]) opts.port = Number(ports[port]);
  }
  return original.apply(this, args);
};
