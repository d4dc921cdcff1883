// Package service is the back end's client of Azure IoT Hub (or of the
// local hub): direct methods, the identity registry, twins and
// statistics over HTTPS.
//
//	cs, _ := connstr.Parse(os.Getenv("IOTCTL_CONNECTION_STRING"))
//	c, err := service.New(cs, nil)
//	if err != nil { ... }
//	res, err := c.InvokeMethod(ctx, service.Target{DeviceID: "dev1"},
//		service.MethodCall{Name: "SetTelemetryInterval", Payload: json.RawMessage(`10`)})
//	// res.Status, res.Payload; err is a *StatusError for hub-side errors:
//	// errors.Is(err, service.ErrDeviceNotOnline), service.ErrNotFound, ...
//
// A Client is safe for concurrent use. It signs a SAS token with the
// connection string's policy key and reuses it until shortly before it
// expires.
package service
