package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// link is a sender's or a receiver's state; it is under the
// connection's lock. A fleet has one per device and kind, so its fields
// are ordered to pack (pointers, then uint32s, then bools), and its
// name lives only in the session's attaching map, until the peer's
// attach, and its peer's handle only in the session's byRemote.
type link struct {
	s        *Session
	err      error       // why it ended
	onDetach func(error) // the peer detached the link

	// receiver
	partial   []byte // a delivery's payload so far, while it comes in several transfers
	onMessage func(payload []byte, id uint32, settled bool)

	handle        uint32
	credit        uint32
	deliveryCount uint32

	// receiver
	maxCredit   uint32
	partialID   uint32
	outstanding uint32 // manual: deliveries given to onMessage, not settled yet

	receiver bool
	answered bool // the peer's attach came
	closing  bool // we sent a detach
	refused  bool // the peer's attach had no terminus: its detach follows
	manual   bool // receiver: this side settles with Receiver.Settle
}

// LinkOptions are the settings of a link. nil is valid.
type LinkOptions struct {
	// Properties are the attach properties (symbol keys). Default:
	// none.
	Properties map[string]any
	// Settled makes a sender send its messages settled (snd-settle-mode
	// settled: Send returns once written) and a receiver ask for them
	// settled. Default: unsettled, each message waits for its outcome.
	Settled bool
	// Credit is a receiver's link credit, given again when half is
	// used. Default: 10.
	Credit uint32
	// OnDetach is called, on the connection's reader (it must not
	// block), when the peer detaches the link, with a *LinkError. It is
	// not called for the end of the connection (Conn.Done) or for a
	// detach this side began.
	OnDetach func(err error)
}

// Sender is a sender link.
type Sender struct {
	l       *link
	settled bool
}

// Receiver is a receiver link; its messages go to the function given
// to NewReceiver or NewManualReceiver.
type Receiver struct{ l *link }

// Outcome is how Receiver.Settle settles a delivery (part 3, 3.4).
type Outcome int

const (
	// Accepted: the message was taken.
	Accepted Outcome = iota
	// Rejected: the message is invalid and must not be delivered again.
	Rejected
	// Released: the message was not taken; the peer may deliver it
	// again.
	Released
)

// failLocked ends l with err (c.mu held).
func (l *link) failLocked(err error) {
	if l.err != nil {
		return
	}
	l.err = err
	for id, d := range l.s.unsettled {
		if d.l == l {
			delete(l.s.unsettled, id)
			d.done <- result{err: err}
		}
	}
	l.s.c.cond.Broadcast()
}

// NewSender attaches a sender to the node address and waits for the
// peer's attach, within ctx. A refused attach is a *LinkError with the
// peer's error.
func (s *Session) NewSender(ctx context.Context, address string, opts *LinkOptions) (*Sender, error) {
	if opts == nil {
		opts = &LinkOptions{}
	}
	l, err := s.attach(ctx, address, false, opts)
	if err != nil {
		return nil, err
	}
	return &Sender{l: l, settled: opts.Settled}, nil
}

// NewReceiver attaches a receiver from the node address, gives it
// credit, and calls fn (on the connection's reader: it must not block
// and must not keep payload, which is reused) with each message's
// payload; deliveries the peer did not settle are accepted once fn
// returns.
func (s *Session) NewReceiver(ctx context.Context, address string, opts *LinkOptions, fn func(payload []byte)) (*Receiver, error) {
	return s.newReceiver(ctx, address, opts, false, func(payload []byte, _ uint32, _ bool) { fn(payload) })
}

// NewManualReceiver is NewReceiver for deliveries this side settles
// itself: fn (on the connection's reader: it must not block and must
// not keep payload, which is reused) gets each message's payload, its
// delivery id and whether the peer sent it settled; settle each
// unsettled one with Settle. Credit is given again only as deliveries
// are settled, so at most opts.Credit wait for their settlement at
// once (with Credit 1, one message at a time).
func (s *Session) NewManualReceiver(ctx context.Context, address string, opts *LinkOptions,
	fn func(payload []byte, id uint32, settled bool)) (*Receiver, error) {
	return s.newReceiver(ctx, address, opts, true, fn)
}

// newReceiver attaches a receiver and gives it its credit.
func (s *Session) newReceiver(ctx context.Context, address string, opts *LinkOptions, manual bool,
	fn func(payload []byte, id uint32, settled bool)) (*Receiver, error) {
	if opts == nil {
		opts = &LinkOptions{}
	}
	l, err := s.attach(ctx, address, true, opts, func(l *link) {
		l.onMessage, l.manual = fn, manual
		l.maxCredit = opts.Credit
		if l.maxCredit == 0 {
			l.maxCredit = 10
		}
	})
	if err != nil {
		return nil, err
	}
	s.c.mu.Lock()
	l.credit = l.maxCredit
	f := s.flowLocked(l)
	s.c.mu.Unlock()
	if err := s.c.write(frames.TypeAMQP, s.ch, f, nil); err != nil {
		return nil, err
	}
	return &Receiver{l: l}, nil
}

// refillLocked gives l its credit again once half of it is used
// (deliveries waiting for their settlement count as used): the flow to
// send, or nil (c.mu held).
func (l *link) refillLocked() *frames.Flow {
	if l.credit+l.outstanding > l.maxCredit/2 || l.outstanding >= l.maxCredit {
		return nil
	}
	l.credit = l.maxCredit - l.outstanding
	return l.s.flowLocked(l)
}

// Settle settles the delivery id of a receiver made by
// NewManualReceiver with outcome o (a disposition), and gives its
// credit back. Errors: the link's end (a *LinkError, ErrClosed) or the
// connection's.
func (r *Receiver) Settle(id uint32, o Outcome) error {
	l := r.l
	s := l.s
	c := s.c
	var st frames.DeliveryState
	switch o {
	case Rejected:
		st = &frames.Rejected{}
	case Released:
		st = &frames.Released{}
	default:
		st = &frames.Accepted{}
	}
	c.mu.Lock()
	if l.err != nil {
		err := l.err
		c.mu.Unlock()
		return err
	}
	if l.outstanding > 0 {
		l.outstanding--
	}
	f := l.refillLocked()
	c.mu.Unlock()
	if err := c.write(frames.TypeAMQP, s.ch, &frames.Disposition{Role: frames.RoleReceiver, First: id, Settled: true,
		State: st}, nil); err != nil {
		return err
	}
	return c.flow(s, f)
}

// attach attaches a link and waits for the peer's attach.
func (s *Session) attach(ctx context.Context, address string, receiver bool, opts *LinkOptions, setup ...func(*link)) (*link, error) {
	c := s.c
	c.mu.Lock()
	if s.err != nil {
		err := s.err
		c.mu.Unlock()
		return nil, err
	}
	h := uint32(len(s.links))
	for i, x := range s.links {
		if x == nil {
			h = uint32(i)
			break
		}
	}
	if h > s.handleMax {
		c.mu.Unlock()
		return nil, fmt.Errorf("amqp client: the session has its %d links already", s.handleMax+1)
	}
	s.names++
	name := "l" + strconv.FormatUint(uint64(s.ch), 36) + "-" + strconv.FormatUint(s.names, 36)
	l := &link{s: s, handle: h, receiver: receiver, onDetach: opts.OnDetach}
	for _, fn := range setup {
		fn(l)
	}
	if int(h) == len(s.links) {
		s.links = append(s.links, l)
	} else {
		s.links[h] = l
	}
	s.attaching[name] = l
	c.mu.Unlock()

	a := &frames.Attach{Name: name, Handle: h, Role: receiver, SndSettleMode: frames.SndMixed, RcvSettleMode: frames.RcvFirst}
	if opts.Settled {
		a.SndSettleMode = frames.SndSettled
	} else if !receiver {
		a.SndSettleMode = frames.SndUnsettled
	}
	if receiver {
		a.Source, a.Target = &frames.Source{Address: address}, &frames.Target{}
	} else {
		zero := uint32(0)
		a.Source, a.Target, a.InitialDeliveryCount = &frames.Source{}, &frames.Target{Address: address}, &zero
	}
	if len(opts.Properties) > 0 {
		a.Properties = make(map[encoding.Symbol]any, len(opts.Properties))
		for k, v := range opts.Properties {
			a.Properties[encoding.Symbol(k)] = v
		}
	}
	if err := c.write(frames.TypeAMQP, s.ch, a, nil); err != nil {
		return nil, err
	}
	// A refused attach (no terminus) is followed by the peer's detach,
	// with its reason.
	if err := c.waitFor(ctx, func() bool { return (l.answered && !l.refused) || l.err != nil }); err != nil {
		l.detach(context.Background(), false) // when the attach comes, it is detached
		return nil, err
	}
	c.mu.Lock()
	err := l.err
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return l, nil
}

// attached handles the peer's attach, the answer to ours.
func (s *Session) attached(f *frames.Attach) error {
	c := s.c
	c.mu.Lock()
	l := s.attaching[f.Name]
	if l == nil {
		c.mu.Unlock()
		return &ConnError{Err: fmt.Errorf("an attach of %q, which this side did not attach", f.Name)}
	}
	delete(s.attaching, f.Name)
	s.byRemote.set(f.Handle, l)
	if (l.receiver && f.Source == nil) || (!l.receiver && f.Target == nil) {
		l.refused = true
	}
	if l.receiver && f.InitialDeliveryCount != nil {
		l.deliveryCount = *f.InitialDeliveryCount
	}
	abandoned := l.closing && !l.refused
	l.answered = true
	c.cond.Broadcast()
	c.mu.Unlock()
	if abandoned {
		// Given up on while attaching: detach it now.
		return c.write(frames.TypeAMQP, s.ch, &frames.Detach{Handle: l.handle, Closed: true}, nil)
	}
	return nil
}

// detached handles the peer's detach: the answer to ours, or its own.
func (s *Session) detached(f *frames.Detach) error {
	c := s.c
	c.mu.Lock()
	l := s.byRemote.get(f.Handle)
	if l == nil {
		c.mu.Unlock()
		return nil
	}
	s.byRemote.delete(f.Handle)
	if int(l.handle) < len(s.links) && s.links[l.handle] == l {
		s.links[l.handle] = nil
	}
	ours := l.closing
	var err error = ErrClosed
	if !ours {
		err = &LinkError{Remote: remoteErr(f.Error)}
	}
	l.failLocked(err)
	c.cond.Broadcast()
	c.mu.Unlock()
	if ours {
		return nil
	}
	werr := c.write(frames.TypeAMQP, s.ch, &frames.Detach{Handle: l.handle, Closed: true}, nil)
	if l.onDetach != nil && !l.refused {
		l.onDetach(err)
	}
	return werr
}

// detach sends our detach and, with wait, waits for the peer's within
// ctx.
func (l *link) detach(ctx context.Context, wait bool) error {
	c := l.s.c
	c.mu.Lock()
	if l.err != nil || l.closing {
		c.mu.Unlock()
		return nil
	}
	l.closing = true
	if !l.answered {
		c.mu.Unlock()
		return nil // attached() detaches it when the peer's attach comes
	}
	c.mu.Unlock()
	if err := c.write(frames.TypeAMQP, l.s.ch, &frames.Detach{Handle: l.handle, Closed: true}, nil); err != nil || !wait {
		return err
	}
	return c.waitFor(ctx, func() bool { return l.err != nil })
}

// Close detaches the sender and waits for the peer's detach within
// ctx. Deliveries waiting for their outcome end with ErrClosed.
func (snd *Sender) Close(ctx context.Context) error { return snd.l.detach(ctx, true) }

// Close detaches the receiver and waits for the peer's detach within
// ctx.
func (r *Receiver) Close(ctx context.Context) error { return r.l.detach(ctx, true) }

// delivery is a message sent and waiting for its outcome.
type delivery struct {
	l    *link
	done chan result // buffered: the reader never waits
}

// result is a delivery's end: the peer's outcome, or the end of the
// link, session or connection.
type result struct {
	state frames.DeliveryState
	err   error
}

// frameOverhead bounds a transfer frame's header and performative.
const frameOverhead = 64

// Send sends payload (an encoded message) and, unless the sender sends
// settled, waits for the peer's outcome: nil for accepted, a
// *RejectedError for rejected or released, a *LinkError when the peer
// detached the link, the connection's error when it ended, ctx's when
// it is done (the message may have been delivered then). It waits for
// link credit and session window first.
func (snd *Sender) Send(ctx context.Context, payload []byte) error {
	l := snd.l
	s := l.s
	c := s.c
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	per := int(c.maxFrame) - frameOverhead
	n := max(1, (len(payload)+per-1)/per)
	c.wmu.Lock()
	c.mu.Lock()
	for l.err == nil && ctx.Err() == nil && (l.credit == 0 || s.remoteIncomingWindow < uint32(n)) {
		c.wmu.Unlock()
		c.cond.Wait()
		c.mu.Unlock()
		c.wmu.Lock()
		c.mu.Lock()
	}
	if l.err != nil || ctx.Err() != nil {
		err := l.err
		c.mu.Unlock()
		c.wmu.Unlock()
		if err == nil {
			err = ctx.Err()
		}
		return err
	}
	id := s.nextDeliveryID
	s.nextDeliveryID++
	l.credit--
	l.deliveryCount++
	s.nextOutgoingID += uint32(n)
	s.remoteIncomingWindow -= uint32(n)
	var d *delivery
	if !snd.settled {
		d = &delivery{l: l, done: make(chan result, 1)}
		s.unsettled[id] = d
	}
	c.mu.Unlock()

	var tag [4]byte
	binary.BigEndian.PutUint32(tag[:], id)
	format := uint32(0)
	settled := snd.settled
	b := c.wbuf[:0]
	var err error
	for i := 0; i < n; i++ {
		part := payload[min(i*per, len(payload)):min((i+1)*per, len(payload))]
		t := &frames.Transfer{Handle: l.handle, More: i < n-1}
		if i == 0 {
			t.DeliveryID, t.DeliveryTag, t.MessageFormat, t.Settled = &id, tag[:], &format, &settled
		}
		if b, err = frames.Append(b, frames.TypeAMQP, s.ch, t, part); err != nil {
			break
		}
	}
	if err == nil {
		err = c.flushLocked(b)
	}
	c.wmu.Unlock()
	if err != nil || d == nil {
		if err != nil && d != nil {
			c.mu.Lock()
			delete(s.unsettled, id)
			c.mu.Unlock()
		}
		return err
	}
	select {
	case r := <-d.done:
		if r.err != nil {
			return r.err
		}
		return outcome(r.state)
	case <-ctx.Done():
		c.mu.Lock()
		delete(s.unsettled, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// outcome is a delivery's terminal state as Send returns it.
func outcome(st frames.DeliveryState) error {
	switch st := st.(type) {
	case *frames.Accepted:
		return nil
	case *frames.Rejected:
		return &RejectedError{Remote: remoteErr(st.Error)}
	case *frames.Released, *frames.Modified:
		return &RejectedError{Released: true}
	case nil:
		return errors.New("amqp client: the peer settled the message with no outcome")
	}
	return fmt.Errorf("amqp client: the peer settled the message with %T", st)
}

// transfer handles a transfer to one of our receivers.
func (s *Session) transfer(f *frames.Transfer) error {
	c := s.c
	c.mu.Lock()
	s.nextIncomingID++
	s.incomingWindow--
	var sflow *frames.Flow
	if s.incomingWindow < sessionWindow/2 {
		s.incomingWindow = sessionWindow
		sflow = s.flowLocked(nil)
	}
	l := s.byRemote.get(f.Handle)
	if l == nil || !l.receiver {
		c.mu.Unlock()
		return &ConnError{Err: fmt.Errorf("a transfer on handle %d, which is no receiver of ours", f.Handle)}
	}
	if f.DeliveryID != nil {
		l.partialID = *f.DeliveryID
	}
	if f.More || f.Aborted {
		l.partial = append(l.partial, f.Payload...)
		if f.Aborted {
			l.partial = nil
		}
		c.mu.Unlock()
		return c.flow(s, sflow)
	}
	// A delivery in one frame is handed over as the reader's buffer
	// (onMessage keeps no payload); one in several is gathered in
	// l.partial, which is let go once handed over: the receivers of a
	// fleet get a message now and then, and a buffer kept for each
	// would outweigh the link.
	payload := f.Payload
	if len(l.partial) > 0 {
		payload = append(l.partial, f.Payload...)
		l.partial = nil
	}
	l.deliveryCount++
	l.credit--
	settled := f.Settled != nil && *f.Settled
	if l.manual && !settled {
		l.outstanding++
	}
	lflow := l.refillLocked()
	id, fn := l.partialID, l.onMessage
	c.mu.Unlock()
	if fn != nil {
		fn(payload, id, settled)
	}
	if !settled && !l.manual {
		if err := c.write(frames.TypeAMQP, s.ch, &frames.Disposition{Role: frames.RoleReceiver, First: id, Settled: true,
			State: &frames.Accepted{}}, nil); err != nil {
			return err
		}
	}
	if err := c.flow(s, sflow); err != nil {
		return err
	}
	return c.flow(s, lflow)
}

// flow writes f unless it is nil.
func (c *Conn) flow(s *Session, f *frames.Flow) error {
	if f == nil {
		return nil
	}
	return c.write(frames.TypeAMQP, s.ch, f, nil)
}
