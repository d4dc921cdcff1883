// Package simulate is the simulation engine behind `iotctl device
// simulate`: one device or a fleet, each on its own pkg/device client,
// sending telemetry on an interval, answering direct methods, echoing
// desired properties and receiving cloud-to-device messages, with
// counters readable at any time and every happening delivered as an
// Event to a sink.
//
// By default a device behaves as the Azure IoT Hub quickstart's
// simulated device (Azure-Samples/azure-iot-samples-python
// iot-hub/Quickstarts/simulated-device-2/SimulatedDevice.py): every second it sends
// {"temperature": t,"humidity": h} (t in [20, 35), h in [60, 80)) with
// content type application/json, encoding utf-8 and the property
// temperatureAlert ("true" when t > 30); SetTelemetryInterval with a
// number of seconds (10 or "10") answers 200 and applies at once, a bad
// value answers 400, and any other method 404.
//
// Bodies can come from a Template instead (see TemplateHelp), fixed
// method replies from ParseMethodReply, and fleet identities from a
// Registry (KeyMap reads a keys file; the command layer adapts the
// service client). Fleet device ids are FleetIDs(prefix, n).
//
//	f, err := simulate.New(&simulate.Options{
//		Device: device.Options{ConnectionString: cs},
//		Sink:   func(e simulate.Event) { stream.Write(e) },
//	})
//	if err != nil { ... }
//	stats, err := f.Run(ctx) // returns ctx.Err() after a clean shutdown
package simulate
