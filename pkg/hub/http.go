package hub

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iotctl/iotctl/internal/wsconn"
)

// WebSocketPath is where MQTT and AMQP over WebSocket are served, as on
// Azure IoT Hub.
const WebSocketPath = "/$iothub/websocket"

// MQTTWebSocketPath is also where MQTT over WebSocket is served: it is
// Eclipse Paho's default path (WebSocketHandshake, for a server URI
// without one), where provisioning-device-client for Java 2.1.3
// connects over MQTT_WS (MqttConnection: "wss://%s:443", no path), as
// Azure's DPS takes it.
const MQTTWebSocketPath = "/mqtt"

// EventHubWebSocketPath is where AMQP over WebSocket is served for Event
// Hubs clients, as on an Event Hubs namespace.
const EventHubWebSocketPath = "/$servicebus/websocket"

// HealthPath answers GET with 200 and a Health document once every
// endpoint of the hub is ready, and 503 before and while it stops. It
// needs no authorization; Azure IoT Hub has no such path.
const HealthPath = "/health"

// Health is the JSON document served at HealthPath.
type Health struct {
	// Status is "ok" when the hub serves MQTT, HTTPS and AMQP, else
	// "starting" or "stopping".
	Status string `json:"status"`
	// HostName and Addresses are those of the hub, when ready.
	HostName  string   `json:"hostName,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

func (h *Hub) startHTTP() error {
	api, err := h.restHandler()
	if err != nil {
		return err
	}
	h.httpLn = newChanListener(h.listeners[0].ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, h.serveWebSocket)
	mux.HandleFunc(EventHubWebSocketPath, h.serveWebSocket)
	mux.HandleFunc(MQTTWebSocketPath, h.serveWebSocket)
	mux.HandleFunc(HealthPath, h.serveHealth)
	mux.Handle("/", h.routeDPS(h.routeDevices(api)))
	h.httpSrv = &http.Server{
		Handler:           h.tracked(mux),
		ConnContext:       withConn,
		ConnState:         h.prom.httpConnState(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          nil,
	}
	h.workers.goFunc(func() { _ = h.httpSrv.Serve(h.httpLn) })
	return nil
}

// serveHealth answers HealthPath for container health checks and test
// harnesses that wait for the hub.
func (h *Hub) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "health: use GET", http.StatusMethodNotAllowed)
		return
	}
	hl := Health{Status: "starting"}
	code := http.StatusServiceUnavailable
	switch {
	case h.stopping.Load():
		hl.Status = "stopping"
	case h.ready.Load():
		hl = Health{Status: "ok", HostName: h.hostName, Addresses: h.addrs}
		code = http.StatusOK
	}
	b, _ := json.Marshal(hl)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(b, '\n'))
	}
}

// tracked counts each request among the hub's workers, so that Close
// waits for it (a WebSocket connection is served in its request's
// handler), and answers 503 once the hub is closing.
func (h *Hub) tracked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.workers.add() {
			http.Error(w, "the hub is shutting down", http.StatusServiceUnavailable)
			return
		}
		defer h.workers.done()
		next.ServeHTTP(w, r)
	})
}

// The subprotocols the hub speaks over WebSocket, lower case.
const (
	subprotocolMQTT = "mqtt"
	subprotocolAMQP = "amqpwsb10"
)

// upgrader picks no subprotocol itself: serveWebSocket chooses one
// case-insensitively and answers with the client's spelling.
var upgrader = websocket.Upgrader{
	CheckOrigin:     func(*http.Request) bool { return true },
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
}

// chooseSubprotocol returns the first subprotocol the client offers
// that the hub speaks (MQTT, or AMQPWSB10 for AMQP), in the client's
// spelling, or "".
func chooseSubprotocol(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		switch strings.ToLower(p) {
		case subprotocolMQTT, subprotocolAMQP:
			return p
		}
	}
	return ""
}

// serveWebSocket upgrades to WebSocket and serves MQTT (subprotocol
// "mqtt") or AMQP (subprotocol "AMQPWSB10") over it, in any case. With
// neither, the protocol is told from the client's first bytes.
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	var hdr http.Header
	sub := chooseSubprotocol(r)
	if sub != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {sub}}
	}
	ws, err := upgrader.Upgrade(w, r, hdr)
	if err != nil {
		h.log.Info("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := wsconn.New(ws)
	switch strings.ToLower(sub) {
	case subprotocolMQTT:
		h.serveMQTT(c)
	case subprotocolAMQP:
		h.serveAMQP(c)
	default:
		_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
		p, pc, err := peekProtocol(c)
		if err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		if p == protoAMQP {
			h.serveAMQP(pc)
		} else {
			h.serveMQTT(pc)
		}
	}
}
