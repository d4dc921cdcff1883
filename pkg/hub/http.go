package hub

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocketPath is where MQTT (and, later, AMQP) over WebSocket is
// served, as on Azure IoT Hub.
const WebSocketPath = "/$iothub/websocket"

func (h *Hub) startHTTP() error {
	api, err := h.restHandler()
	if err != nil {
		return err
	}
	h.httpLn = newChanListener(h.listeners[0].ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, h.serveWebSocket)
	mux.Handle("/", api)
	h.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          nil,
	}
	go func() { _ = h.httpSrv.Serve(h.httpLn) }()
	return nil
}

var upgrader = websocket.Upgrader{
	Subprotocols:    []string{"mqtt", "MQTT", "AMQPWSB10"},
	CheckOrigin:     func(*http.Request) bool { return true },
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
}

// serveWebSocket upgrades to WebSocket and serves MQTT over it
// (subprotocol "mqtt", in any case).
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.log.Info("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newWSConn(ws)
	switch strings.ToLower(ws.Subprotocol()) {
	case "mqtt", "":
		h.serveMQTT(c)
	default:
		h.serveAMQP(c)
	}
}

// wsConn is a net.Conn over the binary messages of a WebSocket.
type wsConn struct {
	ws     *websocket.Conn
	rmu    sync.Mutex
	reader interface{ Read([]byte) (int, error) }
	wmu    sync.Mutex
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.reader == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage && typ != websocket.TextMessage {
				continue
			}
			c.reader = r
		}
		n, err := c.reader.Read(p)
		if err != nil {
			c.reader = nil
			if n > 0 {
				return n, nil
			}
			if errors.Is(err, io.EOF) {
				continue
			}
			return 0, err
		}
		return n, nil
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

// NetConn returns the connection under the WebSocket (the mux's
// *peekedConn), so the MQTT hook can reach the TLS state.
func (c *wsConn) NetConn() net.Conn { return c.ws.NetConn() }

func (c *wsConn) Close() error         { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.ws.SetReadDeadline(t)
	return c.ws.SetWriteDeadline(t)
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
