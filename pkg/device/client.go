package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/message"
)

// Client is an IoT Hub device (or module) client over MQTT 3.1.1 on
// TLS. Make one with New, set handlers, then Connect. All methods are
// safe for concurrent use.
//
// Once connected, the client keeps the connection up by itself: when
// it drops, it reconnects with exponential back-off and jitter, signs
// a fresh token, and subscribes again. It also reconnects before its
// token expires. Calls made while it is reconnecting wait for the new
// connection (or for their ctx). A refused reconnect is final: waiting
// and later calls return the *ConnectError and Done is closed.
type Client struct {
	cfg *config

	// ctx is cancelled by Close; it bounds reconnects and handlers.
	ctx    context.Context
	cancel context.CancelFunc

	lifecycle
	cur      *conn         // the live connection, nil when down
	ready    chan struct{} // closed while cur != nil
	renew    *time.Timer
	inflight int           // telemetry publishes waiting for their ack
	drained  chan struct{} // closed when inflight drops to 0
	unsent   []*send       // telemetry waiting for a connection
	sends    uint64        // telemetry sends made (their seq)

	methodTable

	hmu     sync.RWMutex
	desired DesiredHandler
	c2d     C2DHandler

	pmu     sync.Mutex
	pending map[string]chan twinResponse
	rid     atomic.Uint64
}

// New checks opts and returns a Client that is not connected yet. It
// does no I/O other than reading CAFile. Errors: a *connstr.ParseError
// for a bad connection string, an error wrapping sas.ErrKey for a key
// that is not base64, or a plain error naming the missing option.
// Errors never contain key material.
func New(opts *Options) (*Client, error) {
	cfg, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, ready: make(chan struct{}), lifecycle: newLifecycle()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// DeviceID returns the device id the client connects as.
func (c *Client) DeviceID() string { return c.cfg.deviceID }

// ModuleID returns the module id, "" for a device.
func (c *Client) ModuleID() string { return c.cfg.moduleID }

// Done is closed when the client stops for good: after Close, or when
// the hub refused a reconnect (see Err).
func (c *Client) Done() <-chan struct{} { return c.stopped }

// Connected reports whether the client has a live connection now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// Connect makes the first connection: TLS to the hub (or gateway),
// CONNECT with the SAS token, and SUBSCRIBE to the topics the set
// handlers need (direct methods and twin responses always). It returns
// when the client is connected and subscribed, or with the error of the
// attempt: a *ConnectError (wrapping ErrUnauthorized for return codes 4
// and 5) when the hub refused, else a network or TLS error. With
// Options.RetryConnect it retries everything but refusals until ctx is
// done. Cancelling ctx aborts the attempt and returns ctx.Err(); once
// Connect has returned, ctx no longer matters. Calling Connect on a
// connected client returns nil; after Close it returns ErrClosed.
func (c *Client) Connect(ctx context.Context) error {
	err := c.connect(ctx, c.ctx, c.cfg, func() bool { return c.cur != nil }, c.attempt)
	if err != nil {
		// Telemetry sent while Connect was trying waits for no
		// connection now.
		c.mu.Lock()
		var q []*send
		if !c.started && !c.busy && c.cur == nil {
			q = c.failUnsentLocked()
		}
		c.mu.Unlock()
		finishAll(q, fmt.Errorf("%w: %w", ErrNotConnected, err))
	}
	return err
}

// dialLoop makes attempts until one succeeds, ctx is done, an attempt
// is refused, or (without retry) after the first failure. With
// delayFirst the first attempt waits a back-off too.
func (c *Client) dialLoop(ctx context.Context, retry bool, reason Reason, delayFirst bool) error {
	return c.cfg.dialLoop(ctx, retry, reason, delayFirst, c.attempt)
}

// dialLoop runs attempt until it succeeds, ctx is done, an attempt is
// refused (permanent), or (without retry) after the first failure,
// with back-off between attempts (before the first too with
// delayFirst), each announced as a StateReconnecting event.
func (cfg *config) dialLoop(ctx context.Context, retry bool, reason Reason, delayFirst bool, attempt func(context.Context) error) error {
	for n := 1; ; n++ {
		if n > 1 || delayFirst {
			d := backoff(n, cfg.minDelay, cfg.maxDelay)
			cfg.emit(Event{State: StateReconnecting, Reason: reason, Attempt: n, Delay: d})
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retry || permanent(err) {
			return err
		}
		cfg.log.Debug("connect attempt failed", "device", cfg.clientID, "attempt", n, "err", err)
	}
}

// attempt makes one connection and installs it as c.cur.
func (c *Client) attempt(ctx context.Context) error {
	pw, renewIn, err := c.cfg.password(time.Now())
	if err != nil {
		return err
	}
	nc, err := c.cfg.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pe *ProxyError
		if errors.As(err, &pe) {
			return err
		}
		return fmt.Errorf("device: connect to %s: %w", c.cfg.target(), err)
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 4
	cp.ClientIdentifier = c.cfg.clientID
	cp.UsernameFlag, cp.Username = true, c.cfg.username
	if pw != "" {
		cp.PasswordFlag, cp.Password = true, []byte(pw)
	}
	cp.Keepalive = uint16(min(c.cfg.keepAlive/time.Second, 65535))

	// Cancelling ctx closes the socket, which fails the handshake.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	start := time.Now()
	cn, code, err := dialMQTT(nc, cp, c.cfg.connTimeout,
		func(cn *conn, p *packets.PublishPacket) { c.onMessage(cn, p.TopicName, p.Payload) }, c.connLost)
	if !stop() {
		if cn != nil {
			cn.close(0)
		}
		return ctx.Err()
	}
	switch {
	case err != nil:
		return fmt.Errorf("device: connect to %s: %w", c.cfg.target(), c.cfg.netError(ctx, start, proxy.PhaseAnswer, err))
	case code != packets.Accepted:
		return &ConnectError{Code: code, Host: c.cfg.address, Detail: c.cfg.certProblem(time.Now())}
	}

	if err := c.subscribe(ctx, cn, c.filters()); err != nil {
		cn.close(0)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	c.mu.Lock()
	if c.closed || cn.isLost() {
		closed := c.closed
		c.mu.Unlock()
		cn.close(0)
		if closed {
			return ErrClosed
		}
		return fmt.Errorf("device: connection to %s lost while subscribing", c.cfg.address)
	}
	c.cur = cn
	close(c.ready)
	if renewIn > 0 {
		c.renew = time.AfterFunc(renewIn, func() { c.renewToken(cn) })
	}
	unsent := c.takeUnsentLocked()
	c.mu.Unlock()
	c.cfg.log.Debug("connected", "device", c.cfg.clientID, "address", c.cfg.address)
	// Telemetry that waited for a connection, or was in flight when
	// the last one dropped, goes now, in the order it was sent.
	for _, s := range unsent {
		c.submit(s)
	}
	c.emit(Event{State: StateConnected})
	return nil
}

// filters returns the subscriptions the handlers need.
func (c *Client) filters() map[string]byte {
	f := map[string]byte{message.MethodRequestFilter: 0, message.TwinResponseFilter: 0}
	c.hmu.RLock()
	defer c.hmu.RUnlock()
	if c.desired != nil {
		f[message.TwinDesiredFilter] = 0
	}
	if c.c2d != nil {
		f[c.c2dFilter()] = 1
	}
	return f
}

func (c *Client) c2dFilter() string {
	if c.cfg.moduleID != "" {
		return message.ModuleInputFilter(c.cfg.deviceID, c.cfg.moduleID)
	}
	return message.C2DFilter(c.cfg.deviceID)
}

// subscribe subscribes cn to filters, bounded by the connect timeout.
func (c *Client) subscribe(ctx context.Context, cn *conn, filters map[string]byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.connTimeout)
	defer cancel()
	granted, err := cn.subscribe(ctx, filters)
	switch {
	case errors.Is(err, errLost):
		return fmt.Errorf("device: connection to %s lost while subscribing", c.cfg.address)
	case err != nil:
		return fmt.Errorf("device: subscribe: %w", err)
	}
	for f, q := range granted {
		if q == 0x80 {
			return fmt.Errorf("device: the hub refused the subscription to %s", f)
		}
	}
	return nil
}

// addFilter subscribes the live connection, if any, to filter. It is
// called when a handler that needs a new subscription is set after
// Connect; failures are logged.
func (c *Client) addFilter(filter string, qos byte) {
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if cn == nil {
		return // the next connect subscribes
	}
	go func() {
		if err := c.subscribe(c.ctx, cn, map[string]byte{filter: qos}); err != nil {
			c.cfg.log.Warn("late subscribe failed", "device", c.cfg.clientID, "filter", filter, "err", err)
		}
	}()
}

// dropLocked forgets the live connection; c.mu is held.
func (c *Client) dropLocked() {
	if c.cur == nil {
		return
	}
	c.cur = nil
	c.ready = make(chan struct{})
	if c.renew != nil {
		c.renew.Stop()
		c.renew = nil
	}
}

// drainLocked returns a channel closed when no telemetry publish is
// waiting for its ack; c.mu is held.
func (c *Client) drainLocked() <-chan struct{} {
	if c.inflight == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	return c.drained
}

// connLost runs on a goroutine of its own when cn ended by itself.
func (c *Client) connLost(cn *conn, err error) {
	c.mu.Lock()
	if c.cur != cn {
		c.mu.Unlock()
		return
	}
	c.dropLocked()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	c.cfg.log.Debug("connection lost", "device", c.cfg.clientID, "err", err)
	c.emit(Event{State: StateDisconnected, Reason: ReasonConnectionLost, Err: err})
	c.reconnect(ReasonConnectionLost, true)
}

// renewToken runs on a timer 80% into the token's lifetime: it lets
// in-flight telemetry finish (up to the connect timeout), disconnects
// and connects again with a fresh token.
func (c *Client) renewToken(cn *conn) {
	c.mu.Lock()
	if c.cur != cn || c.closed {
		c.mu.Unlock()
		return
	}
	c.dropLocked()
	drained := c.drainLocked()
	c.mu.Unlock()
	c.emit(Event{State: StateReconnecting, Reason: ReasonTokenRenewal})
	t := time.NewTimer(c.cfg.connTimeout)
	select {
	case <-drained:
	case <-t.C:
	case <-c.ctx.Done():
	}
	t.Stop()
	cn.close(250 * time.Millisecond)
	c.reconnect(ReasonTokenRenewal, false)
}

// reconnect runs dialLoop with retries until it connects, Close is
// called, or the hub refuses (which is final).
func (c *Client) reconnect(reason Reason, delayFirst bool) {
	c.mu.Lock()
	if c.busy || c.closed {
		c.mu.Unlock()
		return
	}
	c.busy = true
	c.mu.Unlock()

	err := c.dialLoop(c.ctx, true, reason, delayFirst)

	c.mu.Lock()
	c.busy = false
	if err == nil || c.closed {
		c.mu.Unlock()
		return
	}
	c.fatal = err
	close(c.stopped)
	unsent := c.failUnsentLocked()
	c.mu.Unlock()
	finishAll(unsent, err)
	c.cfg.log.Warn("reconnect refused; giving up", "device", c.cfg.clientID, "err", err)
	c.emit(Event{State: StateDisconnected, Reason: ReasonReconnectRefused, Err: err, Final: true})
}

// waitConnected returns the live connection, waiting for a reconnect
// if needed.
func (c *Client) waitConnected(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if err := c.endedLocked(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		switch {
		case !c.started && !c.busy && c.cur == nil:
			c.mu.Unlock()
			return nil, ErrNotConnected
		case c.cur != nil:
			cn := c.cur
			c.mu.Unlock()
			return cn, nil
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-c.stopped:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// untrackLocked counts a telemetry publish no longer waiting for its
// acknowledgement; c.mu is held.
func (c *Client) untrackLocked() {
	c.inflight--
	if c.inflight == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// Close stops the client: calls waiting for a connection return
// ErrClosed, telemetry already published may finish until ctx is done,
// then the client sends DISCONNECT (waiting at most 250 ms for it to be
// written) and closes the connection; telemetry not acknowledged by
// then ends with ErrClosed (SendEventAsync's done is called for every
// message, once). Close is idempotent and returns nil; the client
// cannot be connected again.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.fatal == nil {
		close(c.stopped)
	}
	cn := c.cur
	c.dropLocked()
	drained := c.drainLocked()
	unsent := c.failUnsentLocked()
	c.mu.Unlock()
	finishAll(unsent, ErrClosed)
	c.cancel()
	if cn != nil {
		select {
		case <-drained:
		case <-ctx.Done():
		}
		cn.close(250 * time.Millisecond)
	}
	c.emit(Event{State: StateClosed, Reason: ReasonClosed})
	return nil
}

func (c *Client) emit(e Event) { c.cfg.emit(e) }

var errLost = errors.New("device: connection lost")
