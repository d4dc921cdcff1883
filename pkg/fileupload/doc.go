// Package fileupload uploads a file as an IoT Hub device does
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-file-upload):
// it asks the hub for a SAS URI of a blob (POST /devices/{id}/files),
// writes the blob to the storage account with the official Azure
// Storage SDK (azblob), and reports the outcome to the hub
// (POST /devices/{id}/files/notifications), success or failure.
//
//	res, err := fileupload.Upload(ctx, &fileupload.Options{ConnectionString: cs}, "logs/today.txt", f)
//
// File upload is HTTPS whatever transport the device otherwise uses,
// as in every Azure IoT device SDK.
package fileupload
