// Package wsconn carries a byte stream (MQTT, AMQP) in the binary
// messages of a WebSocket, as Azure IoT Hub's /$iothub/websocket
// endpoint does: a Conn adapts a gorilla/websocket connection to
// net.Conn, on the server side (New, after an upgrade) and on the
// client side (Dial).
//
// Each Write is sent as one binary message; Read reads the messages one
// after the other as a single stream, whatever their boundaries (text
// messages are read as binary). A close message from the peer ends the
// stream with io.EOF.
//
//	c, err := wsconn.Dial(ctx, "wss://myhub.azure-devices.net/$iothub/websocket", &wsconn.DialOptions{
//		Subprotocol: "AMQPWSB10",
//		DialTLS:     func(ctx context.Context) (net.Conn, error) { return tlsDial(ctx) },
//	})
//	if err != nil { ... } // *wsconn.HandshakeError when the server refused the upgrade
//	amqpConn, err := amqp.NewConn(ctx, c, opts)
package wsconn
