// An official Azure IoT Node device that provisions itself through DPS
// with an X.509 certificate (azure-iot-provisioning-device +
// azure-iot-security-x509, over the transport DPS_TRANSPORT names:
// http, mqtt, amqp, mqttws or amqpws), then connects to the hub DPS assigned with
// azure-iot-device over MQTT with the same certificate and sends
// telemetry. Usage:
//   node dps_x509.js PROVISIONING_HOST ID_SCOPE REGISTRATION_ID CERT_FILE KEY_FILE [MESSAGES]
// Prints one JSON object per line: {event:"registered", result},
// {event:"sent", count} or {event:"error", name, message}.
'use strict';
const fs = require('fs');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { X509Security } = require('azure-iot-security-x509');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const transports = {
  http: () => new (require('azure-iot-provisioning-device-http').Http)(),
  mqtt: () => new (require('azure-iot-provisioning-device-mqtt').Mqtt)(),
  amqp: () => new (require('azure-iot-provisioning-device-amqp').Amqp)(),
  mqttws: () => new (require('azure-iot-provisioning-device-mqtt').MqttWs)(),
  amqpws: () => new (require('azure-iot-provisioning-device-amqp').AmqpWs)(),
};
const [host, idScope, regId, certFile, keyFile, count] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function main() {
  const auth = { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') };
  const transport = transports[process.env.DPS_TRANSPORT || 'http'];
  if (!transport) throw new Error('DPS_TRANSPORT must be http, mqtt, amqp, mqttws or amqpws');
  const client = ProvisioningDeviceClient.create(host, idScope, transport(), new X509Security(regId, auth));
  let result;
  try {
    result = await client.register();
  } catch (err) {
    out({ event: 'error', name: err.constructor.name, message: String(err.message) });
    process.exit(1);
  }
  out({ event: 'registered', result });
  const n = Number(count || 0);
  if (n === 0) return;
  const device = Client.fromConnectionString('HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';x509=true', Mqtt);
  device.setOptions(auth);
  await device.open();
  for (let i = 0; i < n; i++) {
    await device.sendEvent(new Message(JSON.stringify({ n: i, via: 'dps-x509' })));
  }
  out({ event: 'sent', count: n });
  await device.close();
}

main().catch((err) => { out({ event: 'error', name: err.constructor.name, message: String(err.message) }); process.exit(1); });
