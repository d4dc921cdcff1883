"""The official Python provisioning client (azure-iot-device's
ProvisioningDeviceClient, over MQTT, symmetric key) against the hub's
DPS, then the provisioned device sends telemetry to the hub it was
assigned with IoTHubDeviceClient.

    python dps_device.py PROVISIONING_HOST ID_SCOPE REGISTRATION_ID DEVICE_KEY CA_FILE [MESSAGES] [PAYLOAD_JSON]

Prints one JSON object per line: {"event": "registered", ...},
{"event": "sent", "count": N} or {"event": "error", "name", "message"}.
"""

import json
import sys

from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    host, scope, reg_id, key, ca_file = sys.argv[1:6]
    count = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    payload = json.loads(sys.argv[7]) if len(sys.argv) > 7 else None
    with open(ca_file) as f:
        ca = f.read()
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=host, registration_id=reg_id, id_scope=scope, symmetric_key=key,
        server_verification_cert=ca)
    if payload is not None:
        client.provisioning_payload = payload
    result = client.register()
    state = result.registration_state
    emit({"event": "registered", "status": result.status,
          "assignedHub": state.assigned_hub if state else None,
          "deviceId": state.device_id if state else None,
          "substatus": state.sub_status if state else None,
          "payload": state.response_payload if state else None})
    if result.status != "assigned" or count == 0:
        return
    device = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key, hostname=state.assigned_hub, device_id=state.device_id, server_verification_cert=ca)
    device.connect()
    for i in range(count):
        device.send_message(Message(json.dumps({"n": i, "via": "python-dps"})))
    emit({"event": "sent", "count": count})
    device.shutdown()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test reads the failure from stdout
        emit({"event": "error", "name": type(e).__name__, "message": str(e)})
        sys.exit(1)
