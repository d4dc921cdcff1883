package amqp1

import (
	"context"
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
		if l.err != nil {
			err := l.err
			s.mu.Unlock()
			return nil, err
		}
		if len(l.queue) > 0 {
			d := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.topUpCredit()
			s.mu.Unlock()
			msg := new(amqp.Message)
			if err := unmarshalMessage(msg, d.Payload); err != nil {
				_ = d.Reject(&Error{Condition: ErrCondDecodeError, Description: err.Error()})
				continue
			}
			msg.DeliveryTag = d.tag
			msg.Format = d.format
			d.Message = msg
			return d, nil
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
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
		s.unsettledIn[d.id] = d
	}
	l.queue = append(l.queue, d)
	s.broadcast()
}
