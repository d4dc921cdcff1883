package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/iotctl/iotctl/internal/replay"
)

// Error is an HTTP proxy a connection could not tunnel through: it
// could not be reached (Err is set), or it answered CONNECT with a
// status other than 2xx (StatusCode is set). The proxy URL in it has
// its password redacted.
type Error struct {
	// Proxy is the proxy's URL, password redacted.
	Proxy string
	// Target is the host:port the tunnel was for.
	Target string
	// StatusCode and Status are the proxy's answer; 0 and "" when it
	// gave none.
	StatusCode int
	Status     string
	// Err is the network or TLS error reaching the proxy, or nil.
	Err error
}

func (e *Error) Error() string {
	if e.StatusCode != 0 {
		s := "proxy " + e.Proxy + " refused the tunnel to " + e.Target + ": " + e.Status
		if e.StatusCode == http.StatusProxyAuthRequired {
			s += " (give the proxy's user and password in its URL: http://user:password@host:port)"
		}
		return s
	}
	return "proxy " + e.Proxy + " (tunnel to " + e.Target + "): " + e.Err.Error()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether trying again would fail the same way: the
// proxy answered with a 4xx status other than 408 (timeout) and 429
// (too many requests).
func (e *Error) Permanent() bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusRequestTimeout && e.StatusCode != http.StatusTooManyRequests
}

// ParseURL checks a proxy URL: "host:port" or
// "http://[user:password@]host[:port]" (port 80 by default) or
// "https://..." (TLS to the proxy, port 443 by default). SOCKS and other
// schemes are refused. The error never contains the password.
func ParseURL(s string) (*url.URL, error) {
	switch {
	case strings.HasPrefix(s, "//"):
		// A scheme-relative URL: its authority (and any password) is
		// already there.
		s = "http:" + s
	case !strings.Contains(s, "://"):
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("proxy URL is not a URL: %w", redactURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("proxy %s: scheme %q is not supported; use http:// or https:// (an HTTP CONNECT proxy)", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy %s has no host", u.Redacted())
	}
	return u, nil
}

// redactURLError drops the URL from a *url.Error: it may hold a
// password.
func redactURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Func returns the proxy for a target host:port, or nil for a direct
// connection.
type Func func(target string) (*url.URL, error)

// Fixed returns a Func that sends every target through u.
func Fixed(u *url.URL) Func {
	return func(string) (*url.URL, error) { return u, nil }
}

// FromEnvironment returns the proxy selection of HTTPS_PROXY (or
// https_proxy) and NO_PROXY (or no_proxy) as they are now, for https
// and wss targets: a host NO_PROXY names, localhost and loopback
// addresses connect directly, as with curl and Go's net/http. An
// invalid HTTPS_PROXY makes the Func return an error.
func FromEnvironment() Func {
	env := httpproxy.FromEnvironment().ProxyFunc()
	return func(target string) (*url.URL, error) {
		u, err := env(&url.URL{Scheme: "https", Host: target})
		if err != nil {
			return nil, fmt.Errorf("proxy: HTTPS_PROXY: %w", redactURLError(err))
		}
		return u, nil
	}
}

// Dialer opens TCP connections, through an HTTP proxy when Proxy names
// one for the target. Its zero value dials directly. A Dialer is safe
// for concurrent use when its fields are not changed.
type Dialer struct {
	// Proxy picks the proxy for each target. Default (nil): none.
	Proxy Func
	// TLSConfig returns the TLS configuration for an https:// proxy
	// named host. Default: verify it with the system pool.
	TLSConfig func(host string) *tls.Config
	// UserAgent is sent with CONNECT. Default: "iotctl".
	UserAgent string
	// DialContext makes the TCP connections, to the target or to the
	// proxy. Default: a net.Dialer's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial connects to addr (host:port) over network "tcp", directly or
// through the tunnel Proxy gives for it. Cancelling ctx aborts the
// dial and the CONNECT exchange. A proxy that cannot be reached or
// refuses the tunnel is an *Error; a direct connection that fails is a
// *NetError (PhaseConnect), but for the cancellation of ctx.
func (d *Dialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var pu *url.URL
	if d.Proxy != nil {
		var err error
		if pu, err = d.Proxy(addr); err != nil {
			return nil, err
		}
	}
	if pu == nil {
		start := time.Now()
		conn, err := d.dial(ctx, network, addr)
		if err != nil {
			return nil, NewNetError(ctx, start, addr, PhaseConnect, err)
		}
		return conn, nil
	}
	return d.connect(ctx, pu, addr)
}

// DialTLS is Dial to addr (host:port) followed by a TLS handshake with
// cfg. Cancelling ctx aborts both. A handshake that fails is a
// *NetError (PhaseTLS).
func (d *Dialer) DialTLS(ctx context.Context, addr string, cfg *tls.Config) (net.Conn, error) {
	start := time.Now()
	raw, err := d.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, NewNetError(ctx, start, addr, PhaseTLS, err)
	}
	return tc, nil
}

func (d *Dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.DialContext != nil {
		return d.DialContext(ctx, network, addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// connect opens a tunnel to target through the HTTP proxy pu.
func (d *Dialer) connect(ctx context.Context, pu *url.URL, target string) (net.Conn, error) {
	perr := &Error{Proxy: pu.Redacted(), Target: target}
	port := pu.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[pu.Scheme]
	}
	conn, err := d.dial(ctx, "tcp", net.JoinHostPort(pu.Hostname(), port))
	if err != nil {
		perr.Err = err
		return nil, perr
	}
	// Cancelling ctx aborts the exchange below.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if pu.Scheme == "https" {
		cfg := &tls.Config{ServerName: pu.Hostname(), MinVersion: tls.VersionTLS12}
		if d.TLSConfig != nil {
			cfg = d.TLSConfig(pu.Hostname())
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			perr.Err = err
			return nil, perr
		}
		conn = tc
	}
	ua := d.UserAgent
	if ua == "" {
		ua = "iotctl"
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{"User-Agent": {ua}},
	}
	if u := pu.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		perr.Err = ctxOr(ctx, err)
		return nil, perr
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		perr.Err = ctxOr(ctx, fmt.Errorf("reading its answer to CONNECT: %w", err))
		return nil, perr
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		conn.Close()
		perr.StatusCode, perr.Status = resp.StatusCode, resp.Status
		return nil, perr
	}
	if !stop() {
		// ctx ended and closed conn.
		return nil, ctx.Err()
	}
	return replay.New(conn, br), nil
}

// ctxOr returns ctx's error when it is done (the connection was closed
// because of it), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
