package service

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/internal/proxytest"
)

// setProxyEnv clears the proxy variables for the test and then sets
// the given NAME=value pairs.
func setProxyEnv(t *testing.T, kvs ...string) {
	t.Helper()
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "REQUEST_METHOD"} {
		t.Setenv(k, "")
	}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// mapHost makes the client's direct connections to host:port go to
// addr instead (host need not resolve); the proxy, on loopback, is
// dialled at its own address.
func mapHost(c *Client, host, addr string) {
	var d net.Dialer
	c.dialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == host {
			a = addr
		}
		return d.DialContext(ctx, network, a)
	}
}

// REST takes the proxy of HTTPS_PROXY (or https_proxy) unless NO_PROXY
// names the hub, as read when New is called. The hub is named
// myhub.test: Go (and curl) never proxy localhost or loopback
// addresses. The proxy maps myhub.test to the test server; without a
// proxy, the client's dialer does. Everything stays on 127.0.0.1.
func TestProxyFromEnvironment(t *testing.T) {
	s := newHubServer(t, nil)
	p := proxytest.New(t)
	p.Map("myhub.test", "127.0.0.1")
	hub := "myhub.test:" + s.port()
	tests := []struct {
		name    string
		env     []string
		tunnels int
	}{
		{"HTTPS_PROXY", []string{"HTTPS_PROXY=" + p.URL()}, 1},
		{"https_proxy", []string{"https_proxy=" + p.URL()}, 1},
		{"NO_PROXY names the hub", []string{"HTTPS_PROXY=" + p.URL(), "NO_PROXY=myhub.test"}, 0},
		{"NO_PROXY names the domain", []string{"HTTPS_PROXY=" + p.URL(), "NO_PROXY=.test"}, 0},
		{"NO_PROXY names another host", []string{"HTTPS_PROXY=" + p.URL(), "NO_PROXY=example.com"}, 1},
		{"HTTP_PROXY is not for https", []string{"HTTP_PROXY=" + p.URL()}, 0},
		{"no proxy", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setProxyEnv(t, tt.env...)
			before, hits := p.Tunnels(), s.hits.Load()
			c, err := New(connectionString(hub), &Options{RootCAs: getPKI(t).pool, Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			mapHost(c, hub, s.Listener.Addr().String())
			if _, err := c.GetDevice(ctxT(t), "dev1"); err != nil {
				t.Fatal(err)
			}
			if got := p.Tunnels() - before; got != tt.tunnels {
				t.Errorf("%d tunnels through the proxy; want %d", got, tt.tunnels)
			}
			if s.hits.Load() != hits+1 {
				t.Errorf("the hub saw %d requests; want 1", s.hits.Load()-hits)
			}
		})
	}
	for _, tg := range p.Targets() {
		if tg != hub {
			t.Errorf("CONNECT %s; want %s", tg, hub)
		}
	}
}

// Options.Proxy tunnels REST to any host, loopback included, and a
// proxy that refuses is a *ProxyError naming it, not retried.
func TestExplicitProxyREST(t *testing.T) {
	setProxyEnv(t)
	s := newHubServer(t, nil)
	p := proxytest.New(t)
	c := s.client(t, &Options{Proxy: p.URL()})
	if _, err := c.GetDevice(ctxT(t), "dev1"); err != nil {
		t.Fatal(err)
	}
	if tg := p.Targets(); p.Tunnels() != 1 || len(tg) != 1 || tg[0] != "localhost:"+s.port() {
		t.Errorf("proxy tunnels %d to %q; want 1 to localhost:%s", p.Tunnels(), tg, s.port())
	}

	p.Refuse(403)
	c = s.client(t, &Options{Proxy: "http://alice:s3cret@" + p.Addr()})
	_, err := c.GetDevice(ctxT(t), "dev1")
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.StatusCode != 403 {
		t.Fatalf("through a refusing proxy: %v; want a *ProxyError with status 403", err)
	}
	if msg := err.Error(); !strings.Contains(msg, p.Addr()) || !strings.Contains(msg, "403 Forbidden") || strings.Contains(msg, "s3cret") {
		t.Errorf("error %q: want the proxy and its answer, without the password", msg)
	}
	if n := len(p.Targets()); n != 2 {
		t.Errorf("the proxy was asked %d times; want 2 (a 403 is not retried)", n)
	}

	for _, bad := range []string{"socks5://127.0.0.1:1080", "http://", "http://a b"} {
		if _, err := New(connectionString("localhost"), &Options{Proxy: bad}); err == nil || !strings.Contains(err.Error(), "proxy") {
			t.Errorf("New with proxy %q = %v; want a proxy error", bad, err)
		}
	}
}
