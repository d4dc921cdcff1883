package amqp1

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Receive returns the next message on a link where the peer is the
// sender, waiting until one arrives or ctx is done. Messages larger than
// one frame are reassembled. A message whose sections cannot be decoded
// is rejected with amqp:decode-error and skipped. Receiving frees link
// credit, which is granted again in batches (ConnOptions.LinkCredit).
//
// It returns ctx.Err() when ctx is done, ErrWrongRole on a link where
// the peer receives, and after the link ended a *LinkError, *SessionError
// or *ConnError; deliveries still buffered at that point are dropped.
func (l *Link) Receive(ctx context.Context) (*Delivery, error) {
	if l.role != RoleReceiver {
		return nil, ErrWrongRole
	}
	s := l.s
	for {
		s.mu.Lock()
		if l.onDelivery != nil {
			s.mu.Unlock()
			return nil, errHandled
		}
		if l.err != nil {
			err := l.err
			s.mu.Unlock()
			return nil, err
		}
		if len(l.queue) > 0 {
			d := l.pop()
			s.mu.Unlock()
			if d.decode() {
				return d, nil
			}
			continue
		}
		ch := s.watch()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errHandled = errors.New("amqp1: the link's deliveries go to the function given to HandleDeliveries")

// HandleDeliveries makes the link give its messages to fn instead of
// Receive, in the order they arrive, on a goroutine that runs only
// while deliveries are waiting: a link that receives nothing costs no
// goroutine. fn receives each message decoded, as Receive returns it
// (undecodable ones are rejected and skipped); a slow fn holds back
// credit as a slow Receive does. Call it at most once, on a link where
// the peer is the sender, before any Receive; Receive then returns an
// error. Deliveries still waiting when the link ends are dropped.
func (l *Link) HandleDeliveries(fn func(*Delivery)) error {
	if l.role != RoleReceiver {
		return ErrWrongRole
	}
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.onDelivery != nil {
		return errors.New("amqp1: HandleDeliveries called twice on one link")
	}
	l.onDelivery = fn
	l.startDrain()
	return nil
}

// startDrain starts the goroutine that hands queued deliveries to the
// link's handler unless it runs already. Call with s.mu held.
func (l *Link) startDrain() {
	if l.onDelivery == nil || l.draining || l.err != nil || len(l.queue) == 0 {
		return
	}
	l.draining = true
	go l.handOver()
}

// handOver hands queued deliveries to the handler until none is left.
func (l *Link) handOver() {
	s := l.s
	for {
		s.mu.Lock()
		if l.err != nil || len(l.queue) == 0 {
			l.draining = false
			s.mu.Unlock()
			return
		}
		d := l.pop()
		s.mu.Unlock()
		if d.decode() {
			l.onDelivery(d)
		}
	}
}

// pop takes the first queued delivery and grants credit again when it
// is time. Call with s.mu held and the queue not empty.
func (l *Link) pop() *Delivery {
	d := l.queue[0]
	// Shift rather than reslice: a queue resliced from the front loses
	// capacity and reallocates every few deliveries. It holds at most
	// the credit window.
	n := copy(l.queue, l.queue[1:])
	l.queue[n] = nil
	l.queue = l.queue[:n]
	l.topUpCredit()
	return d
}

// decode decodes the delivery's message (its common shapes with
// decodeLite, the rest with go-amqp); it rejects the delivery with
// amqp:decode-error and reports false when it cannot.
func (d *Delivery) decode() bool {
	msg := new(amqp.Message)
	if !decodeLite(msg, d.Payload) {
		msg = new(amqp.Message)
		err := unmarshalMessage(msg, d.Payload)
		if err != nil {
			_ = d.Reject(&Error{Condition: ErrCondDecodeError, Description: err.Error()})
			return false
		}
	}
	msg.DeliveryTag = d.tag
	msg.Format = d.format
	d.Message = msg
	return true
}

// unmarshalMessage decodes with go-amqp, turning a panic on hostile
// input into an error.
func unmarshalMessage(msg *amqp.Message, payload []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("amqp1: decoding message: %v", r)
		}
	}()
	return msg.UnmarshalBinary(payload)
}

// topUpCredit grants credit again once the credit still outstanding plus
// the deliveries waiting for Receive fall to half the window. Call with
// s.mu held.
func (l *Link) topUpCredit() {
	if l.state != linkAttached || l.detachSent {
		return
	}
	held := l.credit + uint32(len(l.queue))
	if held > l.window/2 {
		return
	}
	l.credit = l.window - uint32(len(l.queue))
	l.s.sendFlow(l, false)
}

// onTransfer adds a transfer frame to the delivery being assembled. Call
// with s.mu held.
func (l *Link) onTransfer(b *frames.Transfer) {
	s := l.s
	d := l.partial
	if d == nil {
		if b.DeliveryID == nil {
			l.detachWithError(ErrCondInvalidField, "first transfer of a delivery without delivery-id")
			return
		}
		if l.credit == 0 {
			l.detachWithError(ErrCondTransferLimitExceeded, "transfer without link credit")
			return
		}
		l.credit--
		l.deliveryCount++
		d = &Delivery{l: l, id: *b.DeliveryID, tag: b.DeliveryTag}
		if b.MessageFormat != nil {
			d.format = *b.MessageFormat
		}
		d.settled = l.sndMode == frames.SndSettled
		l.partial = d
	}
	if b.Settled != nil && *b.Settled {
		d.settled = true
	}
	if b.Aborted {
		l.partial = nil
		return
	}
	if uint64(len(d.Payload))+uint64(len(b.Payload)) > l.maxMessage {
		l.detachWithError(ErrCondMessageSizeExceeded, fmt.Sprintf("message larger than %d bytes", l.maxMessage))
		return
	}
	if d.Payload == nil && !b.More {
		d.Payload = b.Payload // the frame buffer is ours alone
	} else {
		d.Payload = append(d.Payload, b.Payload...)
	}
	if b.More {
		return
	}
	l.partial = nil
	if !d.settled {
		if s.unsettledIn == nil {
			s.unsettledIn = map[uint32]*Delivery{}
		}
		s.unsettledIn[d.id] = d
	}
	l.queue = append(l.queue, d)
	l.startDrain()
	s.broadcast()
}
