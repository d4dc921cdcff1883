package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Protocol headers (OASIS AMQP 1.0 part 2, 2.2 and part 5, 5.3.1).
var (
	headerAMQP = []byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	headerSASL = []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// maxFrameSize is the largest frame this side takes, announced in its
// open: the hub sends put-token answers, which are small.
const maxFrameSize = 65536

// minFrameSize is the smallest max-frame-size a peer may announce
// (part 2, 2.7.1, MIN-MAX-FRAME-SIZE).
const minFrameSize = 512

// sessionWindow is the incoming window this side gives each session,
// in transfers; it is opened again when half is used.
const sessionWindow = 5000

// Options are a connection's settings. The zero value (or nil) is
// valid.
type Options struct {
	// HostName is sent in the SASL init and the open (the hub's host
	// name, without port). Default: none.
	HostName string
	// ContainerID is the open's container-id. Default: a random UUID.
	ContainerID string
	// Properties are the open's properties (symbol keys). Default:
	// none.
	Properties map[string]any
	// IdleTimeout is the idle time-out announced in the open: the peer
	// sends a frame at least this often (empty ones when it has nothing
	// to say), and a connection that hears nothing for this long ends
	// with a *ConnError, so a peer that vanished without closing is
	// noticed. Default: 1 minute, go-amqp's; negative: none.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write: a peer that takes nothing for
	// this long ends the connection with a *ConnError rather than
	// leaving the connection's writers and its reader (which writes
	// flows and detaches) waiting for ever. Default: 1 minute;
	// negative: none.
	WriteTimeout time.Duration
}

// Conn is one AMQP connection. Its methods are safe for concurrent
// use. One goroutine, started by Dial and ended by Close (or the end
// of the connection), reads the peer's frames; nothing else of the
// connection runs on a goroutine of its own.
type Conn struct {
	nc       net.Conn
	maxFrame uint32        // the peer's max-frame-size
	idle     time.Duration // ours: the longest the reader waits for a frame
	wtime    time.Duration // the longest a write may take, 0: no limit
	done     chan struct{}
	read     chan struct{} // closed when the reader has stopped

	wmu  sync.Mutex // serializes writes; taken before mu
	wbuf []byte
	beat *time.Timer // heartbeats for the peer's idle time-out

	mu       sync.Mutex
	cond     *sync.Cond // broadcast when credit, windows or link states change
	err      error      // why the connection ended; set once
	sessions []*Session // by our channel
	byRemote map[uint16]*Session
	cbs      *cbsLinks
}

// Dial opens AMQP over nc, which is connected (TLS, WebSocket, a
// proxy's tunnel): SASL ANONYMOUS, the open, and a first session with
// the $cbs sender and receiver that PutToken uses. ctx bounds the
// handshake; once Dial returns, the connection is not tied to it. On
// error nc is closed. Errors: the network's, a *ConnError with the
// peer's close, or the SASL refusal.
func Dial(ctx context.Context, nc net.Conn, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = &Options{}
	}
	c := &Conn{nc: nc, done: make(chan struct{}), read: make(chan struct{}), byRemote: map[uint16]*Session{},
		idle: opts.IdleTimeout}
	c.idle, c.wtime = orDefault(opts.IdleTimeout), orDefault(opts.WriteTimeout)
	c.cond = sync.NewCond(&c.mu)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(nc, 4096)
	err := c.handshake(br, opts)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	go c.reader(br)
	if err := c.openCBS(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// handshake runs SASL ANONYMOUS and the open exchange.
func (c *Conn) handshake(br *bufio.Reader, opts *Options) error {
	if err := c.header(br, headerSASL); err != nil {
		return err
	}
	b, err := c.frame(br, frames.TypeSASL)
	if err != nil {
		return err
	}
	mechs, ok := b.(*frames.SASLMechanisms)
	if !ok {
		return fmt.Errorf("amqp client: sasl: got %T, want sasl-mechanisms", b)
	}
	if !containsSym(mechs.Mechanisms, "ANONYMOUS") {
		return fmt.Errorf("amqp client: sasl: the peer does not offer ANONYMOUS (offers %v)", mechs.Mechanisms)
	}
	if err := c.write(frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "ANONYMOUS", Hostname: opts.HostName}, nil); err != nil {
		return err
	}
	if b, err = c.frame(br, frames.TypeSASL); err != nil {
		return err
	}
	out, ok := b.(*frames.SASLOutcome)
	if !ok {
		return fmt.Errorf("amqp client: sasl: got %T, want sasl-outcome", b)
	}
	if out.Code != 0 {
		return fmt.Errorf("amqp client: sasl: the peer refused ANONYMOUS (code %d)", out.Code)
	}
	if err := c.header(br, headerAMQP); err != nil {
		return err
	}
	id := opts.ContainerID
	if id == "" {
		id = uuid.NewString()
	}
	open := &frames.Open{ContainerID: id, Hostname: opts.HostName, MaxFrameSize: maxFrameSize, ChannelMax: 65535,
		IdleTimeout: uint32(min(c.idle.Milliseconds(), math.MaxUint32))}
	if len(opts.Properties) > 0 {
		open.Properties = make(map[encoding.Symbol]any, len(opts.Properties))
		for k, v := range opts.Properties {
			open.Properties[encoding.Symbol(k)] = v
		}
	}
	if err := c.write(frames.TypeAMQP, 0, open, nil); err != nil {
		return err
	}
	if b, err = c.frame(br, frames.TypeAMQP); err != nil {
		return err
	}
	switch f := b.(type) {
	case *frames.Open:
		c.maxFrame = max(f.MaxFrameSize, minFrameSize)
		if f.IdleTimeout > 0 {
			// Twice in the peer's idle time-out, so it never hears
			// nothing for that long (part 2, 2.4.5).
			every := time.Duration(f.IdleTimeout) * time.Millisecond / 2
			c.beat = time.AfterFunc(every, func() { c.heartbeat(every) })
		}
		return nil
	case *frames.Close:
		return &ConnError{Remote: remoteErr(f.Error)}
	}
	return fmt.Errorf("amqp client: got %T, want open", b)
}

func containsSym(syms []encoding.Symbol, s encoding.Symbol) bool {
	for _, x := range syms {
		if x == s {
			return true
		}
	}
	return false
}

// header sends a protocol header and reads the peer's, which must be
// the same.
func (c *Conn) header(br *bufio.Reader, h []byte) error {
	if _, err := c.nc.Write(h); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(br, got[:]); err != nil {
		return err
	}
	if !bytes.Equal(got[:], h) {
		return fmt.Errorf("amqp client: the peer answered protocol header %q to %q", got[:], h)
	}
	return nil
}

// frame reads one frame of type typ, skipping empty ones.
func (c *Conn) frame(br *bufio.Reader, typ uint8) (frames.Body, error) {
	var buf []byte
	for {
		h, body, err := readFrame(br, buf)
		if err != nil {
			return nil, err
		}
		if h.Type != typ {
			return nil, fmt.Errorf("amqp client: %w: frame type %d, want %d", frames.ErrFraming, h.Type, typ)
		}
		b, err := frames.Parse(typ, body)
		if err != nil || b != nil {
			return b, err
		}
	}
}

// readFrame reads a frame's header and body into buf (grown as
// needed), skipping the extended header.
func readFrame(br *bufio.Reader, buf []byte) (frames.Header, []byte, error) {
	var hb [frames.HeaderSize]byte
	if _, err := io.ReadFull(br, hb[:]); err != nil {
		return frames.Header{}, nil, err
	}
	h, err := frames.ParseHeader(hb[:], maxFrameSize)
	if err != nil {
		return h, nil, err
	}
	if _, err := br.Discard(int(h.DataOffset)*4 - frames.HeaderSize); err != nil {
		return h, nil, err
	}
	n := int(h.Size) - int(h.DataOffset)*4
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err = io.ReadFull(br, buf)
	return h, buf, err
}

// write encodes and writes one frame.
func (c *Conn) write(typ uint8, ch uint16, body frames.Body, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(typ, ch, body, payload)
}

// writeLocked is write with c.wmu held. A failed write ends the
// connection.
func (c *Conn) writeLocked(typ uint8, ch uint16, body frames.Body, payload []byte) error {
	b, err := frames.Append(c.wbuf[:0], typ, ch, body, payload)
	if err != nil {
		return err
	}
	return c.flushLocked(b)
}

// flushLocked writes b (frames encoded into c.wbuf) with c.wmu held.
func (c *Conn) flushLocked(b []byte) error {
	if cap(b) <= 4096 {
		c.wbuf = b[:0] // keep small buffers; let a large message's go
	} else {
		c.wbuf = nil
	}
	if c.wtime > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.wtime))
	}
	if _, err := c.nc.Write(b); err != nil {
		c.fail(&ConnError{Err: err})
		return c.Err()
	}
	return nil
}

// orDefault is a time-out option's value: a minute for 0, none (0) for
// a negative value.
func orDefault(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Minute
	case d < 0:
		return 0
	}
	return d
}

// heartbeat writes an empty frame and plans the next.
func (c *Conn) heartbeat(every time.Duration) {
	if c.write(frames.TypeAMQP, 0, nil, nil) == nil {
		c.wmu.Lock()
		if c.Err() == nil {
			c.beat.Reset(every)
		}
		c.wmu.Unlock()
	}
}

// waitFor waits, under c.mu's condition, until ready (called with
// c.mu held) or ctx is done (its error). Whatever changes what ready
// reads broadcasts the condition; so does the end of the connection.
func (c *Conn) waitFor(ctx context.Context, ready func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !ready() {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.cond.Wait()
	}
	return nil
}

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (a *ConnError; ErrClosed after
// Close), nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close sends a close, closes the network connection and waits for the
// reader to stop. It is idempotent and returns nil.
func (c *Conn) Close() error {
	c.mu.Lock()
	open := c.err == nil
	c.mu.Unlock()
	if open {
		c.wmu.Lock()
		c.wtime = min(c.wtime, time.Second) // the close is a courtesy
		if c.wtime == 0 {
			c.wtime = time.Second
		}
		_ = c.writeLocked(frames.TypeAMQP, 0, &frames.Close{}, nil)
		c.wmu.Unlock()
	}
	c.fail(ErrClosed)
	<-c.read
	return nil
}

// fail ends the connection with err, once: every link and session
// ends with it and the network connection is closed.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	for _, s := range c.sessions {
		if s != nil {
			s.failLocked(err)
		}
	}
	c.cond.Broadcast()
	close(c.done)
	c.mu.Unlock()
	if c.beat != nil {
		c.beat.Stop()
	}
	c.nc.Close()
}

// reader reads and dispatches the peer's frames until the connection
// ends.
func (c *Conn) reader(br *bufio.Reader) {
	defer close(c.read)
	var buf []byte
	for {
		if c.idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
		}
		h, body, err := readFrame(br, buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = io.EOF
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("nothing from the peer for its idle time-out of %s", c.idle)
			}
			c.fail(&ConnError{Err: err})
			return
		}
		buf = body
		if h.Type != frames.TypeAMQP {
			c.fail(&ConnError{Err: fmt.Errorf("%w: frame type %d after open", frames.ErrFraming, h.Type)})
			return
		}
		b, err := frames.Parse(frames.TypeAMQP, body)
		if err != nil {
			c.fail(&ConnError{Err: err})
			return
		}
		if b == nil {
			continue // a heartbeat
		}
		if err := c.dispatch(h.Channel, b); err != nil {
			c.fail(err)
			return
		}
	}
}

// dispatch handles one frame from the peer on channel ch.
func (c *Conn) dispatch(ch uint16, b frames.Body) error {
	switch f := b.(type) {
	case *frames.Close:
		_ = c.write(frames.TypeAMQP, 0, &frames.Close{}, nil)
		return &ConnError{Remote: remoteErr(f.Error)}
	case *frames.Begin:
		if f.RemoteChannel == nil {
			return &ConnError{Err: errors.New("the peer began a session")}
		}
		c.mu.Lock()
		var s *Session
		if int(*f.RemoteChannel) < len(c.sessions) {
			s = c.sessions[*f.RemoteChannel]
		}
		if s == nil || s.remote {
			c.mu.Unlock()
			return &ConnError{Err: fmt.Errorf("a begin for channel %d, which has no session beginning", *f.RemoteChannel)}
		}
		s.remote, s.remoteCh = true, ch
		s.nextIncomingID = f.NextOutgoingID
		s.remoteIncomingWindow = f.IncomingWindow
		s.handleMax = f.HandleMax
		c.byRemote[ch] = s
		close(s.begun)
		c.mu.Unlock()
		return nil
	}
	c.mu.Lock()
	s := c.byRemote[ch]
	c.mu.Unlock()
	if s == nil {
		return &ConnError{Err: fmt.Errorf("a %T on channel %d, which has no session", b, ch)}
	}
	return s.dispatch(b)
}
