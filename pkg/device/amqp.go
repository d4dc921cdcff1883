package device

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/internal/cbs"
	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/amqp1/client"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// AMQPError is an AMQP error condition the hub answered with: a
// refused put-token (amqp:unauthorized-access), a link it detached, or
// a telemetry message it rejected. It wraps ErrUnauthorized for
// amqp:unauthorized-access and ErrTooLarge for
// amqp:link:message-size-exceeded (the conditions of
// azure-iot-sdk-node common/transport/amqp/src/amqp_common_errors.ts).
type AMQPError struct {
	// Condition is the AMQP error condition.
	Condition string
	// Description is the hub's text.
	Description string
}

func (e *AMQPError) Error() string {
	if e.Description == "" {
		return "device: amqp: " + e.Condition
	}
	return "device: amqp: " + e.Condition + ": " + e.Description
}

// Unwrap returns ErrUnauthorized or ErrTooLarge for their conditions.
func (e *AMQPError) Unwrap() error {
	switch e.Condition {
	case "amqp:unauthorized-access":
		return ErrUnauthorized
	case "amqp:link:message-size-exceeded":
		return ErrTooLarge
	}
	return nil
}

// amqpErr turns go-amqp's and the lean engine's errors that carry the
// hub's condition into *AMQPError; others are returned as they are.
func amqpErr(err error) error {
	var ae *amqp.Error
	var le *amqp.LinkError
	var ce *amqp.ConnError
	var se *cbs.StatusError
	var re *client.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &AMQPError{Condition: "amqp:unauthorized-access", Description: se.Error()}
	case errors.As(err, &ae):
		return &AMQPError{Condition: string(ae.Condition), Description: ae.Description}
	case errors.As(err, &le) && le.RemoteErr != nil:
		return &AMQPError{Condition: string(le.RemoteErr.Condition), Description: le.RemoteErr.Description}
	case errors.As(err, &ce) && ce.RemoteErr != nil:
		return &AMQPError{Condition: string(ce.RemoteErr.Condition), Description: ce.RemoteErr.Description}
	case errors.As(err, &re):
		return &AMQPError{Condition: re.Condition, Description: re.Description}
	}
	return err
}

// amqpConn is a device's own AMQP connection to the hub (on go-amqp)
// and its one session, which carries the $cbs link and the device's
// links, as the C SDK puts them (azure-iot-sdk-c iothub_client/src/
// iothubtransport_amqp_connection.c create_cbs_handle). Devices that
// share connections do so on the lean engine (amqplean.go).
type amqpConn struct {
	conn *amqp.Conn
	sess *amqp.Session
	cbs  *cbs.Link // nil for an X.509 device, which puts no token

	lost lossNotice[*amqpLinks] // the device's links on it
}

// Done is closed when the connection has ended.
func (ac *amqpConn) Done() <-chan struct{} { return ac.conn.Done() }

func (ac *amqpConn) close() { _ = ac.conn.Close() }

// watch tells every device on ac when the connection ends (one
// goroutine per connection, not per device).
func (ac *amqpConn) watch() {
	<-ac.conn.Done()
	err := ac.conn.Err()
	if err == nil {
		err = errors.New("the connection was closed")
	}
	ac.lost.fire(err)
}

// dialAMQP connects (TLS or WebSocket, through the proxy when there is
// one), opens AMQP with SASL ANONYMOUS (as the Java SDK does), begins
// the session and attaches $cbs on it. With a client certificate it opens AMQP without SASL
// and attaches no $cbs: the TLS handshake authenticates the device, as
// the SDKs do ("x509 authentication does not use SASL", azure-iot-sdk-
// java AmqpsIotHubConnection.java createReactor; azure-iot-sdk-node
// device/transport/amqp/src/amqp.ts puts no token for x509).
func dialAMQP(ctx context.Context, cfg *config) (*amqpConn, error) {
	return openAMQP(ctx, cfg, func(ctx context.Context, nc net.Conn, host string) (*amqpConn, error) {
		copts := &amqp.ConnOptions{HostName: host, Properties: clientVersion}
		if cfg.cert == nil {
			copts.SASLType = amqp.SASLTypeAnonymous()
		}
		conn, err := amqp.NewConn(ctx, nc, copts)
		if err != nil {
			nc.Close()
			return nil, err
		}
		sess, err := conn.NewSession(ctx, nil)
		if err == nil {
			ac := &amqpConn{conn: conn, sess: sess}
			if cfg.cert == nil {
				ac.cbs, err = cbs.Open(ctx, sess)
			}
			if err == nil {
				go ac.watch()
				return ac, nil
			}
		}
		conn.Close()
		return nil, amqpErr(err)
	})
}

// openAMQP dials cfg's transport (TLS or WebSocket, through the proxy
// when there is one) and opens AMQP on it with open, given the hub's
// host name without port, within the connect timeout. An error with
// the hub's condition is an *AMQPError; another is a *NetError of the
// answer phase.
func openAMQP[T any](ctx context.Context, cfg *config, open func(ctx context.Context, nc net.Conn, host string) (T, error)) (T, error) {
	var zero T
	nc, err := cfg.dial(ctx)
	if err != nil {
		return zero, err
	}
	start := time.Now()
	host := cfg.hostName
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.connTimeout)
	defer cancel()
	c, err := open(ctx, nc, host)
	if err != nil {
		if e := amqpErr(err); e != err {
			return zero, e
		}
		return zero, cfg.netError(ctx, start, proxy.PhaseAnswer, err)
	}
	return c, nil
}

// amqpLinks are a device's links on its amqpConn:
// telemetry always; methods once a method handler is set, C2D once a C2D
// handler is, twin once a desired handler is or at the first twin
// request, as the Node SDK attaches them (azure-iot-sdk-node
// device/transport/amqp/src/amqp.ts enableMethods, enableC2D,
// enableTwinDesiredPropertiesUpdates and getTwin). Each link costs
// go-amqp a goroutine and a 5,000-entry queue, so a device that only
// sends telemetry keeps one link.
type amqpLinks struct {
	ac   *amqpConn
	sess *amqp.Session // ac.sess
	tel  *amqp.Sender
	c2d  *amqp.Receiver
	mSnd *amqp.Sender
	mRcv *amqp.Receiver
	tSnd *amqp.Sender
	tRcv *amqp.Receiver

	amu     sync.Mutex // attaching links after open; ended
	ended   bool       // end began: links attached now are detached at once
	started bool       // the receive loops run (under amqpClient.mu)
	pending twinPending
	lost    sync.Once
	endOnce sync.Once
}

// end ends l, once, by closing its connection.
func (l *amqpLinks) end() {
	l.endOnce.Do(func() {
		l.ac.lost.unregister(l)
		l.amu.Lock()
		l.ended = true
		l.amu.Unlock()
		_ = l.ac.conn.Close()
	})
}

// amqpClient is a device over AMQP 1.0 on a connection of its own
// (amqpConn, on go-amqp); devices that share connections are
// leanClients.
type amqpClient struct {
	amqpBase[amqpLinks]
	amqpHandlers
}

func newAMQP(opts *Options) (*amqpClient, error) {
	cfg, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	return &amqpClient{amqpBase: newAMQPBase[amqpLinks](cfg, nil)}, nil
}

// Connect connects, puts the device's token on $cbs and attaches its
// links; it returns as Client.Connect does. A refused token is an
// *AMQPError wrapping ErrUnauthorized and is never retried.
func (c *amqpClient) Connect(ctx context.Context) error {
	return c.connect(ctx, c.ctx, c.cfg, func() bool { return c.cur != nil }, c.attempt)
}

// address is the link address of the identity's node suffix
// ("/devices/{id}[/modules/{mid}]/{suffix}").
func (c *amqpClient) address(suffix string) string { return c.cfg.linkAddress(suffix) }

// linkAddress is the link address of the identity's node suffix
// ("/devices/{id}[/modules/{mid}]/{suffix}").
func (cfg *config) linkAddress(suffix string) string {
	p := "/devices/" + url.PathEscape(cfg.deviceID)
	if cfg.moduleID != "" {
		p += "/modules/" + url.PathEscape(cfg.moduleID)
	}
	return p + "/" + suffix
}

// tokenPutter puts a token on a connection's $cbs node: the go-amqp
// path's cbs.Link, the lean engine's client.Conn.
type tokenPutter interface {
	PutToken(ctx context.Context, typ, audience, token string, expiry time.Time) error
}

// putToken signs a token for cfg's identity and puts it with p; it
// returns when to renew it (0: never, a fixed token or a certificate).
func putToken(ctx context.Context, cfg *config, p tokenPutter) (time.Duration, error) {
	now := time.Now()
	tok, renewIn, err := cfg.password(now)
	if err != nil || tok == "" {
		return 0, err
	}
	var exp time.Time
	if renewIn > 0 {
		exp = now.Add(cfg.ttl)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.connTimeout)
	defer cancel()
	if err := p.PutToken(ctx, cbs.TypeSAS, cfg.resource(), tok, exp); err != nil {
		return 0, fmt.Errorf("device: put-token for %s: %w", cfg.clientID, amqpErr(err))
	}
	if cfg.onPutToken != nil {
		if t, err := sas.Parse(tok); err == nil {
			cfg.onPutToken(t.Expiry())
		}
	}
	return renewIn, nil
}

// connectErr is a failed dial's error as Connect returns it.
func connectErr(ctx context.Context, cfg *config, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var pe *ProxyError
	var ae *AMQPError
	if errors.As(err, &pe) || errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("device: connect to %s: %w", cfg.target(), err)
}

// attempt makes one connection and installs the device's links.
func (c *amqpClient) attempt(ctx context.Context) error {
	ac, err := dialAMQP(ctx, c.cfg)
	if err != nil {
		return connectErr(ctx, c.cfg, err)
	}
	renewIn, err := putToken(ctx, c.cfg, ac.cbs)
	if err == nil {
		var l *amqpLinks
		if l, err = c.open(ctx, ac); err == nil {
			c.start(l)
			// Subscribed before connected, as MQTT's SUBSCRIBE: no
			// desired change after Connect returns is missed.
			if c.desiredHandler() != nil {
				err = c.subscribeDesired(ctx, l, c.twinRequest)
			}
			if err == nil {
				return c.install(l, renewIn)
			}
		}
	}
	ac.conn.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// open attaches the device's links on ac's session, with the attach properties of
// azure-iot-sdk-node amqp_device_method_client.ts and
// amqp_twin_client.ts (a channel correlation id pairing each sender
// with its receiver, the api-version).
func (c *amqpClient) open(ctx context.Context, ac *amqpConn) (*amqpLinks, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.connTimeout)
	defer cancel()
	sess := ac.sess
	l := &amqpLinks{ac: ac, sess: sess}
	var err error
	fail := func(what string, err error) (*amqpLinks, error) {
		l.end()
		return nil, fmt.Errorf("device: amqp %s link: %w", what, amqpErr(err))
	}
	if l.tel, err = sess.NewSender(ctx, c.address("messages/events"), &amqp.SenderOptions{
		Properties: map[string]any{"com.microsoft:client-version": "iotctl/" + version()}}); err != nil {
		return fail("telemetry", err)
	}
	if c.hasMethodHandler() {
		if err := c.attachMethods(ctx, l); err != nil {
			return fail("methods", err)
		}
	}
	if c.desiredHandler() != nil {
		if err := c.attachTwin(ctx, l); err != nil {
			return fail("twin", err)
		}
	}
	if c.handler() != nil {
		if l.c2d, err = sess.NewReceiver(ctx, c.address("messages/devicebound"), &amqp.ReceiverOptions{Credit: 1}); err != nil {
			return fail("C2D", err)
		}
	}
	return l, nil
}

// linkProps are the attach properties of a methods or twin link pair:
// a channel correlation id pairing the sender with its receiver, the
// api-version.
func linkProps(kind string) map[string]any {
	return map[string]any{
		"com.microsoft:client-version":         "iotctl/" + version(),
		"com.microsoft:api-version":            APIVersion,
		"com.microsoft:channel-correlation-id": kind + ":" + uuid.NewString(),
	}
}

// attachMethods attaches l's methods link pair unless it has one. Its
// receive loop starts with start, or at once on live links.
func (c *amqpClient) attachMethods(ctx context.Context, l *amqpLinks) error {
	return c.attachPair(ctx, l, "methods/devicebound", "methods", &l.mRcv, &l.mSnd, nil, c.methodLoop)
}

// attachTwin attaches l's twin link pair unless it has one; the hub
// sends and takes its messages settled.
func (c *amqpClient) attachTwin(ctx context.Context, l *amqpLinks) error {
	settled := amqp.SenderSettleModeSettled
	return c.attachPair(ctx, l, "twin", "twin", &l.tRcv, &l.tSnd, &settled, c.twinLoop)
}

// attachPair attaches the receiver and sender of the identity's node
// suffix into *rcv and *snd (under l.amu) unless *rcv is set, with the
// attach properties of kind and settle as the senders' settlement mode,
// and starts loop.
func (c *amqpClient) attachPair(ctx context.Context, l *amqpLinks, suffix, kind string, rcv **amqp.Receiver, snd **amqp.Sender,
	settle *amqp.SenderSettleMode, loop func(*amqpLinks)) error {
	l.amu.Lock()
	defer l.amu.Unlock()
	if *rcv != nil {
		return nil
	}
	props := linkProps(kind)
	r, err := l.sess.NewReceiver(ctx, c.address(suffix), &amqp.ReceiverOptions{Properties: props, Credit: 10,
		RequestedSenderSettleMode: settle})
	if err != nil {
		return err
	}
	sn, err := l.sess.NewSender(ctx, c.address(suffix), &amqp.SenderOptions{Properties: props, SettlementMode: settle})
	if err != nil {
		_ = r.Close(ctx)
		return err
	}
	if l.ended {
		// l ended while these attached: they are nobody's.
		_ = r.Close(ctx)
		_ = sn.Close(ctx)
		return errLinksEnded
	}
	*rcv, *snd = r, sn
	c.startLoop(l, loop)
	return nil
}

// errLinksEnded is a late attach on links that ended meanwhile; the
// next connect attaches what the handlers need.
var errLinksEnded = errors.New("device: amqp: the device's links ended while attaching")

// startLoop runs loop on l now if l is live (or being installed and
// started), else leaves it to start.
func (c *amqpClient) startLoop(l *amqpLinks, loop func(*amqpLinks)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.started && !c.closed {
		c.wg.Add(1)
		go loop(l)
	}
}

// HandleMethod registers fn for the method name (see
// Client.HandleMethod); the first handler attaches the methods links.
func (c *amqpClient) HandleMethod(name string, fn MethodHandler) {
	c.methodTable.HandleMethod(name, fn)
	if c.hasMethodHandler() {
		c.attachLate("methods", c.attachMethods)
	}
}

// SetDefaultMethodHandler sets the handler of methods without one (see
// Client.SetDefaultMethodHandler); it attaches the methods links.
func (c *amqpClient) SetDefaultMethodHandler(fn MethodHandler) {
	c.methodTable.SetDefaultMethodHandler(fn)
	if c.hasMethodHandler() {
		c.attachLate("methods", c.attachMethods)
	}
}

// start starts l's receive loops; links attached later start their
// own.
func (c *amqpClient) start(l *amqpLinks) {
	l.amu.Lock()
	defer l.amu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	l.started = true
	if l.mRcv != nil {
		c.wg.Add(1)
		go c.methodLoop(l)
	}
	if l.tRcv != nil {
		c.wg.Add(1)
		go c.twinLoop(l)
	}
	if l.c2d != nil {
		c.wg.Add(1)
		go c.c2dLoop(l, l.c2d)
	}
}

// install makes l the live links.
func (c *amqpClient) install(l *amqpLinks, renewIn time.Duration) error {
	if !c.amqpBase.install(l, renewIn, func() { c.renewToken(l) }) {
		l.end()
		return ErrClosed
	}
	lost := func(err error) { c.lost(l, err) }
	if !l.ac.lost.register(l, lost) {
		lost(l.ac.conn.Err())
	}
	return nil
}

// renewToken renews the token on l's $cbs link; a refused token ends
// the links and the reconnect tells the refusal.
func (c *amqpClient) renewToken(l *amqpLinks) {
	c.amqpBase.renewToken(l, l.ac.cbs, func() { l.end() })
}

// lost handles the end of l's connection (a receive loop failed).
func (c *amqpClient) lost(l *amqpLinks, err error) {
	l.lost.Do(func() {
		l.end()
		l.pending.end()
		c.reconnectFrom(l, err, c.attempt)
	})
}

// linkLost reports whether err means the connection (not the message)
// failed, so the message may be sent again on the next one.
func linkLost(err error) bool {
	var le *amqp.LinkError
	var ce *amqp.ConnError
	var se *amqp.SessionError
	return errors.As(err, &le) || errors.As(err, &ce) || errors.As(err, &se)
}

// SendEvent sends m on the telemetry link and returns when the hub
// accepted it. While reconnecting it waits; a message whose connection
// dropped before the outcome is sent again (at least once). A rejected
// message is an *AMQPError with the hub's condition.
func (c *amqpClient) SendEvent(ctx context.Context, m *message.Message) error {
	if m == nil {
		m = &message.Message{}
	}
	if m.Size() > message.MaxTelemetrySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Size(), message.MaxTelemetrySize)
	}
	am := amqpTelemetry(m)
	for {
		l, err := c.live(ctx)
		if err != nil {
			return err
		}
		err = l.tel.Send(ctx, am, nil)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case linkLost(err) && amqpErr(err) == err:
			c.lost(l, err)
			continue
		}
		return fmt.Errorf("device: send event: %w", amqpErr(err))
	}
}

// SetC2DHandler sets the cloud-to-device callback (nil removes it).
// The C2D link is attached while one is set (on a live connection, at
// once); each message is settled as Options.C2DSettle says when fn
// returns: accepted (complete), rejected, or released (abandon), as
// azure-iot-sdk-node receiver_link.ts settles them.
func (c *amqpClient) SetC2DHandler(fn C2DHandler) {
	if !c.setC2D(fn) {
		return
	}
	c.goOnLive(func(l *amqpLinks) {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.connTimeout)
		defer cancel()
		r, err := l.sess.NewReceiver(ctx, c.address("messages/devicebound"), &amqp.ReceiverOptions{Credit: 1})
		if err != nil {
			c.cfg.log.Warn("late C2D attach failed", "device", c.cfg.clientID, "err", amqpErr(err))
			return
		}
		l.amu.Lock()
		defer l.amu.Unlock()
		c.mu.Lock()
		if l.ended || c.cur != l || l.c2d != nil || c.closed {
			c.mu.Unlock()
			_ = r.Close(ctx)
			return
		}
		l.c2d = r
		c.wg.Add(1)
		c.mu.Unlock()
		go c.c2dLoop(l, r)
	})
}

// c2dLoop receives C2D messages one at a time (credit 1), hands each
// to the handler and settles it.
func (c *amqpClient) c2dLoop(l *amqpLinks, r *amqp.Receiver) {
	defer c.wg.Done()
	for {
		am, err := r.Receive(c.ctx, nil)
		if err != nil {
			if c.ctx.Err() == nil {
				c.lost(l, err)
			}
			return
		}
		if fn := c.handler(); fn != nil {
			fn(amqpC2D(am))
		}
		switch c.cfg.settle {
		case SettleReject:
			err = r.RejectMessage(c.ctx, am, nil)
		case SettleAbandon:
			err = r.ReleaseMessage(c.ctx, am)
		default:
			err = r.AcceptMessage(c.ctx, am)
		}
		if err != nil && c.ctx.Err() == nil {
			c.cfg.log.Warn("c2d settle failed", "device", c.cfg.clientID, "settle", c.cfg.settle.String(), "err", amqpErr(err))
		}
	}
}

// methodLoop receives method requests (correlation-id a uuid, the name
// in IoThub-methodname) and answers each, on a goroutine of its own,
// with the same correlation-id and IoThub-status on the sender.
func (c *amqpClient) methodLoop(l *amqpLinks) {
	defer c.wg.Done()
	for {
		am, err := l.mRcv.Receive(c.ctx, nil)
		if err != nil {
			if c.ctx.Err() == nil {
				c.lost(l, err)
			}
			return
		}
		_ = l.mRcv.AcceptMessage(c.ctx, am)
		req, cid := amqpMethodRequest(am)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			res := c.answer(c.ctx, c.cfg, req)
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.connTimeout)
			defer cancel()
			if err := l.mSnd.Send(ctx, amqpMethodResponse(cid, res), nil); err != nil {
				c.cfg.log.Warn("method response not sent", "device", c.cfg.clientID, "method", req.Name, "err", amqpErr(err))
			}
		}()
	}
}

// SetDesiredHandler sets the desired-properties callback (nil removes
// it); with one set the client subscribes with a twin PUT on
// /notifications/twin/properties/desired.
func (c *amqpClient) SetDesiredHandler(fn DesiredHandler) {
	if !c.setDesired(fn) {
		return
	}
	c.goSubscribeDesired(c.twinRequest)
}

// twinLoop reads the twin receiver: responses (by correlation id) and
// desired-property notifications (no correlation id).
func (c *amqpClient) twinLoop(l *amqpLinks) {
	defer c.wg.Done()
	for {
		am, err := l.tRcv.Receive(c.ctx, nil)
		if err != nil {
			if c.ctx.Err() == nil {
				c.lost(l, err)
			}
			return
		}
		_ = l.tRcv.AcceptMessage(c.ctx, am)
		cid := amqpCorrelationID(am)
		if cid == nil {
			if fn := c.desiredHandler(); fn != nil {
				patch, v := amqpDesired(am)
				// On a goroutine of its own, as over MQTT: the handler
				// may make twin requests, whose answers this loop reads.
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					fn(patch, v)
				}()
			}
			continue
		}
		l.pending.deliver(amqpID(cid), am)
	}
}

// twinRequest sends a twin request and waits for its response; a
// status of 300 or more is a *StatusError.
func (c *amqpClient) twinRequest(ctx context.Context, l *amqpLinks, op, operation, resource string, body []byte) (*amqp.Message, error) {
	if err := c.attachTwin(ctx, l); err != nil {
		return nil, fmt.Errorf("device: %s: amqp twin link: %w", op, amqpErr(err))
	}
	id := uuid.NewString()
	lostErr := fmt.Errorf("device: %s: the connection to %s was lost", op, c.cfg.address)
	ch, ok := l.pending.add(id)
	if !ok {
		return nil, lostErr
	}
	defer l.pending.remove(id)
	if err := l.tSnd.Send(ctx, amqpTwinRequest(id, operation, resource, body), nil); err != nil {
		return nil, fmt.Errorf("device: %s: %w", op, amqpErr(err))
	}
	return l.pending.wait(ctx, ch, op, lostErr)
}

// GetTwin asks for the twin (a GET on the twin link).
func (c *amqpClient) GetTwin(ctx context.Context) (*Twin, error) {
	return c.getTwin(ctx, c.twinRequest)
}

// UpdateReported patches the reported properties (a PATCH of
// /properties/reported) and returns their new version.
func (c *amqpClient) UpdateReported(ctx context.Context, patch any) (int64, error) {
	return c.updateReported(ctx, c.twinRequest, patch)
}

// Close detaches everything and closes the connection; handlers still
// running finish first. It is idempotent and returns nil.
func (c *amqpClient) Close(ctx context.Context) error {
	c.close(func(l *amqpLinks) { l.end() })
	return nil
}

var _ Conn = (*amqpClient)(nil)
