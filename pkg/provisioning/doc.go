// Package provisioning is a device client of the Azure IoT Hub Device
// Provisioning Service (DPS) over HTTPS: it registers a device with a
// symmetric key (its own, or one derived from an enrollment group key)
// or an X.509 certificate, polls the operation as the official SDKs do,
// and returns the hub and device id DPS assigned.
//
//	key, _ := dps.DeriveKey(groupKey, "dev-1")
//	res, err := provisioning.Register(ctx, &provisioning.Options{
//		IDScope: "0ne00111111", RegistrationID: "dev-1", SymmetricKey: key,
//	})
//	if err != nil { ... }
//	fmt.Println(res.State.AssignedHub, res.State.DeviceID)
//
// The wire types are the local DPS's (pkg/hub/dps), so both ends of the
// protocol share one encoding.
package provisioning
