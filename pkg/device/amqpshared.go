package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
)

// MaxDevicesPerAMQPConnection is the most devices AMQPShared lets
// share one connection: the C# SDK's limit, "IotHub allows up to 999
// tokens per connection. Setting the threshold just below that."
// (azure-iot-sdk-csharp iothub/device/src/AmqpConnectionPoolSettings.cs,
// MaxDevicesPerConnection = 995).
const MaxDevicesPerAMQPConnection = 995

// AMQPShared is one AMQP connection that several device (or module)
// clients share, as gateways and the C# SDK's connection pooling
// (AmqpConnectionPoolSettings) do: each client puts its own token on
// the connection's one $cbs link (and renews it there), and attaches
// its own links on a session it shares with other clients (up to 100
// a session, as the C SDK's shared transport does; see
// devicesPerSession). A client whose token expires or is refused loses
// its own links only; the session and the other clients' links go on.
// When the connection is lost, every client on it reconnects (the
// first one to try dials a new connection, the others wait for it and
// use it). The connection runs on the lean AMQP engine
// (pkg/amqp1/client): no goroutine and no queue per device or link;
// each C2D message, method request and desired-properties change is
// handled on a short-lived goroutine of its client.
//
// Make one with NewAMQPShared, clients on it with Open, and Close it
// once its clients are closed. It is safe for concurrent use.
type AMQPShared struct {
	max           int
	telemetryOnly bool // clients that attach only their telemetry link

	mu      sync.Mutex
	cur     sharedConn
	dialing *sharedDial // the dial in progress, if any
	target  string      // what the first client dialled
	tls     *tls.Config // the first client's, which all of them use
	clients int
	closed  bool
}

// sharedConn is the connection of an AMQPShared: an *amqpConn on
// go-amqp, or a *leanConn on the lean engine.
type sharedConn interface {
	Done() <-chan struct{}
	close()
}

// sharedDial is a dial of the connection that other clients wait for.
type sharedDial struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int // clients waiting for it besides the one dialling
	sc      sharedConn
	err     error
}

// NewAMQPShared returns a shared connection, not dialled yet: the first
// client that connects dials it with its Options (host, gateway,
// WebSocket, proxy, source address, CA). max bounds the clients Open
// makes on it: 0 means MaxDevicesPerAMQPConnection.
func NewAMQPShared(max int) (*AMQPShared, error) {
	if max < 0 || max > MaxDevicesPerAMQPConnection {
		return nil, fmt.Errorf("device: %d devices per AMQP connection: use 1 to %d", max, MaxDevicesPerAMQPConnection)
	}
	if max == 0 {
		max = MaxDevicesPerAMQPConnection
	}
	return &AMQPShared{max: max}, nil
}

// NewAMQPSharedTelemetry is NewAMQPShared for clients that only send
// telemetry. Its clients attach only their telemetry link: they take no
// C2D message, method call or desired property (setting a handler is
// logged as ignored) and GetTwin and UpdateReported return an error
// wrapping ErrNotSupported.
func NewAMQPSharedTelemetry(max int) (*AMQPShared, error) {
	s, err := NewAMQPShared(max)
	if err != nil {
		return nil, err
	}
	s.telemetryOnly = true
	return s, nil
}

// Open returns a client on s, not connected yet. opts must have
// Transport TransportAMQP and a key or token: a device that
// authenticates with an X.509 certificate does so in the TLS handshake,
// which belongs to one connection, so it cannot share one. Every
// client on s must connect to the same place (host, port, WebSocket
// or not, source address) as the first.
func (s *AMQPShared) Open(opts *Options) (Conn, error) {
	if opts != nil && opts.Transport != TransportAMQP {
		return nil, fmt.Errorf("device: a shared AMQP connection needs Transport amqp, not %s", opts.Transport)
	}
	cfg, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	if cfg.cert != nil {
		return nil, errors.New("device: a device with an X.509 certificate cannot share an AMQP connection " +
			"(the certificate is its connection's TLS handshake): give it a connection of its own")
	}
	target := sharedTarget(cfg)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, ErrClosed
	case s.clients >= s.max:
		return nil, fmt.Errorf("device: the shared AMQP connection has its %d devices already: open another", s.max)
	case s.target != "" && s.target != target:
		return nil, fmt.Errorf("device: %s connects to %s, the shared AMQP connection to %s: share connections by target only",
			cfg.clientID, target, s.target)
	}
	s.target = target
	s.clients++
	// One TLS configuration for the connection, not one per device:
	// the clients go to the same place.
	if s.tls == nil {
		s.tls = cfg.tls
	}
	cfg.tls = s.tls
	return newLeanClient(cfg, s, s.telemetryOnly), nil
}

// sharedTarget names where cfg connects, for the check that every
// client of a connection goes to the same place.
func sharedTarget(cfg *config) string {
	t := cfg.address
	if cfg.wsURL != "" {
		t = cfg.wsURL
	}
	if cfg.sourceAddr.IsValid() {
		t += " from " + cfg.sourceAddr.String()
	}
	return t
}

// conn returns the live connection, dialling it with cfg (or waiting
// for the dial another client started) when there is none. A failed
// dial's error goes to every client that waited for it; each retries
// on its own back-off.
func (s *AMQPShared) conn(ctx context.Context, cfg *config) (sharedConn, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if sc := s.cur; sc != nil {
		select {
		case <-sc.Done():
			s.cur = nil // lost: dial a new one below
		default:
			s.mu.Unlock()
			return sc, nil
		}
	}
	if d := s.dialing; d != nil {
		d.waiters++
		s.mu.Unlock()
		select {
		case <-d.done:
			return d.sc, d.err
		case <-ctx.Done():
			s.mu.Lock()
			d.waiters--
			s.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	// The dial is the connection's, not this client's: when this
	// client's ctx ends (its Close) the dial goes on while others wait
	// for it. Close of s ends it.
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &sharedDial{done: make(chan struct{}), cancel: cancel}
	s.dialing = d
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		alone := d.waiters == 0
		s.mu.Unlock()
		if alone {
			cancel()
		}
	})
	d.sc, d.err = dialLean(dctx, cfg)
	stop()
	cancel()

	s.mu.Lock()
	s.dialing = nil
	if d.err == nil {
		if s.closed {
			d.sc.close()
			d.sc, d.err = nil, ErrClosed
		} else {
			s.cur = d.sc
		}
	}
	s.mu.Unlock()
	close(d.done)
	if d.err == nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return d.sc, d.err
}

// release is called by a client's Close.
func (s *AMQPShared) release() {
	s.mu.Lock()
	s.clients--
	s.mu.Unlock()
}

// Close closes the connection (ending every client's session on it);
// clients that are not closed yet stop with ErrClosed when they try to
// reconnect. Close the clients first for a clean end. It is idempotent
// and returns nil.
func (s *AMQPShared) Close() error {
	s.mu.Lock()
	sc := s.cur
	s.cur, s.closed = nil, true
	if s.dialing != nil {
		s.dialing.cancel()
	}
	s.mu.Unlock()
	if sc != nil {
		sc.close()
	}
	return nil
}
