package wsconn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is a net.Conn over the binary messages of a WebSocket. One
// goroutine may read while another writes; Close and the deadline
// setters may be called at any time.
type Conn struct {
	ws *websocket.Conn

	rmu sync.Mutex
	r   io.Reader // the message being read, nil between messages

	wmu sync.Mutex
	dmu sync.Mutex
	wdl time.Time // the write deadline, applied to each message

	closeOnce sync.Once
	closeErr  error
}

// New returns a Conn over ws, which it owns from then on.
func New(ws *websocket.Conn) *Conn { return &Conn{ws: ws} }

// Read reads from the current message, moving on to the next one when
// it ends. A normal close from the peer is io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
					return 0, io.EOF
				}
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

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dmu.Lock()
	dl := c.wdl
	c.dmu.Unlock()
	_ = c.ws.SetWriteDeadline(dl)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close sends a close message (waiting at most a second) and closes the
// connection. Calls after the first return the first's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

// NetConn returns the connection the WebSocket runs on (for its TLS
// state).
func (c *Conn) NetConn() net.Conn { return c.ws.NetConn() }

// Subprotocol is the subprotocol the handshake settled on, "" for none.
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline. As with gorilla/websocket, a
// read that times out leaves the connection unusable.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of the writes to come and of the
// one in progress.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.wdl = t
	c.dmu.Unlock()
	return c.ws.NetConn().SetWriteDeadline(t)
}

// DialOptions configure Dial.
type DialOptions struct {
	// Subprotocol is the one subprotocol to ask for, such as "mqtt"
	// or "AMQPWSB10". A server that picks another one is an error; one
	// that picks none is accepted. Default: none.
	Subprotocol string
	// DialTLS opens the TLS connection (directly or through a proxy)
	// the WebSocket runs on. Required for wss:// URLs.
	DialTLS func(ctx context.Context) (net.Conn, error)
	// Header is sent with the upgrade request (User-Agent, ...).
	// Default: none.
	Header http.Header
	// HandshakeTimeout bounds the upgrade exchange besides ctx.
	// Default: no bound but ctx.
	HandshakeTimeout time.Duration
}

// HandshakeError is a server that answered the upgrade request with an
// HTTP status instead of switching protocols, or that chose another
// subprotocol. Its text does not repeat the URL: callers name it.
type HandshakeError struct {
	// URL is the WebSocket URL.
	URL string
	// StatusCode and Status are the server's HTTP answer; 0 and "" when
	// it upgraded with the wrong subprotocol.
	StatusCode int
	Status     string
	// Subprotocol is the one the server chose, when it chose another.
	Subprotocol string
}

func (e *HandshakeError) Error() string {
	if e.StatusCode != 0 {
		return "wsconn: the server did not accept the WebSocket upgrade: HTTP " + e.Status
	}
	return "wsconn: the server chose the WebSocket subprotocol " + e.Subprotocol + ", not the one asked for"
}

// Dial opens a WebSocket to url (wss://host[:port]/path) over the
// connection opts.DialTLS makes and returns it as a Conn. ctx bounds the
// whole dial. A refused upgrade is a *HandshakeError; errors of DialTLS
// are returned as they are.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Conn, error) {
	o := DialOptions{}
	if opts != nil {
		o = *opts
	}
	d := &websocket.Dialer{
		HandshakeTimeout: o.HandshakeTimeout,
		ReadBufferSize:   16 * 1024,
		WriteBufferSize:  16 * 1024,
	}
	if o.DialTLS != nil {
		d.NetDialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return o.DialTLS(ctx) }
	}
	if o.Subprotocol != "" {
		d.Subprotocols = []string{o.Subprotocol}
	}
	ws, resp, err := d.DialContext(ctx, url, o.Header)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			return nil, &HandshakeError{URL: url, StatusCode: resp.StatusCode, Status: resp.Status}
		}
		return nil, err
	}
	if p := ws.Subprotocol(); p != "" && o.Subprotocol != "" && !strings.EqualFold(p, o.Subprotocol) {
		ws.Close()
		return nil, &HandshakeError{URL: url, Subprotocol: p}
	}
	return New(ws), nil
}
