package registry

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockState is the part of a queued record that says who holds it:
// the lock of the batch that took it, how many times it was handed
// out, and when it expires. The feedback queue and the file
// notification queue keep their records with it inline.
type lockState struct {
	LockToken   string    `json:"lockToken,omitempty"`
	LockedUntil time.Time `json:"lockedUntil"`
	// Deliveries counts the takes; a queue with a delivery limit drops
	// a record handed out that many times.
	Deliveries int `json:"deliveries,omitempty"`
	// ExpiresAt drops a record not settled by then; zero never.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

func (l *lockState) lock() *lockState { return l }

// locked is a record held in a lockQueue.
type locked interface{ lock() *lockState }

// lockQueue is a queue of JSON records in a bucket (sequence → record)
// that receivers take in locked batches and settle by lock token, as
// IoT Hub's service-bound queues (feedback, file notifications) work:
// completing deletes the batch, abandoning hands it out again, and a
// lock that runs out frees its records for the next take.
type lockQueue[R any, P interface {
	*R
	locked
}] struct {
	bucket []byte
	// hold is how long a take locks its records.
	hold time.Duration
	// maxDeliveries drops a record after it was taken that many times;
	// 0 never.
	maxDeliveries int
	// added is notified when records become available.
	added *signal
}

// put adds rec in tx and wakes the waiters once tx commits.
func (q lockQueue[R, P]) put(tx *bolt.Tx, rec P) (uint64, error) {
	b := tx.Bucket(q.bucket)
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := putJSON(b, seqKey(seq), rec); err != nil {
		return 0, err
	}
	tx.OnCommit(q.added.notify)
	return seq, nil
}

// take locks up to max records that are free (never taken, abandoned,
// or whose lock ran out) under a new lock token. Records past their
// expiry or their delivery limit are dropped on the way; dropped
// counts them. It returns no records and an empty token when none is
// free.
func (q lockQueue[R, P]) take(s *Store, max int) (token string, recs []R, dropped int, err error) {
	now := s.now()
	err = s.db.Batch(func(tx *bolt.Tx) error {
		token, recs, dropped = NewUUID(), nil, 0
		b := tx.Bucket(q.bucket)
		type upd struct {
			k   []byte
			rec P
		}
		var ups, drops []upd
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(recs) < max; k, v = c.Next() {
			rec := P(new(R))
			if err := json.Unmarshal(v, rec); err != nil {
				return err
			}
			l := rec.lock()
			if l.LockToken != "" && now.Before(l.LockedUntil) {
				continue
			}
			k = append([]byte(nil), k...)
			if (!l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)) || (q.maxDeliveries > 0 && l.Deliveries >= q.maxDeliveries) {
				drops = append(drops, upd{k, rec})
				continue
			}
			l.LockToken, l.LockedUntil = token, now.Add(q.hold)
			l.Deliveries++
			ups = append(ups, upd{k, rec})
			recs = append(recs, *rec)
		}
		for _, u := range ups {
			if err := putJSON(b, u.k, u.rec); err != nil {
				return err
			}
		}
		for _, d := range drops {
			if err := b.Delete(d.k); err != nil {
				return err
			}
		}
		dropped = len(drops)
		return nil
	})
	if len(recs) == 0 {
		token = ""
	}
	return token, recs, dropped, err
}

// settle deletes (complete) or frees (abandon) the records locked
// under token. An unknown token, or one whose lock ran out, gives an
// error matching ErrDeviceMessageLockLost that names what.
func (q lockQueue[R, P]) settle(s *Store, token string, complete bool, what string) error {
	now := s.now()
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(q.bucket)
		type upd struct {
			k   []byte
			rec P
		}
		var ups []upd
		err := b.ForEach(func(k, v []byte) error {
			rec := P(new(R))
			if err := json.Unmarshal(v, rec); err != nil {
				return err
			}
			if l := rec.lock(); token != "" && l.LockToken == token && now.Before(l.LockedUntil) {
				ups = append(ups, upd{append([]byte(nil), k...), rec})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(ups) == 0 {
			return newErr(ErrDeviceMessageLockLost, "no %s with this lock token (settled already, or its lock ran out)", what)
		}
		if !complete {
			tx.OnCommit(q.added.notify)
		}
		for _, u := range ups {
			if complete {
				err = b.Delete(u.k)
			} else {
				l := u.rec.lock()
				l.LockToken, l.LockedUntil = "", time.Time{}
				err = putJSON(b, u.k, u.rec)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// count is the number of records waiting, locked or not.
func (q lockQueue[R, P]) count(s *Store) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = countKeys(tx.Bucket(q.bucket))
		return nil
	})
	return n, err
}
