// Package device is an Azure IoT Hub device (and module) client:
// telemetry, direct methods, the device twin and cloud-to-device
// messages, with SAS-token authentication that renews itself or an
// X.509 client certificate.
//
// Open returns a Conn for Options.Transport: MQTT 3.1.1 (*Client, the
// default, described below), AMQP 1.0 (SASL ANONYMOUS and a CBS
// put-token per device, renewed on the live connection; telemetry,
// C2D, methods and twin on the links of azure-iot-sdk-node's Amqp
// transport; over TLS on 5671 or a WebSocket with subprotocol
// AMQPWSB10; many devices on one connection with AMQPShared, on
// iotctl's lean AMQP engine, pkg/amqp1/client, and telemetry-only ones
// with NewAMQPSharedTelemetry), or HTTPS (IoT Hub's device REST API: telemetry, and C2D
// polled and settled by its lock; no methods, no twin, which are
// ErrNotSupported). Over AMQP and HTTPS Options.C2DSettle chooses
// complete, reject or abandon; over MQTT IoT Hub completes every
// message the client acknowledges.
//
// The MQTT client connects to HostName (or GatewayHostName) on the port it
// names, 8883 by default, with client id "{deviceId}" or
// "{deviceId}/{moduleId}", user name
// "{HostName}/{clientId}/?api-version=2021-04-12&DeviceClientType=iotctl%2F{version}"
// and a SAS token as password (none with a client certificate), with a
// clean session of false. With Options.WebSocket it speaks MQTT over
// wss://{host}/$iothub/websocket instead (port 443 by default),
// through the HTTPS_PROXY of the environment unless NO_PROXY names the
// host; Options.Proxy tunnels either transport through a given HTTP
// proxy with CONNECT. Once connected it stays connected by itself: a
// dropped connection is retried with exponential back-off and jitter
// (1 s doubling to 30 s by default), every connect signs a fresh token,
// subscriptions are made again, and the client reconnects at 80% of
// the token's lifetime to renew it. A CONNECT the hub refuses is a
// *ConnectError (wrapping ErrUnauthorized for bad credentials) and is
// never retried; a proxy that refuses the tunnel is a *ProxyError; a
// certificate, key or CA file that cannot be used is a *FileError.
//
// Every blocking call takes a ctx first; handlers run on their own
// goroutines.
//
// The MQTT session is the package's own, on the packet encoder and
// decoder of paho.mqtt.golang (its packets package): one goroutine
// per connection reads, writes happen on the caller's goroutine, and
// the keep-alive (a PINGREQ after the keep-alive period without
// traffic; the connection counts as lost when the PINGRESP does not
// come within 10 s, or the connect timeout if shorter) runs on a timer. That keeps a
// connected client at one goroutine, which is what lets one process
// simulate ten thousand devices. SendEventAsync sends telemetry without
// a goroutine waiting for the PUBACK either: the reader calls its
// callback (SendEvent is SendEventAsync and a wait).
//
//	c, err := device.New(&device.Options{ConnectionString: cs, CAFile: "ca.pem"})
//	if err != nil { ... } // *connstr.ParseError for a bad string
//	c.HandleMethod("reboot", func(ctx context.Context, r *device.MethodRequest) device.MethodResponse {
//		return device.MethodResponse{Status: 200, Payload: []byte(`{"ok":true}`)}
//	})
//	if err := c.Connect(ctx); errors.Is(err, device.ErrUnauthorized) { ... }
//	defer c.Close(context.Background())
//	err = c.SendEvent(ctx, &message.Message{Body: []byte(`{"t":21.5}`), ContentType: "application/json"})
//	err = c.SendEventAsync(ctx, m, func(err error) { ... }) // quick: runs on the reader
//
// An X.509 device over WebSocket:
//
//	c, err := device.New(&device.Options{
//		ConnectionString: "HostName=myhub.azure-devices.net;DeviceId=cam1;x509=true",
//		CertFile:         "cam1.pem", KeyFile: "cam1-key.pem", // *FileError if unusable
//		WebSocket:        true,
//	})
package device
