package amqp1

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// sendState waits for the outcome of a delivery we sent unsettled.
type sendState struct {
	l    *Link
	done chan struct{}
	err  error
}

// resolve records the outcome. Call with s.mu held.
func (st *sendState) resolve(err error) {
	select {
	case <-st.done:
	default:
		st.err = err
		close(st.done)
	}
}

// Send sends msg on a link where the peer is the receiver. It waits for
// link credit and session window, splits the message into transfer frames
// that fit the peer's max-frame-size and, unless the link's sender settle
// mode is "settled" (then it returns once the message is queued for
// writing), waits for the peer's outcome: accepted returns nil, rejected
// a *RejectedError, released ErrReleased, modified a *ModifiedError. If
// the peer's receiver settle mode is "second", Send settles after the
// peer's outcome as the spec requires. msg.DeliveryTag is used when set,
// otherwise a tag is generated.
//
// Concurrent Sends on one link transfer one message at a time and then
// wait for their outcomes side by side. It returns ctx.Err() when ctx
// is done (the message may have been sent), ErrWrongRole on a link
// where the peer sends, ErrMessageTooLarge, and after the link ended a
// *LinkError, *SessionError or *ConnError.
func (l *Link) Send(ctx context.Context, msg *amqp.Message) error {
	o, err := l.Start(ctx, msg)
	if err != nil {
		return err
	}
	return o.Wait(ctx)
}

// Outcome is the outcome to come of a delivery Start sent.
type Outcome struct{ st *sendState }

// Wait waits for the peer's outcome, with the results Send documents.
// On a settled link, and on a nil *Outcome, it returns nil at once.
func (o *Outcome) Wait(ctx context.Context) error {
	if o == nil || o.st == nil {
		return nil
	}
	select {
	case <-o.st.done:
		return o.st.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Start sends msg as Send does but returns once the message is queued
// for writing, with its Outcome to wait for later: a sender keeps
// several deliveries in flight this way instead of one round trip per
// message. The errors before the transfer are Send's.
func (l *Link) Start(ctx context.Context, msg *amqp.Message) (*Outcome, error) {
	if l.role != RoleSender {
		return nil, ErrWrongRole
	}
	payload, err := marshalMessage(msg)
	if err != nil {
		return nil, err
	}
	if l.peerMaxMsg > 0 && uint64(len(payload)) > l.peerMaxMsg {
		return nil, fmt.Errorf("%w (%d > %d bytes)", ErrMessageTooLarge, len(payload), l.peerMaxMsg)
	}
	select {
	case l.sendSem <- struct{}{}:
	case <-l.done:
		return nil, l.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.sendSem }()
	if err := l.s.c.w.waitBelow(ctx, writeHighWater); err != nil {
		return nil, err
	}

	s := l.s
	s.mu.Lock()
	l.sendWaiters++
	st, err := l.transfer(ctx, msg, payload)
	l.sendWaiters--
	l.maybeDrain()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &Outcome{st: st}, nil
}

// wait releases s.mu until the session state changes or ctx is done.
// Call with s.mu held; it is held again on return.
func (s *session) wait(ctx context.Context) error {
	ch := s.watch()
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// transfer sends one delivery. Call with s.mu held. It returns the state
// to wait on for an unsettled delivery, nil for a settled one.
func (l *Link) transfer(ctx context.Context, msg *amqp.Message, payload []byte) (*sendState, error) {
	s := l.s
	for l.err == nil && (l.state != linkAttached || l.sendCredit == 0) {
		if err := s.wait(ctx); err != nil {
			return nil, err
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	id := s.nextDeliveryID
	s.nextDeliveryID++
	l.sendCredit--
	l.sendDeliveryCount++
	settled := l.sndMode == frames.SndSettled
	var st *sendState
	if !settled {
		st = &sendState{l: l, done: make(chan struct{})}
		if s.unsettledOut == nil {
			s.unsettledOut = map[uint32]*sendState{}
		}
		s.unsettledOut[id] = st
	}
	tag := msg.DeliveryTag
	if len(tag) == 0 {
		l.tagCounter++
		tag = binary.BigEndian.AppendUint64(nil, l.tagCounter)
	}
	format := msg.Format
	maxBody := int(max(s.c.peerMaxFrame, minMaxFrameSize)) - frames.HeaderSize
	rest := payload
	for first := true; first || len(rest) > 0; first = false {
		for l.err == nil && s.remoteIncomingWindow == 0 {
			if err := s.wait(ctx); err != nil {
				delete(s.unsettledOut, id)
				if !first && l.err == nil {
					// half a delivery is on the wire; the link cannot carry another
					l.detachWithError(ErrCondDetachForced, "send abandoned in the middle of a delivery")
				}
				return nil, err
			}
		}
		if l.err != nil {
			delete(s.unsettledOut, id)
			return nil, l.err
		}
		t := &frames.Transfer{Handle: l.outHandle}
		if first {
			t.DeliveryID, t.DeliveryTag, t.MessageFormat, t.Settled = &id, tag, &format, &settled
		}
		chunk := rest
		// a transfer performative takes well under 64 bytes plus its tag
		if len(rest)+64+len(tag) > maxBody {
			t.More = true
			perf, err := frames.Append(nil, frames.TypeAMQP, 0, t, nil)
			if err != nil {
				return nil, err
			}
			room := maxBody - (len(perf) - frames.HeaderSize)
			if len(rest) <= room {
				t.More = false
			} else {
				chunk = rest[:room]
			}
		}
		s.send(t, chunk)
		s.nextOutgoingID++
		s.remoteIncomingWindow--
		rest = rest[len(chunk):]
	}
	return st, nil
}

// maybeDrain answers a drain request once no Send is in progress: the
// remaining credit is used up by advancing the delivery-count. It
// reports whether it sent a flow. Call with s.mu held.
func (l *Link) maybeDrain() bool {
	if !l.drain || l.sendWaiters > 0 || l.state != linkAttached || l.detachSent {
		return false
	}
	l.sendDeliveryCount += l.sendCredit
	l.sendCredit = 0
	l.drain = false
	l.s.sendFlow(l, true)
	return true
}

// marshalMessage encodes with go-amqp, turning a panic into an error.
func marshalMessage(msg *amqp.Message) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("amqp1: encoding message: %v", r)
		}
	}()
	if msg == nil {
		return nil, fmt.Errorf("amqp1: nil message")
	}
	return msg.MarshalBinary()
}

// Credit returns the link credit the peer has granted on a link where
// it receives and that this side has not used yet: how many messages
// Send could transfer now without waiting. It is 0 on a link where the
// peer sends and once the link ended.
func (l *Link) Credit() uint32 {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.role != RoleSender || l.err != nil || l.state != linkAttached {
		return 0
	}
	return l.sendCredit
}

// Changed returns a channel closed at the next change of the state of
// the link's session: a flow (new credit), a transfer, a disposition, a
// link attached or detached. A caller waiting for credit reads Credit,
// then waits on the channel it took before reading.
func (l *Link) Changed() <-chan struct{} {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.watch()
}
