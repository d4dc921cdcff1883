// Package iothub holds the wire types of the IoT Hub service REST API:
// device and module identities, their authentication, twins and twin
// updates, and times as IoT Hub writes them. The service client
// (pkg/service) sends and receives them and the local hub
// (pkg/hub/registry and pkg/hub/rest) stores and serves them, so both
// ends of the API use one definition of the JSON.
package iothub
