package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
)

// APIVersion is the IoT Hub REST API version the client speaks.
const APIVersion = "2021-04-12"

// DefaultConnectTimeout is Options.ConnectTimeout's default: Go's
// net/http default for the TLS handshake (http.DefaultTransport).
const DefaultConnectTimeout = 10 * time.Second

// NetError is a failure to reach the hub or to hear from it, with the
// host, the phase (TCP connect, TLS handshake, waiting for the answer)
// and the time limit that ran out. It is the same type as
// device.NetError.
type NetError = proxy.NetError

// Options configure a Client. A nil *Options means the defaults.
type Options struct {
	// CAFile is a PEM file of extra CA certificates to trust besides
	// the system pool (the local hub's CA). The hub's certificate is
	// checked against them first; the system pool is loaded only when
	// they do not vouch for it. Default: none.
	CAFile string
	// RootCAs replaces the system pool when set. Default: nil.
	RootCAs *x509.CertPool
	// HTTPClient replaces the whole HTTP client (tests). Default: a
	// client with keep-alive, the proxy of Proxy or of the environment
	// (HTTPS_PROXY/NO_PROXY) and the CAs above.
	HTTPClient *http.Client
	// WebSocket makes the AMQP side (C2D, feedback, Monitor) speak
	// AMQP over a secure WebSocket, wss://{host}[:port]/$iothub/websocket
	// with subprotocol AMQPWSB10, instead of AMQP over TLS, for
	// networks that only let HTTPS out. The port is the one in HostName,
	// DefaultWebSocketPort (443) when it names none. Monitor follows the
	// hub's redirect over WebSocket too: to the hub's own endpoint when
	// the redirect names the hub's host (the local hub), else to
	// wss://{host}:443/$servicebus/websocket, where Event Hubs
	// namespaces serve it. REST is HTTPS either way. Default: false.
	WebSocket bool
	// Proxy is the URL of an HTTP proxy to tunnel every connection
	// through with CONNECT: REST, AMQP over TLS and WebSocket, whatever
	// the host, loopback included ("http://[user:password@]host:port";
	// "https://" for TLS to the proxy; no scheme means http). When
	// empty, REST and WebSocket connections use the environment's
	// proxy (HTTPS_PROXY or https_proxy, skipped for the hosts in
	// NO_PROXY and for localhost and loopback addresses, as curl and Go
	// do), read when New is called; AMQP over TLS connects directly. A
	// proxy that cannot be reached or refuses the tunnel is a
	// *ProxyError. A custom HTTPClient makes its own choice for REST.
	// Default: none.
	Proxy string
	// UserAgent is sent as User-Agent. Default: "iotctl".
	UserAgent string
	// ConnectTimeout bounds the TCP connection and, separately, the
	// TLS handshake of each connection to the hub (REST and AMQP). One
	// that runs out is a *NetError with this Timeout, and is not tried
	// again. Default: DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// TokenTTL is the lifetime of the SAS tokens the client signs.
	// Default: 1 hour; a token is renewed 5 minutes before it expires.
	TokenTTL time.Duration
	// Retries is how many times a throttled (429) or unavailable (503)
	// idempotent request is tried again. Default: 3; negative: none.
	Retries int
	// Logger receives debug logs of requests (never tokens). Default:
	// discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Client talks to one IoT hub with one credential: a shared access
// policy's key or token, or a TokenSource.
type Client struct {
	cs *connstr.ConnectionString
	// key and token are the policy's, for the Event Hub-compatible
	// endpoint; nil with a TokenSource.
	key   []byte
	token *sas.Token
	// src gives the tokens presented to the hub; cached is HTTPS's.
	src     TokenSource
	cached  Token
	base    string
	http    *http.Client
	opts    Options
	log     *slog.Logger
	tokenMu sync.Mutex
	// tls is the configuration of the AMQP side, for any host.
	tls *lazyTLS
	// proxy is Options.Proxy's, nil for none; envProxy the
	// environment's, for REST and WebSocket.
	proxy, envProxy proxy.Func
	// dialContext replaces the TCP dialer (tests); nil: net.Dialer.
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// The AMQP side (C2D, feedback), opened on first use.
	amqpMu sync.Mutex
	amqp   *amqpSession
	c2d    *amqp.Sender
}

// New returns a Client for a service (policy) connection string. The
// error wraps connstr.ErrWrongKind for another kind, or says why the
// CA file cannot be used.
func New(cs *connstr.ConnectionString, opts *Options) (*Client, error) {
	if err := cs.Require(connstr.KindService); err != nil {
		return nil, err
	}
	return newClient(cs, nil, opts)
}

// NewWithTokenSource returns a Client for the hub hostName ("myhub.azure-devices.net",
// with a port when it is not 443) that presents the tokens of src, such
// as an EntraSource's, on HTTPS and AMQP. Monitor needs the Event
// Hub-compatible endpoint's own connection string with such a client
// (see MonitorEventHub): that endpoint takes only shared keys.
func NewWithTokenSource(hostName string, src TokenSource, opts *Options) (*Client, error) {
	if hostName == "" || strings.ContainsAny(hostName, "/;") {
		return nil, fmt.Errorf("service: host name %q: want the hub's host name, e.g. myhub.azure-devices.net", hostName)
	}
	if src == nil {
		return nil, errors.New("service: no token source")
	}
	return newClient(&connstr.ConnectionString{Kind: connstr.KindService, HostName: hostName}, src, opts)
}

func newClient(cs *connstr.ConnectionString, src TokenSource, opts *Options) (*Client, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.UserAgent == "" {
		o.UserAgent = "iotctl"
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cs: cs, base: "https://" + cs.HostName, opts: o, log: o.Logger, src: src}
	if src == nil {
		switch cs.Auth() {
		case connstr.AuthKey:
			k, err := cs.Key()
			if err != nil {
				return nil, err
			}
			c.key = k
			c.src = NewSASSource(cs.HostName, cs.SharedAccessKeyName, k, o.TokenTTL, o.Now)
		case connstr.AuthToken:
			t, err := cs.Token()
			if err != nil {
				return nil, err
			}
			c.token = t
			c.src = FixedSASSource(t)
		default:
			return nil, errors.New("service: the connection string has no SharedAccessKey or SharedAccessSignature")
		}
	}
	trusted, err := newTrust(o.CAFile, o.RootCAs)
	if err != nil {
		return nil, err
	}
	c.tls = &lazyTLS{trust: trusted}
	if err := c.setProxy(); err != nil {
		return nil, err
	}
	c.http = o.HTTPClient
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// HTTPS goes to the hub only, through the tunnel of the same
		// dialer as the AMQP side's when there is a proxy.
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return proxy.DialWithin(ctx, o.ConnectTimeout, func(ctx context.Context) (net.Conn, error) {
				return c.dialer(true).Dial(ctx, network, addr)
			})
		}
		tr.TLSHandshakeTimeout = o.ConnectTimeout
		tr.TLSClientConfig = trusted.forHost(cs.Host())
		tr.MaxIdleConnsPerHost = 64
		c.http = &http.Client{Transport: tr}
	}
	return c, nil
}

// HostName is the hub the client talks to.
func (c *Client) HostName() string { return c.cs.HostName }

// authorization returns the Authorization header's value: the cached
// token, or a new one from the token source when the cached one
// expires within five minutes (a token given in the connection string
// is used until the end).
func (c *Client) authorization(ctx context.Context) (string, error) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	now := c.opts.Now()
	if c.cached.Value != "" && (c.token != nil || c.cached.Expiry.After(now.Add(5*time.Minute))) {
		return c.cached.Value, nil
	}
	t, err := c.src.Token(ctx)
	if err != nil {
		return "", err
	}
	c.cached = t
	return t.Value, nil
}

// request is one REST call.
type request struct {
	method  string
	path    string // already escaped
	query   url.Values
	body    any
	ifMatch string
	// header holds further request headers (x-ms-continuation, ...).
	header http.Header
	// idempotent requests are retried on 429 and 503; others only when
	// they failed before being sent.
	idempotent bool
}

// do sends req and decodes a 2xx JSON answer into out (when not nil).
// It returns the response headers.
func (c *Client) do(ctx context.Context, req request, out any) (http.Header, error) {
	var body []byte
	if req.body != nil {
		var err error
		if raw, ok := req.body.(json.RawMessage); ok {
			body = raw
		} else if body, err = json.Marshal(req.body); err != nil {
			return nil, fmt.Errorf("service: encoding request: %w", err)
		}
	}
	q := req.query
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", APIVersion)
	u := c.base + req.path + "?" + q.Encode()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		resp, wrote, phase, err := c.send(ctx, req, u, body)
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, ctx.Err()
			}
			var te *tokenError
			if errors.As(err, &te) {
				return nil, te.err
			}
			err = c.netError(ctx, start, phase, err)
			if ctx.Err() == nil && !wrote && !permanent(err) && attempt < c.opts.Retries {
				if werr := c.backoff(ctx, attempt, nil); werr != nil {
					return nil, werr
				}
				continue
			}
			return nil, fmt.Errorf("service: %s %s: %w", req.method, req.path, err)
		}
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if rerr != nil {
			return nil, fmt.Errorf("service: reading answer: %w", rerr)
		}
		c.log.Debug("service request", "method", req.method, "path", req.path, "status", resp.StatusCode)
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if out != nil && len(bytes.TrimSpace(data)) > 0 {
				if err := json.Unmarshal(data, out); err != nil {
					return nil, fmt.Errorf("service: decoding answer to %s %s: %w", req.method, req.path, err)
				}
			}
			return resp.Header, nil
		}
		retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
		if retryable && req.idempotent && attempt < c.opts.Retries {
			if werr := c.backoff(ctx, attempt, resp.Header); werr != nil {
				return nil, werr
			}
			continue
		}
		return resp.Header, parseError(resp.StatusCode, resp.Header, data)
	}
}

// send makes one attempt at req. It returns whether the request was
// written, and the phase the attempt reached: PhaseConnect until the TLS
// handshake starts, PhaseTLS until a connection is ready, then
// PhaseAnswer.
func (c *Client) send(ctx context.Context, req request, u string, body []byte) (*http.Response, bool, proxy.Phase, error) {
	var wrote atomic.Bool
	var phase atomic.Value
	phase.Store(proxy.PhaseConnect)
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { phase.Store(proxy.PhaseTLS) },
		GotConn:           func(httptrace.GotConnInfo) { phase.Store(proxy.PhaseAnswer) },
		WroteRequest:      func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), req.method, u, rd)
	if err != nil {
		return nil, false, proxy.PhaseConnect, err
	}
	auth, err := c.authorization(ctx)
	if err != nil {
		return nil, false, proxy.PhaseConnect, &tokenError{err}
	}
	hr.Header.Set("Authorization", auth)
	hr.Header.Set("User-Agent", c.opts.UserAgent)
	hr.Header.Set("Request-Id", requestID())
	hr.Header.Set("Accept", "application/json")
	if body != nil {
		hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if req.ifMatch != "" {
		hr.Header.Set("If-Match", quoteEtag(req.ifMatch))
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	resp, err := c.http.Do(hr)
	return resp, wrote.Load(), phase.Load().(proxy.Phase), err
}

// hostPort is the hub's host:port for HTTPS.
func (c *Client) hostPort() string {
	port := c.cs.Port()
	if port == 0 {
		port = 443
	}
	return net.JoinHostPort(c.cs.Host(), strconv.Itoa(port))
}

// netError makes err, a failed request that reached phase, a *NetError
// for the hub (unless it is one already, or a proxy's *ProxyError).
// start is when the call began, for the time limit of ctx's deadline.
func (c *Client) netError(ctx context.Context, start time.Time, phase proxy.Phase, err error) error {
	var ne *NetError
	var pe *ProxyError
	switch {
	case errors.As(err, &ne):
		return ne
	case errors.As(err, &pe):
		return pe
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in the message already
	}
	e := proxy.NewNetError(ctx, start, c.hostPort(), phase, err)
	if errors.As(e, &ne) && ne.Timeout == 0 && ne.TimedOut() && phase == proxy.PhaseTLS && c.opts.HTTPClient == nil {
		ne.Timeout = c.opts.ConnectTimeout // net/http's TLSHandshakeTimeout ran out
	}
	return e
}

// permanent reports whether a failure to reach the hub would fail the
// same way at once if tried again, or after as long: a server
// certificate the client does not trust, a host name that does not
// exist, a proxy's 4xx refusal (but 408 and 429), or a connection or
// TLS handshake that ran out of time.
func permanent(err error) bool {
	var ne *NetError
	if errors.As(err, &ne) && ne.TimedOut() && ne.Phase != proxy.PhaseAnswer {
		return true
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	var dns *net.DNSError
	var pe *ProxyError
	switch {
	case errors.As(err, &pe):
		return pe.Permanent()
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &hne), errors.As(err, &cie):
		return true
	case errors.As(err, &dns):
		return dns.IsNotFound
	}
	return false
}

// backoff waits before attempt+1: Retry-After when the hub gave one,
// else 200 ms doubled per attempt with jitter.
func (c *Client) backoff(ctx context.Context, attempt int, h http.Header) error {
	d := (200 * time.Millisecond) << attempt
	if h != nil {
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 && s < 60 {
			d = time.Duration(s) * time.Second
		}
	}
	if n, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)+1)); err == nil {
		d += time.Duration(n.Int64())
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokenError is a failure of the token source, which is no failure to
// reach the hub.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func quoteEtag(s string) string {
	if s == "*" || (len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"') {
		return s
	}
	return `"` + s + `"`
}

// pathOf builds an escaped path from segments.
func pathOf(segs ...string) string {
	var b bytes.Buffer
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

var errNoTarget = errors.New("service: a device id is needed")
