package amqp1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Conn is one AMQP connection served by Serve. Its methods are safe for
// concurrent use.
type Conn struct {
	nc   net.Conn
	br   *bufio.Reader
	opts ConnOptions
	log  *slog.Logger
	w    *writer

	ctx      context.Context
	cancel   context.CancelCauseFunc
	done     chan struct{}
	handlers sync.WaitGroup

	// Set during the handshake, read-only afterwards.
	remoteContainer string
	hostname        string
	properties      map[string]any
	sasl            *SASLRequest
	peerMaxFrame    uint32
	peerIdle        time.Duration
	channelMax      uint16
	handler         Handler
	opened          atomic.Bool

	lastRead atomic.Int64 // unix nanoseconds of the last frame read

	mu         sync.Mutex
	sessions   map[uint16]*session // by the peer's channel
	local      map[uint16]*session // by our channel
	closeSent  bool
	localErr   *Error
	localCause error
	err        error // what link operations return once the connection ended
	forceTimer *time.Timer
}

// RemoteContainerID returns the container-id from the peer's open frame.
func (c *Conn) RemoteContainerID() string { return c.remoteContainer }

// Hostname returns the hostname from the peer's open frame (the virtual
// host the client asked for), which may be empty.
func (c *Conn) Hostname() string { return c.hostname }

// Properties returns the connection properties from the peer's open frame
// (for example "com.microsoft:client-version"), or nil. Callers must not
// modify the map.
func (c *Conn) Properties() map[string]any { return c.properties }

// SASL returns what the peer presented during SASL, or nil when the
// connection did not use SASL. It holds the PLAIN password; its String
// and LogValue methods redact it.
func (c *Conn) SASL() *SASLRequest { return c.sasl }

// Context returns a context that is cancelled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Done returns a channel that is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is alive and afterwards the error
// link operations return (a *ConnError).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	default:
		return nil
	}
}

// Close closes the connection: it sends a close frame carrying e (nil
// for a normal close), waits for the peer's close frame or CloseTimeout,
// and then closes the network connection. It returns once the connection
// has ended; calling it again, or after the peer closed, does nothing.
// It must not be called from ConnOptions.NewHandler. It always returns
// nil; the connection's fate is reported by Serve.
func (c *Conn) Close(e *Error) error {
	if c.opened.Load() {
		c.sendClose(e, nil)
	} else {
		_ = c.nc.Close()
	}
	<-c.done
	return nil
}

// sendClose queues a close frame carrying e unless one was already sent
// and arranges for the network connection to be closed after
// CloseTimeout if the peer does not answer. cause is kept for Serve's
// error.
func (c *Conn) sendClose(e *Error, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return
	}
	c.closeSent = true
	c.localErr = e
	c.localCause = cause
	_ = c.w.enqueue(0, frames.TypeAMQP, &frames.Close{Error: e.toFrame()}, nil, true)
	c.forceTimer = time.AfterFunc(c.opts.CloseTimeout, func() { _ = c.nc.Close() })
}

// protocolError closes the connection because the peer broke the protocol.
func (c *Conn) protocolError(cond ErrCond, cause error) {
	c.log.Debug("amqp protocol error", "condition", cond, "err", cause)
	c.sendClose(&Error{Condition: cond, Description: cause.Error()}, cause)
}

// condition maps a read or parse error to the error condition to close with.
func condition(err error) ErrCond {
	switch {
	case errors.Is(err, frames.ErrFraming):
		return ErrCondFramingError
	case errors.Is(err, frames.ErrInvalidField):
		return ErrCondInvalidField
	}
	return ErrCondDecodeError
}

// readFrame reads one frame. The body buffer is fresh for every frame,
// so parsed values may alias it.
func (c *Conn) readFrame() (frames.Header, frames.Body, error) {
	var hb [frames.HeaderSize]byte
	if _, err := io.ReadFull(c.br, hb[:]); err != nil {
		return frames.Header{}, nil, err
	}
	h, err := frames.ParseHeader(hb[:], c.opts.MaxFrameSize)
	if err != nil {
		return h, nil, err
	}
	if _, err := c.br.Discard(int(h.DataOffset)*4 - frames.HeaderSize); err != nil {
		return h, nil, err
	}
	buf := make([]byte, int(h.Size)-int(h.DataOffset)*4)
	if _, err := io.ReadFull(c.br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	body, err := frames.Parse(h.Type, buf)
	return h, body, err
}

// isProtocolErr reports whether err is the peer's fault (as opposed to
// an I/O error).
func isProtocolErr(err error) bool {
	return errors.Is(err, frames.ErrFraming) || errors.Is(err, encoding.ErrDecode) || errors.Is(err, frames.ErrInvalidField)
}

// readLoop processes frames until the connection ends and returns what
// Serve returns.
func (c *Conn) readLoop() error {
	for {
		h, body, err := c.readFrame()
		if err != nil {
			return c.readFailed(err)
		}
		c.lastRead.Store(time.Now().UnixNano())
		if body == nil {
			continue // heartbeat
		}
		if h.Type != frames.TypeAMQP {
			c.protocolError(ErrCondFramingError, fmt.Errorf("frame type %d after open", h.Type))
			return c.drainAndFinish()
		}
		if cl, ok := body.(*frames.Close); ok {
			return c.onPeerClose(cl)
		}
		c.mu.Lock()
		closing := c.closeSent
		c.mu.Unlock()
		if closing {
			continue // only the peer's close matters now
		}
		switch b := body.(type) {
		case *frames.Open:
			c.protocolError(ErrCondIllegalState, errors.New("second open frame"))
		case *frames.Begin:
			c.onBegin(h.Channel, b)
		default:
			c.mu.Lock()
			s := c.sessions[h.Channel]
			c.mu.Unlock()
			if s == nil {
				c.protocolError(ErrCondIllegalState, fmt.Errorf("%T on channel %d, which has no session", body, h.Channel))
				continue
			}
			s.handle(body)
		}
	}
}

// readFailed handles an error from readFrame.
func (c *Conn) readFailed(err error) error {
	if isProtocolErr(err) {
		c.protocolError(condition(err), err)
		return c.drainAndFinish()
	}
	c.mu.Lock()
	closeSent, localErr, cause := c.closeSent, c.localErr, c.localCause
	c.mu.Unlock()
	if closeSent {
		// we closed (or gave up waiting for the peer's close)
		if localErr == nil && cause == nil {
			return c.finish(nil)
		}
		return c.finish(&ConnError{LocalErr: localErr, inner: cause})
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the peer went away without a close frame
	}
	return c.finish(&ConnError{inner: err})
}

// drainAndFinish waits, after a close frame was queued because the byte
// stream can no longer be trusted, for the frame to be written and the
// peer to hang up (or CloseTimeout), discarding whatever it sends.
func (c *Conn) drainAndFinish() error {
	c.w.flush(c.opts.CloseTimeout)
	_, _ = io.Copy(io.Discard, c.br)
	c.mu.Lock()
	e, cause := c.localErr, c.localCause
	c.mu.Unlock()
	return c.finish(&ConnError{LocalErr: e, inner: cause})
}

func (c *Conn) onPeerClose(cl *frames.Close) error {
	remote := errorFromFrame(cl.Error)
	c.sendClose(nil, nil) // the reply, unless we closed first
	c.w.flush(c.opts.CloseTimeout)
	c.mu.Lock()
	localErr, cause := c.localErr, c.localCause
	c.mu.Unlock()
	switch {
	case remote != nil:
		return c.finish(&ConnError{RemoteErr: remote, LocalErr: localErr, inner: cause})
	case localErr != nil || cause != nil:
		return c.finish(&ConnError{LocalErr: localErr, inner: cause})
	}
	return c.finish(nil)
}

var errConnClosed = errors.New("amqp1: connection closed")

// finish tears the connection down and returns result.
func (c *Conn) finish(result error) error {
	linkErr := result
	if linkErr == nil {
		linkErr = &ConnError{inner: errConnClosed}
	}
	c.mu.Lock()
	c.err = linkErr
	sessions := c.local
	c.sessions, c.local = map[uint16]*session{}, map[uint16]*session{}
	if c.forceTimer != nil {
		c.forceTimer.Stop()
	}
	c.mu.Unlock()
	for _, s := range sessions {
		s.mu.Lock()
		s.fail(linkErr)
		s.mu.Unlock()
	}
	c.w.stop()
	_ = c.nc.Close()
	<-c.w.done
	c.cancel(linkErr)
	close(c.done)
	return result
}

// onBegin answers a begin from the peer.
func (c *Conn) onBegin(ch uint16, b *frames.Begin) {
	if b.RemoteChannel != nil {
		c.protocolError(ErrCondIllegalState, errors.New("begin answering a session this server never began"))
		return
	}
	if ch > c.channelMax {
		c.protocolError(ErrCondFramingError, fmt.Errorf("channel %d above channel-max %d", ch, c.channelMax))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.sessions[ch]; dup {
		c.mu.Unlock()
		c.protocolError(ErrCondIllegalState, fmt.Errorf("begin on channel %d, which is in use", ch))
		c.mu.Lock()
		return
	}
	local := uint16(0)
	for ; ; local++ {
		if _, used := c.local[local]; !used {
			break
		}
	}
	s := newSession(c, local, ch, b)
	c.sessions[ch] = s
	c.local[local] = s
	remote := ch
	_ = c.w.enqueue(local, frames.TypeAMQP, &frames.Begin{
		RemoteChannel:  &remote,
		NextOutgoingID: 0,
		IncomingWindow: sessionWindow,
		OutgoingWindow: 1<<32 - 1,
		HandleMax:      defaultHandleMax,
	}, nil, false)
	c.log.Debug("amqp session begun", "channel", ch)
}

// removeSession forgets an ended session. Called with s.mu held.
func (c *Conn) removeSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.remoteCh] == s {
		delete(c.sessions, s.remoteCh)
	}
	if c.local[s.localCh] == s {
		delete(c.local, s.localCh)
	}
}

// tick runs on the writer goroutine: it enforces our idle time-out.
func (c *Conn) tick(now time.Time) {
	if c.opts.IdleTimeout <= 0 {
		return
	}
	if now.Sub(time.Unix(0, c.lastRead.Load())) <= c.opts.IdleTimeout {
		return
	}
	c.sendClose(&Error{Condition: ErrCondResourceLimitExceeded, Description: "idle time-out expired"},
		errors.New("amqp1: peer idle past the idle time-out"))
	// the peer is silent: do not wait CloseTimeout for an answer
	c.w.closeWhenDrained.Store(true)
}
