// Package client is a lean device-side AMQP 1.0 client for many IoT
// Hub devices multiplexed over one connection: no goroutine and no
// window-sized queue per link or per session. One goroutine per
// connection reads the hub's frames and dispatches them by channel and
// handle to small per-link state; writes go out under the
// connection's write lock. It speaks what IoT Hub's device side needs
// and no more: SASL ANONYMOUS (the Java SDK's, azure-iot-sdk-java
// AmqpsIotHubConnection.java), sessions, sender links whose deliveries
// wait for the hub's outcome, receiver links that accept what they
// take or leave its settlement to the caller (accepted, rejected,
// released: C2D), and the $cbs put-token request-response pair
// (azure-iot-sdk-node common/transport/amqp/src/amqp_cbs.ts).
//
// Frames are encoded and decoded by the hub's codec
// (pkg/amqp1/internal/frames), messages by go-amqp's Message type, so
// one codec serves both ends.
//
//	c, err := client.Dial(ctx, nc, &client.Options{HostName: "myhub.azure-devices.net"})
//	s, err := c.NewSession(ctx)
//	err = c.PutToken(ctx, cbs.TypeSAS, audience, token, expiry)
//	snd, err := s.NewSender(ctx, "/devices/dev1/messages/events", nil)
//	err = snd.Send(ctx, payload)
package client
