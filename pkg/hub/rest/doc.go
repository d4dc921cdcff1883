// Package rest is the HTTPS service API of iotctl's local IoT Hub as an
// http.Handler: the identity registry (devices, modules), twins, direct
// methods, queries, statistics and the C2D purge, on the paths and with
// the JSON shapes of Azure IoT Hub's service REST API
// (https://learn.microsoft.com/rest/api/iothub/service).
//
//	h, err := rest.New(&rest.Options{Store: st, Auth: authz, Methods: hub, Presence: hub, Twins: hub})
//	if err != nil { ... }
//	srv := &http.Server{Handler: h}
//
// Every request needs "Authorization: SharedAccessSignature ..." signed
// with a shared access policy
// (https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas).
// Rights per route:
//
//	GET /devices, /devices/{id}, /devices/{id}/modules[/{mid}], /statistics/devices   RegistryRead
//	PUT, DELETE /devices/{id}[/modules/{mid}]                                          RegistryWrite
//	GET /twins/{id}[/modules/{mid}], POST /devices/query                               RegistryRead or ServiceConnect
//	PATCH, PUT /twins/{id}[/modules/{mid}]                                             RegistryWrite or ServiceConnect
//	POST /twins/{id}[/modules/{mid}]/methods, DELETE /devices/{id}/commands,
//	GET /statistics/service                                                            ServiceConnect
//
// Twin operations accept ServiceConnect as well as the registry rights
// because IoT Hub's docs describe twin reads and updates as
// service-facing operations and the default "service" policy is what
// back ends usually hold; registry writes proper (creating and deleting
// identities) do not.
//
// The api-version query parameter is accepted with any value or none.
// Device and module ids are read from the escaped path, one decoded
// segment each, so ids with reserved characters work when the client
// percent-encodes them (as the SDKs do with encodeURIComponent).
//
// Failures answer the HTTP status, the header "iothub-errorcode: Name"
// and a JSON body that both the Node SDK (legacy "ErrorCode:Name;text"
// parsing) and the C# SDK (Message holding JSON with a six-digit
// errorCode) understand; errorBody in errors.go explains the shape.
// Bodies over the limits get 413 MessageTooLarge; malformed bodies 400
// ArgumentInvalid; unknown paths 404; wrong methods 405 with Allow.
package rest
