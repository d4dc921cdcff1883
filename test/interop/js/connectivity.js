// An official Azure IoT Node device (azure-iot-device) for the
// connectivity interoperability tests: MQTT, AMQP, or either over
// WebSocket, with a key or an X.509 client certificate. Usage:
//   node connectivity.js CONNECTION_STRING mqtt|mqttws|amqp|amqpws N [CERT_FILE KEY_FILE]
// It opens the client (with client.setOptions({cert, key}) when
// certificate files are given, for an x509=true connection string),
// sends N messages, and closes. Every line on stdout is one JSON object:
// {"event":"opened"}, {"event":"sent","count":N}, or
// {"event":"error","name":...,"message":...} (exit status 1).
'use strict';
const fs = require('fs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { Amqp, AmqpWs } = require('azure-iot-device-amqp');

const [cs, transport, count, certFile, keyFile] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function main() {
  const Transport = { mqtt: Mqtt, mqttws: MqttWs, amqp: Amqp, amqpws: AmqpWs }[transport];
  if (!Transport) throw new Error('unknown transport ' + transport);
  const client = Client.fromConnectionString(cs, Transport);
  if (certFile) {
    await client.setOptions({ cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') });
  }
  await client.open();
  out({ event: 'opened' });
  const n = Number(count || 1);
  for (let i = 0; i < n; i++) {
    const m = new Message(JSON.stringify({ n: i, transport }));
    m.messageId = transport + '-' + i;
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    await client.sendEvent(m);
  }
  out({ event: 'sent', count: n });
  await client.close();
}

main().then(() => process.exit(0), (err) => {
  out({ event: 'error', name: err && err.constructor && err.constructor.name, message: String(err && err.message) });
  process.exit(1);
});
