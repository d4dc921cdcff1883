// The official Azure Event Hubs consumer (@azure/event-hubs EventHubConsumerClient) reading a backlog from the earliest
// position of every partition, for bench/monitor: the same work `iotctl hub monitor --from start --count N -o json` does.
// Usage:
//   node ehbench.js EVENTHUB_CONNECTION_STRING COUNT [JSON_ARGS]
//        JSON_ARGS: {maxBatchSize (default 1000), timeoutSeconds (default 600)}
// Each event is written to stdout as one JSON line (type, deviceId, partition, sequenceNumber, enqueuedTime, body), one
// write per batch; it stops after COUNT events. The last line on stderr is a JSON summary:
// {"result": {count, partitions, startupMs, readMs}} or {"error": {name, code, message}}, where startupMs is from process
// start to the client's creation and readMs from there to the COUNT-th event.
'use strict';
const { performance } = require('perf_hooks');
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');

const [cs, countArg, json] = process.argv.slice(2);
const args = JSON.parse(json || '{}') || {};
const want = Number(countArg);
const maxBatchSize = args.maxBatchSize || 1000;
const summary = (o) => process.stderr.write(JSON.stringify(o) + '\n');

function read(client) {
  let got = 0;
  const parts = new Set();
  return new Promise((resolve, reject) => {
    let sub;
    let done = false;
    const finish = (err, res) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sub.close().then(() => (err ? reject(err) : resolve(res)), reject);
    };
    const timer = setTimeout(() => finish(new Error('only ' + got + ' of ' + want + ' events within ' + (args.timeoutSeconds || 600) + ' s')),
      (args.timeoutSeconds || 600) * 1000);
    sub = client.subscribe({
      processEvents: async (events, ctx) => {
        if (done || events.length === 0) return;
        parts.add(ctx.partitionId);
        let out = '';
        for (const e of events) {
          if (got >= want) break;
          got++;
          out += JSON.stringify({
            type: 'event', deviceId: e.systemProperties && e.systemProperties['iothub-connection-device-id'],
            partition: ctx.partitionId, sequenceNumber: e.sequenceNumber, enqueuedTime: e.enqueuedTimeUtc, body: e.body,
          }) + '\n';
        }
        process.stdout.write(out);
        if (got >= want) finish(null, { count: got, partitions: parts.size });
      },
      processError: async (err) => finish(err),
    }, { startPosition: earliestEventPosition, maxBatchSize, maxWaitTimeInSeconds: 1 });
  });
}

async function main() {
  const startupMs = performance.now();
  const client = new EventHubConsumerClient('$Default', cs);
  try {
    const res = await read(client);
    res.startupMs = Math.round(startupMs);
    res.readMs = Math.round(performance.now() - startupMs);
    return res;
  } finally {
    await client.close();
  }
}

main().then(
  (result) => { summary({ result }); process.exit(0); },
  (err) => {
    const first = (err.errors && err.errors[0]) || err;
    summary({ error: { name: err.name || err.constructor.name, code: err.code || first.code, message: String(err.message || first.message) } });
    process.exit(1);
  },
);
