// Package auth decides who may do what on iotctl's local IoT Hub: it
// checks the SAS tokens of service clients against the hub's shared
// access policies and those of devices and modules against their own
// keys (or a policy with DeviceConnect), as
// https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas
// describes and the SDKs sign them (azure-iot-sdk-node
// common/core/src/shared_access_signature.ts).
//
//	a := auth.New(store, &auth.Options{HostNames: []string{"localhost:8443", "127.0.0.1"}})
//	policy, err := a.Service(r.Header.Get("Authorization"), registry.RegistryRead)
//	if errors.Is(err, auth.ErrUnauthorized) { ... 401 ... }
//	err = a.Device(password, "dev1", "") // MQTT CONNECT
//
// Errors wrap ErrUnauthorized and carry a Reason; they never contain
// the token, the signature or a key. An Authorizer is safe for
// concurrent use.
package auth
