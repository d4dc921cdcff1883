// The official Azure IoT Node service SDK (azure-iothub) driven by the
// interoperability tests. Usage:
//   node service.js CONNECTION_STRING OPERATION JSON_ARGS
// Operations: create {deviceId}, get {deviceId}, invoke {deviceId, methodName, payload,
// responseTimeoutInSeconds}, getTwin {deviceId}, updateTwin {deviceId, patch, padTagsTo}
// (padTagsTo: a tag "padding" of that many bytes is added to the patch, for bodies too large
// to pass on the command line).
// Prints one JSON line: {"result": ...} or {"error": {"name", "message", "statusCode"}}.
'use strict';
const { Registry, Client } = require('azure-iothub');

const [cs, op, json] = process.argv.slice(2);
const args = JSON.parse(json || '{}');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function main() {
  const registry = Registry.fromConnectionString(cs);
  switch (op) {
    case 'create':
      return (await registry.create({ deviceId: args.deviceId })).responseBody;
    case 'get':
      return (await registry.get(args.deviceId)).responseBody;
    case 'getTwin':
      return (await registry.getTwin(args.deviceId)).responseBody.properties;
    case 'updateTwin': {
      const twin = (await registry.getTwin(args.deviceId)).responseBody;
      const patch = args.patch || {};
      if (args.padTagsTo) {
        patch.tags = Object.assign({}, patch.tags, { padding: 'x'.repeat(args.padTagsTo) });
      }
      return (await twin.update(patch)).properties;
    }
    case 'invoke': {
      const client = Client.fromConnectionString(cs);
      const res = await client.invokeDeviceMethod(args.deviceId, {
        methodName: args.methodName,
        payload: args.payload,
        responseTimeoutInSeconds: args.responseTimeoutInSeconds || 30,
      });
      return res.result;
    }
  }
  throw new Error('unknown operation ' + op);
}

main().then(
  (result) => out({ result }),
  (err) => out({ error: { name: err.constructor.name, message: String(err.message), statusCode: err.response && err.response.statusCode } }),
);
