package service

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// connectProxy is an HTTP CONNECT proxy on loopback that counts its
// tunnels and sends every one of them to target, whatever host the
// client asked for.
type connectProxy struct {
	ln      net.Listener
	target  string
	tunnels atomic.Int32
	mu      sync.Mutex
	asked   []string
	wg      sync.WaitGroup
}

func startProxy(t *testing.T, target string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.asked = append(p.asked, req.Host)
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	p.tunnels.Add(1)
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

// The default transport takes HTTPS_PROXY and NO_PROXY from the
// environment. Go reads those once per process (and never proxies
// requests for localhost or 127.0.0.1), so each case runs in a child
// process of this test binary that calls a hub named myhub.test: with
// a proxy, the proxy sends the tunnel to the test server; without one,
// the child's dialer maps myhub.test to the test server. Everything
// stays on 127.0.0.1.
func TestProxyFromEnvironment(t *testing.T) {
	s := newHubServer(t, nil)
	proxy := startProxy(t, s.Listener.Addr().String())
	proxyURL := "http://" + proxy.ln.Addr().String()
	tests := []struct {
		name    string
		env     []string
		tunnels int32
	}{
		{"HTTPS_PROXY", []string{"HTTPS_PROXY=" + proxyURL}, 1},
		{"https_proxy", []string{"https_proxy=" + proxyURL}, 1},
		{"NO_PROXY names the hub", []string{"HTTPS_PROXY=" + proxyURL, "NO_PROXY=myhub.test"}, 0},
		{"NO_PROXY names the domain", []string{"HTTPS_PROXY=" + proxyURL, "NO_PROXY=.test"}, 0},
		{"NO_PROXY names another host", []string{"HTTPS_PROXY=" + proxyURL, "NO_PROXY=example.com"}, 1},
		{"HTTP_PROXY is not for https", []string{"HTTP_PROXY=" + proxyURL}, 0},
		{"no proxy", nil, 0},
	}
	ca := caFile(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, hits := proxy.tunnels.Load(), s.hits.Load()
			cmd := exec.Command(os.Args[0], "-test.run=^TestProxyChild$", "-test.v")
			cmd.Env = append(withoutProxyEnv(), "IOTCTL_TEST_PROXY_CHILD=1", "IOTCTL_TEST_HUB=myhub.test:"+s.port(),
				"IOTCTL_TEST_HUB_ADDR="+s.Listener.Addr().String(), "IOTCTL_TEST_CA="+ca, "GORACE=atexit_sleep_ms=0")
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "proxy child ok") {
				t.Fatalf("the child did not run the call:\n%s", out)
			}
			if got := proxy.tunnels.Load() - before; got != tt.tunnels {
				t.Errorf("%d tunnels through the proxy; want %d", got, tt.tunnels)
			}
			if s.hits.Load() != hits+1 {
				t.Errorf("the hub saw %d requests; want 1", s.hits.Load()-hits)
			}
		})
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	for _, h := range proxy.asked {
		if h != "myhub.test:"+s.port() {
			t.Errorf("CONNECT %s; want myhub.test:%s", h, s.port())
		}
	}
}

func withoutProxyEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TestProxyChild is the child of TestProxyFromEnvironment.
func TestProxyChild(t *testing.T) {
	if os.Getenv("IOTCTL_TEST_PROXY_CHILD") != "1" {
		t.Skip("run by TestProxyFromEnvironment")
	}
	c, err := New(connectionString(os.Getenv("IOTCTL_TEST_HUB")), &Options{CAFile: os.Getenv("IOTCTL_TEST_CA"), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	// myhub.test is not in DNS: a direct connection goes to the test
	// server; the proxy is dialled at its own (loopback) address.
	tr := c.http.Transport.(*http.Transport)
	hub, addr := os.Getenv("IOTCTL_TEST_HUB"), os.Getenv("IOTCTL_TEST_HUB_ADDR")
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == hub {
			a = addr
		}
		return d.DialContext(ctx, network, a)
	}
	if _, err := c.GetDevice(ctxT(t), "dev1"); err != nil {
		t.Fatal(err)
	}
	t.Log("proxy child ok")
}
