// Package service is the back end's client of Azure IoT Hub (or of the
// local hub): direct methods, the identity registry, twins and
// statistics over HTTPS; cloud-to-device messages, their feedback and
// the telemetry of the Event Hub-compatible endpoint over AMQP, on
// port 5671 or (Options.WebSocket) over a secure WebSocket on 443.
// Options.Proxy, or HTTPS_PROXY for HTTPS and WebSocket, tunnels the
// connections through an HTTP proxy; a proxy that refuses is a
// *ProxyError.
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
