package hub

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/iotctl/iotctl/internal/replay"
)

// protocol is what a connection speaks, told from its first bytes.
type protocol int

const (
	protoHTTP protocol = iota
	protoMQTT
	protoAMQP
)

func (p protocol) String() string {
	switch p {
	case protoMQTT:
		return "mqtt"
	case protoAMQP:
		return "amqp"
	}
	return "https"
}

// sniff tells the protocol from the first bytes a client sends: an
// MQTT CONNECT packet starts with 0x10, AMQP with "AMQP", and anything
// else is taken for HTTP.
func sniff(b []byte) protocol {
	switch {
	case len(b) >= 1 && b[0] == 0x10:
		return protoMQTT
	case len(b) >= 4 && string(b[:4]) == "AMQP":
		return protoAMQP
	}
	return protoHTTP
}

// handshakeTimeout bounds the TLS handshake and the wait for a client's
// first bytes.
const handshakeTimeout = 30 * time.Second

// muxListener accepts TLS connections on one port and hands each to
// the handler of the protocol it speaks.
type muxListener struct {
	ln      net.Listener
	tlsConf *tls.Config
	log     *slog.Logger
	handle  func(protocol, net.Conn)
	// spawn runs a connection's goroutine, or reports false once the
	// hub is closing (the hub's workers.goFunc).
	spawn func(func()) bool

	// pending holds the connections still in the TLS handshake or
	// waiting for their first bytes, so close can end them at once.
	mu      sync.Mutex
	pending map[net.Conn]struct{}
	closed  bool
}

// close stops accepting and ends the connections not yet handed to a
// protocol; the others end with their protocol's own shutdown.
func (m *muxListener) close() {
	_ = m.ln.Close()
	m.mu.Lock()
	m.closed = true
	for c := range m.pending {
		_ = c.Close()
	}
	m.mu.Unlock()
}

// track adds c to pending, or reports false when the listener is closed.
func (m *muxListener) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	if m.pending == nil {
		m.pending = map[net.Conn]struct{}{}
	}
	m.pending[c] = struct{}{}
	return true
}

func (m *muxListener) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
}

func (m *muxListener) serve(ctx context.Context) {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("accept failed", "addr", m.ln.Addr().String(), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !m.spawn(func() { m.dispatch(c) }) {
			_ = c.Close()
			return
		}
	}
}

func (m *muxListener) dispatch(raw net.Conn) {
	if !m.track(raw) {
		_ = raw.Close()
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			m.untrack(raw)
		}
	}()
	tc := tls.Server(raw, m.tlsConf)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		m.log.Debug("tls handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		_ = raw.Close()
		return
	}
	p, pc, err := peekProtocol(tc)
	if err != nil {
		_ = tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	m.untrack(raw)
	handedOff = true
	// The connection lives on in a goroutine of its own: this one's
	// stack grew for the handshake's cryptography, and a goroutine
	// keeps its stack's size until collections shrink it, half at a
	// time. A fresh one grows only as far as its protocol needs.
	if !m.spawn(func() { m.handle(p, pc) }) {
		_ = pc.Close()
	}
}

// peekProtocol reads the first bytes a client sends on c (until c's
// read deadline) and returns the protocol they speak with a connection
// that replays them.
func peekProtocol(c net.Conn) (protocol, net.Conn, error) {
	r := bufio.NewReaderSize(c, 4096)
	first, err := r.Peek(4)
	if err != nil && len(first) == 0 {
		return protoHTTP, nil, err
	}
	return sniff(first), replay.New(c, r), nil
}

// chanListener is a net.Listener fed with connections by the mux, so
// that an http.Server can serve them.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push hands c to Accept, or closes it when the listener is closed.
func (l *chanListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
