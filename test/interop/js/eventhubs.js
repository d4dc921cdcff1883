// The official Azure Event Hubs client (@azure/event-hubs) reading the
// hub's Event Hub-compatible endpoint, for the interoperability tests.
// Usage:
//   node eventhubs.js EVENTHUB_CONNECTION_STRING props [JSON_ARGS]  event hub and partition properties
//   node eventhubs.js EVENTHUB_CONNECTION_STRING read JSON_ARGS
//        JSON_ARGS: {count, timeoutSeconds}; reads from the earliest position until count events arrived,
//        printing one line per event
// JSON_ARGS may also hold maxRetries (the client's retry count; the SDK retries even UnauthorizedError)
// and consumerGroup (default $Default).
// Every line on stdout is one JSON object; the last one is {"result": ...} or {"error": {"name", "code", "message"}},
// where an AggregateError of retries is reported with the code of its first error.
'use strict';
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');

const [cs, op, json] = process.argv.slice(2);
const args = JSON.parse(json || '{}') || {};
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function props(client) {
  const hub = await client.getEventHubProperties();
  const partitions = [];
  for (const id of hub.partitionIds) partitions.push(await client.getPartitionProperties(id));
  return { hub, partitions };
}

function read(client) {
  const want = args.count || 1;
  let got = 0;
  return new Promise((resolve, reject) => {
    let sub;
    const timer = setTimeout(() => { sub && sub.close(); reject(new Error('only ' + got + ' events within ' + (args.timeoutSeconds || 30) + ' s')); },
      (args.timeoutSeconds || 30) * 1000);
    sub = client.subscribe({
      processEvents: async (events, ctx) => {
        for (const e of events) {
          got++;
          out({
            event: 'event', partitionId: ctx.partitionId, body: e.body, properties: e.properties,
            systemProperties: e.systemProperties, sequenceNumber: e.sequenceNumber, offset: e.offset,
            enqueuedTimeUtc: e.enqueuedTimeUtc, messageId: e.messageId, contentType: e.contentType,
            correlationId: e.correlationId,
          });
        }
        if (got >= want) {
          clearTimeout(timer);
          await sub.close();
          resolve({ count: got });
        }
      },
      processError: async (err) => {
        clearTimeout(timer);
        await sub.close();
        reject(err);
      },
    }, { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 });
  });
}

async function main() {
  const options = args.maxRetries === undefined ? {} : { retryOptions: { maxRetries: args.maxRetries } };
  const client = new EventHubConsumerClient(args.consumerGroup || '$Default', cs, options);
  try {
    if (op === 'props') return await props(client);
    if (op === 'read') return await read(client);
    throw new Error('unknown operation ' + op);
  } finally {
    await client.close();
  }
}

main().then(
  (result) => { out({ result }); process.exit(0); },
  (err) => {
    const first = (err.errors && err.errors[0]) || err;
    out({ error: { name: err.name || err.constructor.name, code: err.code || first.code, message: String(err.message || first.message) } });
    process.exit(0);
  },
);
