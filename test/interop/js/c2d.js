// The official Azure IoT Node service SDK (azure-iothub) sending
// cloud-to-device messages and reading delivery feedback over AMQP, for
// the interoperability tests. Usage:
//   node c2d.js CONNECTION_STRING send JSON_ARGS       JSON_ARGS: {deviceId, messageId, body, ack, correlationId,
//                                                       contentType, properties: {name: value}, expiryMinutes,
//                                                       transport: "amqp" (default) or "amqpws" (AmqpWs, always
//                                                       wss://HOST:443/$iothub/websocket)}
//   node c2d.js CONNECTION_STRING feedback JSON_ARGS   waits for one feedback batch ({timeoutSeconds}),
//                                                       completes it and prints its records
// Prints one JSON line: {"result": ...} or {"error": {"name", "message", "inner": {"name", "message", "condition"}}},
// inner being the error the SDK wrapped (err.amqpError).
'use strict';
const { Client, AmqpWs } = require('azure-iothub');
const { Message } = require('azure-iot-common');

const [cs, op, json] = process.argv.slice(2);
const args = JSON.parse(json || '{}') || {};
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function send(client) {
  const m = new Message(args.body || '');
  if (args.messageId) m.messageId = args.messageId;
  if (args.correlationId) m.correlationId = args.correlationId;
  if (args.contentType) m.contentType = args.contentType;
  if (args.ack) m.ack = args.ack;
  if (args.expiryMinutes) m.expiryTimeUtc = Date.now() + args.expiryMinutes * 60000;
  for (const [k, v] of Object.entries(args.properties || {})) m.properties.add(k, v);
  const res = await client.send(args.deviceId, m);
  return { transport: res.transportObj && res.transportObj.constructor.name };
}

async function feedback(client) {
  const receiver = await new Promise((resolve, reject) => client.getFeedbackReceiver((err, r) => err ? reject(err) : resolve(r)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no feedback within ' + (args.timeoutSeconds || 30) + ' s')), (args.timeoutSeconds || 30) * 1000);
    receiver.on('errorReceived', reject);
    receiver.on('message', (msg) => {
      clearTimeout(timer);
      receiver.complete(msg, () => {
        const t = msg.transportObj || {};
        resolve({ contentType: msg.contentType, userId: t.user_id && Buffer.from(t.user_id).toString(), records: JSON.parse(msg.getData().toString()) });
      });
    });
  });
}

async function main() {
  const client = args.transport === 'amqpws' ? Client.fromConnectionString(cs, AmqpWs) : Client.fromConnectionString(cs);
  await client.open();
  try {
    if (op === 'send') return await send(client);
    if (op === 'feedback') return await feedback(client);
    throw new Error('unknown operation ' + op);
  } finally {
    await client.close();
  }
}

main().then(
  (result) => { out({ result }); process.exit(0); },
  (err) => {
    // The SDK wraps transport errors: err.amqpError is the one the hub's answer produced.
    const inner = err.amqpError;
    out({ error: { name: err.constructor.name, message: String(err.message),
      inner: inner && { name: inner.constructor.name, message: String(inner.message), condition: inner.condition } } });
    process.exit(0);
  },
);
