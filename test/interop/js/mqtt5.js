// MQTT.js, a general-purpose MQTT client nobody here wrote, connecting
// to the hub as a device at a given protocol level. Usage:
//   node mqtt5.js URL CLIENT_ID USERNAME PASSWORD PROTOCOL_VERSION
// Prints one JSON line per CONNACK, error and close, then exits.
'use strict';
const mqtt = require('mqtt');

const [url, clientId, username, password, version] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const client = mqtt.connect(url, {
  protocolVersion: Number(version),
  clientId,
  username,
  password,
  clean: false,
  reconnectPeriod: 0,
  connectTimeout: 10000,
});
client.on('packetreceive', (p) => {
  if (p.cmd === 'connack') out({ event: 'connack', returnCode: p.returnCode, reasonCode: p.reasonCode });
});
client.on('connect', () => { out({ event: 'connected' }); client.end(); });
client.on('error', (err) => { out({ event: 'error', code: err.code, message: String(err.message) }); client.end(true); });
client.on('close', () => { out({ event: 'close' }); process.exit(0); });
