// Package registry is the persistent state of iotctl's local IoT Hub:
// device and module identities, their twins, the hub's shared access
// policies, the cloud-to-device message queues and the delivery
// feedback queue, kept in one bbolt file.
//
// Identities and twins are the service API's own wire types
// (pkg/iothub), and the registry's JSON types (Policy, Feedback) use the
// field names of the IoT Hub REST API too, so the REST front end writes
// them as they are. Connection state and last activity are not stored (they
// change too often); the front ends fill them in from live sessions.
//
// Errors are *Error values carrying IoT Hub's six-digit code and name;
// test them with errors.Is against the templates (ErrDeviceNotFound,
// ErrPreconditionFailed, ...):
//
//	st, err := registry.Open(filepath.Join(dataDir, "hub.db"), nil)
//	if err != nil { ... }
//	defer st.Close()
//	d, err := st.CreateDevice(&iothub.Device{DeviceID: "dev1"}) // keys generated
//	if errors.Is(err, registry.ErrDeviceAlreadyExists) { ... }
//	twin, delta, err := st.PatchTwin("dev1", "", &iothub.TwinUpdate{
//		Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"interval":10}`)},
//	}, "*")
//	// send delta.Patch to the device on $iothub/twin/PATCH/properties/desired/?$version=delta.Version
//
// All Store methods are safe for concurrent use; writes are batched
// (bbolt's DB.Batch), so many concurrent writers share a transaction.
// OpenMemory gives a throw-away store for tests and the demo.
package registry
