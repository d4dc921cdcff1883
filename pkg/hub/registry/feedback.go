package registry

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// FeedbackStatus is the outcome of a cloud-to-device message.
type FeedbackStatus string

// The outcomes IoT Hub reports in feedback records.
const (
	FeedbackSuccess               FeedbackStatus = "Success"
	FeedbackExpired               FeedbackStatus = "Expired"
	FeedbackDeliveryCountExceeded FeedbackStatus = "DeliveryCountExceeded"
	FeedbackRejected              FeedbackStatus = "Rejected"
	FeedbackPurged                FeedbackStatus = "Purged"
)

var feedbackDescriptions = map[FeedbackStatus]string{
	FeedbackSuccess:               "Success",
	FeedbackExpired:               "Message expired",
	FeedbackDeliveryCountExceeded: "Message delivery count exceeded",
	FeedbackRejected:              "Message rejected",
	FeedbackPurged:                "Message purged",
}

// Feedback is one delivery-feedback record, with the JSON field names
// IoT Hub uses in the body of a feedback message.
type Feedback struct {
	OriginalMessageID  string         `json:"originalMessageId"`
	Description        string         `json:"description"`
	StatusCode         FeedbackStatus `json:"statusCode"`
	DeviceID           string         `json:"deviceId"`
	DeviceGenerationID string         `json:"deviceGenerationId"`
	// EnqueuedTimeUTC is when the outcome happened.
	EnqueuedTimeUTC iothub.Time `json:"enqueuedTimeUtc"`
}

// FeedbackBatch is a set of feedback records locked together by Take.
type FeedbackBatch struct {
	// LockToken settles the batch with CompleteFeedback or AbandonFeedback.
	LockToken string
	// EnqueuedTime is the time of the newest record.
	EnqueuedTime time.Time
	Records      []Feedback
}

type feedbackRecord struct {
	Feedback
	lockState
}

// feedbackQueue is the store's queue of feedback records.
func (s *Store) feedbackQueue() lockQueue[feedbackRecord, *feedbackRecord] {
	return lockQueue[feedbackRecord, *feedbackRecord]{bucket: bucketFeedback, hold: DefaultFeedbackLock, added: &s.feedbackSignal}
}

// wantsFeedback reports whether a message with ack mode ack asked for
// feedback about status.
func wantsFeedback(ack string, status FeedbackStatus) bool {
	switch ack {
	case AckFull:
		return true
	case AckPositive:
		return status == FeedbackSuccess
	case AckNegative:
		return status != FeedbackSuccess
	}
	return false
}

// addFeedback records the outcome of m when its ack mode asks for it.
func (s *Store) addFeedback(tx *bolt.Tx, m *C2DMessage, deviceID string, status FeedbackStatus, now time.Time) error {
	if !wantsFeedback(m.Ack, status) {
		return nil
	}
	gen := ""
	if d, err := getDevice(tx, deviceID); err == nil {
		gen = d.GenerationID
	}
	rec := feedbackRecord{Feedback: Feedback{
		OriginalMessageID:  m.MessageID,
		Description:        feedbackDescriptions[status],
		StatusCode:         status,
		DeviceID:           deviceID,
		DeviceGenerationID: gen,
		EnqueuedTimeUTC:    iothub.Time{Time: now},
	}}
	seq, err := s.feedbackQueue().put(tx, &rec)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketFeedback)
	// Keep the queue bounded: now and then, drop the oldest records.
	if seq%64 != 0 {
		return nil
	}
	over := countKeys(b) - s.opts.FeedbackMax
	if over <= 0 {
		return nil
	}
	c := b.Cursor()
	var drop [][]byte
	for k, _ := c.First(); k != nil && len(drop) < over; k, _ = c.Next() {
		drop = append(drop, append([]byte(nil), k...))
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	if len(drop) > 0 {
		s.log.Warn("feedback queue full, dropped oldest records", "dropped", len(drop))
	}
	return nil
}

// TakeFeedback locks up to max (default 100) feedback records that are
// not locked (or whose lock expired) and returns them as a batch with
// a lock token valid for one minute. It returns nil, nil when there is
// no feedback.
func (s *Store) TakeFeedback(max int) (*FeedbackBatch, error) {
	if max <= 0 {
		max = 100
	}
	token, recs, _, err := s.feedbackQueue().take(s, max)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	batch := &FeedbackBatch{LockToken: token, Records: make([]Feedback, len(recs))}
	for i, r := range recs {
		batch.Records[i] = r.Feedback
		if r.EnqueuedTimeUTC.After(batch.EnqueuedTime) {
			batch.EnqueuedTime = r.EnqueuedTimeUTC.Time
		}
	}
	return batch, nil
}

// CompleteFeedback deletes the records of a batch. An unknown or
// expired lock token gives an error matching ErrDeviceMessageLockLost.
func (s *Store) CompleteFeedback(lockToken string) error {
	return s.feedbackQueue().settle(s, lockToken, true, "feedback batch")
}

// AbandonFeedback unlocks the records of a batch so that the next
// TakeFeedback returns them again. Errors as for CompleteFeedback.
func (s *Store) AbandonFeedback(lockToken string) error {
	return s.feedbackQueue().settle(s, lockToken, false, "feedback batch")
}

// PendingFeedback counts the feedback records waiting, locked or not.
func (s *Store) PendingFeedback() (int, error) { return s.feedbackQueue().count(s) }

func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}
