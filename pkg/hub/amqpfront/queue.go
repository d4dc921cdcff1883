package amqpfront

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// serviceQueue is one of the hub's service-bound queues (delivery
// feedback, file upload notifications) as a receiver link drains it:
// each take locks a message's worth of records, which the peer's
// accept completes and its release, reject or modify gives back.
type serviceQueue interface {
	// what names the queue in logs.
	what() string
	// contentType is the content type of its messages.
	contentType() string
	// added is closed when records become available (see
	// registry.Store.FeedbackAdded).
	added() <-chan struct{}
	// take locks the next message's records and returns what its body
	// holds (marshalled as JSON), the time of its newest record and the
	// lock token; a nil body when there is none.
	take() (body any, enqueued time.Time, lockToken string, err error)
	complete(lockToken string) error
	abandon(lockToken string) error
	// recheck is how often a waiting link looks for records whose lock
	// ran out without the store saying so (a batch taken by a process
	// that went away); new and abandoned records wake it at once.
	recheck() time.Duration
}

// giveBackPause is how long a link waits after its peer gave a message
// back before it offers the queue again, so as not to hand the same
// message straight back.
const giveBackPause = time.Second

// serveQueue delivers q's messages on l, one at a time, until the link
// or ctx ends; the message in flight when they end is given back.
func (cs *conn) serveQueue(ctx context.Context, l *amqp1.Link, q serviceQueue) {
	log := cs.f.log.With("queue", q.what())
	recheck := time.NewTimer(q.recheck())
	defer recheck.Stop()
	wait := func(ch <-chan struct{}, d time.Duration) bool {
		recheck.Reset(d)
		select {
		case <-ch:
		case <-recheck.C:
		case <-l.Done():
			return false
		case <-ctx.Done():
			return false
		}
		return true
	}
	abandon := func(token string) {
		if err := q.abandon(token); err != nil {
			log.Debug("amqp queue abandon failed", "err", err)
		}
	}
	for {
		added := q.added()
		body, enqueued, token, err := q.take()
		if err != nil {
			log.Warn("amqp queue read failed", "err", err)
			_ = l.Close(ctx, &amqp1.Error{Condition: amqp1.ErrCondInternalError, Description: q.what() + " store unavailable"})
			return
		}
		if body == nil {
			if !wait(added, q.recheck()) {
				return
			}
			continue
		}
		msg, err := cs.f.serviceBoundMessage(q.contentType(), enqueued, body)
		if err != nil {
			abandon(token)
			log.Warn("amqp queue message encoding failed", "err", err)
			return
		}
		err = l.Send(ctx, msg)
		switch {
		case err == nil:
			if err := q.complete(token); err != nil {
				log.Debug("amqp queue completion failed", "err", err)
			}
			log.Debug("amqp queue message delivered")
			continue
		case errors.Is(err, amqp1.ErrReleased), errors.As(err, new(*amqp1.RejectedError)), errors.As(err, new(*amqp1.ModifiedError)):
			log.Debug("amqp queue message given back by the peer", "err", err)
			abandon(token)
			if !wait(nil, giveBackPause) {
				return
			}
			continue
		case errors.Is(err, amqp1.ErrMessageTooLarge):
			abandon(token)
			_ = l.Close(ctx, &amqp1.Error{Condition: amqp1.ErrCondMessageSizeExceeded, Description: err.Error()})
			return
		}
		// The link or connection ended with the message in flight.
		abandon(token)
		return
	}
}

// serviceBoundMessage is a message of a service-bound queue as IoT Hub
// sends it: the queue's content type, user-id the hub name, a new
// message-id, the time of the newest record as iothub-enqueuedtime, and
// body as JSON in a data section.
func (f *Front) serviceBoundMessage(contentType string, enqueued time.Time, body any) (*amqp.Message, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return &amqp.Message{
		Annotations: amqp.Annotations{"iothub-enqueuedtime": enqueued.UTC()},
		Properties: &amqp.MessageProperties{
			MessageID:   registry.NewUUID(),
			UserID:      []byte(f.ehName),
			ContentType: &contentType,
		},
		Data: [][]byte{data},
	}, nil
}
