// An official Azure IoT Node device (azure-iot-device + MQTT) driven by
// the interoperability tests. Usage:
//   node device.js CONNECTION_STRING telemetry N   send N messages with properties, then exit
//   node device.js CONNECTION_STRING serve         answer methods, report and watch the twin
//                                                   until standard input closes
//   node device.js CONNECTION_STRING open          open and report the outcome
// Every line on stdout is one JSON object.
'use strict';
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const [cs, mode, arg] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (err) => { out({ event: 'error', name: err && err.constructor && err.constructor.name, message: String(err && err.message) }); process.exit(1); };

async function main() {
  const client = Client.fromConnectionString(cs, Mqtt);
  if (mode === 'open') {
    try {
      await client.open();
      out({ event: 'opened' });
      await client.close();
    } catch (err) {
      out({ event: 'error', name: err.constructor.name, message: String(err.message) });
    }
    return;
  }
  await client.open();
  out({ event: 'opened' });
  if (mode === 'telemetry') {
    const n = Number(arg || 10);
    for (let i = 0; i < n; i++) {
      const m = new Message(JSON.stringify({ n: i, temperature: 20 + i }));
      m.messageId = 'node-' + i;
      m.contentType = 'application/json';
      m.contentEncoding = 'utf-8';
      m.properties.add('temperatureAlert', i % 2 ? 'true' : 'false');
      m.properties.add('sp ace', 'a/b&c');
      await client.sendEvent(m);
    }
    out({ event: 'sent', count: n });
    await client.close();
    return;
  }
  if (mode === 'serve') {
    client.onDeviceMethod('SetTelemetryInterval', (req, res) => {
      out({ event: 'method', name: req.methodName, payload: req.payload });
      const n = Number(req.payload);
      if (Number.isNaN(n) || req.payload === null || typeof req.payload === 'object') {
        res.send(400, { Response: 'Invalid parameter' });
      } else {
        res.send(200, { Response: 'Executed direct method SetTelemetryInterval' });
      }
    });
    client.onDeviceMethod('echo', (req, res) => {
      out({ event: 'method', name: req.methodName });
      res.send(200, req.payload);
    });
    client.onDeviceMethod('fail', (req, res) => res.send(404, { Response: 'Direct method fail not defined' }));
    client.onDeviceMethod('silent', (req) => out({ event: 'method', name: req.methodName }));
    client.on('message', (msg) => {
      const props = {};
      for (const p of msg.properties.propertyList) props[p.key] = p.value;
      out({ event: 'c2d', messageId: msg.messageId, body: msg.data.toString(), properties: props });
      client.complete(msg, () => {});
    });
    const twin = await client.getTwin();
    twin.on('properties.desired', (delta) => out({ event: 'desired', delta }));
    await new Promise((resolve, reject) => twin.properties.reported.update({ fromNode: true, interval: 1 }, (err) => err ? reject(err) : resolve()));
    out({ event: 'ready' });
    process.stdin.resume();
    process.stdin.on('end', async () => { await client.close(); process.exit(0); });
    return;
  }
  throw new Error('unknown mode ' + mode);
}

main().catch(fail);
