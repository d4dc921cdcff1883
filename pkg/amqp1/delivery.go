package amqp1

import (
	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Delivery is one message received on a link where the peer is the
// sender. Settle it with exactly one of Accept, Reject, Release or
// Modify; all of them do nothing (and return nil) if the peer sent the
// delivery settled or it was settled already. They are safe for
// concurrent use and never block on the network.
type Delivery struct {
	// Message is the decoded message. Its DeliveryTag and Format are set
	// from the transfer.
	Message *amqp.Message
	// Payload is the raw message as received: the encoded sections.
	Payload []byte

	l        *Link
	id       uint32
	tag      []byte
	format   uint32
	settled  bool // guarded by l.s.mu
	answered bool // guarded by l.s.mu: our outcome was sent (receiver settle mode second)
}

// Link returns the link the delivery arrived on.
func (d *Delivery) Link() *Link { return d.l }

// ID returns the delivery-id the peer assigned.
func (d *Delivery) ID() uint32 { return d.id }

// Settled reports whether the delivery is settled: sent settled by the
// peer or settled by one of the methods below.
func (d *Delivery) Settled() bool {
	d.l.s.mu.Lock()
	defer d.l.s.mu.Unlock()
	return d.settled
}

// Accept settles the delivery with the accepted outcome. Once the session
// ended it returns the link's error (*SessionError or *ConnError).
func (d *Delivery) Accept() error { return d.settle(&frames.Accepted{}) }

// Reject settles the delivery with the rejected outcome carrying e (may
// be nil).
func (d *Delivery) Reject(e *Error) error { return d.settle(&frames.Rejected{Error: e.toFrame()}) }

// Release settles the delivery with the released outcome.
func (d *Delivery) Release() error { return d.settle(&frames.Released{}) }

// Modify settles the delivery with the modified outcome.
func (d *Delivery) Modify(deliveryFailed, undeliverableHere bool, annotations map[string]any) error {
	var ann map[encoding.Symbol]any
	if annotations != nil {
		ann = make(map[encoding.Symbol]any, len(annotations))
		for k, v := range annotations {
			ann[encoding.Symbol(k)] = v
		}
	}
	return d.settle(&frames.Modified{DeliveryFailed: deliveryFailed, UndeliverableHere: undeliverableHere, MessageAnnotations: ann})
}

func (d *Delivery) settle(state frames.DeliveryState) error {
	s := d.l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.settled || d.answered {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	second := d.l.rcvMode == frames.RcvSecond
	if _, ok := state.(*frames.Accepted); ok && !second {
		s.accept(d.id) // sent with the accepted deliveries that follow it
	} else {
		s.send(&frames.Disposition{Role: frames.RoleReceiver, First: d.id, Settled: !second, State: state}, nil)
	}
	if second {
		d.answered = true // settled when the peer settles
		return nil
	}
	d.settled = true
	delete(s.unsettledIn, d.id)
	return nil
}
