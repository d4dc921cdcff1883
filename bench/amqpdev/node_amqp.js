// A fleet of official Azure IoT Node device clients (azure-iot-device +
// azure-iot-device-amqp) in one node process, one AMQP connection each
// (the Node SDK does not share connections), for bench/amqpdev to run
// beside its go-amqp devices against the same hub.
//
// Usage: node node_amqp.js CONFIG_JSON, with CONFIG_JSON
//   {"host": "127.0.0.79", "keysFile": "keys.txt", "devices": 100,
//    "parallel": 50, "window": 32, "durationS": 10}
// keysFile holds lines "deviceId key"; the hub's CA comes from
// NODE_EXTRA_CA_CERTS; the modules from NODE_PATH (test/interop's
// node_modules). It opens every device, prints {"type":"ready"}, and
// waits for a line on stdin; then each device keeps `window` sendEvent
// calls in flight for durationS, and it prints
//   {"type":"summary", "devices", "connected", "acked", "errors", "sendS"}
// and exits. {"type":"error", "message"} lines report the first errors.
'use strict';
const fs = require('fs');
const readline = require('readline');
const { Client, Message } = require('azure-iot-device');
const { Amqp } = require('azure-iot-device-amqp');

const cfg = Object.assign({ parallel: 50, window: 32, durationS: 10 }, JSON.parse(process.argv[2] || '{}'));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const devs = fs.readFileSync(cfg.keysFile, 'utf8').split('\n')
  .map((l) => l.trim()).filter((l) => l)
  .map((l) => l.split(/\s+/)).slice(0, cfg.devices || Infinity);

let connected = 0, acked = 0, errors = 0, reported = 0;
const clients = [];

function noteError(err) {
  errors++;
  if (reported++ < 5) out({ type: 'error', message: String(err && err.message || err) });
}

async function pool(items, parallel, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
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

async function open([id, key]) {
  const client = Client.fromConnectionString(`HostName=${cfg.host};DeviceId=${id};SharedAccessKey=${key}`, Amqp);
  client.on('error', noteError);
  await client.open();
  clients.push(client);
  connected++;
}

async function send(deadline) {
  const body = '{"temperature":21.5,"humidity":40}';
  const loop = async (client) => {
    while (Date.now() < deadline) {
      const m = new Message(body);
      m.properties.add('n', '1');
      try {
        await client.sendEvent(m);
        acked++;
      } catch (err) {
        noteError(err);
        return;
      }
    }
  };
  const loops = [];
  for (const c of clients) for (let i = 0; i < cfg.window; i++) loops.push(loop(c));
  await Promise.all(loops);
}

async function main() {
  await pool(devs, cfg.parallel, open);
  out({ type: 'ready', connected });
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  const t0 = Date.now();
  await send(t0 + cfg.durationS * 1000);
  const sendS = (Date.now() - t0) / 1000;
  out({ type: 'summary', devices: devs.length, connected, acked, errors, sendS });
  await pool(clients, 100, (c) => c.close());
  process.exit(0);
}

main().catch((err) => {
  noteError(err);
  out({ type: 'summary', devices: devs.length, connected, acked, errors, sendS: 0 });
  process.exit(1);
});
