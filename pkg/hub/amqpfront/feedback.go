package amqpfront

import (
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// FeedbackContentType is the content type of feedback messages.
const FeedbackContentType = "application/vnd.microsoft.iothub.feedback.json"

// feedbackBatch is the most records one feedback message carries, as
// IoT Hub batches them.
const feedbackBatch = 64

// feedbackQueue is the hub's feedback queue as a serviceQueue: each
// message is a batch of up to feedbackBatch records, a JSON array.
type feedbackQueue struct{ f *Front }

func (q feedbackQueue) what() string              { return "feedback" }
func (q feedbackQueue) contentType() string       { return FeedbackContentType }
func (q feedbackQueue) added() <-chan struct{}    { return q.f.reg.FeedbackAdded() }
func (q feedbackQueue) complete(tok string) error { return q.f.reg.CompleteFeedback(tok) }
func (q feedbackQueue) abandon(tok string) error  { return q.f.reg.AbandonFeedback(tok) }
func (q feedbackQueue) recheck() time.Duration    { return registry.DefaultFeedbackLock }

func (q feedbackQueue) take() (any, time.Time, string, error) {
	b, err := q.f.reg.TakeFeedback(feedbackBatch)
	if err != nil || b == nil {
		return nil, time.Time{}, "", err
	}
	return b.Records, b.EnqueuedTime, b.LockToken, nil
}
