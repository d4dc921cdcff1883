// An official Azure IoT Node device or module over AMQP (azure-iot-device +
// azure-iot-device-amqp) driven by the interoperability tests. Usage:
//   node amqp_device.js CONNECTION_STRING TRANSPORT telemetry N   send N messages with properties, then exit
//   node amqp_device.js CONNECTION_STRING TRANSPORT serve [TTL]   answer methods, report and watch the twin,
//                                                                 settle C2D messages as their "settle"
//                                                                 property says (complete, reject, abandon;
//                                                                 abandon only the first delivery), send a
//                                                                 message on each {"cmd":"send"} line, until
//                                                                 standard input closes; with TTL, tokens
//                                                                 last TTL seconds and are renewed halfway
//   node amqp_device.js CONNECTION_STRING TRANSPORT module        a ModuleClient: send one output message,
//                                                                 answer a method, report, print input messages
// TRANSPORT is Amqp or AmqpWs. Every line on stdout is one JSON object.
'use strict';
const readline = require('readline');
const { Client, ModuleClient, Message, SharedAccessKeyAuthenticationProvider } = require('azure-iot-device');
const amqp = require('azure-iot-device-amqp');

const [cs, transportName, mode, arg] = process.argv.slice(2);
const Transport = amqp[transportName];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (err) => { out({ event: 'error', name: err && err.constructor && err.constructor.name, message: String(err && err.message) }); process.exit(1); };

function message(i) {
  const m = new Message(JSON.stringify({ n: i, temperature: 20 + i }));
  m.messageId = 'amqp-' + i;
  m.correlationId = 'corr-' + i;
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  m.properties.add('temperatureAlert', i % 2 ? 'true' : 'false');
  m.properties.add('sp ace', 'a/b&c');
  return m;
}

function settleC2D(client) {
  const abandoned = new Set();
  client.on('message', (msg) => {
    const props = {};
    for (const p of msg.properties.propertyList) props[p.key] = p.value;
    out({ event: 'c2d', messageId: msg.messageId, body: msg.data.toString(), properties: props });
    let action = props.settle || 'complete';
    if (action === 'abandon' && abandoned.has(msg.messageId)) action = 'complete';
    if (action === 'abandon') abandoned.add(msg.messageId);
    client[action](msg, (err) => {
      if (err) out({ event: 'error', name: err.constructor.name, message: String(err.message), action });
      else out({ event: 'settled', messageId: msg.messageId, action });
    });
  });
}

async function main() {
  if (!Transport) throw new Error('unknown transport ' + transportName);
  if (mode === 'module') {
    const client = ModuleClient.fromConnectionString(cs, Transport);
    client.on('error', (err) => out({ event: 'error', name: err.constructor.name, message: String(err.message) }));
    await client.open();
    out({ event: 'opened' });
    client.onMethod('ping', (req, res) => res.send(200, { pong: req.payload }));
    client.on('inputMessage', (input, msg) => {
      out({ event: 'input', input, messageId: msg.messageId, body: msg.data.toString() });
      client.complete(msg, () => {});
    });
    const twin = await client.getTwin();
    await new Promise((resolve, reject) => twin.properties.reported.update({ fromModule: true }, (err) => err ? reject(err) : resolve()));
    const m = new Message('from module');
    m.messageId = 'mod-1';
    await client.sendOutputEvent('out1', m);
    out({ event: 'ready' });
    process.stdin.resume();
    process.stdin.on('end', async () => { await client.close(); process.exit(0); });
    return;
  }
  let client;
  if (mode === 'serve' && arg) {
    // Short-lived tokens, renewed by the SDK on the live connection
    // (put-token on $cbs) halfway through their life.
    const ttl = Number(arg);
    const auth = SharedAccessKeyAuthenticationProvider.fromConnectionString(cs, ttl, Math.floor(ttl / 2));
    auth.on('newTokenAvailable', () => out({ event: 'renewed' }));
    client = Client.fromAuthenticationProvider(auth, Transport);
  } else {
    client = Client.fromConnectionString(cs, Transport);
  }
  client.on('error', (err) => out({ event: 'error', name: err.constructor.name, message: String(err.message) }));
  await client.open();
  out({ event: 'opened' });
  if (mode === 'telemetry') {
    const n = Number(arg || 10);
    for (let i = 0; i < n; i++) await client.sendEvent(message(i));
    out({ event: 'sent', count: n });
    await client.close();
    return;
  }
  if (mode === 'serve') {
    client.on('disconnect', (err) => out({ event: 'error', name: 'disconnect', message: String(err && err.message) }));
    client.onDeviceMethod('echo', (req, res) => {
      out({ event: 'method', name: req.methodName, payload: req.payload });
      res.send(200, req.payload);
    });
    client.onDeviceMethod('fail', (req, res) => res.send(404, { Response: 'Direct method fail not defined' }));
    settleC2D(client);
    const twin = await client.getTwin();
    out({ event: 'twin', desired: twin.properties.desired, reported: twin.properties.reported });
    twin.on('properties.desired', (delta) => out({ event: 'desired', delta }));
    await new Promise((resolve, reject) => twin.properties.reported.update({ fromNode: true, interval: 1 }, (err) => err ? reject(err) : resolve()));
    out({ event: 'ready' });
    let sent = 0;
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', async (line) => {
      const cmd = JSON.parse(line);
      if (cmd.cmd === 'send') {
        await client.sendEvent(message(sent++)).catch(fail);
        out({ event: 'sent', count: sent });
      }
    });
    rl.on('close', async () => { await client.close(); process.exit(0); });
    return;
  }
  throw new Error('unknown mode ' + mode);
}

main().catch(fail);
