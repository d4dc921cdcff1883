"""File upload with the official Python device client (azure-iot-device)
and Azure Storage SDK (azure-storage-blob), as Microsoft's file upload
quickstart does it, driven by the test.

    python upload.py CONNECTION_STRING CA_FILE BLOB_NAME CONTENT
    python upload.py CONNECTION_STRING CA_FILE --notify-unknown CORRELATION_ID

The first gets the blob's SAS URI from the hub (get_storage_info_for_blob),
writes CONTENT with azure-storage-blob (trusting CA_FILE, as the hub's
Azurite serves with the hub's certificate) and reports the outcome
(notify_blob_upload_status). The second reports on a correlation id the
hub never gave. Prints one JSON line: {"result": ...} or
{"error": {"name", "message", "cause"}}, cause being the error the SDK wrapped.
"""

import json
import sys

from azure.iot.device import IoTHubDeviceClient
from azure.storage.blob import BlobClient


def main():
    cs, ca_file = sys.argv[1], sys.argv[2]
    with open(ca_file) as f:
        ca = f.read()
    client = IoTHubDeviceClient.create_from_connection_string(cs, server_verification_cert=ca)
    try:
        if sys.argv[3] == "--notify-unknown":
            client.notify_blob_upload_status(sys.argv[4], True, 200, "never started")
            return {"notified": sys.argv[4]}
        name, content = sys.argv[3], sys.argv[4]
        info = client.get_storage_info_for_blob(name)
        url = "https://{}/{}/{}{}".format(info["hostName"], info["containerName"], info["blobName"], info["sasToken"])
        try:
            with BlobClient.from_blob_url(url, connection_verify=ca_file) as blob:
                blob.upload_blob(content.encode(), overwrite=True)
        except Exception as e:
            client.notify_blob_upload_status(info["correlationId"], False, 500, str(e))
            raise
        client.notify_blob_upload_status(info["correlationId"], True, 200, "uploaded")
        return {"blobName": info["blobName"], "containerName": info["containerName"], "correlationId": info["correlationId"]}
    finally:
        client.shutdown()


if __name__ == "__main__":
    try:
        print(json.dumps({"result": main()}), flush=True)
    except Exception as e:  # the test reads the error
        cause = e.__cause__
        print(json.dumps({"error": {"name": type(e).__name__, "message": str(e),
                                    "cause": cause and {"name": type(cause).__name__, "message": str(cause)}}}), flush=True)
