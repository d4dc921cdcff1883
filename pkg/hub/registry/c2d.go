package registry

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Acknowledgement modes of a cloud-to-device message (iothub-ack).
const (
	AckNone     = "none"
	AckPositive = "positive"
	AckNegative = "negative"
	AckFull     = "full"
)

// C2DMessage is a cloud-to-device message in a device's (or module's)
// queue.
type C2DMessage struct {
	// MessageID is the message id; Enqueue makes a UUID when empty.
	MessageID string `json:"messageId"`
	// To is the destination; Enqueue sets "/devices/{id}/messages/devicebound"
	// (or ".../modules/{mid}/messages/devicebound") when empty.
	To              string `json:"to,omitempty"`
	CorrelationID   string `json:"correlationId,omitempty"`
	UserID          string `json:"userId,omitempty"`
	ContentType     string `json:"contentType,omitempty"`
	ContentEncoding string `json:"contentEncoding,omitempty"`
	// ExpiryTime is when the message expires; zero means enqueued time
	// plus Options.C2DDefaultTTL.
	ExpiryTime time.Time `json:"expiryTime"`
	// Ack is the feedback asked for: none (default), positive, negative or full.
	Ack string `json:"ack,omitempty"`
	// Properties are the application properties.
	Properties map[string]string `json:"properties,omitempty"`
	Body       []byte            `json:"body,omitempty"`

	// Set by the store.
	EnqueuedTime   time.Time `json:"enqueuedTime"`
	SequenceNumber uint64    `json:"sequenceNumber"`
	DeliveryCount  int       `json:"deliveryCount"`
	LockToken      string    `json:"lockToken,omitempty"`
	LockedUntil    time.Time `json:"lockedUntil"`
}

// Size is what counts against the 64 KB limit: the body, the system
// property values and the application property names and values.
func (m *C2DMessage) Size() int {
	n := len(m.Body) + len(m.MessageID) + len(m.To) + len(m.CorrelationID) + len(m.UserID) +
		len(m.ContentType) + len(m.ContentEncoding) + len(m.Ack)
	for k, v := range m.Properties {
		n += len(k) + len(v)
	}
	return n
}

func normalizeAck(a string) (string, error) {
	switch {
	case a == "" || strings.EqualFold(a, AckNone):
		return AckNone, nil
	case strings.EqualFold(a, AckPositive):
		return AckPositive, nil
	case strings.EqualFold(a, AckNegative):
		return AckNegative, nil
	case strings.EqualFold(a, AckFull):
		return AckFull, nil
	}
	return "", newErr(ErrArgumentInvalid, "iothub-ack %q is not none, positive, negative or full", clip(a))
}

// Enqueue adds a message to the queue of a device (moduleID "") or
// module and returns the stored copy. Expired messages are dropped
// first. Errors match ErrDeviceNotFound, ErrModuleNotFound,
// ErrArgumentInvalid (bad ack), ErrMessageTooLarge (over
// Options.C2DMaxSize) or ErrQueueFull (Options.C2DMaxPending waiting).
func (s *Store) Enqueue(deviceID, moduleID string, m *C2DMessage) (*C2DMessage, error) {
	if m == nil {
		return nil, newErr(ErrArgumentInvalid, "no message")
	}
	msg := *m
	var err error
	if msg.Ack, err = normalizeAck(msg.Ack); err != nil {
		return nil, err
	}
	if msg.MessageID == "" {
		msg.MessageID = NewUUID()
	}
	if msg.To == "" {
		msg.To = "/devices/" + deviceID
		if moduleID != "" {
			msg.To += "/modules/" + moduleID
		}
		msg.To += "/messages/devicebound"
	}
	if n := msg.Size(); n > s.opts.C2DMaxSize {
		return nil, newErr(ErrMessageTooLarge, "message is %d bytes; the limit is %d", n, s.opts.C2DMaxSize)
	}
	now := s.now()
	msg.EnqueuedTime = now
	if msg.ExpiryTime.IsZero() {
		msg.ExpiryTime = now.Add(s.opts.C2DDefaultTTL)
	}
	msg.ExpiryTime = msg.ExpiryTime.UTC()
	msg.DeliveryCount, msg.LockToken, msg.LockedUntil = 0, "", time.Time{}
	var out C2DMessage
	err = s.db.Batch(func(tx *bolt.Tx) error {
		if err := checkIdentity(tx, deviceID, moduleID); err != nil {
			return err
		}
		key := identityKey(deviceID, moduleID)
		q, err := tx.Bucket(bucketC2D).CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		n, err := s.sweep(tx, q, deviceID, now)
		if err != nil {
			return err
		}
		if n >= s.opts.C2DMaxPending {
			return newErr(ErrQueueFull, "device %q already has %d messages waiting", deviceID, n)
		}
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		out = msg
		out.SequenceNumber = seq
		return putJSON(q, seqKey(seq), &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Receive locks and returns the next deliverable message of a device
// or module: the oldest one that is not locked (or whose lock expired).
// Its DeliveryCount goes up and it gets a new LockToken, valid for
// Options.C2DLockDuration. Expired messages, and messages already
// delivered Options.C2DMaxDeliveryCount times, are dropped on the way
// (with feedback when asked for). It returns nil, nil when there is
// nothing to deliver.
func (s *Store) Receive(deviceID, moduleID string) (*C2DMessage, error) {
	return s.ReceiveFor(deviceID, moduleID, 0)
}

// ReceiveFor is Receive with a lock of the given duration (0 or less:
// Options.C2DLockDuration), for a device that asks for its own lock
// timeout (the HTTPS query parameter iothub-messagelocktimeout).
func (s *Store) ReceiveFor(deviceID, moduleID string, lock time.Duration) (*C2DMessage, error) {
	if lock <= 0 {
		lock = s.opts.C2DLockDuration
	}
	now := s.now()
	var out *C2DMessage
	err := s.db.Batch(func(tx *bolt.Tx) error {
		out = nil
		q := tx.Bucket(bucketC2D).Bucket(identityKey(deviceID, moduleID))
		if q == nil {
			return checkIdentity(tx, deviceID, moduleID)
		}
		if _, err := s.sweep(tx, q, deviceID, now); err != nil {
			return err
		}
		var drop [][]byte
		c := q.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if m.LockToken != "" && now.Before(m.LockedUntil) {
				continue
			}
			if m.DeliveryCount >= s.opts.C2DMaxDeliveryCount {
				drop = append(drop, append([]byte(nil), k...))
				if err := s.addFeedback(tx, &m, deviceID, FeedbackDeliveryCountExceeded, now); err != nil {
					return err
				}
				continue
			}
			m.DeliveryCount++
			m.LockToken = NewUUID()
			m.LockedUntil = now.Add(lock)
			out = &m
			if err := putJSON(q, k, &m); err != nil {
				return err
			}
			break
		}
		for _, k := range drop {
			if err := q.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Complete removes a received message by its lock token (feedback
// Success when asked for). An unknown token, or one whose lock has
// expired, gives an error matching ErrDeviceMessageLockLost.
func (s *Store) Complete(deviceID, moduleID, lockToken string) error {
	return s.settle(deviceID, moduleID, lockToken, FeedbackSuccess)
}

// Reject removes a received message by its lock token (feedback
// Rejected when asked for). Errors as for Complete.
func (s *Store) Reject(deviceID, moduleID, lockToken string) error {
	return s.settle(deviceID, moduleID, lockToken, FeedbackRejected)
}

// Abandon unlocks a received message so that it is delivered again.
// Errors as for Complete.
func (s *Store) Abandon(deviceID, moduleID, lockToken string) error {
	return s.settle(deviceID, moduleID, lockToken, "")
}

func (s *Store) settle(deviceID, moduleID, lockToken string, outcome FeedbackStatus) error {
	now := s.now()
	return s.db.Batch(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketC2D).Bucket(identityKey(deviceID, moduleID))
		if q == nil || lockToken == "" {
			return newErr(ErrDeviceMessageLockLost, "no message with this lock token")
		}
		c := q.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if m.LockToken != lockToken {
				continue
			}
			if !now.Before(m.LockedUntil) {
				return newErr(ErrDeviceMessageLockLost, "the lock of message %q has expired", m.MessageID)
			}
			if outcome == "" {
				m.LockToken, m.LockedUntil = "", time.Time{}
				return putJSON(q, k, &m)
			}
			if err := q.Delete(k); err != nil {
				return err
			}
			return s.addFeedback(tx, &m, deviceID, outcome, now)
		}
		return newErr(ErrDeviceMessageLockLost, "no message with this lock token")
	})
}

// PurgeC2D deletes every waiting message of a device or module
// (feedback Purged when asked for) and returns how many there were.
// Errors match ErrDeviceNotFound or ErrModuleNotFound.
func (s *Store) PurgeC2D(deviceID, moduleID string) (int, error) {
	now := s.now()
	var n int
	err := s.db.Batch(func(tx *bolt.Tx) error {
		n = 0
		if err := checkIdentity(tx, deviceID, moduleID); err != nil {
			return err
		}
		key := identityKey(deviceID, moduleID)
		q := tx.Bucket(bucketC2D).Bucket(key)
		if q == nil {
			return nil
		}
		err := q.ForEach(func(_, v []byte) error {
			var m C2DMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			n++
			return s.addFeedback(tx, &m, deviceID, FeedbackPurged, now)
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketC2D).DeleteBucket(key)
	})
	return n, err
}

// PendingC2D counts the unexpired messages waiting for a device or
// module, locked ones included. Errors match ErrDeviceNotFound or
// ErrModuleNotFound.
func (s *Store) PendingC2D(deviceID, moduleID string) (int, error) {
	now := s.now()
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := checkIdentity(tx, deviceID, moduleID); err != nil {
			return err
		}
		q := tx.Bucket(bucketC2D).Bucket(identityKey(deviceID, moduleID))
		if q == nil {
			return nil
		}
		return q.ForEach(func(_, v []byte) error {
			var m struct {
				ExpiryTime time.Time `json:"expiryTime"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if now.Before(m.ExpiryTime) {
				n++
			}
			return nil
		})
	})
	return n, err
}

// ExpireC2D drops the expired messages of every queue (with feedback
// Expired when asked for) and returns how many it dropped. The store
// also drops them lazily; call this now and then to produce feedback
// for devices that never connect.
func (s *Store) ExpireC2D() (int, error) {
	now := s.now()
	var dropped int
	err := s.db.Batch(func(tx *bolt.Tx) error {
		dropped = 0
		root := tx.Bucket(bucketC2D)
		var keys [][]byte
		if err := root.ForEachBucket(func(k []byte) error {
			keys = append(keys, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			q := root.Bucket(k)
			before := c2dCount(tx, k)
			deviceID, _, _ := strings.Cut(string(k), "\x00")
			n, err := s.sweep(tx, q, deviceID, now)
			if err != nil {
				return err
			}
			dropped += before - n
		}
		return nil
	})
	return dropped, err
}

// Identity names a device (ModuleID "") or a module.
type Identity struct{ DeviceID, ModuleID string }

// DeliverableC2D returns the devices and modules whose queue holds a
// message Receive would hand out now: one that is not locked, or whose
// lock has expired. It only reads, in one transaction over every queue.
func (s *Store) DeliverableC2D() ([]Identity, error) {
	now := s.now()
	var out []Identity
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketC2D)
		return root.ForEachBucket(func(k []byte) error {
			c := root.Bucket(k).Cursor()
			for _, v := c.First(); v != nil; _, v = c.Next() {
				var m struct {
					LockToken   string    `json:"lockToken"`
					LockedUntil time.Time `json:"lockedUntil"`
				}
				if err := json.Unmarshal(v, &m); err != nil {
					return err
				}
				if m.LockToken == "" || !now.Before(m.LockedUntil) {
					d, mod, _ := strings.Cut(string(k), "\x00")
					out = append(out, Identity{DeviceID: d, ModuleID: mod})
					return nil
				}
			}
			return nil
		})
	})
	return out, err
}

// sweep drops the expired messages of queue q and returns how many remain.
func (s *Store) sweep(tx *bolt.Tx, q *bolt.Bucket, deviceID string, now time.Time) (int, error) {
	var drop [][]byte
	remain := 0
	err := q.ForEach(func(k, v []byte) error {
		var m C2DMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if now.Before(m.ExpiryTime) {
			remain++
			return nil
		}
		drop = append(drop, append([]byte(nil), k...))
		return s.addFeedback(tx, &m, deviceID, FeedbackExpired, now)
	})
	if err != nil {
		return 0, err
	}
	for _, k := range drop {
		if err := q.Delete(k); err != nil {
			return 0, err
		}
	}
	return remain, nil
}

func checkIdentity(tx *bolt.Tx, deviceID, moduleID string) error {
	if moduleID == "" {
		_, err := getDevice(tx, deviceID)
		return err
	}
	_, err := getModule(tx, deviceID, moduleID)
	return err
}

// c2dCount counts the stored messages of an identity (expired ones
// that were not swept yet included).
func c2dCount(tx *bolt.Tx, key []byte) int {
	q := tx.Bucket(bucketC2D).Bucket(key)
	if q == nil {
		return 0
	}
	return countKeys(q)
}

func deleteC2DQueue(tx *bolt.Tx, key []byte) error {
	root := tx.Bucket(bucketC2D)
	if root.Bucket(key) == nil {
		return nil
	}
	return root.DeleteBucket(key)
}

func seqKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}

// C2DQueued counts the messages held in every device's and module's
// queue, locked and not yet swept expired ones included. It reads each
// queue's key count, in one read transaction.
func (s *Store) C2DQueued() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketC2D)
		return root.ForEachBucket(func(k []byte) error {
			n += root.Bucket(k).Stats().KeyN
			return nil
		})
	})
	return n, err
}
