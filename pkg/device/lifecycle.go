package device

import (
	"context"
	"errors"
	"sync"
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
