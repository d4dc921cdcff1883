package amqp1

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

var (
	errWriterClosed = errors.New("amqp1: connection writer closed")
	errWriteBacklog = errors.New("amqp1: peer does not read what it asks for")
)

// maxControlBacklog is the amount of unwritten data above which a frame
// without payload cannot be queued: the peer is not reading.
const maxControlBacklog = 64 << 20

// writer owns the write side of the network connection. Frames are
// encoded into a pending buffer by whoever enqueues them, which never
// blocks, and one goroutine writes the buffer out in batches. This keeps
// the read loop from ever waiting on the network, so a peer that is
// itself blocked writing to us cannot deadlock the pair.
type writer struct {
	nc net.Conn

	mu      sync.Mutex
	buf     []byte
	spare   []byte
	writing bool
	sealed  bool // a close frame was queued; nothing may follow it
	err     error
	drained chan struct{} // closed and replaced whenever buf empties
	// deferred are the sessions holding frames back to merge them
	// (accepted dispositions); they queue them before each write.
	deferred []*session
	wake     chan struct{}
	quit     chan struct{}
	done     chan struct{}

	// heartbeat is the longest silence we allow ourselves (0 = none);
	// tick is called on every timer tick with the current time.
	heartbeat time.Duration
	tickEvery time.Duration
	tick      func(time.Time)

	// closeWhenDrained makes the writer close the network connection once
	// everything queued has been written.
	closeWhenDrained atomic.Bool
}

func newWriter(nc net.Conn) *writer {
	return &writer{nc: nc, drained: make(chan struct{}), wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
}

// enqueue encodes a frame into the pending buffer. seal marks the frame
// as the last one (close).
func (w *writer) enqueue(channel uint16, typ uint8, body frames.Body, payload []byte, seal bool) error {
	w.mu.Lock()
	if w.err != nil || w.sealed {
		w.mu.Unlock()
		return errWriterClosed
	}
	if payload == nil && len(w.buf) > maxControlBacklog {
		// a peer that keeps asking for answers (echo flows, dispositions)
		// without reading them would grow the queue without bound
		w.err = errWriteBacklog
		w.mu.Unlock()
		_ = w.nc.Close()
		return w.err
	}
	b, err := frames.Append(w.buf, typ, channel, body, payload)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	w.buf = b
	w.sealed = seal
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// later makes the writer call s.flushDeferred before it next writes.
// Call with s.mu held (the order is s.mu, then w.mu).
func (w *writer) later(s *session) {
	w.mu.Lock()
	w.deferred = append(w.deferred, s)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// runDeferred has the sessions that held frames back queue them. Call
// without any session's mu held. (A close queued in between goes first
// and the held-back dispositions are dropped: the connection ends, and
// the peer learns no outcome of those deliveries, as when the close
// overtakes a delivery still being processed.)
func (w *writer) runDeferred() {
	w.mu.Lock()
	d := w.deferred
	w.deferred = nil
	w.mu.Unlock()
	for _, s := range d {
		s.flushDeferred()
	}
}

// writeDirect writes b synchronously; it is used during the handshake,
// before the writer goroutine runs.
func (w *writer) writeDirect(b []byte) error {
	_, err := w.nc.Write(b)
	return err
}

// waitBelow waits until fewer than n bytes are queued.
func (w *writer) waitBelow(ctx context.Context, n int) error {
	for {
		w.mu.Lock()
		if len(w.buf) < n || w.err != nil {
			w.mu.Unlock()
			return nil
		}
		ch := w.drained
		w.mu.Unlock()
		select {
		case <-ch:
		case <-w.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush waits until everything queued so far has been written, the
// writer failed, or timeout passed.
func (w *writer) flush(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		if (len(w.buf) == 0 && !w.writing) || w.err != nil {
			w.mu.Unlock()
			return
		}
		ch := w.drained
		w.mu.Unlock()
		select {
		case <-ch:
		case <-w.done:
			return
		case <-t.C:
			return
		}
	}
}

// stop makes the writer goroutine write what is queued and exit.
func (w *writer) stop() {
	w.mu.Lock()
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.mu.Unlock()
}

func (w *writer) run() {
	defer close(w.done)
	var tickC <-chan time.Time
	if w.tickEvery > 0 {
		t := time.NewTicker(w.tickEvery)
		defer t.Stop()
		tickC = t.C
	}
	lastWrite := time.Now()
	quitting := false
	for {
		select {
		case <-w.wake:
		case now := <-tickC:
			if w.tick != nil {
				w.tick(now)
			}
			if w.heartbeat > 0 && now.Sub(lastWrite) >= w.heartbeat {
				_ = w.enqueue(0, frames.TypeAMQP, nil, nil, false)
			}
		case <-w.quit:
			quitting = true
		}
		// Let the goroutines that are ready to run (the read loop, the
		// links' handlers accepting deliveries) queue their frames
		// first, so that one write (one TLS record, one system call)
		// carries them all: a peer that sends deliveries one at a time
		// otherwise gets a write for each disposition. Nothing waits
		// on a clock; an idle process runs the writer again at once.
		runtime.Gosched()
		w.runDeferred()
		w.mu.Lock()
		b := w.buf
		w.buf, w.spare = w.spare[:0], nil
		w.writing = len(b) > 0
		w.mu.Unlock()
		if len(b) > 0 {
			_, err := w.nc.Write(b)
			lastWrite = time.Now()
			w.mu.Lock()
			w.writing = false
			if err != nil {
				w.err = err
				close(w.drained)
				w.drained = make(chan struct{})
				w.mu.Unlock()
				return
			}
			if cap(b) <= 4<<20 {
				w.spare = b[:0]
			}
			w.mu.Unlock()
		}
		w.mu.Lock()
		empty := len(w.buf) == 0
		if empty {
			close(w.drained)
			w.drained = make(chan struct{})
		}
		w.mu.Unlock()
		if empty && w.closeWhenDrained.Load() {
			_ = w.nc.Close()
		}
		if quitting && empty {
			return
		}
		if !empty {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}
