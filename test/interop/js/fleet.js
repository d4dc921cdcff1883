// A fleet of official Azure IoT Node device clients (azure-iot-device +
// azure-iot-device-mqtt), one MQTT connection each, behaving like
// `iotctl device simulate`'s quickstart devices: each sends
// {"temperature": t,"humidity": h} with content type, encoding and
// temperatureAlert every intervalMs after its previous send was
// acknowledged, answers SetTelemetryInterval, takes C2D messages and
// (twin: true) listens for desired properties. bench/fleet runs it
// beside `iotctl device simulate` to compare memory per device.
//
// Usage: node fleet.js CONFIG_JSON, with CONFIG_JSON
//   {"host": "127.0.0.77", "keysFile": "keys.txt", "devices": 1000,
//    "intervalMs": 1000, "parallel": 100, "twin": true, "durationS": 0}
// keysFile holds lines "deviceId key". The hub's CA comes from
// NODE_EXTRA_CA_CERTS. Every line on stdout is one JSON object:
//   {"type":"stats", "elapsed", "connected", "sent", "acked", "errors", "rss", "heapUsed"} every second
//   {"type":"allConnected", "elapsed"} once every device is open
//   {"type":"error", "message"} for the first few errors
//   {"type":"summary", ...} after SIGINT/SIGTERM or durationS, then it exits
'use strict';
const fs = require('fs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const cfg = Object.assign({ intervalMs: 1000, parallel: 100, twin: true, durationS: 0 }, JSON.parse(process.argv[2] || '{}'));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const start = Date.now();
const elapsed = () => (Date.now() - start) / 1000;

const devs = fs.readFileSync(cfg.keysFile, 'utf8').split('\n')
  .map((l) => l.trim()).filter((l) => l && l[0] !== '#')
  .map((l) => l.split(/\s+/)).slice(0, cfg.devices || Infinity);

let connected = 0, sent = 0, acked = 0, errors = 0, reported = 0, stopping = false;
const clients = [];

function noteError(err) {
  errors++;
  if (reported++ < 5) out({ type: 'error', message: String(err && err.message || err) });
}

function quickstart() {
  const t = 20 + Math.random() * 15;
  const h = 60 + Math.random() * 20;
  const m = new Message(`{"temperature": ${t},"humidity": ${h}}`);
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  m.properties.add('temperatureAlert', t > 30 ? 'true' : 'false');
  return m;
}

async function openDevice([id, key]) {
  const client = Client.fromConnectionString(`HostName=${cfg.host};DeviceId=${id};SharedAccessKey=${key}`, Mqtt);
  const dev = { client, interval: cfg.intervalMs, timer: null };
  client.on('error', noteError);
  client.on('message', (msg) => client.complete(msg, () => {}));
  client.onDeviceMethod('SetTelemetryInterval', (req, res) => {
    const n = Number(req.payload);
    if (!(n > 0)) return res.send(400, { Response: 'Invalid parameter' });
    dev.interval = n * 1000;
    res.send(200, { Response: 'Executed direct method SetTelemetryInterval' });
  });
  await client.open();
  if (cfg.twin) {
    const twin = await client.getTwin();
    twin.on('properties.desired', () => {});
  }
  clients.push(dev);
  if (++connected === devs.length) out({ type: 'allConnected', elapsed: elapsed() });
  const tick = async () => {
    if (stopping) return;
    sent++;
    try {
      await client.sendEvent(quickstart());
      acked++;
    } catch (err) {
      noteError(err);
    }
    if (!stopping) dev.timer = setTimeout(tick, dev.interval);
  };
  tick();
}

// pool runs fn over items, parallel at a time (stopping early if
// early is set and the fleet is stopping).
async function pool(items, parallel, fn, early) {
  let next = 0;
  const worker = async () => {
    while (!(early && stopping) && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        noteError(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}

const stats = () => {
  const m = process.memoryUsage();
  return { elapsed: elapsed(), devices: devs.length, connected, sent, acked, errors, rss: m.rss, heapUsed: m.heapUsed };
};
const ticker = setInterval(() => out(Object.assign({ type: 'stats' }, stats())), 1000);

async function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  for (const d of clients) clearTimeout(d.timer);
  await pool(clients, 200, (d) => d.client.close());
  out(Object.assign({ type: 'summary' }, stats()));
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (cfg.durationS > 0) setTimeout(stop, cfg.durationS * 1000);

pool(devs, cfg.parallel, openDevice, true).catch(noteError);
