"""The official Python device client (azure-iot-device, the SDK of
Microsoft's quickstarts) against the hub, driven by the test.

    python device.py CONNECTION_STRING CA_FILE mqtt|websockets

It connects, prints {"event": "ready"}, then reads one JSON command per
line on stdin until stdin ends:

    {"op": "send", "body": ..., "messageId": ..., "contentType": ...,
     "contentEncoding": ..., "properties": {...}}   -> {"event": "sent"}
    {"op": "twin"}                                   -> {"event": "twin", "twin": ...}
    {"op": "report", "patch": {...}}                 -> {"event": "reported"}

and prints what the hub sends it: {"event": "method"} for a direct method
(answered as the quickstart's device answers SetTelemetryInterval),
{"event": "desired"} for a desired-properties patch and {"event": "c2d"}
for a cloud-to-device message. A failure prints {"event": "error"}.
"""

import json
import sys
import threading
import traceback

from azure.iot.device import IoTHubDeviceClient, Message, MethodResponse

_out = threading.Lock()


def emit(obj):
    with _out:
        print(json.dumps(obj), flush=True)


def on_method(client, request):
    emit({"event": "method", "name": request.name, "payload": request.payload, "requestId": request.request_id})
    if request.name == "SetTelemetryInterval":
        try:
            interval = int(request.payload)
            status, payload = 200, {"Response": "Executed direct method " + request.name, "interval": interval}
        except (TypeError, ValueError):
            status, payload = 400, {"Response": "Invalid parameter"}
    else:
        status, payload = 404, {"Response": "Direct method {} not defined".format(request.name)}
    client.send_method_response(MethodResponse.create_from_method_request(request, status, payload))


def on_c2d(message):
    data = message.data
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    emit({
        "event": "c2d",
        "body": data,
        "messageId": message.message_id,
        "correlationId": message.correlation_id,
        "contentType": message.content_type,
        "properties": message.custom_properties,
    })


def run(client, command):
    op = command["op"]
    if op == "send":
        m = Message(
            command["body"],
            message_id=command.get("messageId"),
            content_encoding=command.get("contentEncoding"),
            content_type=command.get("contentType"),
        )
        m.custom_properties.update(command.get("properties", {}))
        client.send_message(m)
        emit({"event": "sent", "messageId": command.get("messageId")})
    elif op == "twin":
        emit({"event": "twin", "twin": client.get_twin()})
    elif op == "report":
        client.patch_twin_reported_properties(command["patch"])
        emit({"event": "reported"})
    else:
        raise ValueError("unknown op " + op)


def main():
    cs, ca_file, transport = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(ca_file) as f:
        ca = f.read()
    client = IoTHubDeviceClient.create_from_connection_string(
        cs, server_verification_cert=ca, websockets=(transport == "websockets"), connection_retry=False
    )
    client.on_method_request_received = lambda request: on_method(client, request)
    client.on_twin_desired_properties_patch_received = lambda patch: emit({"event": "desired", "patch": patch})
    client.on_message_received = on_c2d
    try:
        client.connect()
        emit({"event": "ready"})
        for line in sys.stdin:
            if line.strip():
                run(client, json.loads(line))
    except Exception as e:  # the test asserts on what failed
        traceback.print_exc()
        emit({"event": "error", "type": type(e).__name__, "message": str(e)})
        return 1
    finally:
        client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
