package device

import (
	"context"
	"net"
	"net/http"

	"github.com/iotctl/iotctl/internal/wsconn"
)

// dial opens the transport MQTT runs on: TLS to c.address, or a secure
// WebSocket to c.wsURL; either through the proxy when there is one.
// The whole dial is bounded by the connect timeout.
func (c *config) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.connTimeout)
	defer cancel()
	if c.wsURL != "" {
		return c.dialWebSocket(ctx)
	}
	return c.dialTLS(ctx)
}

// dialTLS connects and makes the TLS handshake with the hub.
func (c *config) dialTLS(ctx context.Context) (net.Conn, error) {
	return c.dialer().DialTLS(ctx, c.address, c.tls)
}

// dialWebSocket opens wss://{host}:{port}/$iothub/websocket with the
// subprotocol "mqtt" over dialTLS.
func (c *config) dialWebSocket(ctx context.Context) (net.Conn, error) {
	return wsconn.Dial(ctx, c.wsURL, &wsconn.DialOptions{
		Subprotocol:      "mqtt",
		DialTLS:          c.dialTLS,
		Header:           http.Header{"User-Agent": {"iotctl/" + version()}},
		HandshakeTimeout: c.connTimeout,
	})
}
