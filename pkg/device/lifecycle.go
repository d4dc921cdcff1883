package device

import (
	"context"
	"errors"
	"sync"
	"time"
)

// lifecycle is the state every transport's client keeps about itself
// (open, stopped for good, or closed) and the parts of Connect and Err
// that do not depend on the transport.
type lifecycle struct {
	mu      sync.Mutex
	stopped chan struct{} // closed by Close or a final failure
	started bool          // Connect succeeded once
	closed  bool
	fatal   error
	busy    bool // a (re)connect loop is running
}

func newLifecycle() lifecycle { return lifecycle{stopped: make(chan struct{})} }

// Err returns why the client stopped: ErrClosed after Close, the error
// of a refused reconnect, or nil while it is running.
func (l *lifecycle) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal != nil {
		return l.fatal
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

// endedLocked returns ErrClosed after Close, else the error of a
// refused reconnect, or nil while the client runs; l.mu is held.
func (l *lifecycle) endedLocked() error {
	if l.closed {
		return ErrClosed
	}
	return l.fatal
}

// connect is Connect for a client with a reconnect loop: up (called
// with mu held) tells whether it is connected already; the attempt is
// bound to both ctx and the client's own context, which Close cancels.
func (l *lifecycle) connect(ctx, clientCtx context.Context, cfg *config, up func() bool, attempt func(context.Context) error) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case l.fatal != nil:
		l.mu.Unlock()
		return l.fatal
	case up():
		l.mu.Unlock()
		return nil
	case l.busy:
		l.mu.Unlock()
		return errors.New("device: Connect is already running")
	}
	l.busy = true
	l.mu.Unlock()

	cfg.emit(Event{State: StateConnecting})
	actx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(clientCtx, cancel)
	err := cfg.dialLoop(actx, cfg.retry, ReasonNone, false, attempt)
	stop()
	cancel()

	l.mu.Lock()
	l.busy = false
	if err == nil {
		l.started = true
	}
	closed := l.closed
	l.mu.Unlock()
	if err != nil {
		if closed {
			return ErrClosed
		}
		cfg.emit(Event{State: StateDisconnected, Reason: ReasonConnectFailed, Err: err, Final: true})
	}
	return err
}

// liveState is what a client with a reconnect loop keeps of its live
// links (or connection) L besides its lifecycle: the live ones, a
// channel closed while there are some, and the token renewal timer.
// Its fields are under lifecycle.mu.
type liveState[L any] struct {
	lifecycle
	cur   *L
	ready chan struct{} // closed while cur != nil
	renew *time.Timer
}

func newLiveState[L any]() liveState[L] {
	return liveState[L]{lifecycle: newLifecycle(), ready: make(chan struct{})}
}

// dropLocked forgets the live links (mu held).
func (s *liveState[L]) dropLocked() {
	if s.cur == nil {
		return
	}
	s.cur = nil
	s.ready = make(chan struct{})
	if s.renew != nil {
		s.renew.Stop()
		s.renew = nil
	}
}

// reconnect retries attempt until it connects, ctx ends (Close), or a
// refusal, which stops the client for good.
func (s *liveState[L]) reconnect(ctx context.Context, cfg *config, attempt func(context.Context) error) {
	s.mu.Lock()
	if s.busy || s.closed {
		s.mu.Unlock()
		return
	}
	s.busy = true
	s.mu.Unlock()
	err := cfg.dialLoop(ctx, true, ReasonConnectionLost, true, attempt)
	s.mu.Lock()
	s.busy = false
	if err == nil || s.closed {
		s.mu.Unlock()
		return
	}
	s.fatal = err
	close(s.stopped)
	s.mu.Unlock()
	cfg.log.Warn("reconnect refused; giving up", "device", cfg.clientID, "err", err)
	cfg.emit(Event{State: StateDisconnected, Reason: ReasonReconnectRefused, Err: err, Final: true})
}

// live returns the live links, waiting for a reconnect if needed.
func (s *liveState[L]) live(ctx context.Context) (*L, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return nil, ErrClosed
		case s.fatal != nil:
			err := s.fatal
			s.mu.Unlock()
			return nil, err
		case !s.started && !s.busy && s.cur == nil:
			s.mu.Unlock()
			return nil, ErrNotConnected
		case s.cur != nil:
			l := s.cur
			s.mu.Unlock()
			return l, nil
		}
		ready := s.ready
		s.mu.Unlock()
		select {
		case <-ready:
		case <-s.stopped:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lossNotice tells the devices on a connection when it ends: a device
// that only sends would not notice until its next send. The
// connection's one watching goroutine calls fire.
type lossNotice[K comparable] struct {
	mu   sync.Mutex
	gone bool
	fns  map[K]func(error)
}

// register makes fire call lost for k; false: the connection has
// ended already.
func (n *lossNotice[K]) register(k K, lost func(error)) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gone {
		return false
	}
	if n.fns == nil {
		n.fns = map[K]func(error){}
	}
	n.fns[k] = lost
	return true
}

func (n *lossNotice[K]) unregister(k K) {
	n.mu.Lock()
	delete(n.fns, k)
	n.mu.Unlock()
}

// fire calls every registered function with err, once.
func (n *lossNotice[K]) fire(err error) {
	n.mu.Lock()
	n.gone = true
	fns := n.fns
	n.fns = nil
	n.mu.Unlock()
	for _, fn := range fns {
		fn(err)
	}
}
