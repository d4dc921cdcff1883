package hub_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/proxytest"
	"github.com/iotctl/iotctl/pkg/connstr"
	hubsrv "github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/message"
)

// proxiedHost is a hub name the environment's proxy applies to (it is
// not localhost or a loopback address); the test proxy maps it to
// 127.0.0.1, as it is not in DNS.
const proxiedHost = "iothub.proxy.test"

// startProxiedEnv starts a hub whose certificate covers proxiedHost and
// returns it with the iothubowner string naming it proxiedHost:port,
// and a proxy that maps proxiedHost to the hub.
func startProxiedEnv(t *testing.T) (*regEnv, *proxytest.Proxy) {
	t.Helper()
	h := hubsrv.New(&hubsrv.Options{Addr: "127.0.0.1:0", InMemory: true, SANs: []string{proxiedHost}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("hub Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	s, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	cs := connstr.MustParse(s)
	_, port, _ := net.SplitHostPort(h.Addrs()[0])
	cs.HostName = proxiedHost + ":" + port
	p := proxytest.New(t)
	p.Map(proxiedHost, "127.0.0.1")
	return &regEnv{hub: h, cs: cs.Format()}, p
}

// proxyEnv is the environment of a run: HTTPS_PROXY set to proxy ("" for
// none), the other proxy variables cleared, then extra.
func proxyEnv(proxy string, extra ...string) map[string]string {
	env := map[string]string{}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"} {
		env[k] = ""
	}
	env["HTTPS_PROXY"] = proxy
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// hub c2d send --wait, hub feedback and hub monitor with --websocket
// (or IOTCTL_WEBSOCKET) reach a hub named iothub.proxy.test through
// HTTPS_PROXY: only a WebSocket can, as AMQP on its own port ignores
// HTTPS_PROXY and the name does not resolve.
func TestAMQPCommandsOverWebSocketThroughProxy(t *testing.T) {
	e, p := startProxiedEnv(t)
	got := make(chan *message.Message, 4)
	d := amqpDevice(t, e, "dev1", got)

	r := e.run(t, proxyEnv(p.URL()), "hub", "c2d", "send", "-d", "dev1", "--data", "over wss", "--websocket", "--wait", "--timeout", "30s", "-o", "json")
	if r.code != 0 {
		t.Fatalf("hub c2d send --websocket --wait: exit %d stderr %q", r.code, r.stderr)
	}
	var res struct {
		MessageID string `json:"messageId"`
		Feedback  struct {
			StatusCode string `json:"statusCode"`
		} `json:"feedback"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Feedback.StatusCode != "Success" {
		t.Errorf("hub c2d send --wait printed %q (%v); want the Success feedback", r.stdout, err)
	}
	select {
	case m := <-got:
		if string(m.Body) != "over wss" || m.MessageID != res.MessageID {
			t.Errorf("the device got %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device got no C2D message")
	}
	if n := p.Tunnels(); n != 1 {
		t.Errorf("%d tunnels after c2d send; want 1 (one AMQP connection over WebSocket)", n)
	}

	// hub feedback, with IOTCTL_WEBSOCKET instead of the flag.
	r = e.run(t, proxyEnv(p.URL()), "hub", "c2d", "send", "-d", "dev1", "--data", "again", "--websocket", "--ack", "full")
	if r.code != 0 {
		t.Fatalf("hub c2d send --websocket: exit %d stderr %q", r.code, r.stderr)
	}
	<-got
	r = e.run(t, proxyEnv(p.URL(), "IOTCTL_WEBSOCKET", "true"), "hub", "feedback", "--count", "1", "--timeout", "30s", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"type":"feedback"`) {
		t.Fatalf("hub feedback with IOTCTL_WEBSOCKET: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := p.Tunnels(); n != 3 {
		t.Errorf("%d tunnels after feedback; want 3", n)
	}

	if err := d.SendEvent(context.Background(), &message.Message{Body: []byte(`{"t":1}`)}); err != nil {
		t.Fatal(err)
	}
	r = e.run(t, proxyEnv(p.URL()), "hub", "monitor", "--websocket", "--from", "start", "--count", "1", "--timeout", "30s", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"deviceId":"dev1"`) {
		t.Fatalf("hub monitor --websocket: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	// The hub connection is tunnelled; its redirect names 127.0.0.1,
	// which is never proxied.
	if n := p.Tunnels(); n != 4 {
		t.Errorf("%d tunnels after monitor; want 4", n)
	}
	for _, tg := range p.Targets() {
		if !strings.HasPrefix(tg, proxiedHost+":") {
			t.Errorf("CONNECT %s; want only the hub", tg)
		}
	}
}

// --proxy (or IOTCTL_PROXY) tunnels every connection, loopback
// included: AMQP over TLS, REST (hub device, hub twin, method invoke).
// A proxy that refuses exits 1 naming it; a bad proxy URL exits 3.
func TestProxyFlag(t *testing.T) {
	e := startRegEnv(t)
	p := proxytest.New(t)
	got := make(chan *message.Message, 1)
	amqpDevice(t, e, "dev1", got)
	none := proxyEnv("")

	steps := [][]string{
		{"hub", "c2d", "send", "-d", "dev1", "--data", "tunnelled", "--proxy", p.URL()},
		{"hub", "device", "show", "dev1", "--proxy", p.URL()},
		{"hub", "twin", "show", "dev1", "--proxy", p.URL()},
		{"method", "invoke", "-d", "dev1", "--name", "nothing", "--response-timeout", "5s", "--proxy", p.URL()},
	}
	for i, args := range steps {
		r := e.run(t, none, args...)
		// The device has no handler for the method: it answers 501,
		// exit 8; what matters is that the call went through.
		if r.code != 0 && !(args[0] == "method" && r.code == cmdutil.ExitDeviceError) {
			t.Fatalf("iotctl %s: exit %d stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		if n := p.Tunnels(); n != i+1 {
			t.Errorf("iotctl %s: %d tunnels; want %d", strings.Join(args, " "), n, i+1)
		}
	}
	select {
	case m := <-got:
		if string(m.Body) != "tunnelled" {
			t.Errorf("the device got %q", m.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device got no C2D message")
	}

	r := e.run(t, proxyEnv("", "IOTCTL_PROXY", p.URL()), "hub", "device", "list")
	if r.code != 0 || p.Tunnels() != len(steps)+1 {
		t.Errorf("hub device list with IOTCTL_PROXY: exit %d stderr %q, %d tunnels", r.code, r.stderr, p.Tunnels())
	}

	p.Refuse(403)
	for _, args := range [][]string{
		{"hub", "c2d", "send", "-d", "dev1", "--data", "x", "--websocket"},
		{"hub", "monitor", "--timeout", "30s"},
		{"hub", "device", "show", "dev1"},
	} {
		args = append(args, "--proxy", "http://alice:s3cret@"+p.Addr())
		r := e.run(t, none, args...)
		if r.code != cmdutil.ExitFailure || !strings.Contains(r.stderr, "proxy http://alice:xxxxx@"+p.Addr()) ||
			!strings.Contains(r.stderr, "403 Forbidden") || strings.Contains(r.stderr, "s3cret") {
			t.Errorf("iotctl %s through a refusing proxy: exit %d stderr %q; want 1 naming the proxy (password redacted) and its answer",
				strings.Join(args, " "), r.code, r.stderr)
		}
	}

	for _, args := range [][]string{
		{"hub", "c2d", "send", "-d", "dev1", "--data", "x"},
		{"hub", "feedback"},
		{"hub", "monitor"},
		{"hub", "device", "list"},
		{"method", "invoke", "-d", "dev1", "--name", "m"},
	} {
		args = append(args, "--proxy", "socks5://127.0.0.1:1080")
		r := e.run(t, none, args...)
		if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "--proxy") || !strings.Contains(r.stderr, "socks5") {
			t.Errorf("iotctl %s: exit %d stderr %q; want 3 naming --proxy", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
