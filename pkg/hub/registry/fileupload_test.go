package registry

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// A pending upload and a queued notification survive a reopen of the
// store: what the hub acknowledged to a device is not lost by a
// restart.
func TestFileUploadSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "d")
	u1, err := s.StartFileUpload("d", "d/a.txt", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	u2, err := s.StartFileUpload("d", "d/b.txt", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if u1.CorrelationID == u2.CorrelationID {
		t.Fatalf("two uploads share correlation id %q", u1.CorrelationID)
	}
	if err := s.FinishFileUpload("d", u1.CorrelationID, &iothub.FileNotification{DeviceID: "d", BlobName: "d/a.txt", BlobSizeInBytes: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.FileUploadOf("d", u2.CorrelationID)
	if err != nil || got.BlobName != "d/b.txt" {
		t.Fatalf("FileUploadOf after reopen = %+v, %v; want d/b.txt", got, err)
	}
	n, err := s.TakeFileNotification()
	if err != nil || n == nil || n.Notification.BlobName != "d/a.txt" || n.Notification.BlobSizeInBytes != 5 {
		t.Fatalf("TakeFileNotification after reopen = %+v, %v; want the one of d/a.txt", n, err)
	}
}

// A correlation id is good once, for its own device, until it expires.
func TestFinishFileUploadRefusals(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	mustCreate(t, s, "d")
	mustCreate(t, s, "e")
	if _, err := s.StartFileUpload("nobody", "nobody/x", clk.Now().Add(time.Hour)); err == nil {
		t.Fatal("StartFileUpload for an unknown device succeeded")
	} else {
		wantCode(t, "StartFileUpload(nobody)", err, ErrDeviceNotFound)
	}
	u, err := s.StartFileUpload("d", "d/x", clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "FinishFileUpload(unknown id)", s.FinishFileUpload("d", "no-such-id", nil), ErrInvalidFileUploadCorrelationID)
	wantCode(t, "FinishFileUpload(other device)", s.FinishFileUpload("e", u.CorrelationID, nil), ErrInvalidFileUploadCorrelationID)
	wantCode(t, "FinishFileUpload", s.FinishFileUpload("d", u.CorrelationID, nil), nil)
	wantCode(t, "FinishFileUpload(twice)", s.FinishFileUpload("d", u.CorrelationID, nil), ErrInvalidFileUploadCorrelationID)
	if n, _ := s.PendingFileNotifications(); n != 0 {
		t.Fatalf("PendingFileNotifications = %d after a finish without notification; want 0", n)
	}

	late, err := s.StartFileUpload("d", "d/y", clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	wantCode(t, "FinishFileUpload(expired)", s.FinishFileUpload("d", late.CorrelationID, nil), ErrExpiredFileUploadCorrelationID)
}

// Notifications are handed out one at a time under a lock: complete
// deletes, abandon and a lapsed lock hand them out again, and one past
// its TTL or its delivery limit is dropped.
func TestFileNotificationQueue(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now, FileNotificationMaxDeliveries: 3})
	mustCreate(t, s, "d")
	notify := func(name string) {
		t.Helper()
		u, err := s.StartFileUpload("d", name, clk.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishFileUpload("d", u.CorrelationID, &iothub.FileNotification{DeviceID: "d", BlobName: name}); err != nil {
			t.Fatal(err)
		}
	}
	take := func(want string) *FileNotificationDelivery {
		t.Helper()
		n, err := s.TakeFileNotification()
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if n != nil {
			got = n.Notification.BlobName
		}
		if got != want {
			t.Fatalf("TakeFileNotification = %q; want %q", got, want)
		}
		return n
	}
	added := s.FileNotificationAdded()
	notify("d/1")
	select {
	case <-added:
	case <-time.After(5 * time.Second):
		t.Fatal("FileNotificationAdded did not fire for a queued notification")
	}
	notify("d/2")
	n1 := take("d/1")
	n2 := take("d/2")
	take("")
	wantCode(t, "CompleteFileNotification", s.CompleteFileNotification(n1.LockToken), nil)
	wantCode(t, "CompleteFileNotification(again)", s.CompleteFileNotification(n1.LockToken), ErrDeviceMessageLockLost)
	wantCode(t, "AbandonFileNotification", s.AbandonFileNotification(n2.LockToken), nil)
	take("d/2") // delivery 2
	clk.Add(DefaultFileNotificationLock)
	take("d/2") // delivery 3, the last one allowed
	clk.Add(DefaultFileNotificationLock)
	take("")
	if n, _ := s.PendingFileNotifications(); n != 0 {
		t.Fatalf("PendingFileNotifications = %d after the delivery limit; want 0", n)
	}

	notify("d/3")
	clk.Add(DefaultFileNotificationTTL)
	take("")
}
