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

// FeedbackContentType is the content type of feedback messages.
const FeedbackContentType = "application/vnd.microsoft.iothub.feedback.json"

// feedbackBatch is the most records one feedback message carries, as
// IoT Hub batches them.
const feedbackBatch = 64

// feedbackRecheck is how often a waiting feedback link looks for
// records whose lock expired without the store saying so (a batch
// taken by a process that went away); new and abandoned records wake
// it at once.
const feedbackRecheck = registry.DefaultFeedbackLock

// serveFeedback sends delivery feedback to a peer receiving on
// /messages/serviceBound/feedback: each message is a batch of records
// (a JSON array) that the peer's accept completes and its release,
// reject or modify gives back for a later delivery.
func (cs *conn) serveFeedback(ctx context.Context, l *amqp1.Link) {
	f := cs.f
	recheck := time.NewTimer(feedbackRecheck)
	defer recheck.Stop()
	for {
		added := f.reg.FeedbackAdded()
		b, err := f.reg.TakeFeedback(feedbackBatch)
		if err != nil {
			f.log.Warn("amqp feedback read failed", "err", err)
			_ = l.Close(ctx, &amqp1.Error{Condition: amqp1.ErrCondInternalError, Description: "feedback store unavailable"})
			return
		}
		if b == nil {
			recheck.Reset(feedbackRecheck)
			select {
			case <-added:
			case <-recheck.C:
			case <-l.Done():
				return
			case <-ctx.Done():
				return
			}
			continue
		}
		msg, err := f.feedbackMessage(b)
		if err != nil {
			_ = f.reg.AbandonFeedback(b.LockToken)
			f.log.Warn("amqp feedback encoding failed", "err", err)
			return
		}
		err = l.Send(ctx, msg)
		switch {
		case err == nil:
			if err := f.reg.CompleteFeedback(b.LockToken); err != nil {
				f.log.Debug("amqp feedback completion failed", "err", err)
			}
			f.log.Debug("amqp feedback delivered", "records", len(b.Records))
			continue
		case errors.Is(err, amqp1.ErrReleased), errors.As(err, new(*amqp1.RejectedError)), errors.As(err, new(*amqp1.ModifiedError)):
			f.log.Debug("amqp feedback given back by the peer", "err", err)
			if err := f.reg.AbandonFeedback(b.LockToken); err != nil {
				f.log.Debug("amqp feedback abandon failed", "err", err)
			}
			// The peer did not want it now: do not hand it straight
			// back.
			select {
			case <-time.After(time.Second):
			case <-l.Done():
				return
			case <-ctx.Done():
				return
			}
			continue
		case errors.Is(err, amqp1.ErrMessageTooLarge):
			// Should not happen with 64 records; drop nothing and stop.
			_ = f.reg.AbandonFeedback(b.LockToken)
			_ = l.Close(ctx, &amqp1.Error{Condition: amqp1.ErrCondMessageSizeExceeded, Description: err.Error()})
			return
		}
		// The link or connection ended with the batch in flight.
		if err := f.reg.AbandonFeedback(b.LockToken); err != nil {
			f.log.Debug("amqp feedback abandon failed", "err", err)
		}
		return
	}
}

// feedbackMessage is the AMQP message of a feedback batch: IoT Hub's
// content type, user-id the hub name, a new message-id, the time of
// the newest record as iothub-enqueuedtime, and the records as a JSON
// array in a data section.
func (f *Front) feedbackMessage(b *registry.FeedbackBatch) (*amqp.Message, error) {
	body, err := json.Marshal(b.Records)
	if err != nil {
		return nil, err
	}
	ct := FeedbackContentType
	return &amqp.Message{
		Annotations: amqp.Annotations{"iothub-enqueuedtime": b.EnqueuedTime.UTC()},
		Properties: &amqp.MessageProperties{
			MessageID:   registry.NewUUID(),
			UserID:      []byte(f.ehName),
			ContentType: &ct,
		},
		Data: [][]byte{body},
	}, nil
}
