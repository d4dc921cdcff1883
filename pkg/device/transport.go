package device

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/internal/wsconn"
)

// dial opens the transport MQTT runs on: TLS to c.address, or a secure
// WebSocket to c.wsURL; either through the proxy when there is one.
// The whole dial is bounded by the connect timeout.
func (c *config) dial(ctx context.Context) (net.Conn, error) {
	return proxy.DialWithin(ctx, c.connTimeout, func(ctx context.Context) (net.Conn, error) {
		if c.wsURL != "" {
			return c.dialWebSocket(ctx)
		}
		return c.dialTLS(ctx)
	})
}

// dialTLS connects and makes the TLS handshake with the hub.
func (c *config) dialTLS(ctx context.Context) (net.Conn, error) {
	return c.dialer().DialTLS(ctx, c.address, c.tls)
}

// dialWebSocket opens wss://{host}:{port}/$iothub/websocket with the
// subprotocol of the transport over dialTLS: "mqtt", or "AMQPWSB10"
// (azure-iot-sdk-node common/transport/amqp/src/amqp.ts).
func (c *config) dialWebSocket(ctx context.Context) (net.Conn, error) {
	start := time.Now()
	nc, err := wsconn.Dial(ctx, c.wsURL, &wsconn.DialOptions{
		Subprotocol:      c.subprotocol(),
		DialTLS:          c.dialTLS,
		Header:           http.Header{"User-Agent": {"iotctl/" + version()}},
		HandshakeTimeout: c.connTimeout,
	})
	if err != nil {
		return nil, c.netError(ctx, start, proxy.PhaseWebSocket, err)
	}
	return nc, nil
}

// netError makes err, a failure of phase of a connection to the hub, a
// *NetError whose Timeout is the connect timeout when it ran out.
func (c *config) netError(ctx context.Context, start time.Time, phase proxy.Phase, err error) error {
	err = proxy.NewNetError(ctx, start, c.address, phase, err)
	var ne *NetError
	if errors.As(err, &ne) && ne.Timeout == 0 && ne.TimedOut() {
		ne.Timeout = c.connTimeout
	}
	return err
}

// subprotocol is the WebSocket subprotocol of the transport.
func (c *config) subprotocol() string {
	if c.transport == TransportAMQP {
		return "AMQPWSB10"
	}
	return "mqtt"
}
