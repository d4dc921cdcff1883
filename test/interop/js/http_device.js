// An official Azure IoT Node device over HTTPS (azure-iot-device +
// azure-iot-device-http) driven by the interoperability tests. Usage:
//   node http_device.js CONNECTION_STRING telemetry N   send N messages with properties one by one,
//                                                        then N more in one batch, then exit
//   node http_device.js CONNECTION_STRING c2d           poll C2D messages every second and settle each
//                                                        as its "settle" property says (complete, reject,
//                                                        abandon; abandon only the first delivery),
//                                                        until standard input closes
// Every line on stdout is one JSON object.
'use strict';
const { Client, Message } = require('azure-iot-device');
const { Http } = require('azure-iot-device-http');

const [cs, mode, arg] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (err) => { out({ event: 'error', name: err && err.constructor && err.constructor.name, message: String(err && err.message) }); process.exit(1); };

function message(i) {
  const m = new Message(JSON.stringify({ n: i }));
  m.messageId = 'http-' + i;
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  m.properties.add('temperatureAlert', i % 2 ? 'true' : 'false');
  return m;
}

async function main() {
  const client = Client.fromConnectionString(cs, Http);
  client.on('error', (err) => out({ event: 'error', name: err.constructor.name, message: String(err.message) }));
  await client.open();
  out({ event: 'opened' });
  if (mode === 'telemetry') {
    const n = Number(arg || 3);
    for (let i = 0; i < n; i++) await client.sendEvent(message(i));
    const batch = [];
    for (let i = n; i < 2 * n; i++) batch.push(message(i));
    await client.sendEventBatch(batch);
    out({ event: 'sent', count: 2 * n });
    await client.close();
    return;
  }
  if (mode === 'c2d') {
    client.setOptions({ http: { receivePolicy: { interval: 1 } } });
    const abandoned = new Set();
    client.on('message', (msg) => {
      const props = {};
      // The Http transport keeps the header's "iothub-app-" prefix in the
      // property name (azure-iot-http-base Http.toMessage).
      for (const p of msg.properties.propertyList) props[p.key.replace(/^iothub-app-/, '')] = p.value;
      out({ event: 'c2d', messageId: msg.messageId, body: msg.data.toString(), properties: props });
      let action = props.settle || 'complete';
      if (action === 'abandon' && abandoned.has(msg.messageId)) action = 'complete';
      if (action === 'abandon') abandoned.add(msg.messageId);
      client[action](msg, (err) => {
        if (err) out({ event: 'error', name: err.constructor.name, message: String(err.message), action });
        else out({ event: 'settled', messageId: msg.messageId, action });
      });
    });
    out({ event: 'ready' });
    process.stdin.resume();
    process.stdin.on('end', async () => { await client.close(); process.exit(0); });
    return;
  }
  throw new Error('unknown mode ' + mode);
}

main().catch(fail);
