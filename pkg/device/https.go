package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
)

// httpsClient is a device over IoT Hub's device REST API
// (https://learn.microsoft.com/rest/api/iothub/device): telemetry is a
// POST, cloud-to-device messages are polled with GET, which locks the
// message, and settled by its lock token (the ETag). There is no
// connection to keep: Connect checks that the hub is reachable and
// trusted, and the credentials are checked with each request. Direct
// methods and the twin do not exist over HTTPS.
type httpsClient struct {
	cfg  *config
	hc   *http.Client
	base string // https://host[:port]

	ctx    context.Context // of requests; cancelled when Close gives up waiting
	cancel context.CancelFunc
	quit   chan struct{}  // closed by Close: the poller stops
	wg     sync.WaitGroup // the poller

	lifecycle
	connected bool
	polling   bool
	token     string
	renewAt   time.Time // zero: never (a fixed token or a certificate)

	hmu sync.RWMutex
	c2d C2DHandler
}

func newHTTPS(opts *Options) (*httpsClient, error) {
	cfg, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	c := &httpsClient{cfg: cfg, base: "https://" + cfg.address, lifecycle: newLifecycle(), quit: make(chan struct{})}
	c.hc = &http.Client{Transport: &http.Transport{
		DialTLSContext:      func(ctx context.Context, _, _ string) (net.Conn, error) { return cfg.dial(ctx) },
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

func (c *httpsClient) DeviceID() string { return c.cfg.deviceID }
func (c *httpsClient) ModuleID() string { return c.cfg.moduleID }
func (c *httpsClient) Done() <-chan struct{} {
	return c.stopped
}

func (c *httpsClient) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected && c.fatal == nil && !c.closed
}

// Connect opens a TLS connection to the hub and closes it again: IoT
// Hub's HTTPS API has no session, so this proves only that the hub is
// reachable and its certificate trusted (a *NetError otherwise); the
// credentials are checked by the first request. With
// Options.RetryConnect it retries until ctx is done.
func (c *httpsClient) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.fatal != nil:
		c.mu.Unlock()
		return c.fatal
	case c.connected:
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.emit(Event{State: StateConnecting})
	err := c.cfg.dialLoop(ctx, c.cfg.retry, ReasonNone, false, func(ctx context.Context) error {
		nc, err := c.cfg.dial(ctx)
		if err != nil {
			var pe *ProxyError
			if !errors.As(err, &pe) {
				err = fmt.Errorf("device: connect to %s: %w", c.cfg.target(), err)
			}
			return err
		}
		nc.Close()
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			c.emit(Event{State: StateDisconnected, Reason: ReasonConnectFailed, Err: err, Final: true})
		}
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.connected = true
	c.mu.Unlock()
	c.emit(Event{State: StateConnected})
	c.startPolling()
	return nil
}

// path returns the identity's path with suffix and the api-version.
func (c *httpsClient) path(suffix string) string {
	p := "/devices/" + url.PathEscape(c.cfg.deviceID)
	if c.cfg.moduleID != "" {
		p += "/modules/" + url.PathEscape(c.cfg.moduleID)
	}
	return c.base + p + suffix
}

// authorization returns the Authorization header value, "" with a
// client certificate; a token is signed again at 80% of its lifetime.
func (c *httpsClient) authorization(now time.Time) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && (c.renewAt.IsZero() || now.Before(c.renewAt)) {
		return c.token, nil
	}
	tok, renewIn, err := c.cfg.password(now)
	if err != nil {
		return "", err
	}
	c.token, c.renewAt = tok, time.Time{}
	if renewIn > 0 {
		c.renewAt = now.Add(renewIn)
	}
	return tok, nil
}

// do makes one request and returns the response when its status is
// one of ok, else a *StatusError for op (the body read and closed).
func (c *httpsClient) do(ctx context.Context, op, method, rawURL string, body []byte, h http.Header, ok ...int) (*http.Response, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	auth, err := c.authorization(time.Now())
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("device: %s: %w", op, err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("User-Agent", "iotctl/"+version())
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL says nothing the message does not
		}
		return nil, fmt.Errorf("device: %s at %s: %w", op, c.cfg.target(), err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := iothub.ParseError(resp.Header, data)
	return nil, &StatusError{Op: op, Status: resp.StatusCode, Code: se.Code, Message: se.Message}
}

// usable returns ErrNotConnected before Connect, ErrClosed after Close
// and the final error of a client that stopped.
func (c *httpsClient) usable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.fatal != nil:
		return c.fatal
	case !c.connected:
		return ErrNotConnected
	}
	return nil
}

// SendEvent posts m to /devices/{id}/messages/events with its
// properties in headers (iothub-app-{name} for application properties)
// and returns when the hub answered 204. A refusal is a *StatusError
// (wrapping ErrUnauthorized for 401, ErrTooLarge for 413).
func (c *httpsClient) SendEvent(ctx context.Context, m *message.Message) error {
	if m == nil {
		m = &message.Message{}
	}
	if m.Size() > message.MaxTelemetrySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Size(), message.MaxTelemetrySize)
	}
	h := http.Header{}
	message.EncodeHTTP(m, h)
	h.Set("Content-Type", "application/octet-stream")
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	resp, err := c.do(ctx, "send event", http.MethodPost, c.path("/messages/events?api-version="+APIVersion), body, h, http.StatusNoContent, http.StatusOK)
	if err != nil {
		return err
	}
	drainBody(resp)
	return nil
}

func drainBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// receive asks for the next cloud-to-device message: nil when there
// is none, else the message and its lock token.
func (c *httpsClient) receive(ctx context.Context) (*message.Message, string, error) {
	resp, err := c.do(ctx, "receive", http.MethodGet, c.path("/messages/deviceBound?api-version="+APIVersion), nil, nil, http.StatusOK, http.StatusNoContent)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, "", nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, message.MaxC2DSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("device: receive: %w", err)
	}
	m, err := message.DecodeHTTP(resp.Header)
	if err != nil {
		return nil, "", fmt.Errorf("device: receive: %w", err)
	}
	if m.ContentType == "" {
		m.ContentType = resp.Header.Get("ContentType")
	}
	if m.ContentEncoding == "" {
		m.ContentEncoding = resp.Header.Get("ContentEncoding")
	}
	m.Body = body
	// The ETag is the lock token in double quotes (azure-iot-sdk-c
	// iothubtransporthttp.c requires them; the Node and C# SDKs strip them).
	lock := strings.Trim(resp.Header.Get("ETag"), `"`)
	if lock == "" {
		return nil, "", errors.New("device: receive: the hub sent a message without an ETag (its lock token), so it cannot be settled")
	}
	return m, lock, nil
}

// settle completes (DELETE), rejects (DELETE ...?reject) or abandons
// (POST .../abandon) a received message by its lock token
// (azure-iot-sdk-csharp CommonConstants.cs DeviceBoundPath*Template).
// A lock that expired is a *StatusError wrapping ErrLockLost.
func (c *httpsClient) settle(ctx context.Context, lock string, s Settle) error {
	base := c.path("/messages/deviceBound/" + url.PathEscape(lock))
	method, u := http.MethodDelete, base+"?api-version="+APIVersion
	switch s {
	case SettleReject:
		u += "&reject"
	case SettleAbandon:
		method, u = http.MethodPost, base+"/abandon?api-version="+APIVersion
	}
	h := http.Header{"If-Match": {`"` + lock + `"`}}
	resp, err := c.do(ctx, s.String()+" C2D message", method, u, nil, h, http.StatusNoContent, http.StatusOK)
	if err != nil {
		return err
	}
	drainBody(resp)
	return nil
}

// SetC2DHandler sets the cloud-to-device callback (nil removes it).
// While one is set and the client is connected, it polls the hub every
// Options.PollInterval (at once again after a message) and settles each
// message as Options.C2DSettle says when fn returns.
func (c *httpsClient) SetC2DHandler(fn C2DHandler) {
	c.hmu.Lock()
	c.c2d = fn
	c.hmu.Unlock()
	if fn != nil {
		c.startPolling()
	}
}

func (c *httpsClient) handler() C2DHandler {
	c.hmu.RLock()
	defer c.hmu.RUnlock()
	return c.c2d
}

// startPolling starts the poller if the client is connected, has a
// handler and no poller runs yet.
func (c *httpsClient) startPolling() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.polling || !c.connected || c.closed || c.fatal != nil || c.handler() == nil {
		return
	}
	c.polling = true
	c.wg.Add(1)
	go c.poll()
}

// poll receives, hands over and settles messages until Close, the
// handler is removed, or the hub refuses the credentials (final).
func (c *httpsClient) poll() {
	defer c.wg.Done()
	var wait time.Duration
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.quit:
				t.Stop()
			}
		}
		fn := c.handler()
		if c.quitting() || fn == nil {
			c.mu.Lock()
			c.polling = false
			c.mu.Unlock()
			if !c.quitting() && c.handler() != nil {
				c.startPolling() // a handler came back meanwhile
			}
			return
		}
		wait = c.cfg.poll
		m, lock, err := c.receive(c.ctx)
		switch {
		case c.ctx.Err() != nil:
			continue
		case errors.Is(err, ErrUnauthorized):
			c.fail(err)
			return
		case err != nil:
			c.cfg.log.Warn("c2d poll failed", "device", c.cfg.clientID, "err", err)
			continue
		case m == nil:
			continue
		}
		fn(m)
		if err := c.settle(c.ctx, lock, c.cfg.settle); err != nil && c.ctx.Err() == nil {
			c.cfg.log.Warn("c2d settle failed", "device", c.cfg.clientID, "settle", c.cfg.settle.String(), "err", err)
		}
		if c.cfg.settle != SettleAbandon {
			wait = 0 // more may be queued; an abandoned one waits its turn
		}
	}
}

func (c *httpsClient) quitting() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// fail stops the client for good with err (the hub refused the
// credentials while polling).
func (c *httpsClient) fail(err error) {
	c.mu.Lock()
	if c.closed || c.fatal != nil {
		c.mu.Unlock()
		return
	}
	c.fatal = err
	c.polling = false
	close(c.stopped)
	c.mu.Unlock()
	c.cfg.log.Warn("the hub refused the credentials; giving up", "device", c.cfg.clientID, "err", err)
	c.emit(Event{State: StateDisconnected, Reason: ReasonReconnectRefused, Err: err, Final: true})
}

// HandleMethod does nothing: IoT Hub has no direct methods over HTTPS.
func (c *httpsClient) HandleMethod(string, MethodHandler) {}

// SetDefaultMethodHandler does nothing: no direct methods over HTTPS.
func (c *httpsClient) SetDefaultMethodHandler(MethodHandler) {}

// SetDesiredHandler does nothing: no twin over HTTPS.
func (c *httpsClient) SetDesiredHandler(DesiredHandler) {}

// errHTTPSTwin says what to do instead.
var errHTTPSTwin = fmt.Errorf("%w: IoT Hub has no device twin over HTTPS; use the MQTT or AMQP transport", ErrNotSupported)

// GetTwin returns an error wrapping ErrNotSupported.
func (c *httpsClient) GetTwin(context.Context) (*Twin, error) { return nil, errHTTPSTwin }

// UpdateReported returns an error wrapping ErrNotSupported.
func (c *httpsClient) UpdateReported(context.Context, any) (int64, error) {
	return 0, errHTTPSTwin
}

// Close stops polling and closes idle connections. A message being
// handled is settled first, unless ctx is done before: then the
// request is cut short and the message comes back when its lock
// expires. It is idempotent and returns nil.
func (c *httpsClient) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.fatal == nil {
		close(c.stopped)
	}
	c.mu.Unlock()
	close(c.quit)
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.cancel()
		<-done
	}
	c.cancel()
	c.hc.CloseIdleConnections()
	c.emit(Event{State: StateClosed, Reason: ReasonClosed})
	return nil
}

func (c *httpsClient) emit(e Event) { c.cfg.emit(e) }
