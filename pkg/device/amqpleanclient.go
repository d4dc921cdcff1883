package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/client"
	"github.com/iotctl/iotctl/pkg/message"
)

// leanLinks are a device's links on a leanConn: telemetry always;
// methods once a method handler is set, C2D once a C2D handler is,
// twin once a desired handler is or at the first twin request, as the
// go-amqp client attaches them (amqp.go, after azure-iot-sdk-node
// device/transport/amqp/src/amqp.ts).
type leanLinks struct {
	lc   *leanConn
	slot *leanSession
	tel  *client.Sender

	amu   sync.Mutex // the links attached after the telemetry one; ended
	ended bool       // end began: links attached now are detached at once
	c2d   *client.Receiver
	mSnd  *client.Sender
	mRcv  *client.Receiver
	tSnd  *client.Sender
	tRcv  *client.Receiver

	pending  twinPending
	onDetach func(error) // every link's LinkOptions.OnDetach: one func, not one a link

	lost    sync.Once
	endOnce sync.Once
}

// end detaches l's links and gives back its place on the session; the
// connection and the other devices' links go on. Twin requests waiting
// for their answer end.
func (l *leanLinks) end(timeout time.Duration) {
	l.endOnce.Do(func() {
		l.lc.lost.unregister(l)
		l.amu.Lock()
		l.ended = true
		snds := []*client.Sender{l.tel, l.mSnd, l.tSnd}
		rcvs := []*client.Receiver{l.c2d, l.mRcv, l.tRcv}
		l.amu.Unlock()
		l.pending.end()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for _, s := range snds {
			if s != nil {
				_ = s.Close(ctx)
			}
		}
		for _, r := range rcvs {
			if r != nil {
				_ = r.Close(ctx)
			}
		}
		l.lc.release(l.slot)
	})
}

// leanClient is a device on an AMQPShared, on the lean engine: its
// links are small structs on a session it shares, the hub's frames for
// them are read by the connection's one reader, and no goroutine runs
// for it while it is connected and idle. Each C2D message, method
// request and desired-properties notification is handled on a
// short-lived goroutine of the client's (never on the reader). Made by
// NewAMQPSharedTelemetry, it attaches only its telemetry link.
type leanClient struct {
	amqpBase[leanLinks]
	amqpHandlers

	telemetryOnly bool
	warned        sync.Once
}

func newLeanClient(cfg *config, s *AMQPShared, telemetryOnly bool) *leanClient {
	return &leanClient{amqpBase: newAMQPBase[leanLinks](cfg, s), telemetryOnly: telemetryOnly}
}

// Connect connects (the shared connection, dialled by the first
// client), puts the device's token on $cbs and attaches its links; it
// returns as Client.Connect does. A refused token is an *AMQPError
// wrapping ErrUnauthorized and is never retried.
func (c *leanClient) Connect(ctx context.Context) error {
	return c.connect(ctx, c.ctx, c.cfg, func() bool { return c.cur != nil }, c.attempt)
}

// attempt takes the shared connection (dialling it if none is live),
// puts the token, attaches the links the handlers need and, with a
// desired handler, subscribes before it is connected (as MQTT's
// SUBSCRIBE: no desired change after Connect returns is missed).
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
	l, err := c.open(ctx, lc)
	if err != nil {
		return err
	}
	if c.telemetryOnly || c.desiredHandler() == nil {
		return c.install(l, renewIn)
	}
	if err := c.subscribeDesired(ctx, l, c.twinRequest); err != nil {
		l.end(c.cfg.connTimeout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return c.install(l, renewIn)
}

// open takes a place on a session of lc and attaches the device's
// links there.
func (c *leanClient) open(ctx context.Context, lc *leanConn) (*leanLinks, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.connTimeout)
	defer cancel()
	slot, err := lc.session(actx, c.cfg.connTimeout)
	if err != nil {
		return nil, fmt.Errorf("device: amqp session: %w", amqpErr(err))
	}
	l := &leanLinks{lc: lc, slot: slot}
	// On the connection's reader, which must not wait: the links' end
	// waits for the hub's detach, which that reader reads.
	l.onDetach = func(err error) { c.goLost(l, err) }
	fail := func(what string, err error) (*leanLinks, error) {
		var le *client.LinkError
		if errors.As(err, &le) && slot.sess.Err() != nil {
			lc.retire(slot)
		}
		l.end(c.cfg.connTimeout)
		return nil, fmt.Errorf("device: amqp %s link: %w", what, amqpErr(err))
	}
	l.tel, err = slot.sess.NewSender(actx, c.cfg.linkAddress("messages/events"), c.linkOptions(l, clientVersion, false))
	if err != nil {
		return fail("telemetry", err)
	}
	if c.telemetryOnly {
		return l, nil
	}
	if c.hasMethodHandler() {
		if err := c.attachMethods(actx, l); err != nil {
			return fail("methods", err)
		}
	}
	if c.desiredHandler() != nil {
		if err := c.attachTwin(actx, l); err != nil {
			return fail("twin", err)
		}
	}
	if c.handler() != nil {
		if err := c.attachC2D(actx, l); err != nil {
			return fail("C2D", err)
		}
	}
	return l, nil
}

// linkOptions are the options of a link of l: its attach properties,
// settled or not, and the detach that ends l.
func (c *leanClient) linkOptions(l *leanLinks, props map[string]any, settled bool) *client.LinkOptions {
	return &client.LinkOptions{Properties: props, Settled: settled, OnDetach: l.onDetach}
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
// token ends the device's links and the reconnect tells the refusal.
func (c *leanClient) renewToken(l *leanLinks) {
	c.amqpBase.renewToken(l, l.lc.conn, func() { c.lost(l, ErrUnauthorized) })
}

// goLost runs lost on a goroutine of the client's (from the
// connection's reader, which must not wait).
func (c *leanClient) goLost(l *leanLinks, err error) { c.spawn(func() { c.lost(l, err) }) }

// lost ends l (a link detached, its token refused, or the connection
// ended) and reconnects.
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

// decode is a message the reader handed over (payload is the reader's
// buffer, so it is copied first).
func decode(payload []byte) (*amqp.Message, error) {
	var am amqp.Message
	if err := am.UnmarshalBinary(bytes.Clone(payload)); err != nil {
		return nil, err
	}
	return &am, nil
}

// Close detaches the device's links (the shared connection goes on);
// handlers still running finish first. It is idempotent and returns
// nil.
func (c *leanClient) Close(ctx context.Context) error {
	c.close(func(l *leanLinks) { l.end(c.cfg.connTimeout) })
	return nil
}

var _ Conn = (*leanClient)(nil)
