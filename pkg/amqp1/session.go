package amqp1

import (
	"errors"
	"fmt"
	"sync"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// session is one AMQP session. Its mutex guards the session's state and
// the state of all its links and deliveries. Nothing blocks while it is
// held: frames are queued on the writer, which never blocks.
type session struct {
	c        *Conn
	localCh  uint16
	remoteCh uint16

	mu     sync.Mutex
	notify chan struct{} // closed and replaced on a state change after watch took it
	// watched: someone took notify (watch) since it was made. A change
	// nobody waits for (every transfer of a link that HandleDeliveries
	// serves) then costs no channel.
	watched bool

	nextOutgoingID       uint32 // transfer-id of our next transfer frame
	remoteIncomingWindow uint32
	nextIncomingID       uint32
	incomingWindow       uint32
	nextDeliveryID       uint32 // delivery-id of our next delivery
	peerHandleMax        uint32

	byInput      map[uint32]*Link      // by the peer's handle
	byOutput     map[uint32]*Link      // by our handle
	unsettledIn  map[uint32]*Delivery  // made with the first unsettled delivery in
	unsettledOut map[uint32]*sendState // made with the first unsettled delivery out

	endSent bool
	err     error // set once the session is over for its links

	// Accepted deliveries whose settled disposition is not sent yet:
	// delivery-ids accFirst through accLast. Consecutive ones go out as
	// one disposition frame, before the session's next frame or the
	// writer's next write, whichever comes first (accQueued: the
	// writer will call flushDeferred).
	accFirst, accLast     uint32
	accPending, accQueued bool
}

// accept settles delivery id as accepted, merging it with the pending
// range when it follows it. Call with mu held.
func (s *session) accept(id uint32) {
	if s.accPending && id == s.accLast+1 {
		s.accLast = id
		return
	}
	s.flushAccepted()
	s.accFirst, s.accLast, s.accPending = id, id, true
	if !s.accQueued {
		s.accQueued = true
		s.c.w.later(s)
	}
}

// flushAccepted queues the pending accepted range. Call with mu held.
func (s *session) flushAccepted() {
	if !s.accPending {
		return
	}
	s.accPending = false
	d := &frames.Disposition{Role: frames.RoleReceiver, First: s.accFirst, Settled: true, State: &frames.Accepted{}}
	if s.accLast != s.accFirst {
		last := s.accLast
		d.Last = &last
	}
	_ = s.c.w.enqueue(s.localCh, frames.TypeAMQP, d, nil, false)
}

// flushDeferred is the writer's call before a write.
func (s *session) flushDeferred() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accQueued = false
	s.flushAccepted()
}

func newSession(c *Conn, local, remote uint16, b *frames.Begin) *session {
	return &session{
		c: c, localCh: local, remoteCh: remote,
		notify:               make(chan struct{}),
		remoteIncomingWindow: b.IncomingWindow,
		nextIncomingID:       b.NextOutgoingID,
		incomingWindow:       sessionWindow,
		peerHandleMax:        b.HandleMax,
		byInput:              map[uint32]*Link{},
		byOutput:             map[uint32]*Link{},
	}
}

// broadcast wakes everyone waiting on the session. Call with mu held.
func (s *session) broadcast() {
	if !s.watched {
		return
	}
	close(s.notify)
	s.notify, s.watched = make(chan struct{}), false
}

// watch returns the channel the next broadcast closes. Call with mu
// held.
func (s *session) watch() chan struct{} {
	s.watched = true
	return s.notify
}

// send queues a frame on the session's channel, after the accepted
// dispositions still held back. Call with mu held.
func (s *session) send(body frames.Body, payload []byte) {
	s.flushAccepted()
	_ = s.c.w.enqueue(s.localCh, frames.TypeAMQP, body, payload, false)
}

// sendFlow sends a flow frame with the session state and, when l is not
// nil, l's link state. Call with mu held.
func (s *session) sendFlow(l *Link, drain bool) {
	next := s.nextIncomingID
	f := &frames.Flow{
		NextIncomingID: &next,
		IncomingWindow: s.incomingWindow,
		NextOutgoingID: s.nextOutgoingID,
		OutgoingWindow: 1<<32 - 1,
		Drain:          drain,
	}
	if l != nil {
		h := l.outHandle
		f.Handle = &h
		var count, credit uint32
		if l.role == RoleReceiver {
			count, credit = l.deliveryCount, l.credit
		} else {
			count, credit = l.sendDeliveryCount, l.sendCredit
		}
		f.DeliveryCount, f.LinkCredit = &count, &credit
	}
	s.send(f, nil)
}

// handle processes a frame for this session; it runs on the read loop.
func (s *session) handle(body frames.Body) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end, ok := body.(*frames.End); ok {
		s.onEnd(end)
		return
	}
	if s.endSent {
		return // waiting for the peer's end; frames in flight are dropped
	}
	switch b := body.(type) {
	case *frames.Attach:
		s.onAttach(b)
	case *frames.Flow:
		s.onFlow(b)
	case *frames.Transfer:
		s.onTransfer(b)
	case *frames.Disposition:
		s.onDisposition(b)
	case *frames.Detach:
		s.onDetach(b)
	default:
		s.c.protocolError(ErrCondIllegalState, fmt.Errorf("unexpected %T in a session", body))
	}
}

// endWithError ends the session because the peer broke a session rule.
// Call with mu held.
func (s *session) endWithError(cond ErrCond, cause error) {
	if s.endSent {
		return
	}
	e := &Error{Condition: cond, Description: cause.Error()}
	s.c.log.Debug("amqp session error", "condition", cond, "err", cause)
	s.send(&frames.End{Error: e.toFrame()}, nil)
	s.endSent = true
	s.fail(&SessionError{LocalErr: e})
}

func (s *session) onEnd(end *frames.End) {
	if !s.endSent {
		s.send(&frames.End{}, nil)
		s.endSent = true
		s.fail(&SessionError{RemoteErr: errorFromFrame(end.Error)})
	}
	s.c.removeSession(s)
}

// fail ends the session for its users with err. Call with mu held.
func (s *session) fail(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	for _, l := range s.byInput {
		l.fail(err)
	}
	for _, l := range s.byOutput {
		l.fail(err)
	}
	for id, st := range s.unsettledOut {
		st.resolve(err)
		delete(s.unsettledOut, id)
	}
	s.broadcast()
}

func (s *session) onFlow(b *frames.Flow) {
	next := uint32(0) // our initial next-outgoing-id
	if b.NextIncomingID != nil {
		next = *b.NextIncomingID
	}
	s.remoteIncomingWindow = next + b.IncomingWindow - s.nextOutgoingID
	if int32(s.remoteIncomingWindow) < 0 {
		s.remoteIncomingWindow = 0
	}
	defer s.broadcast()
	if b.Handle == nil {
		if b.Echo {
			s.sendFlow(nil, false)
		}
		return
	}
	l := s.byInput[*b.Handle]
	if l == nil {
		s.endWithError(ErrCondUnattachedHandle, fmt.Errorf("flow on handle %d, which is not attached", *b.Handle))
		return
	}
	if l.detachSent || l.state == linkDetached {
		return
	}
	attached := l.state == linkAttached // a peer may grant credit before our attach answer
	if l.role == RoleSender {
		if b.LinkCredit != nil {
			rcvCount := uint32(0) // our initial delivery-count
			if b.DeliveryCount != nil {
				rcvCount = *b.DeliveryCount
			}
			l.sendCredit = rcvCount + *b.LinkCredit - l.sendDeliveryCount
			if int32(l.sendCredit) < 0 {
				l.sendCredit = 0
			}
		}
		l.drain = b.Drain
		if attached && l.maybeDrain() {
			return // the drain answer carries our state, echo or not
		}
	} else if b.DeliveryCount != nil && attached {
		// the peer's sender advanced its delivery-count (it drained or
		// gave up credit): its credit is gone.
		if adv := *b.DeliveryCount - l.deliveryCount; int32(adv) > 0 {
			l.deliveryCount = *b.DeliveryCount
			l.credit -= min(adv, l.credit)
			l.topUpCredit()
		}
	}
	if b.Echo && attached {
		s.sendFlow(l, false)
	}
}

func (s *session) onTransfer(b *frames.Transfer) {
	if s.incomingWindow == 0 {
		s.endWithError(ErrCondWindowViolation, errors.New("transfer beyond the session's incoming window"))
		return
	}
	s.incomingWindow--
	s.nextIncomingID++
	if s.incomingWindow < sessionWindow/2 {
		s.incomingWindow = sessionWindow
		s.sendFlow(nil, false)
	}
	l := s.byInput[b.Handle]
	if l == nil {
		s.endWithError(ErrCondUnattachedHandle, fmt.Errorf("transfer on handle %d, which is not attached", b.Handle))
		return
	}
	if l.detachSent || l.err != nil {
		return
	}
	if l.state != linkAttached {
		s.endWithError(ErrCondIllegalState, fmt.Errorf("transfer on handle %d before the link was attached", b.Handle))
		return
	}
	if l.role != RoleReceiver {
		l.detachWithError(ErrCondIllegalState, "transfer on a link where the peer is the receiver")
		return
	}
	l.onTransfer(b)
}

func (s *session) onDisposition(b *frames.Disposition) {
	last := b.First
	if b.Last != nil {
		last = *b.Last
	}
	if b.Role == frames.RoleReceiver {
		// the peer received deliveries we sent
		forRange(s.unsettledOut, b.First, last, func(id uint32, st *sendState) {
			switch b.State.(type) {
			case nil, *frames.Received:
				if !b.Settled {
					return // not an outcome yet
				}
			}
			if st.l.rcvMode == frames.RcvSecond && !b.Settled {
				s.send(&frames.Disposition{Role: frames.RoleSender, First: id, Settled: true, State: b.State}, nil)
			}
			st.resolve(outcomeError(b.State))
			delete(s.unsettledOut, id)
		})
		return
	}
	// the peer, as sender, settles deliveries it sent us
	if !b.Settled {
		return
	}
	forRange(s.unsettledIn, b.First, last, func(id uint32, d *Delivery) {
		d.settled = true
		delete(s.unsettledIn, id)
	})
}

// forRange calls fn for the entries of m whose key lies in the serial
// number range [first, last], touching at most len(m) or last-first+1
// keys, whichever is fewer, so a huge range costs nothing.
func forRange[V any](m map[uint32]V, first, last uint32, fn func(uint32, V)) {
	n := last - first
	if uint64(n) < uint64(len(m)) {
		for i := uint64(0); i <= uint64(n); i++ {
			id := first + uint32(i)
			if v, ok := m[id]; ok {
				fn(id, v)
			}
		}
		return
	}
	for id, v := range m {
		if id-first <= n {
			fn(id, v)
		}
	}
}

// outcomeError maps the outcome of a delivery we sent to Send's result.
func outcomeError(state frames.DeliveryState) error {
	switch st := state.(type) {
	case nil, *frames.Accepted, *frames.Received:
		return nil
	case *frames.Rejected:
		return &RejectedError{RemoteErr: errorFromFrame(st.Error)}
	case *frames.Released:
		return ErrReleased
	case *frames.Modified:
		return &ModifiedError{DeliveryFailed: st.DeliveryFailed, UndeliverableHere: st.UndeliverableHere,
			MessageAnnotations: stringKeys(st.MessageAnnotations)}
	}
	return fmt.Errorf("amqp1: delivery settled with unsupported state %v", state)
}
