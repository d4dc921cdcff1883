package device

import (
	"context"
	"fmt"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/amqp1/client"
)

// The C2D, methods and twin links of a leanClient. The hub's messages
// on them reach the client on the connection's reader, which must not
// wait: each is decoded there and handled on a goroutine of the
// client's (c.spawn), which Close waits for.

// attachC2D attaches l's C2D receiver unless it has one: credit 1 and
// settled by this side once the handler returned, so the device takes
// one message at a time, as the go-amqp client does (amqp.go c2dLoop).
func (c *leanClient) attachC2D(ctx context.Context, l *leanLinks) error {
	l.amu.Lock()
	defer l.amu.Unlock()
	if l.ended {
		return errLinksEnded
	}
	if l.c2d != nil {
		return nil
	}
	opts := c.linkOptions(l, nil, false)
	opts.Credit = 1
	r, err := l.slot.sess.NewManualReceiver(ctx, c.cfg.linkAddress("messages/devicebound"), opts,
		func(payload []byte, id uint32, _ bool) { c.onC2D(l, payload, id) })
	if err != nil {
		return err
	}
	l.c2d = r
	return nil
}

// onC2D hands a C2D message to the handler and settles it as
// Options.C2DSettle says: accepted (complete), rejected, or released
// (abandon), as azure-iot-sdk-node receiver_link.ts settles them.
func (c *leanClient) onC2D(l *leanLinks, payload []byte, id uint32) {
	am, err := decode(payload)
	c.spawn(func() {
		l.amu.Lock()
		r := l.c2d
		l.amu.Unlock()
		if r == nil {
			return
		}
		outcome := client.Accepted
		switch {
		case err != nil:
			c.cfg.log.Warn("c2d message not decoded", "device", c.cfg.clientID, "err", err)
			outcome = client.Rejected
		default:
			if fn := c.handler(); fn != nil {
				fn(amqpC2D(am))
			}
			switch c.cfg.settle {
			case SettleReject:
				outcome = client.Rejected
			case SettleAbandon:
				outcome = client.Released
			}
		}
		if err := r.Settle(id, outcome); err != nil && c.ctx.Err() == nil {
			c.cfg.log.Warn("c2d settle failed", "device", c.cfg.clientID, "settle", c.cfg.settle.String(), "err", amqpErr(err))
		}
	})
}

// attachMethods attaches l's methods link pair unless it has one.
func (c *leanClient) attachMethods(ctx context.Context, l *leanLinks) error {
	return c.attachPair(ctx, l, "methods/devicebound", "methods", false, &l.mRcv, &l.mSnd,
		func(payload []byte) { c.onMethod(l, payload) })
}

// attachTwin attaches l's twin link pair unless it has one; the hub
// sends and takes its messages settled.
func (c *leanClient) attachTwin(ctx context.Context, l *leanLinks) error {
	return c.attachPair(ctx, l, "twin", "twin", true, &l.tRcv, &l.tSnd,
		func(payload []byte) { c.onTwin(l, payload) })
}

// attachPair attaches the receiver and sender of the identity's node
// suffix into *rcv and *snd (under l.amu) unless *rcv is set, with the
// attach properties of kind (linkProps: the channel correlation id
// pairing them) and, with settled, messages sent settled both ways.
func (c *leanClient) attachPair(ctx context.Context, l *leanLinks, suffix, kind string, settled bool,
	rcv **client.Receiver, snd **client.Sender, onMsg func(payload []byte)) error {
	l.amu.Lock()
	defer l.amu.Unlock()
	if l.ended {
		return errLinksEnded
	}
	if *rcv != nil {
		return nil
	}
	props := linkProps(kind)
	ropts := c.linkOptions(l, props, settled)
	ropts.Credit = 10
	r, err := l.slot.sess.NewReceiver(ctx, c.cfg.linkAddress(suffix), ropts, onMsg)
	if err != nil {
		return err
	}
	sn, err := l.slot.sess.NewSender(ctx, c.cfg.linkAddress(suffix), c.linkOptions(l, props, settled))
	if err != nil {
		_ = r.Close(ctx)
		return err
	}
	*rcv, *snd = r, sn
	return nil
}

// onMethod answers a method request (accepted by the reader once this
// returns) on a goroutine of its own, with the request's correlation
// id and IoThub-status on the methods sender.
func (c *leanClient) onMethod(l *leanLinks, payload []byte) {
	am, err := decode(payload)
	if err != nil {
		c.cfg.log.Warn("method request not decoded", "device", c.cfg.clientID, "err", err)
		return
	}
	req, cid := amqpMethodRequest(am)
	c.spawn(func() {
		res := c.answer(c.ctx, c.cfg, req)
		l.amu.Lock()
		snd := l.mSnd // attached right after the receiver: the lock waits for it
		l.amu.Unlock()
		resp, err := amqpMethodResponse(cid, res).MarshalBinary()
		if err == nil && snd == nil {
			err = errLinksEnded
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.connTimeout)
			err = snd.Send(ctx, resp)
			cancel()
		}
		if err != nil && c.ctx.Err() == nil {
			c.cfg.log.Warn("method response not sent", "device", c.cfg.clientID, "method", req.Name, "err", amqpErr(err))
		}
	})
}

// onTwin takes a message of the twin receiver: a response (by
// correlation id) to the request waiting for it, or a desired-property
// notification (no correlation id) to the handler, on a goroutine of
// its own (the handler may make twin requests).
func (c *leanClient) onTwin(l *leanLinks, payload []byte) {
	am, err := decode(payload)
	if err != nil {
		c.cfg.log.Warn("twin message not decoded", "device", c.cfg.clientID, "err", err)
		return
	}
	cid := amqpCorrelationID(am)
	if cid == nil {
		if fn := c.desiredHandler(); fn != nil {
			patch, v := amqpDesired(am)
			c.spawn(func() { fn(patch, v) })
		}
		return
	}
	l.pending.deliver(amqpID(cid), am)
}

// twinRequest sends a twin request and waits for its response; a
// status of 300 or more is a *StatusError.
func (c *leanClient) twinRequest(ctx context.Context, l *leanLinks, op, operation, resource string, body []byte) (*amqp.Message, error) {
	if err := c.attachTwin(ctx, l); err != nil {
		return nil, fmt.Errorf("device: %s: amqp twin link: %w", op, amqpErr(err))
	}
	id := uuid.NewString()
	payload, err := amqpTwinRequest(id, operation, resource, body).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("device: %s: %w", op, err)
	}
	lostErr := fmt.Errorf("device: %s: the connection to %s was lost", op, c.cfg.address)
	ch, ok := l.pending.add(id)
	if !ok {
		return nil, lostErr
	}
	defer l.pending.remove(id)
	l.amu.Lock()
	snd := l.tSnd
	l.amu.Unlock()
	if err := snd.Send(ctx, payload); err != nil {
		return nil, fmt.Errorf("device: %s: %w", op, amqpErr(err))
	}
	return l.pending.wait(ctx, ch, op, lostErr)
}

// warn logs, once, that a telemetry-only client ignores what it was
// asked to do; false: the client is not telemetry-only.
func (c *leanClient) warn(what string) bool {
	if !c.telemetryOnly {
		return false
	}
	c.warned.Do(func() {
		c.cfg.log.Warn("a telemetry-only AMQP device ignores handlers", "device", c.cfg.clientID, "handler", what)
	})
	return true
}

// SetC2DHandler sets the cloud-to-device callback (nil removes it).
// The C2D link is attached while one is set (on a live connection, at
// once); each message is settled as Options.C2DSettle says when fn
// returns. A telemetry-only client ignores it (logged once).
func (c *leanClient) SetC2DHandler(fn C2DHandler) {
	if c.warn("C2D") || !c.setC2D(fn) {
		return
	}
	c.attachLate("C2D", c.attachC2D)
}

// HandleMethod registers fn for the method name (see
// Client.HandleMethod); the first handler attaches the methods links.
// A telemetry-only client ignores it (logged once).
func (c *leanClient) HandleMethod(name string, fn MethodHandler) {
	if c.warn("method") {
		return
	}
	c.methodTable.HandleMethod(name, fn)
	if c.hasMethodHandler() {
		c.attachLate("methods", c.attachMethods)
	}
}

// SetDefaultMethodHandler sets the handler of methods without one (see
// Client.SetDefaultMethodHandler); it attaches the methods links. A
// telemetry-only client ignores it (logged once).
func (c *leanClient) SetDefaultMethodHandler(fn MethodHandler) {
	if c.warn("method") {
		return
	}
	c.methodTable.SetDefaultMethodHandler(fn)
	if c.hasMethodHandler() {
		c.attachLate("methods", c.attachMethods)
	}
}

// SetDesiredHandler sets the desired-properties callback (nil removes
// it); with one set the client subscribes with a twin PUT on
// /notifications/twin/properties/desired. A telemetry-only client
// ignores it (logged once).
func (c *leanClient) SetDesiredHandler(fn DesiredHandler) {
	if c.warn("desired properties") || !c.setDesired(fn) {
		return
	}
	c.goSubscribeDesired(c.twinRequest)
}

// errTelemetryOnly is a telemetry-only client's GetTwin and
// UpdateReported error.
var errTelemetryOnly = fmt.Errorf("%w: a telemetry-only AMQP device has no twin link (NewAMQPSharedTelemetry)", ErrNotSupported)

// GetTwin asks for the twin (a GET on the twin link). A telemetry-only
// client returns an error wrapping ErrNotSupported.
func (c *leanClient) GetTwin(ctx context.Context) (*Twin, error) {
	if c.telemetryOnly {
		return nil, errTelemetryOnly
	}
	return c.getTwin(ctx, c.twinRequest)
}

// UpdateReported patches the reported properties (a PATCH of
// /properties/reported) and returns their new version. A
// telemetry-only client returns an error wrapping ErrNotSupported.
func (c *leanClient) UpdateReported(ctx context.Context, patch any) (int64, error) {
	if c.telemetryOnly {
		return 0, errTelemetryOnly
	}
	return c.updateReported(ctx, c.twinRequest, patch)
}
