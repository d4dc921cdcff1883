package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/sas"
)

// leanConn is one connection of the lean AMQP client: devices over one
// TLS connection as go-amqp's (SASL ANONYMOUS, then a put-token on $cbs
// with the device's SAS token, then the device's own session with a
// sender on /devices/{id}/messages/events), with none of a general
// client's machinery. The frames are encoded by hand (amqpcodec.go)
// and each device's transfer frame is encoded once and patched with
// its delivery-id and tag. One goroutine reads the hub's frames and,
// for every disposition that frees a device's window, writes that
// device's next transfers (one write each, or with -lean-batch one for
// them all). go-amqp spends more CPU on
// each message than the hub does (its mux goroutines, channels and
// per-message encoding), on the same two cores.
//
// The frames follow OASIS AMQP 1.0 part 2 (open, begin, attach, flow,
// transfer, disposition) and part 5 (SASL); the fields set are the
// ones go-amqp sends (conn.go, session.go, link.go and sender.go in
// github.com/Azure/go-amqp) and the put-token is the one of newCBS.
type leanConn struct {
	nc  net.Conn
	r   *bufio.Reader
	rb  []byte // the frame being read
	out enc    // frames to write

	// The $cbs session, on our channel 0.
	cbsHubCh      uint16
	cbsBegun      bool
	cbsAttached   int    // attach answers seen (sender and receiver)
	cbsCredit     uint32 // the hub's credit for our $cbs sender
	cbsDelivery   uint32 // our next delivery-id (= transfer-id) on the session
	cbsHubNext    uint32 // the hub's next transfer-id
	cbsReceived   uint32 // responses received (our receiver's delivery-count)
	cbsResponse   *amqp.Message
	cbsHubDelivID uint32

	devs   []*leanDevice          // by our channel - 1
	byHub  map[uint16]*leanDevice // by the hub's channel
	window int
	batch  bool // write a device's transfers in one write
}

// leanDevice is one device's session and sender on a leanConn.
type leanDevice struct {
	id     string
	ch     uint16 // our channel
	begun  bool
	linked bool

	frame        []byte // its transfer frame with the message
	idAt, tagAt  int    // where the delivery-id and the tag are in frame
	next         uint32 // next delivery-id and transfer-id
	credit       uint32 // link credit the hub gave
	remoteWindow uint32 // the hub's session incoming-window left
	unacked      int
	acked        int64
}

// dialLean connects to the hub's AMQP port at addr with SASL ANONYMOUS
// and opens the connection and its $cbs links.
func dialLean(ctx context.Context, addr, host string, tc *tls.Config, window int, batch bool) (*leanConn, error) {
	d := tls.Dialer{Config: tc}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c := &leanConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), byHub: map[uint16]*leanDevice{}, window: window, batch: batch}
	if err := c.handshake(hostOnly(host)); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *leanConn) handshake(host string) error {
	// SASL (part 5, 5.3): header, the hub's mechanisms, our init with
	// ANONYMOUS, its outcome.
	if err := c.exchangeHeader(headerSASL); err != nil {
		return err
	}
	if code, _, err := c.expect(frameSASL, codeSASLMechanisms); err != nil {
		return fmt.Errorf("sasl-mechanisms: %w (got 0x%x)", err, code)
	}
	c.out.frame(frameSASL, 0, codeSASLInit, func(e *enc) int {
		e.sym("ANONYMOUS")
		e.null()
		e.str(host)
		return 3
	}, nil)
	if err := c.flush(); err != nil {
		return err
	}
	_, f, err := c.expect(frameSASL, codeSASLOutcome)
	if err != nil {
		return fmt.Errorf("sasl-outcome: %w", err)
	}
	if code, _ := field(f, 0).(uint8); code != 0 {
		return fmt.Errorf("sasl: the hub refused ANONYMOUS (code %d)", code)
	}
	// AMQP: header, open, and the $cbs session with its two links.
	if err := c.exchangeHeader(headerAMQP); err != nil {
		return err
	}
	c.out.frame(frameAMQP, 0, codeOpen, func(e *enc) int {
		e.str("iotctl-amqpdev-lean")
		e.str(host)
		e.uint(65536) // max-frame-size
		e.ushort(65535)
		return 4
	}, nil)
	if err := c.flush(); err != nil {
		return err
	}
	if _, _, err := c.expect(frameAMQP, codeOpen); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	c.begin(0)
	c.attach(0, "$cbs-sender", 0, false, "cbs-lean", "$cbs")
	c.attach(0, "$cbs-receiver", 1, true, "$cbs", "cbs-lean")
	c.cbsFlow()
	if err := c.flush(); err != nil {
		return err
	}
	return c.until(func() bool { return c.cbsBegun && c.cbsAttached == 2 && c.cbsCredit > 0 })
}

// exchangeHeader sends a protocol header and reads the hub's.
func (c *leanConn) exchangeHeader(h []byte) error {
	if _, err := c.nc.Write(h); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(c.r, got[:]); err != nil {
		return fmt.Errorf("reading the protocol header: %w", err)
	}
	if string(got[:]) != string(h) {
		return fmt.Errorf("the hub answered protocol header %q to %q", got[:], h)
	}
	return nil
}

// begin queues a begin on channel ch (part 2, 2.7.2).
func (c *leanConn) begin(ch uint16) {
	c.out.frame(frameAMQP, ch, codeBegin, func(e *enc) int {
		e.null()        // remote-channel
		e.uint(0)       // next-outgoing-id
		e.uint(5000)    // incoming-window
		e.uint(1 << 16) // outgoing-window
		return 4
	}, nil)
}

// attach queues an attach of link name on handle h (part 2, 2.7.3),
// receiver (role true) or sender, with its source and target.
func (c *leanConn) attach(ch uint16, name string, h uint32, receiver bool, source, target string) {
	c.out.frame(frameAMQP, ch, codeAttach, func(e *enc) int {
		e.str(name)
		e.uint(h)
		e.bool(receiver)
		e.ubyte(2) // snd-settle-mode mixed, go-amqp's default
		e.ubyte(0) // rcv-settle-mode first
		e.described(codeSource, func(e *enc) int { e.str(source); return 1 })
		e.described(codeTarget, func(e *enc) int { e.str(target); return 1 })
		e.null() // unsettled
		e.null() // incomplete-unsettled
		if receiver {
			e.null()
		} else {
			e.uint(0) // initial-delivery-count
		}
		return 10
	}, nil)
}

// cbsFlow grants the hub credit for 10 responses on our $cbs receiver.
func (c *leanConn) cbsFlow() {
	c.out.frame(frameAMQP, 0, codeFlow, func(e *enc) int {
		e.uint(c.cbsHubNext)  // next-incoming-id
		e.uint(5000)          // incoming-window
		e.uint(c.cbsDelivery) // next-outgoing-id
		e.uint(1 << 16)       // outgoing-window
		e.uint(1)             // handle
		e.uint(c.cbsReceived) // delivery-count
		e.uint(10)            // link-credit
		return 7
	}, nil)
}

// flush writes the queued frames.
func (c *leanConn) flush() error {
	if len(c.out.b) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out.b)
	c.out.b = c.out.b[:0]
	return err
}

// readFrame reads the next frame, skipping empty ones (heartbeats).
func (c *leanConn) readFrame() (typ uint8, ch uint16, body []byte, err error) {
	for {
		var h [8]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return 0, 0, nil, err
		}
		size := binary.BigEndian.Uint32(h[:])
		doff := int(h[4]) * 4
		if size < 8 || doff < 8 || int(size) < doff || size > 1<<20 {
			return 0, 0, nil, fmt.Errorf("bad frame header % x", h)
		}
		if cap(c.rb) < int(size)-8 {
			c.rb = make([]byte, size-8)
		}
		b := c.rb[:size-8]
		if _, err := io.ReadFull(c.r, b); err != nil {
			return 0, 0, nil, err
		}
		b = b[doff-8:]
		if len(b) > 0 {
			return h[5], binary.BigEndian.Uint16(h[6:]), b, nil
		}
	}
}

// expect reads the next frame and checks its type and performative.
func (c *leanConn) expect(typ uint8, code uint64) (uint64, []any, error) {
	t, _, body, err := c.readFrame()
	if err != nil {
		return 0, nil, err
	}
	got, fields, _, err := performative(body)
	if err != nil {
		return 0, nil, err
	}
	if t != typ || got != code {
		return got, nil, fmt.Errorf("got frame type %d performative 0x%x; want type %d 0x%x%s", t, got, typ, code, remoteError(got, fields))
	}
	return got, fields, nil
}

// until handles the hub's frames until done reports true.
func (c *leanConn) until(done func() bool) error {
	for !done() {
		if err := c.step(false); err != nil {
			return err
		}
	}
	return nil
}

// step reads one frame and handles it; with refill, a disposition that
// frees a device's window makes it send its next messages.
func (c *leanConn) step(refill bool) error {
	typ, ch, body, err := c.readFrame()
	if err != nil {
		return err
	}
	if typ != frameAMQP {
		return fmt.Errorf("frame of type %d after the handshake", typ)
	}
	code, f, payload, err := performative(body)
	if err != nil {
		return err
	}
	d := c.byHub[ch]
	cbs := c.cbsBegun && ch == c.cbsHubCh
	switch code {
	case codeBegin:
		// the answer to our begin: remote-channel is our channel
		mine := uint16(fieldUint(f, 0, 0))
		if mine == 0 {
			c.cbsHubCh, c.cbsBegun = ch, true
			return nil
		}
		if int(mine) > len(c.devs) {
			return fmt.Errorf("begin for channel %d, which we did not begin", mine)
		}
		d = c.devs[mine-1]
		d.begun, d.remoteWindow = true, fieldUint(f, 2, 0)
		c.byHub[ch] = d
	case codeAttach:
		if field(f, 5) == nil && field(f, 6) == nil {
			return nil // refused: the detach that follows says why
		}
		if cbs {
			c.cbsAttached++
		} else if d != nil {
			d.linked = true
		}
	case codeFlow:
		next, in := fieldUint(f, 0, 0), fieldUint(f, 1, 0)
		if field(f, 4) == nil {
			if d != nil {
				d.remoteWindow = next + in - d.next
			}
			return nil
		}
		count, credit := fieldUint(f, 5, 0), fieldUint(f, 6, 0)
		switch {
		case cbs:
			c.cbsCredit = count + credit - c.cbsDelivery
		case d != nil:
			d.remoteWindow = next + in - d.next
			d.credit = count + credit - d.next
			if refill {
				return c.send(d)
			}
		}
	case codeTransfer:
		if !cbs {
			return fmt.Errorf("transfer on channel %d, not the $cbs session", ch)
		}
		c.cbsHubNext++
		c.cbsHubDelivID = fieldUint(f, 1, 0)
		m := new(amqp.Message)
		if err := m.UnmarshalBinary(payload); err != nil {
			return fmt.Errorf("$cbs response: %w", err)
		}
		c.cbsResponse = m
	case codeDisposition:
		if cbs || d == nil {
			return nil
		}
		first := fieldUint(f, 1, 0)
		last := fieldUint(f, 2, first)
		if st, _ := field(f, 4).(described); st.code != codeAccepted {
			return fmt.Errorf("%s: the hub settled deliveries %d-%d with outcome 0x%x: %v", d.id, first, last, st.code, st.value)
		}
		n := int(last - first + 1)
		d.unacked -= n
		d.acked += int64(n)
		if refill {
			return c.send(d)
		}
	case codeDetach, codeEnd, codeClose:
		return fmt.Errorf("the hub sent performative 0x%x on channel %d%s", code, ch, remoteError(code, f))
	}
	return nil
}

// remoteError describes the error field of a detach, end or close.
func remoteError(code uint64, f []any) string {
	i := map[uint64]int{codeDetach: 2, codeEnd: 0, codeClose: 0}
	at, ok := i[code]
	if !ok {
		return ""
	}
	e, ok := field(f, at).(described)
	if !ok {
		return ""
	}
	ef, _ := e.value.([]any)
	return fmt.Sprintf(": %v: %v", field(ef, 0), field(ef, 1))
}

// connect puts the device's SAS token on $cbs, begins its session and
// attaches its sender, whose transfers carry body.
func (c *leanConn) connect(host, id, key string, body []byte) error {
	k, err := sas.DecodeKey(key)
	if err != nil {
		return err
	}
	aud := sas.DeviceResource(host, id)
	tok, err := sas.Sign(aud, k, &sas.SignOptions{Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		return err
	}
	put, err := (&amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken",
			"name": aud},
		Value: tok.Encode(),
	}).MarshalBinary()
	if err != nil {
		return err
	}
	if c.cbsCredit == 0 {
		if err := c.until(func() bool { return c.cbsCredit > 0 }); err != nil {
			return err
		}
	}
	c.transfer(0, 0, c.cbsDelivery, put)
	c.cbsDelivery++
	c.cbsCredit--
	c.cbsResponse = nil
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.until(func() bool { return c.cbsResponse != nil }); err != nil {
		return err
	}
	c.cbsReceived++
	c.accept(0, c.cbsHubDelivID)
	c.cbsFlow()
	if code, _ := c.cbsResponse.ApplicationProperties["status-code"].(int32); code != 200 {
		return fmt.Errorf("%s: put-token: %d %v", id, code, c.cbsResponse.ApplicationProperties["status-description"])
	}

	d := &leanDevice{id: id, ch: uint16(len(c.devs) + 1)}
	c.devs = append(c.devs, d)
	c.begin(d.ch)
	c.attach(d.ch, "lean-"+id, 0, false, "lean-"+id, "/devices/"+id+"/messages/events")
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.until(func() bool { return d.linked && d.credit > 0 }); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	// The transfer (part 2, 2.7.5): handle 0, delivery-id, a 4-byte
	// delivery-tag (both patched for each message), message-format 0,
	// unsettled; then the message.
	var e enc
	e.frame(frameAMQP, d.ch, codeTransfer, func(e *enc) int {
		e.uint(0)
		d.idAt = e.uint(0)
		d.tagAt = e.binary([]byte{0, 0, 0, 0})
		e.uint(0)
		e.bool(false)
		return 5
	}, body)
	d.frame = e.b
	return nil
}

// transfer queues a one-frame unsettled delivery on channel ch, handle h.
func (c *leanConn) transfer(ch uint16, h, id uint32, payload []byte) {
	c.out.frame(frameAMQP, ch, codeTransfer, func(e *enc) int {
		e.uint(h)
		e.uint(id)
		e.binary(binary.BigEndian.AppendUint32(nil, id))
		e.uint(0)
		e.bool(false)
		return 5
	}, payload)
}

// accept queues the settled accepted disposition of the hub's delivery id.
func (c *leanConn) accept(ch uint16, id uint32) {
	c.out.frame(frameAMQP, ch, codeDisposition, func(e *enc) int {
		e.bool(true) // role receiver
		e.uint(id)
		e.null()
		e.bool(true)
		e.described(codeAccepted, func(*enc) int { return 0 })
		return 5
	}, nil)
}

// send writes d's next messages, as many as its window, its link
// credit and its session window allow: each in its own write, as
// go-amqp's connection writer and the device SDKs write every frame,
// or with c.batch all in one write.
func (c *leanConn) send(d *leanDevice) error {
	for d.unacked < c.window && d.credit > 0 && d.remoteWindow > 0 {
		binary.BigEndian.PutUint32(d.frame[d.idAt:], d.next)
		binary.BigEndian.PutUint32(d.frame[d.tagAt:], d.next)
		d.next++
		d.credit--
		d.remoteWindow--
		d.unacked++
		if !c.batch {
			if _, err := c.nc.Write(d.frame); err != nil {
				return err
			}
			continue
		}
		c.out.b = append(c.out.b, d.frame...)
	}
	return c.flush()
}

// pump sends until the deadline, each device keeping its window of
// messages in flight, then reads the answers to those still in flight
// (for at most grace). It returns the messages the hub accepted.
func (c *leanConn) pump(deadline time.Time, grace time.Duration) (int64, error) {
	// The read deadline only guards against a hub that stops answering:
	// a read that times out loses what bufio had of the frame.
	_ = c.nc.SetDeadline(deadline.Add(grace))
	for _, d := range c.devs {
		if err := c.send(d); err != nil {
			return c.acked(), err
		}
	}
	for {
		sending := time.Now().Before(deadline)
		if !sending && c.inFlight() == 0 {
			return c.acked(), nil
		}
		if err := c.step(sending); err != nil {
			return c.acked(), err
		}
	}
}

// acked is the number of messages the hub accepted on the connection.
func (c *leanConn) acked() int64 {
	var n int64
	for _, d := range c.devs {
		n += d.acked
	}
	return n
}

// inFlight is the number of messages sent and not yet answered.
func (c *leanConn) inFlight() int {
	n := 0
	for _, d := range c.devs {
		n += d.unacked
	}
	return n
}

// close ends the connection (close frame, then the TCP connection).
func (c *leanConn) close() {
	_ = c.nc.SetDeadline(time.Now().Add(time.Second))
	c.out.frame(frameAMQP, 0, codeClose, func(*enc) int { return 0 }, nil)
	_ = c.flush()
	_ = c.nc.Close()
}
