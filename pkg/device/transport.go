package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, c.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// dialWebSocket opens wss://{host}:{port}/$iothub/websocket with the
// subprotocol "mqtt" over dialTLS.
func (c *config) dialWebSocket(ctx context.Context) (net.Conn, error) {
	d := &websocket.Dialer{
		NetDialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dialTLS(ctx) },
		Subprotocols:      []string{"mqtt"},
		HandshakeTimeout:  c.connTimeout,
		ReadBufferSize:    16 * 1024,
		WriteBufferSize:   16 * 1024,
	}
	h := http.Header{"User-Agent": {"iotctl/" + version()}}
	ws, resp, err := d.DialContext(ctx, c.wsURL, h)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			return nil, fmt.Errorf("device: %s did not accept the WebSocket upgrade: HTTP %s", c.wsURL, resp.Status)
		}
		return nil, err
	}
	return &wsConn{ws: ws}, nil
}

// wsConn carries MQTT in binary WebSocket messages: each Write is one
// message; Read reads message after message as one stream.
type wsConn struct {
	ws *websocket.Conn

	rmu sync.Mutex
	r   io.Reader // the message being read, nil between messages
	wmu sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}
