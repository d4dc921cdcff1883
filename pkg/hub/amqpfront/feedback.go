package amqpfront

import (
	"context"
	"encoding/json"
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

// feedbackQueue is the hub's feedback queue as a serviceQueue.
type feedbackQueue struct{ f *Front }

func (q feedbackQueue) what() string              { return "feedback" }
func (q feedbackQueue) added() <-chan struct{}    { return q.f.reg.FeedbackAdded() }
func (q feedbackQueue) complete(tok string) error { return q.f.reg.CompleteFeedback(tok) }
func (q feedbackQueue) abandon(tok string) error  { return q.f.reg.AbandonFeedback(tok) }
func (q feedbackQueue) recheck() time.Duration    { return registry.DefaultFeedbackLock }

// take locks up to feedbackBatch records: one message, a JSON array.
func (q feedbackQueue) take() (*amqp.Message, string, error) {
	b, err := q.f.reg.TakeFeedback(feedbackBatch)
	if err != nil || b == nil {
		return nil, "", err
	}
	msg, err := q.f.feedbackMessage(b)
	if err != nil {
		_ = q.f.reg.AbandonFeedback(b.LockToken)
		return nil, "", err
	}
	return msg, b.LockToken, nil
}

// serveFeedback sends delivery feedback to a peer receiving on
// /messages/serviceBound/feedback: each message is a batch of records
// (a JSON array) that the peer's accept completes and its release,
// reject or modify gives back for a later delivery.
func (cs *conn) serveFeedback(ctx context.Context, l *amqp1.Link) {
	cs.serveQueue(ctx, l, feedbackQueue{cs.f})
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
