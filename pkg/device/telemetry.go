package device

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iotctl/iotctl/pkg/message"
)

// SendEvent sends m as device-to-cloud telemetry on
// devices/{id}/messages/events/{bag} (or the module's topic), with m's
// system and application properties in the bag (see
// message.EncodeBag). With QoS 1 (the default) it returns when the hub
// acknowledged the message; with QoS 0 when it was written.
//
// While the client is reconnecting SendEvent waits for the new
// connection; if the connection drops before the PUBACK the message is
// sent again on the next one (at least once). Cancelling ctx stops the
// wait and returns ctx.Err() (the message may still have reached the
// hub). Other errors: ErrTooLarge, ErrNotConnected before Connect,
// ErrClosed, or the *ConnectError of a refused reconnect.
//
// SendEvent is SendEventAsync and a wait for its done.
func (c *Client) SendEvent(ctx context.Context, m *message.Message) error {
	res := make(chan error, 1)
	if err := c.SendEventAsync(ctx, m, func(err error) { res <- err }); err != nil {
		return err
	}
	return <-res
}

// SendEventAsync sends m as SendEvent does, without waiting: it writes
// the PUBLISH on the caller's goroutine (or queues it while the client
// is reconnecting) and returns; done is called once with what SendEvent
// would have returned: nil when the hub acknowledged the message (QoS
// 1) or it was written (QoS 0). No goroutine waits for the
// acknowledgement: the connection's reader calls done when the PUBACK
// comes. The message keeps SendEvent's guarantees: one in flight when
// the connection drops is sent again on the next; cancelling ctx calls
// done with ctx.Err(); Close calls done with ErrClosed for every
// message not acknowledged by then, a refused reconnect with its
// *ConnectError, and a first Connect that gives up with an error
// wrapping ErrNotConnected and Connect's error. Messages that wait for
// a connection go, in the order they were sent, as soon as it is up.
//
// done runs on the connection's reader, on the goroutine that ended
// the wait (ctx's, Close's, a reconnect's), or on the caller's before
// SendEventAsync returns; it must be quick and must not block (the
// reader reads nothing else meanwhile), nor call Close. m's body must
// not change until done was called.
//
// An error returned by SendEventAsync means the message was not sent
// and done will not be called: ErrTooLarge, ErrNotConnected before
// Connect, ErrClosed, the *ConnectError of a refused reconnect, or
// ctx.Err() when ctx is done already.
func (c *Client) SendEventAsync(ctx context.Context, m *message.Message, done func(error)) error {
	if m == nil {
		m = &message.Message{}
	}
	if m.Size() > message.MaxTelemetrySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Size(), message.MaxTelemetrySize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s := &send{c: c, topic: message.TelemetryTopic(c.cfg.deviceID, c.cfg.moduleID, m), body: m.Body, done: done}
	c.mu.Lock()
	if err := c.endedLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if !c.started && !c.busy && c.cur == nil {
		c.mu.Unlock()
		return ErrNotConnected
	}
	c.sends++
	s.seq = c.sends
	if ctx.Done() != nil {
		s.stop = context.AfterFunc(ctx, func() { c.abandon(s, ctx.Err()) })
	}
	c.mu.Unlock()
	c.submit(s)
	return nil
}

// send is a telemetry message on its way: queued for the next
// connection (in Client.unsent) or written and waiting for its PUBACK
// (a waiter of cn). Its fields after done are the Client's, under c.mu.
type send struct {
	c     *Client
	seq   uint64 // order of SendEventAsync calls, kept when sent again
	topic string
	body  []byte
	done  func(error)
	stop  func() bool // unregisters the ctx callback; nil without one

	cn   *conn  // the connection it waits on for its PUBACK, or nil
	id   uint16 // its packet id there
	over bool   // done was called or is about to be
}

func (s *send) acked(cn *conn, _ packets.ControlPacket) { s.c.acked(s, cn) }
func (s *send) lost(cn *conn)                           { s.c.lost(s, cn) }

// finish calls s's done with err; c.mu is not held and s.over was set
// under it, so no one else calls done.
func (s *send) finish(err error) {
	if s.stop != nil {
		s.stop()
	}
	s.done(err)
}

// submit writes s on the live connection or, without one, queues it
// for the next. It runs on the goroutine of SendEventAsync or of the
// connect that flushes the queue.
func (c *Client) submit(s *send) {
	for {
		c.mu.Lock()
		cn, pkt, err := c.placeLocked(s)
		c.mu.Unlock()
		switch {
		case err != nil:
			s.finish(err)
			return
		case cn == nil:
			return // queued, or over
		}
		err = cn.writeBytes(pkt)
		if c.cfg.qos > 0 {
			return // the PUBACK or the end of cn settles it (acked, lost)
		}
		if err != nil {
			// cn ended under the write (and is lost now): place s
			// again, on the next connection.
			continue
		}
		c.mu.Lock()
		over := s.over
		s.over = true
		c.mu.Unlock()
		if !over {
			s.finish(nil)
		}
		return
	}
}

// placeLocked decides where s goes; c.mu is held. It returns the
// connection and the packet to write when there is a live one (at QoS
// 1, s is then its waiter), nothing when s was queued or is over, and
// the error to finish s with when it cannot be sent.
func (c *Client) placeLocked(s *send) (*conn, []byte, error) {
	if s.over {
		return nil, nil, nil
	}
	cn := c.cur
	if cn == nil || cn.isLost() {
		// A lost c.cur is dropped soon (connLost) and the reconnect
		// flushes the queue.
		return nil, nil, c.requeueLocked(s)
	}
	if c.cfg.qos == 0 {
		return cn, appendPublish(nil, s.topic, 0, 0, s.body), nil
	}
	id, err := cn.await(s)
	switch {
	case err == errLost:
		return nil, nil, c.requeueLocked(s)
	case err != nil:
		s.over = true
		return nil, nil, fmt.Errorf("device: send event: %w", err)
	}
	s.cn, s.id = cn, id
	c.inflight++
	return cn, appendPublish(nil, s.topic, 1, id, s.body), nil
}

// requeueLocked queues s for the next connection, or returns the
// error to finish it with (s.over set) when there will be none; c.mu
// is held.
func (c *Client) requeueLocked(s *send) error {
	if err := c.endedLocked(); err != nil {
		s.over = true
		return err
	}
	c.unsent = append(c.unsent, s)
	return nil
}

// acked runs on cn's reader when the PUBACK of s came.
func (c *Client) acked(s *send, cn *conn) {
	c.mu.Lock()
	if s.cn != cn || s.over {
		c.mu.Unlock()
		return
	}
	s.cn, s.over = nil, true
	c.untrackLocked()
	c.mu.Unlock()
	s.finish(nil)
}

// lost runs when cn ended before the PUBACK of s: s goes again on the
// next connection. It must not block (see waiter).
func (c *Client) lost(s *send, cn *conn) {
	c.mu.Lock()
	if s.cn != cn || s.over {
		c.mu.Unlock()
		return
	}
	s.cn = nil
	c.untrackLocked()
	err := c.requeueLocked(s)
	c.mu.Unlock()
	if err != nil {
		s.finish(err)
	}
}

// abandon runs on ctx's callback: s ends with err (ctx.Err()) wherever
// it is, and its PUBACK, if it comes, is ignored.
func (c *Client) abandon(s *send, err error) {
	c.mu.Lock()
	if s.over {
		c.mu.Unlock()
		return
	}
	s.over = true
	if s.cn != nil {
		s.cn.cancel(s.id, s)
		s.cn = nil
		c.untrackLocked()
	} else if i := slices.Index(c.unsent, s); i >= 0 {
		c.unsent = slices.Delete(c.unsent, i, i+1)
	}
	c.mu.Unlock()
	s.done(err)
}

// takeUnsentLocked empties the queue of sends waiting for a
// connection and returns it in the order they were made; c.mu is
// held.
func (c *Client) takeUnsentLocked() []*send {
	q := c.unsent
	c.unsent = nil
	slices.SortFunc(q, func(a, b *send) int { return cmp.Compare(a.seq, b.seq) })
	return q
}

// failUnsentLocked ends every queued send with err; c.mu is held. It
// returns them to finish once c.mu is released.
func (c *Client) failUnsentLocked() []*send {
	q := c.takeUnsentLocked()
	for _, s := range q {
		s.over = true
	}
	return q
}

// finishAll calls done with err for each of q (see failUnsentLocked).
func finishAll(q []*send, err error) {
	for _, s := range q {
		s.finish(err)
	}
}
