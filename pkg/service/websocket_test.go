package service

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxytest"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/message"
)

// proxiedHost is a hub host name that is neither localhost nor a
// loopback address, so that the environment's proxy applies to it;
// the test proxy maps it to 127.0.0.1 (it is not in DNS).
const proxiedHost = "iothub.proxy.test"

func TestWebSocketEndpoints(t *testing.T) {
	tests := []struct {
		host      string
		ws        bool
		url, addr string
	}{
		{"myhub.azure-devices.net", false, "", "myhub.azure-devices.net:5671"},
		{"localhost:8443", false, "", "localhost:8443"},
		{"myhub.azure-devices.net", true, "wss://myhub.azure-devices.net/$iothub/websocket", "myhub.azure-devices.net:443"},
		{"localhost:8443", true, "wss://localhost:8443/$iothub/websocket", "localhost:8443"},
		{"127.0.0.1:443", true, "wss://127.0.0.1/$iothub/websocket", "127.0.0.1:443"},
		{"[::1]:8443", true, "wss://[::1]:8443/$iothub/websocket", "[::1]:8443"},
	}
	for _, tt := range tests {
		c, err := New(connectionString(tt.host), &Options{WebSocket: tt.ws})
		if err != nil {
			t.Fatal(err)
		}
		ep := c.hubEndpoint()
		if ep.wsURL != tt.url || ep.addr != tt.addr {
			t.Errorf("hub endpoint of %s (WebSocket %v) = %q %q; want %q %q", tt.host, tt.ws, ep.wsURL, ep.addr, tt.url, tt.addr)
		}
	}

	// Redirects to an Event Hubs namespace go to its own WebSocket
	// endpoint on 443; an emulator's single port is kept.
	ehs := []struct {
		host      string
		port      int
		ws        bool
		url, addr string
	}{
		{"iothub-ns-x.servicebus.windows.net", 5671, false, "", "iothub-ns-x.servicebus.windows.net:5671"},
		{"iothub-ns-x.servicebus.windows.net", 0, false, "", "iothub-ns-x.servicebus.windows.net:5671"},
		{"iothub-ns-x.servicebus.windows.net", 5671, true, "wss://iothub-ns-x.servicebus.windows.net/$servicebus/websocket", "iothub-ns-x.servicebus.windows.net:443"},
		{"iothub-ns-x.servicebus.windows.net", 0, true, "wss://iothub-ns-x.servicebus.windows.net/$servicebus/websocket", "iothub-ns-x.servicebus.windows.net:443"},
		{"127.0.0.1", 18443, true, "wss://127.0.0.1:18443/$servicebus/websocket", "127.0.0.1:18443"},
	}
	c, err := New(connectionString("myhub.azure-devices.net"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range ehs {
		c.opts.WebSocket = tt.ws
		ep := c.eventHubEndpoint(tt.host, tt.port)
		if ep.wsURL != tt.url || ep.addr != tt.addr || ep.serverName != tt.host {
			t.Errorf("event hub endpoint %s port %d (WebSocket %v) = %+v; want %q %q", tt.host, tt.port, tt.ws, ep, tt.url, tt.addr)
		}
	}
}

// wsHub starts an in-process hub whose certificate also covers
// proxiedHost, with a connected device whose C2D messages go to c2d.
func wsHub(t *testing.T, c2d chan *message.Message) (*hub.Hub, *connstr.ConnectionString) {
	t.Helper()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, SANs: []string{proxiedHost}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	connectDevice(t, h, "dev1", c2d)
	return h, connstr.MustParse(mustCS(t, h))
}

// sendAndMonitor sends a C2D message with full feedback, waits for the
// device to get it and for its Success record, then reads one telemetry
// event from the start through Monitor.
func sendAndMonitor(t *testing.T, h *hub.Hub, c *Client, got chan *message.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fb, err := c.FeedbackReceiver(ctx)
	if err != nil {
		t.Fatalf("FeedbackReceiver: %v", err)
	}
	defer fb.Close(ctx)
	m := &message.Message{Body: []byte("over websocket"), Ack: message.AckFull}
	if err := c.SendC2D(ctx, "dev1", "", m); err != nil {
		t.Fatalf("SendC2D: %v", err)
	}
	select {
	case r := <-got:
		if string(r.Body) != "over websocket" || r.MessageID != m.MessageID {
			t.Errorf("the device got %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("the device got no C2D message")
	}
	for found := false; !found; {
		recs, err := fb.Receive(ctx)
		if err != nil {
			t.Fatalf("feedback: %v", err)
		}
		for _, r := range recs {
			if r.OriginalMessageID == m.MessageID {
				found = true
				if r.StatusCode != "Success" {
					t.Errorf("feedback record %+v", r)
				}
			}
		}
	}

	d := connectDevice(t, h, "sensor", nil)
	if err := d.SendEvent(ctx, &message.Message{Body: []byte(`{"t":21}`)}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	err = c.Monitor(ctx, MonitorOptions{From: "start"}, func(ev Event) error {
		if ev.DeviceID == "sensor" && string(ev.Body) == `{"t":21}` {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Monitor = %v; want the device's event", err)
	}
}

// C2D send, feedback and monitor over AMQP over WebSocket to the local
// hub, whose Event Hub-compatible endpoint is on the same host: every
// connection is a WebSocket to the hub's port.
func TestAMQPOverWebSocket(t *testing.T) {
	setProxyEnv(t)
	got := make(chan *message.Message, 1)
	h, cs := wsHub(t, got)
	c, err := New(cs, &Options{CAFile: h.CAFile(), WebSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var dialled []string
	var d net.Dialer
	c.dialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		mu.Unlock()
		return d.DialContext(ctx, network, addr)
	}
	if ep := c.hubEndpoint(); ep.wsURL != "wss://"+cs.HostName+"/$iothub/websocket" {
		t.Fatalf("hub endpoint %s; want the hub's WebSocket", ep)
	}
	sendAndMonitor(t, h, c, got)
	mu.Lock()
	defer mu.Unlock()
	if len(dialled) != 2 {
		t.Errorf("dialled %q; want the hub twice (AMQP, then its Event Hub-compatible endpoint)", dialled)
	}
	for _, a := range dialled {
		if a != cs.HostName {
			t.Errorf("dialled %s; want only the hub, %s", a, cs.HostName)
		}
	}

	// An Event Hub-compatible connection string with WebSocket goes to
	// its host's /$servicebus/websocket, on the port it names.
	ehcs, err := h.EventHubConnectionString("service")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := errors.New("stop")
	err = MonitorEventHub(ctx, connstr.MustParse(ehcs), &Options{CAFile: h.CAFile(), WebSocket: true}, MonitorOptions{From: "start"}, func(ev Event) error {
		if ev.DeviceID == "sensor" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("MonitorEventHub over WebSocket = %v; want the device's event", err)
	}
}

// With HTTPS_PROXY set, AMQP over WebSocket goes through the proxy
// (C2D, feedback; the hub redirects monitor to 127.0.0.1, which is
// never proxied), while AMQP over TLS on the AMQP port does not use it.
func TestWebSocketThroughEnvironmentProxy(t *testing.T) {
	got := make(chan *message.Message, 1)
	h, cs := wsHub(t, got)
	p := proxytest.New(t)
	p.Map(proxiedHost, "127.0.0.1")
	setProxyEnv(t, "HTTPS_PROXY="+p.URL())
	_, port, _ := net.SplitHostPort(cs.HostName)
	cs.HostName = proxiedHost + ":" + port
	c, err := New(cs, &Options{CAFile: h.CAFile(), WebSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sendAndMonitor(t, h, c, got)
	if n, tg := p.Tunnels(), p.Targets(); n != 1 || len(tg) != 1 || tg[0] != cs.HostName {
		t.Errorf("proxy tunnels %d to %q; want 1 (the AMQP connection to the hub) to %s", n, tg, cs.HostName)
	}
	// REST goes through the same proxy.
	if _, err := c.GetDevice(context.Background(), "dev1"); err != nil {
		t.Fatalf("GetDevice through the proxy: %v", err)
	}
	if p.Tunnels() != 2 {
		t.Errorf("proxy tunnels %d after a REST call; want 2", p.Tunnels())
	}

	// AMQP over TLS ignores HTTPS_PROXY: it dials iothub.proxy.test
	// itself, which does not resolve.
	plain, err := New(cs, &Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = plain.SendC2D(ctx, "dev1", "", &message.Message{Body: []byte("x")})
	var pe *ProxyError
	if err == nil || errors.As(err, &pe) || p.Tunnels() != 2 {
		t.Errorf("AMQP over TLS with HTTPS_PROXY set: %v, %d tunnels; want a direct attempt", err, p.Tunnels())
	}
}

// Options.Proxy tunnels every connection, loopback included: AMQP over
// TLS and over WebSocket, to the hub and to the Event Hub-compatible
// endpoint it redirects to.
func TestExplicitProxyAMQP(t *testing.T) {
	setProxyEnv(t)
	for _, ws := range []bool{false, true} {
		got := make(chan *message.Message, 1)
		h, cs := wsHub(t, got)
		p := proxytest.New(t)
		c, err := New(cs, &Options{CAFile: h.CAFile(), WebSocket: ws, Proxy: p.URL()})
		if err != nil {
			t.Fatal(err)
		}
		sendAndMonitor(t, h, c, got)
		c.Close()
		// The hub's AMQP connection, then the Event Hub-compatible
		// endpoint's (the same port of the local hub).
		if n, tg := p.Tunnels(), p.Targets(); n != 2 || tg[0] != cs.HostName || tg[1] != cs.HostName {
			t.Errorf("WebSocket %v: proxy tunnels %d to %q; want 2 to %s", ws, n, tg, cs.HostName)
		}
	}
}

// A proxy that refuses the tunnel fails C2D and monitor at once with a
// *ProxyError naming the proxy (password redacted), the target and the
// proxy's answer.
func TestProxyRefusesAMQP(t *testing.T) {
	setProxyEnv(t)
	h, cs := wsHub(t, nil)
	p := proxytest.New(t)
	p.Refuse(407)
	c, err := New(cs, &Options{CAFile: h.CAFile(), WebSocket: true, Proxy: "http://alice:s3cret@" + p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.SendC2D(ctx, "dev1", "", &message.Message{Body: []byte("x")})
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.StatusCode != 407 {
		t.Fatalf("SendC2D through a refusing proxy: %v; want a *ProxyError with status 407", err)
	}
	msg := err.Error()
	for _, want := range []string{p.Addr(), cs.HostName, "407 Proxy Authentication Required", "wss://" + cs.HostName + "/$iothub/websocket"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error %q holds the proxy's password", msg)
	}
	n := len(p.Targets())
	err = c.Monitor(ctx, MonitorOptions{}, func(Event) error { return nil })
	if !errors.As(err, &pe) || len(p.Targets()) != n+1 {
		t.Errorf("Monitor through a refusing proxy: %v after %d tries; want a *ProxyError at once", err, len(p.Targets())-n)
	}
}
