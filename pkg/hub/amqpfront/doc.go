// Package amqpfront is the AMQP 1.0 endpoint of iotctl's local IoT Hub:
// what the official service SDKs and Event Hubs clients talk to on
// port 5671 (https://learn.microsoft.com/azure/iot-hub/iot-hub-amqp-support;
// the Node service SDK azure-iothub, azure-iot-sdk-node service/src/amqp.ts
// and common/transport/amqp/src/amqp_cbs.ts; the Event Hubs clients,
// azure-sdk-for-js sdk/eventhub/event-hubs and azure-sdk-for-python
// sdk/eventhub/azure-eventhub; test/interop runs azure-iothub and
// @azure/event-hubs against it). It serves, on top of pkg/amqp1:
//
//   - $cbs: put-token requests as every official SDK sends them (type
//     servicebus.windows.net:sastoken or azure-devices.net:sastoken, the
//     audience in each SDK's form), whose SAS tokens (verified with
//     pkg/hub/auth against the hub's shared access policies, or a
//     device's or module's own keys) authorize the connection's later
//     links under the token's audience until it expires; SASL PLAIN
//     with "{policy}@sas.root.{hub}" and a token does the same. Replies
//     carry status-code as an AMQP int.
//   - /messages/devicebound: cloud-to-device messages from a service,
//     queued in the registry and accepted, or rejected with IoT Hub's
//     conditions (amqp:not-found, amqp:resource-limit-exceeded,
//     amqp:link:message-size-exceeded, amqp:not-allowed for a missing
//     device in properties.to, com.microsoft:argument-error).
//   - /messages/serviceBound/feedback: delivery feedback batches.
//   - The Event Hub-compatible endpoint, named after the hub
//     (EventHubName): $management READ requests and receivers on
//     {eventhub}/ConsumerGroups/$Default/Partitions/{n} honouring the
//     Event Hubs selector filters, reading the hub's telemetry log.
//   - /messages/events/...: refused with amqp:link:redirect to that
//     endpoint, as IoT Hub does: an attach with neither source nor
//     target, then a detach carrying the redirect (every refused link
//     is answered that way).
//   - Devices and modules (device.go, deviceio.go, over the hub's device
//     core, Options.Core): links under /devices/{id}[/modules/{mid}]
//     for telemetry (messages/events), C2D (messages/devicebound; a
//     module's input messages on its messages/events), the
//     methods/devicebound and twin link pairs, each authorized by the
//     token the device or module put on $cbs (azure-iot-sdk-node
//     device/transport/amqp, the C# SDK's AmqpIot, the C SDK's uamqp
//     transport). Each identity with links on a connection is one core
//     session; a connection may carry many.
//   - The Device Provisioning Service's device API, when Options.DPS is
//     set: SASL PLAIN "{idScope}/registrations/{registrationId}" with
//     the device's token (or its TLS client certificate), and register
//     and operation status requests on links at that address (dps.go).
//
// Link addresses match case-insensitively, with or without an
// amqps://host[:port] prefix. A hub makes one Front and hands it every
// AMQP connection:
//
//	f := amqpfront.New(reg, telemetryLog, &amqpfront.Options{
//		HostNames:   []string{"localhost:8443", "127.0.0.1"},
//		C2DEnqueued: hub.C2DEnqueued,
//	})
//	go func() { _ = f.Serve(ctx, conn) }()
//
// Event Hubs clients connect with the connection string
// "Endpoint=sb://{host}[:port]/;SharedAccessKeyName=...;SharedAccessKey=...;EntityPath={EventHubName}"
// over TLS; the hub's one TLS port serves AMQP, so the port of the hub
// works in the endpoint (UseDevelopmentEmulator=true would ask for
// plain TCP, which the hub does not serve).
package amqpfront
