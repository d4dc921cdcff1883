// One direct-method call with the official Azure IoT Node service SDK
// (azure-iothub Client.invokeDeviceMethod), as a back-end script would
// make it; bench/invoke times it beside `iotctl method invoke`. Usage:
//   node invoke.js CONNECTION_STRING DEVICE_ID METHOD_NAME [JSON_PAYLOAD] [RESPONSE_TIMEOUT_SECONDS]
// The SDK's REST client always uses port 443 and trusts the CAs in
// NODE_EXTRA_CA_CERTS. Prints {"status":...,"payload":...} on one line
// and exits 0, or prints the error on stderr and exits 1.
'use strict';
const { Client } = require('azure-iothub');

const [cs, deviceId, methodName, payload, timeout] = process.argv.slice(2);

async function main() {
  const client = Client.fromConnectionString(cs);
  const res = await client.invokeDeviceMethod(deviceId, {
    methodName,
    payload: payload === undefined ? null : JSON.parse(payload),
    responseTimeoutInSeconds: Number(timeout || 30),
  });
  process.stdout.write(JSON.stringify(res.result) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`invoke.js: ${err.constructor.name}: ${err.message}\n`);
    process.exit(1);
  },
);
