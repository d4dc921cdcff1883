package registry

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/iothub"
)

var (
	bucketUploads           = []byte("uploads")
	bucketFileNotifications = []byte("filenotifications")
)

// FileUpload is a file upload a device started and has not yet
// reported on: what its correlation id stands for.
type FileUpload struct {
	CorrelationID string `json:"correlationId"`
	DeviceID      string `json:"deviceId"`
	// BlobName is the blob's name in the container,
	// "{deviceId}/{name the device asked for}".
	BlobName string    `json:"blobName"`
	Created  time.Time `json:"created"`
	// Expires is when the correlation id stops being accepted.
	Expires time.Time `json:"expires"`
}

// StartFileUpload records a file upload of blobName (the full name in
// the container) by deviceID and returns it with a new correlation id
// that FinishFileUpload accepts until expires. The record is on disk
// when StartFileUpload returns, so a restart of the hub keeps it. An
// unknown device gives ErrDeviceNotFound.
func (s *Store) StartFileUpload(deviceID, blobName string, expires time.Time) (*FileUpload, error) {
	now := s.now()
	u := &FileUpload{CorrelationID: NewUUID(), DeviceID: deviceID, BlobName: blobName, Created: now, Expires: expires.UTC()}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if _, err := getDevice(tx, deviceID); err != nil {
			return err
		}
		b := tx.Bucket(bucketUploads)
		// Forget uploads whose correlation id expired a day ago: a
		// device that never reports does not grow the store forever.
		var old [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var p FileUpload
			if json.Unmarshal(v, &p) == nil && now.Sub(p.Expires) > 24*time.Hour {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return putJSON(b, []byte(u.CorrelationID), u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// FileUploadOf returns the pending upload of deviceID with
// correlationID. A correlation id the hub never gave this device, or
// one already reported on, gives ErrInvalidFileUploadCorrelationID;
// one past its expiry ErrExpiredFileUploadCorrelationID.
func (s *Store) FileUploadOf(deviceID, correlationID string) (*FileUpload, error) {
	var u *FileUpload
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		u, err = s.pendingUpload(tx, deviceID, correlationID)
		return err
	})
	return u, err
}

func (s *Store) pendingUpload(tx *bolt.Tx, deviceID, correlationID string) (*FileUpload, error) {
	v := tx.Bucket(bucketUploads).Get([]byte(correlationID))
	var u FileUpload
	if v == nil || json.Unmarshal(v, &u) != nil || u.DeviceID != deviceID {
		return nil, newErr(ErrInvalidFileUploadCorrelationID, "device %q has no pending file upload with correlation id %q: give the correlationId the hub returned for this device's upload, and report each upload once",
			clip(deviceID), clip(correlationID))
	}
	if !s.now().Before(u.Expires) {
		return nil, newErr(ErrExpiredFileUploadCorrelationID, "the correlation id %q expired at %s: start the upload again", clip(correlationID), u.Expires.Format(time.RFC3339))
	}
	return &u, nil
}

// FinishFileUpload ends the pending upload of deviceID with
// correlationID and, when n is not nil, queues n as its file upload
// notification, in one transaction. Errors as FileUploadOf.
func (s *Store) FinishFileUpload(deviceID, correlationID string, n *iothub.FileNotification) error {
	now := s.now()
	return s.db.Batch(func(tx *bolt.Tx) error {
		if _, err := s.pendingUpload(tx, deviceID, correlationID); err != nil {
			return err
		}
		if err := tx.Bucket(bucketUploads).Delete([]byte(correlationID)); err != nil {
			return err
		}
		if n == nil {
			return nil
		}
		rec := fileNotificationRecord{FileNotification: *n}
		rec.ExpiresAt = now.Add(s.opts.FileNotificationTTL)
		_, err := s.fileQueue().put(tx, &rec)
		return err
	})
}

type fileNotificationRecord struct {
	iothub.FileNotification
	lockState
}

func (s *Store) fileQueue() lockQueue[fileNotificationRecord, *fileNotificationRecord] {
	return lockQueue[fileNotificationRecord, *fileNotificationRecord]{bucket: bucketFileNotifications,
		hold: s.opts.FileNotificationLock, maxDeliveries: s.opts.FileNotificationMaxDeliveries, added: &s.fileSignal}
}

// FileNotificationDelivery is a file upload notification locked by
// TakeFileNotification.
type FileNotificationDelivery struct {
	// LockToken settles it with CompleteFileNotification or
	// AbandonFileNotification.
	LockToken    string
	Notification iothub.FileNotification
}

// TakeFileNotification locks the oldest file upload notification that
// is free for Options.FileNotificationLock and returns it; nil, nil
// when there is none. Notifications past Options.FileNotificationTTL
// or delivered Options.FileNotificationMaxDeliveries times are dropped.
func (s *Store) TakeFileNotification() (*FileNotificationDelivery, error) {
	token, recs, dropped, err := s.fileQueue().take(s, 1)
	if dropped > 0 {
		s.log.Warn("file upload notifications dropped: expired or delivered too often", "dropped", dropped)
	}
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return &FileNotificationDelivery{LockToken: token, Notification: recs[0].FileNotification}, nil
}

// CompleteFileNotification deletes a delivered notification. An
// unknown or expired lock token gives an error matching
// ErrDeviceMessageLockLost.
func (s *Store) CompleteFileNotification(lockToken string) error {
	return s.fileQueue().settle(s, lockToken, true, "file upload notification")
}

// AbandonFileNotification frees a delivered notification for the next
// TakeFileNotification. Errors as CompleteFileNotification.
func (s *Store) AbandonFileNotification(lockToken string) error {
	return s.fileQueue().settle(s, lockToken, false, "file upload notification")
}

// PendingFileNotifications counts the notifications waiting, locked or
// not.
func (s *Store) PendingFileNotifications() (int, error) { return s.fileQueue().count(s) }

// FileNotificationAdded returns a channel closed the next time a file
// upload notification becomes available (queued, or abandoned), as
// FeedbackAdded does for feedback.
func (s *Store) FileNotificationAdded() <-chan struct{} { return s.fileSignal.wait() }
