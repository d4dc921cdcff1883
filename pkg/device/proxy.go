package device

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// ProxyError is an HTTP proxy the client could not tunnel through: it
// could not be reached (Err is set), or it answered CONNECT with a
// status other than 2xx (StatusCode is set). The proxy URL in it has
// its password redacted. A 4xx answer other than 408 and 429 is not
// retried.
type ProxyError struct {
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

func (e *ProxyError) Error() string {
	if e.StatusCode != 0 {
		s := "device: proxy " + e.Proxy + " refused the tunnel to " + e.Target + ": " + e.Status
		if e.StatusCode == http.StatusProxyAuthRequired {
			s += " (give the proxy's user and password in its URL: http://user:password@host:port)"
		}
		return s
	}
	return "device: proxy " + e.Proxy + " (tunnel to " + e.Target + "): " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ProxyError) Unwrap() error { return e.Err }

// ParseProxyURL checks a proxy URL as Options.Proxy takes it:
// "host:port" or "http://[user:password@]host[:port]" (port 80 by
// default) or "https://..." (TLS to the proxy, port 443 by default,
// its certificate verified with the same CAs as the hub's).
// The error never contains the password.
func ParseProxyURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("device: proxy URL is not a URL: %w", redactURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("device: proxy %s: scheme %q is not supported; use http:// or https:// (an HTTP CONNECT proxy)", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("device: proxy %s has no host", u.Redacted())
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

// resolveProxy sets c.proxy from o: the explicit proxy for every
// connection, else the environment's for WebSocket connections.
func (c *config) resolveProxy(o *Options) error {
	switch {
	case o.Proxy != "":
		u, err := ParseProxyURL(o.Proxy)
		if err != nil {
			return err
		}
		c.proxy = func(string) (*url.URL, error) { return u, nil }
	case o.WebSocket:
		env := httpproxy.FromEnvironment().ProxyFunc()
		c.proxy = func(target string) (*url.URL, error) {
			u, err := env(&url.URL{Scheme: "https", Host: target})
			if err != nil {
				return nil, fmt.Errorf("device: HTTPS_PROXY: %w", err)
			}
			return u, nil
		}
	}
	return nil
}

// dialTCP connects to c.address, through the proxy when there is one.
func (c *config) dialTCP(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	var pu *url.URL
	if c.proxy != nil {
		var err error
		if pu, err = c.proxy(c.address); err != nil {
			return nil, err
		}
	}
	if pu == nil {
		return d.DialContext(ctx, "tcp", c.address)
	}
	return dialConnect(ctx, d, pu, c.address, c.tls.RootCAs)
}

// dialConnect opens a tunnel to target through the HTTP proxy pu with
// CONNECT. roots verify an https:// proxy (nil: the system's).
func dialConnect(ctx context.Context, d *net.Dialer, pu *url.URL, target string, roots *x509.CertPool) (net.Conn, error) {
	perr := &ProxyError{Proxy: pu.Redacted(), Target: target}
	port := pu.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[pu.Scheme]
	}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(pu.Hostname(), port))
	if err != nil {
		perr.Err = err
		return nil, perr
	}
	// Cancelling ctx aborts the exchange below.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if pu.Scheme == "https" {
		cfg := &tls.Config{ServerName: pu.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			perr.Err = err
			return nil, perr
		}
		conn = tc
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: http.Header{"User-Agent": {"iotctl/" + version()}},
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
	if ctx.Err() != nil {
		conn.Close()
		return nil, ctx.Err()
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// ctxOr returns ctx's error when it is done (the connection was closed
// because of it), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// bufferedConn replays what the proxy sent after its answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
