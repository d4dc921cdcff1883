// File upload with the official Azure IoT Node SDKs, for the
// interoperability tests. Usage:
//   node upload.js DEVICE_CS upload JSON_ARGS          JSON_ARGS: {blobName, content}; azure-iot-device (Mqtt
//                                                       transport; upload is HTTPS in every transport)
//                                                       uploadToBlob of content as blobName
//   node upload.js SERVICE_CS notifications JSON_ARGS  JSON_ARGS: {count, timeoutSeconds}; azure-iothub
//                                                       getFileNotificationReceiver: completes and prints
//                                                       count notifications
// Prints one JSON line: {"result": ...} or {"error": {"name", "message", "responseBody", "inner"}}, inner
// being the error the SDK wrapped (err.innerError) in the same shape.
'use strict';
const { Readable } = require('stream');

const [cs, op, json] = process.argv.slice(2);
const args = JSON.parse(json || '{}') || {};
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function upload() {
  const { Client } = require('azure-iot-device');
  const { Mqtt } = require('azure-iot-device-mqtt');
  const client = Client.fromConnectionString(cs, Mqtt);
  try {
    const data = Buffer.from(args.content);
    await client.uploadToBlob(args.blobName, Readable.from([data]), data.length);
    return { uploaded: args.blobName, bytes: data.length };
  } finally {
    await client.close();
  }
}

async function notifications() {
  const { Client } = require('azure-iothub');
  const client = Client.fromConnectionString(cs);
  await client.open();
  try {
    const receiver = await new Promise((resolve, reject) => client.getFileNotificationReceiver((err, r) => err ? reject(err) : resolve(r)));
    return await new Promise((resolve, reject) => {
      const got = [];
      const timer = setTimeout(() => reject(new Error('got ' + got.length + ' file notifications within ' + (args.timeoutSeconds || 60) + ' s')), (args.timeoutSeconds || 60) * 1000);
      receiver.on('errorReceived', reject);
      receiver.on('message', (msg) => {
        receiver.complete(msg, (err) => {
          if (err) return reject(err);
          got.push({ contentType: msg.contentType, notification: JSON.parse(msg.getData().toString()) });
          if (got.length >= (args.count || 1)) {
            clearTimeout(timer);
            resolve(got);
          }
        });
      });
    });
  } finally {
    await client.close();
  }
}

(op === 'upload' ? upload() : notifications()).then(
  (result) => { out({ result }); process.exit(0); },
  (err) => {
    const shape = (e) => e && { name: e.constructor && e.constructor.name, message: String(e.message),
      responseBody: e.responseBody && String(e.responseBody), inner: shape(e.innerError) };
    out({ error: shape(err) });
    process.exit(0);
  });
