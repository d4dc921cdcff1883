package device

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1/client"
	"github.com/iotctl/iotctl/pkg/message"
)

// leanConn is a shared AMQP connection on the lean engine
// (pkg/amqp1/client), whose own first session carries $cbs, and the
// sessions its devices' links are on (devicesPerSession each, as on
// go-amqp: amqpsession.go). A session on the lean engine is a small
// struct with no goroutine, so they stay until the connection ends.
type leanConn struct {
	conn *client.Conn
	lost lossNotice[*leanLinks]

	mu       sync.Mutex
	sessions []*leanSession
}

// leanSession is a session of a leanConn and how many devices have a
// place on it; sess and err are set before ready is closed.
type leanSession struct {
	sess    *client.Session
	err     error
	ready   chan struct{}
	devices int // under leanConn.mu
}

// Done is closed when the connection has ended.
func (lc *leanConn) Done() <-chan struct{} { return lc.conn.Done() }

func (lc *leanConn) close() { _ = lc.conn.Close() }

// dialLean connects as dialAMQP does (TLS or WebSocket, through the
// proxy when there is one) and opens AMQP on the lean engine with SASL
// ANONYMOUS and its $cbs links.
func dialLean(ctx context.Context, cfg *config) (*leanConn, error) {
	return openAMQP(ctx, cfg, func(ctx context.Context, nc net.Conn, host string) (*leanConn, error) {
		conn, err := client.Dial(ctx, nc, &client.Options{HostName: host, Properties: clientVersion})
		if err != nil {
			return nil, err
		}
		lc := &leanConn{conn: conn}
		go lc.watch()
		return lc, nil
	})
}

// watch tells every device on lc when the connection ends (one
// goroutine per connection).
func (lc *leanConn) watch() {
	<-lc.conn.Done()
	lc.lost.fire(lc.conn.Err())
}

// session gives a device a place on a session with room, beginning one
// when none has; the begin is the connection's, bounded by timeout,
// and ctx only ends this device's wait.
func (lc *leanConn) session(ctx context.Context, timeout time.Duration) (*leanSession, error) {
	lc.mu.Lock()
	var s *leanSession
	for _, x := range lc.sessions {
		if x.devices < devicesPerSession {
			s = x
			break
		}
	}
	fresh := s == nil
	if fresh {
		s = &leanSession{ready: make(chan struct{})}
		lc.sessions = append(lc.sessions, s)
	}
	s.devices++
	lc.mu.Unlock()
	if fresh {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		s.sess, s.err = lc.conn.NewSession(bctx)
		cancel()
		if s.err != nil {
			lc.retire(s)
		}
		close(s.ready)
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		lc.release(s)
		return nil, ctx.Err()
	}
	if s.err != nil {
		lc.release(s)
		return nil, s.err
	}
	return s, nil
}

// release gives back a device's place on s.
func (lc *leanConn) release(s *leanSession) {
	lc.mu.Lock()
	s.devices--
	lc.mu.Unlock()
}

// retire takes s out of the sessions devices are given: it failed to
// begin, or the hub ended it.
func (lc *leanConn) retire(s *leanSession) {
	lc.mu.Lock()
	lc.sessions = slices.DeleteFunc(lc.sessions, func(x *leanSession) bool { return x == s })
	lc.mu.Unlock()
}

// leanLinks are a device's links on a leanConn: telemetry only.
type leanLinks struct {
	lc      *leanConn
	slot    *leanSession
	tel     *client.Sender
	lost    sync.Once
	endOnce sync.Once
}

// end detaches l's links and gives back its place on the session; the
// connection and the other devices' links go on.
func (l *leanLinks) end(timeout time.Duration) {
	l.endOnce.Do(func() {
		l.lc.lost.unregister(l)
		if l.tel != nil {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			_ = l.tel.Close(ctx)
			cancel()
		}
		l.lc.release(l.slot)
	})
}

// leanClient is a device on an AMQPShared made by
// NewAMQPSharedTelemetry: it sends telemetry on the lean engine and
// does nothing else. Per device it holds its config, its telemetry
// link's state and a renewal timer; no goroutine runs for it while it
// is connected.
type leanClient struct {
	amqpBase[leanLinks]
	warned sync.Once
}

func newLeanClient(cfg *config, s *AMQPShared) *leanClient {
	return &leanClient{amqpBase: newAMQPBase[leanLinks](cfg, s)}
}

// Connect connects (the shared connection, dialled by the first
// client), puts the device's token on $cbs and attaches its telemetry
// link; it returns as Client.Connect does. A refused token is an
// *AMQPError wrapping ErrUnauthorized and is never retried.
func (c *leanClient) Connect(ctx context.Context) error {
	return c.connect(ctx, c.ctx, c.cfg, func() bool { return c.cur != nil }, c.attempt)
}

// attempt takes the shared connection (dialling it if none is live),
// puts the token and attaches the telemetry link.
func (c *leanClient) attempt(ctx context.Context) error {
	sc, err := c.shared.conn(ctx, c.cfg)
	if err != nil {
		return connectErr(ctx, c.cfg, err)
	}
	lc := sc.(*leanConn)
	renewIn, err := putToken(ctx, c.cfg, lc.conn)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.connTimeout)
	defer cancel()
	slot, err := lc.session(actx, c.cfg.connTimeout)
	if err != nil {
		return fmt.Errorf("device: amqp session: %w", amqpErr(err))
	}
	l := &leanLinks{lc: lc, slot: slot}
	l.tel, err = slot.sess.NewSender(actx, c.cfg.linkAddress("messages/events"), &client.LinkOptions{
		Properties: clientVersion,
		// On the connection's reader, which must not wait: the links'
		// end waits for the hub's detach, which that reader reads.
		OnDetach: func(err error) { c.goLost(l, err) },
	})
	if err != nil {
		var le *client.LinkError
		if errors.As(err, &le) && slot.sess.Err() != nil {
			lc.retire(slot)
		}
		l.tel = nil
		l.end(c.cfg.connTimeout)
		return fmt.Errorf("device: amqp telemetry link: %w", amqpErr(err))
	}
	return c.install(l, renewIn)
}

// clientVersion is the attach property every link carries
// (azure-iot-sdk-node amqp.ts).
var clientVersion = map[string]any{"com.microsoft:client-version": "iotctl/" + version()}

// install makes l the live links.
func (c *leanClient) install(l *leanLinks, renewIn time.Duration) error {
	if !c.amqpBase.install(l, renewIn, func() { c.renewToken(l) }) {
		l.end(c.cfg.connTimeout)
		return ErrClosed
	}
	if !l.lc.lost.register(l, func(err error) { c.lost(l, err) }) {
		c.lost(l, l.lc.conn.Err())
	}
	return nil
}

// renewToken renews the token on the connection's $cbs node; a refused
// token ends the device's link and the reconnect tells the refusal.
func (c *leanClient) renewToken(l *leanLinks) {
	c.amqpBase.renewToken(l, l.lc.conn, func() { c.lost(l, ErrUnauthorized) })
}

// goLost runs lost on a goroutine of the client's (from the
// connection's reader, which must not wait).
func (c *leanClient) goLost(l *leanLinks, err error) { c.spawn(func() { c.lost(l, err) }) }

// lost ends l (its link detached, its token refused, or the
// connection ended) and reconnects.
func (c *leanClient) lost(l *leanLinks, err error) {
	l.lost.Do(func() {
		l.end(c.cfg.connTimeout)
		c.reconnectFrom(l, err, c.attempt)
	})
}

// SendEvent sends m on the telemetry link and returns when the hub
// accepted it. While reconnecting it waits; a message whose link or
// connection ended before the outcome is sent again (at least once).
// A rejected or released message is an error (an *AMQPError with the
// hub's condition when it gave one).
func (c *leanClient) SendEvent(ctx context.Context, m *message.Message) error {
	if m == nil {
		m = &message.Message{}
	}
	if m.Size() > message.MaxTelemetrySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Size(), message.MaxTelemetrySize)
	}
	payload, err := amqpTelemetry(m).MarshalBinary()
	if err != nil {
		return fmt.Errorf("device: send event: %w", err)
	}
	for {
		l, err := c.live(ctx)
		if err != nil {
			return err
		}
		err = l.tel.Send(ctx, payload)
		var rej *client.RejectedError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &rej):
			return fmt.Errorf("device: send event: %w", amqpErr(err))
		}
		c.lost(l, err) // the link or the connection ended: again on the next
	}
}

// warn logs, once, that the client ignores what it was asked to do.
func (c *leanClient) warn(what string) {
	c.warned.Do(func() {
		c.cfg.log.Warn("a telemetry-only AMQP device ignores handlers", "device", c.cfg.clientID, "handler", what)
	})
}

// SetC2DHandler is ignored (logged once): a telemetry-only device
// attaches no C2D link.
func (c *leanClient) SetC2DHandler(C2DHandler) { c.warn("C2D") }

// HandleMethod is ignored (logged once): a telemetry-only device
// attaches no methods links.
func (c *leanClient) HandleMethod(string, MethodHandler) { c.warn("method") }

// SetDefaultMethodHandler is ignored (logged once).
func (c *leanClient) SetDefaultMethodHandler(MethodHandler) { c.warn("method") }

// SetDesiredHandler is ignored (logged once): a telemetry-only device
// attaches no twin links.
func (c *leanClient) SetDesiredHandler(DesiredHandler) { c.warn("desired properties") }

// errTelemetryOnly is GetTwin's and UpdateReported's error.
var errTelemetryOnly = fmt.Errorf("%w: a telemetry-only AMQP device has no twin link (NewAMQPSharedTelemetry)", ErrNotSupported)

// GetTwin returns an error wrapping ErrNotSupported.
func (c *leanClient) GetTwin(context.Context) (*Twin, error) { return nil, errTelemetryOnly }

// UpdateReported returns an error wrapping ErrNotSupported.
func (c *leanClient) UpdateReported(context.Context, any) (int64, error) { return 0, errTelemetryOnly }

// Close detaches the device's link (the shared connection goes on).
// It is idempotent and returns nil.
func (c *leanClient) Close(ctx context.Context) error {
	c.close(func(l *leanLinks) { l.end(c.cfg.connTimeout) })
	return nil
}

var _ Conn = (*leanClient)(nil)
