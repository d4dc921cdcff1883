// An official Azure IoT Node device that provisions itself through DPS
// (azure-iot-provisioning-device + azure-iot-provisioning-device-http,
// -mqtt or -amqp as DPS_TRANSPORT says: http, mqtt, amqp, or mqttws and
// amqpws over WebSocket on 443; http by default; symmetric
// key), then connects to the hub DPS assigned with
// azure-iot-device over MQTT and sends telemetry. Usage:
//   node dps_device.js PROVISIONING_HOST ID_SCOPE REGISTRATION_ID DEVICE_KEY [MESSAGES] [PAYLOAD_JSON]
// Prints one JSON object per line: {event:"registered", result}, {event:"sent", count}
// or {event:"error", name, message, statusCode, body}.
'use strict';
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const transports = {
  http: () => new (require('azure-iot-provisioning-device-http').Http)(),
  mqtt: () => new (require('azure-iot-provisioning-device-mqtt').Mqtt)(),
  amqp: () => new (require('azure-iot-provisioning-device-amqp').Amqp)(),
  mqttws: () => new (require('azure-iot-provisioning-device-mqtt').MqttWs)(),
  amqpws: () => new (require('azure-iot-provisioning-device-amqp').AmqpWs)(),
};
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const [host, idScope, regId, key, count, payload] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function main() {
  const security = new SymmetricKeySecurityClient(regId, key);
  const transport = transports[process.env.DPS_TRANSPORT || 'http'];
  if (!transport) throw new Error('DPS_TRANSPORT must be http, mqtt, amqp, mqttws or amqpws');
  const client = ProvisioningDeviceClient.create(host, idScope, transport(), security);
  if (payload) client.setProvisioningPayload(JSON.parse(payload));
  let result;
  try {
    result = await client.register();
  } catch (err) {
    const t = err.transportObject || {};
    out({ event: 'error', name: err.constructor.name, message: String(err.message), statusCode: t.statusCode, body: err.result });
    process.exit(1);
  }
  out({ event: 'registered', result });
  const n = Number(count || 0);
  if (n === 0) return;
  const cs = 'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + key;
  const device = Client.fromConnectionString(cs, Mqtt);
  await device.open();
  for (let i = 0; i < n; i++) {
    await device.sendEvent(new Message(JSON.stringify({ n: i, via: 'dps' })));
  }
  out({ event: 'sent', count: n });
  await device.close();
}

main().catch((err) => { out({ event: 'error', name: err.constructor.name, message: String(err.message) }); process.exit(1); });
