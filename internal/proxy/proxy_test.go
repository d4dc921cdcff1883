package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxytest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echoServer answers every connection with what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func echoes(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(s))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != s {
		t.Fatalf("echo of %q = %q, %v", s, b, err)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"proxy.corp:3128", "http://proxy.corp:3128", ""},
		{"http://alice:s3cret@proxy.corp:3128", "http://alice:s3cret@proxy.corp:3128", ""},
		{"https://proxy.corp", "https://proxy.corp", ""},
		{"socks5://alice:s3cret@127.0.0.1:1080", "", `scheme "socks5" is not supported`},
		{"http://", "", "has no host"},
		{"http://alice:s3cret@a b", "", "not a URL"},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		switch {
		case tt.err == "" && (err != nil || u.String() != tt.want):
			t.Errorf("ParseURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseURL(%q) = %v, %v; want an error saying %q", tt.in, u, err, tt.err)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("ParseURL(%q): error %q holds the password", tt.in, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"proxy:3128", "http://u:p@h:1", "https://h", "socks5://h", "http://", "%zz", "http://[::1]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err == nil && (u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https")) {
			t.Fatalf("ParseURL(%q) = %v", s, u)
		}
		if err != nil {
			if ui, ok := userinfoOf(s); ok && strings.Contains(err.Error(), ui) {
				t.Fatalf("ParseURL(%q): error %q holds the password", s, err)
			}
		}
	})
}

// userinfoOf is the "user:password@" a URL parser finds in s, which an
// error message must not repeat; a redacted one shows "user:xxxxx@".
func userinfoOf(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return "", false
	}
	// Passwords of a few characters turn up in ports and paths by
	// chance; those are not checked.
	if pw, ok := u.User.Password(); !ok || len(pw) < 4 {
		return "", false
	}
	return u.User.String() + "@", true
}

func TestFromEnvironment(t *testing.T) {
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(k, "")
	}
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	t.Setenv("NO_PROXY", ".internal.example")
	f := FromEnvironment()
	for target, want := range map[string]string{
		"hub.azure-devices.net:443": "http://proxy.example:3128",
		"localhost:8443":            "",
		"127.0.0.5:443":             "",
		"[::1]:443":                 "",
		"hub.internal.example:443":  "",
	} {
		u, err := f(target)
		got := ""
		if u != nil {
			got = u.String()
		}
		if err != nil || got != want {
			t.Errorf("proxy for %s = %q, %v; want %q", target, got, err, want)
		}
	}
}

func TestDialerDirectAndThroughProxy(t *testing.T) {
	echo := echoServer(t)
	var d Dialer
	c, err := d.Dial(testCtx(t), "tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	echoes(t, c, "direct")
	c.Close()

	p := proxytest.New(t)
	u, _ := ParseURL(p.URL())
	d = Dialer{Proxy: Fixed(u)}
	c, err = d.Dial(testCtx(t), "tcp", echo)
	if err != nil {
		t.Fatal(err)
	}
	echoes(t, c, "tunnelled")
	c.Close()
	if p.Tunnels() != 1 || p.Targets()[0] != echo {
		t.Errorf("proxy tunnels %d to %q; want 1 to %s", p.Tunnels(), p.Targets(), echo)
	}

	// A Func that fails fails the dial.
	bad := errors.New("no proxy for you")
	d = Dialer{Proxy: func(string) (*url.URL, error) { return nil, bad }}
	if _, err := d.Dial(testCtx(t), "tcp", echo); !errors.Is(err, bad) {
		t.Errorf("Dial with a failing Func = %v", err)
	}
}

func TestProxyRefusals(t *testing.T) {
	echo := echoServer(t)
	p := proxytest.New(t)
	u, _ := ParseURL("http://alice:s3cret@" + p.Addr())
	d := Dialer{Proxy: Fixed(u)}
	for _, tt := range []struct {
		status    int
		permanent bool
		says      string
	}{
		{403, true, "403 Forbidden"},
		{407, true, "give the proxy's user and password"},
		{408, false, "408 Request Timeout"},
		{429, false, "429 Too Many Requests"},
		{502, false, "502 Bad Gateway"},
	} {
		p.Refuse(tt.status)
		_, err := d.Dial(testCtx(t), "tcp", echo)
		var pe *Error
		if !errors.As(err, &pe) || pe.StatusCode != tt.status || pe.Permanent() != tt.permanent {
			t.Fatalf("status %d: %v; want an *Error with it, permanent %v", tt.status, err, tt.permanent)
		}
		msg := err.Error()
		if !strings.Contains(msg, "http://alice:xxxxx@"+p.Addr()) || !strings.Contains(msg, echo) || !strings.Contains(msg, tt.says) || strings.Contains(msg, "s3cret") {
			t.Errorf("status %d: error %q; want the redacted proxy, the target and %q", tt.status, msg, tt.says)
		}
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	u, _ = ParseURL(dead)
	d = Dialer{Proxy: Fixed(u)}
	_, err := d.Dial(testCtx(t), "tcp", echo)
	var pe *Error
	if !errors.As(err, &pe) || pe.Err == nil || pe.Permanent() || !strings.Contains(err.Error(), dead) {
		t.Errorf("an unreachable proxy: %v; want an *Error naming it", err)
	}
}

// fakeProxy accepts one connection, reads the CONNECT request and runs
// answer on the connection.
func fakeProxy(t *testing.T, answer func(c net.Conn)) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		answer(c)
	}()
	u, _ := ParseURL(ln.Addr().String())
	return u
}

// Bytes the proxy sends right after its answer are the target's: they
// are read first.
func TestBytesAfterTheAnswer(t *testing.T) {
	u := fakeProxy(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nhello from the target")
	})
	d := Dialer{Proxy: Fixed(u)}
	c, err := d.Dial(testCtx(t), "tcp", "target.example:443")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, len("hello from the target"))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello from the target" {
		t.Errorf("read %q, %v", b, err)
	}
}

// A proxy that never answers is given up when ctx ends.
func TestCancelWhileConnecting(t *testing.T) {
	stop := make(chan struct{})
	u := fakeProxy(t, func(net.Conn) { <-stop })
	defer close(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d := Dialer{Proxy: Fixed(u)}
	_, err := d.Dial(ctx, "tcp", "target.example:443")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial = %v; want the deadline", err)
	}
}

// An https:// proxy is reached with TLS, verified by TLSConfig; DialTLS
// then makes the TLS handshake with the target through it.
func TestHTTPSProxyAndDialTLS(t *testing.T) {
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "target") }))
	defer target.Close()
	var tunnels atomic.Int32
	px := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Header.Get("Proxy-Authorization") == "" || r.Header.Get("User-Agent") != "iotctl/test" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		tunnels.Add(1)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { _, _ = io.Copy(up, brw); up.Close() }()
		_, _ = io.Copy(c, up)
		c.Close()
	}))
	px.EnableHTTP2 = false
	px.Config.ErrorLog = log.New(io.Discard, "", 0)
	px.StartTLS()
	defer px.Close()

	pool := x509.NewCertPool()
	pool.AddCert(px.Certificate())
	pool.AddCert(target.Certificate())
	u, _ := ParseURL("https://alice:s3cret@" + px.Listener.Addr().String())
	d := &Dialer{
		Proxy:     Fixed(u),
		UserAgent: "iotctl/test",
		TLSConfig: func(host string) *tls.Config { return &tls.Config{ServerName: host, RootCAs: pool} },
	}
	c, err := d.DialTLS(testCtx(t), target.Listener.Addr().String(), &tls.Config{ServerName: "127.0.0.1", RootCAs: pool})
	if err != nil {
		t.Fatalf("DialTLS through an https proxy: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "target" || tunnels.Load() != 1 {
		t.Errorf("through the https proxy: %q, %d tunnels", body, tunnels.Load())
	}

	// Without the proxy's CA the TLS handshake with it fails, and the
	// error names it.
	d.TLSConfig = nil
	_, err = d.DialTLS(testCtx(t), target.Listener.Addr().String(), &tls.Config{ServerName: "127.0.0.1", RootCAs: pool})
	var pe *Error
	if !errors.As(err, &pe) || pe.Err == nil || !strings.Contains(err.Error(), px.Listener.Addr().String()) {
		t.Errorf("an https proxy with an unknown CA: %v; want an *Error naming it", err)
	}
}
