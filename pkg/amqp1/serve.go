package amqp1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Protocol ids of the 8-byte protocol header "AMQP" id major minor revision.
const (
	protoAMQP = 0
	protoTLS  = 2
	protoSASL = 3
)

func protoHeader(id byte) []byte { return []byte{'A', 'M', 'Q', 'P', id, 1, 0, 0} }

// Serve runs the server side of one AMQP 1.0 connection over nc until
// the connection ends, and closes nc. It reads the protocol header itself:
// a SASL header (when opts.SASL is set) leads to SASL negotiation and then
// the AMQP header; a bare AMQP header is accepted when opts.SASL is nil
// or opts.AllowNoSASL is set. Any other header is answered with the header
// this server wants and the connection is closed. A caller that already
// read bytes from the connection (to sniff "AMQP") must hand Serve a
// net.Conn that replays them first.
//
// Cancelling ctx closes the connection with amqp:connection:forced.
// Serve returns nil when the connection was closed cleanly (by the peer
// without an error, or by Conn.Close(nil)), and otherwise an error: a
// *ConnError (errors.As) carrying the remote or local AMQP error and,
// through Unwrap, the cause — an I/O error, ctx's error, a decoding error,
// ErrProtocolHeader or ErrAuth. Before returning it waits for pending
// Handler.Attach calls. opts may be nil.
func Serve(ctx context.Context, nc net.Conn, opts *ConnOptions) error {
	o := opts.resolved()
	cctx, cancel := context.WithCancelCause(ctx)
	c := &Conn{
		nc:       nc,
		br:       bufio.NewReaderSize(nc, 32<<10),
		opts:     o,
		log:      o.Logger,
		w:        newWriter(nc),
		ctx:      cctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		sessions: map[uint16]*session{},
		local:    map[uint16]*session{},
	}
	c.lastRead.Store(time.Now().UnixNano())
	stop := context.AfterFunc(ctx, func() {
		if c.opened.Load() {
			c.sendClose(&Error{Condition: ErrCondConnectionForced, Description: "server shutting down"}, context.Cause(ctx))
		} else {
			_ = nc.Close()
		}
	})
	defer stop()

	if err := c.handshake(ctx); err != nil {
		_ = nc.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		c.mu.Lock()
		c.err = &ConnError{inner: err}
		c.mu.Unlock()
		cancel(err)
		close(c.done)
		return &ConnError{inner: err}
	}
	if o.NewHandler != nil {
		c.handler = o.NewHandler(c)
	}
	if c.handler == nil {
		c.handler = refuseAll{}
	}
	c.w.tick = c.tick
	if c.peerIdle > 0 {
		c.w.heartbeat = c.peerIdle / 2
	}
	c.w.tickEvery = tickInterval(c.peerIdle/2, o.IdleTimeout)
	c.opened.Store(true)
	go c.w.run()
	if ctx.Err() != nil { // cancelled while the handshake finished
		c.sendClose(&Error{Condition: ErrCondConnectionForced}, context.Cause(ctx))
	}
	err := c.readLoop()
	c.handlers.Wait()
	return err
}

// tickInterval picks the writer's timer period: a quarter of the
// shorter of our heartbeat period and our idle time-out.
func tickInterval(heartbeat, idle time.Duration) time.Duration {
	d := time.Duration(0)
	for _, v := range []time.Duration{heartbeat, idle} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	return d / 4
}

// handshake runs the protocol header, SASL and open exchange.
func (c *Conn) handshake(ctx context.Context) error {
	_ = c.nc.SetDeadline(time.Now().Add(c.opts.HandshakeTimeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()

	id, err := c.readHeader()
	if err != nil {
		return err
	}
	saslOK := c.opts.SASL != nil
	bareOK := !saslOK || c.opts.AllowNoSASL
	switch {
	case id == protoSASL && saslOK:
		if err := c.w.writeDirect(protoHeader(protoSASL)); err != nil {
			return err
		}
		if err := c.negotiateSASL(ctx); err != nil {
			return err
		}
		if id, err = c.readHeader(); err != nil {
			return err
		}
		if id != protoAMQP {
			_ = c.w.writeDirect(protoHeader(protoAMQP))
			return fmt.Errorf("%w: protocol id %d after SASL", ErrProtocolHeader, id)
		}
	case id == protoAMQP && bareOK:
	default:
		want := byte(protoAMQP)
		if saslOK {
			want = protoSASL
		}
		_ = c.w.writeDirect(protoHeader(want))
		return fmt.Errorf("%w: protocol id %d", ErrProtocolHeader, id)
	}
	if err := c.w.writeDirect(protoHeader(protoAMQP)); err != nil {
		return err
	}
	return c.open()
}

// readHeader reads a protocol header and returns its protocol id. A
// header that is not AMQP 1.0.0 returns an ErrProtocolHeader error after
// sending our preferred header.
func (c *Conn) readHeader() (byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, err
	}
	if !bytes.Equal(h[:4], []byte("AMQP")) || h[5] != 1 || h[6] != 0 || h[7] != 0 ||
		(h[4] != protoAMQP && h[4] != protoSASL && h[4] != protoTLS) {
		want := byte(protoAMQP)
		if c.opts.SASL != nil {
			want = protoSASL
		}
		_ = c.w.writeDirect(protoHeader(want))
		return 0, fmt.Errorf("%w: %q", ErrProtocolHeader, h[:])
	}
	return h[4], nil
}

// open reads the peer's open and answers it.
func (c *Conn) open() error {
	h, body, err := c.readFrame()
	if err != nil {
		return fmt.Errorf("amqp1: reading open: %w", err)
	}
	o, ok := body.(*frames.Open)
	if !ok || h.Type != frames.TypeAMQP {
		return fmt.Errorf("amqp1: first frame is %T, not open: %w", body, encoding.ErrDecode)
	}
	c.remoteContainer = o.ContainerID
	c.hostname = o.Hostname
	c.properties = stringKeys(o.Properties)
	c.peerMaxFrame = max(o.MaxFrameSize, minMaxFrameSize)
	c.channelMax = min(o.ChannelMax, c.opts.ChannelMax)
	c.peerIdle = time.Duration(o.IdleTimeout) * time.Millisecond
	ours := &frames.Open{
		ContainerID:  c.opts.ContainerID,
		MaxFrameSize: c.opts.MaxFrameSize,
		ChannelMax:   c.opts.ChannelMax,
		IdleTimeout:  uint32(min(c.opts.IdleTimeout.Milliseconds(), math.MaxUint32)),
	}
	b, err := frames.Append(nil, frames.TypeAMQP, 0, ours, nil)
	if err != nil {
		return err
	}
	if err := c.w.writeDirect(b); err != nil {
		return err
	}
	c.lastRead.Store(time.Now().UnixNano())
	c.log.Debug("amqp connection open", "container", c.remoteContainer, "hostname", c.hostname)
	return nil
}

var errUnexpectedSASL = errors.New("amqp1: unexpected SASL frame")
