// The official Azure IoT Node device (azure-iot-device + MQTT) over a
// connection's lifetime, driven by the interoperability tests. Usage:
//   node lifecycle.js patches CONNECTION_STRING N  send N reported-property patches
//                                                   back to back ({"n": 0} ... {"n": N-1}),
//                                                   wait for every answer, then exit
//   node lifecycle.js sas SAS_TOKEN                connect with a fixed token
//                                                   (Client.fromSharedAccessSignature), send
//                                                   a message every 500 ms, and exit at the
//                                                   first that fails ("cut"): once the hub
//                                                   ends the connection, the SDK connects
//                                                   again with the same token
// Every line on stdout is one JSON object.
'use strict';
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const [mode, cred, arg] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (err) => { out({ event: 'error', name: err && err.constructor && err.constructor.name, message: String(err && err.message) }); process.exit(1); };

async function patches() {
  const client = Client.fromConnectionString(cred, Mqtt);
  await client.open();
  const twin = await client.getTwin();
  const n = Number(arg);
  const sent = [];
  for (let i = 0; i < n; i++) {
    sent.push(new Promise((resolve, reject) => twin.properties.reported.update({ n: i }, (err) => err ? reject(err) : resolve())));
  }
  await Promise.all(sent);
  out({ event: 'patched', count: n });
  await client.close();
}

async function sas() {
  const client = Client.fromSharedAccessSignature(cred, Mqtt);
  client.on('disconnect', (err) => out({ event: 'disconnected', message: String(err && err.message) }));
  client.on('error', (err) => out({ event: 'clientError', name: err.constructor.name, message: String(err.message) }));
  await client.open();
  out({ event: 'opened' });
  let i = 0;
  setInterval(() => {
    const n = i++;
    client.sendEvent(new Message(JSON.stringify({ n })), (err) => {
      if (!err) return out({ event: 'sent', n });
      out({ event: 'cut', n, name: err.constructor.name, message: String(err.message) });
      process.exit(0);
    });
  }, 500);
}

(mode === 'patches' ? patches() : mode === 'sas' ? sas() : Promise.reject(new Error('unknown mode ' + mode))).catch(fail);
