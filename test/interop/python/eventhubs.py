"""The official Python Event Hubs client (azure-eventhub, pure-Python AMQP)
against the hub's Event Hub-compatible endpoint.

    python eventhubs.py CONNECTION_STRING CA_FILE OP [ARGS_JSON]

OP is "props" (get_eventhub_properties and get_partition_properties of
every partition) or "read" (EventHubConsumerClient.receive, or with
ARGS["batch"] receive_batch, on partition ARGS["partitionId"] or on
every partition, until ARGS["count"] events came or
ARGS["timeoutSeconds"] passed). ARGS["websocket"] makes the client speak AMQP over WebSocket
(wss://HOST:443/$servicebus/websocket). Every line printed is one JSON object; the last one is
{"result": ...} or {"error": {"type": ..., "message": ...}}.
"""

import datetime
import json
import sys
import threading
import traceback

from azure.eventhub import EventHubConsumerClient, TransportType


def plain(v):
    """Makes what the SDK returns printable as JSON: bytes as text,
    times in ISO 8601, dictionary keys as text."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def emit(obj):
    print(json.dumps(plain(obj)), flush=True)


def props(client, args):
    hub = client.get_eventhub_properties()
    parts = [client.get_partition_properties(p) for p in hub["partition_ids"]]
    return {"hub": hub, "partitions": parts}


def read(client, args):
    count = args.get("count", 1)
    position = args.get("sequenceNumber", "-1")  # "-1": the earliest offset
    inclusive = args.get("inclusive", False)
    got = []
    failure = []
    done = threading.Event()

    def on_event(ctx, ev):
        if ev is None:
            return
        record(ctx, ev)
        if len(got) >= count:
            done.set()

    def on_event_batch(ctx, events):
        for ev in events:
            record(ctx, ev)
        if len(got) >= count:
            done.set()

    def record(ctx, ev):
        emit({
            "event": "event",
            "partitionId": ctx.partition_id,
            "body": ev.body_as_str(),
            "properties": ev.properties,
            "systemProperties": ev.system_properties,
            "sequenceNumber": ev.sequence_number,
            "offset": ev.offset,
            "enqueuedTime": ev.enqueued_time,
            "messageId": ev.message_id,
            "contentType": ev.content_type,
            "correlationId": ev.correlation_id,
        })
        got.append(ev.sequence_number)

    def on_error(ctx, err):
        failure.append(err)
        done.set()

    kwargs = {"on_error": on_error, "starting_position": position, "starting_position_inclusive": inclusive}
    if "partitionId" in args:  # else every partition, balanced in memory
        kwargs["partition_id"] = args["partitionId"]
    if args.get("batch"):
        target, kwargs["on_event_batch"] = client.receive_batch, on_event_batch
    else:
        target, kwargs["on_event"] = client.receive, on_event
    receiver = threading.Thread(target=target, daemon=True, kwargs=kwargs)
    receiver.start()
    done.wait(args.get("timeoutSeconds", 60))
    client.close()
    receiver.join(30)
    if failure:
        raise failure[0]
    return {"count": len(got), "sequenceNumbers": got}


def main():
    cs, ca, op = sys.argv[1], sys.argv[2], sys.argv[3]
    args = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    client = EventHubConsumerClient.from_connection_string(
        cs,
        consumer_group=args.get("consumerGroup", "$Default"),
        connection_verify=ca,
        retry_total=args.get("retries", 1),
        transport_type=TransportType.AmqpOverWebsocket if args.get("websocket") else TransportType.Amqp,
    )
    try:
        with client:
            result = {"props": props, "read": read}[op](client, args)
        emit({"result": result})
        return 0
    except Exception as e:  # the test asserts on what failed
        traceback.print_exc()
        emit({"error": {"type": type(e).__name__, "message": str(e)}})
        return 1


if __name__ == "__main__":
    sys.exit(main())
