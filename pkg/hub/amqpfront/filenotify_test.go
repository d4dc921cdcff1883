package amqpfront

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// File upload notifications arrive one per message with IoT Hub's
// content type and body; a released one comes again, an accepted one
// does not.
func TestFileNotifications(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1")
	notify := func(name string, size int64) {
		t.Helper()
		u, err := h.reg.StartFileUpload("dev1", "dev1/"+name, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		n := &iothub.FileNotification{DeviceID: "dev1", BlobName: u.BlobName, BlobURI: "https://acct.blob.core.windows.net/c/" + u.BlobName,
			BlobSizeInBytes: size, LastUpdatedTime: iothub.Time{Time: time.Now()}, EnqueuedTimeUTC: iothub.Time{Time: time.Now()}}
		if err := h.reg.FinishFileUpload("dev1", u.CorrelationID, n); err != nil {
			t.Fatal(err)
		}
	}
	s := h.session("service", testHost)
	ctx := testCtx(t)
	r, err := s.NewReceiver(ctx, "amqps://myhub.local/messages/serviceBound/filenotifications", nil)
	if err != nil {
		t.Fatal(err)
	}
	notify("a.txt", 5)
	recv := func(wantName string) {
		t.Helper()
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := m.Properties
		if p == nil || p.ContentType == nil || *p.ContentType != iothub.FileNotificationContentType || string(p.UserID) != "myhub" || p.MessageID == nil {
			t.Errorf("notification properties %+v; want content type %s, user id myhub and a message id", p, iothub.FileNotificationContentType)
		}
		var body map[string]any
		if err := json.Unmarshal(m.GetData(), &body); err != nil {
			t.Fatalf("notification body %s: %v", m.GetData(), err)
		}
		for _, k := range []string{"deviceId", "blobUri", "blobName", "lastUpdatedTime", "blobSizeInBytes", "enqueuedTimeUtc"} {
			if _, ok := body[k]; !ok {
				t.Errorf("notification body %s lacks %s", m.GetData(), k)
			}
		}
		if body["blobName"] != "dev1/"+wantName || body["deviceId"] != "dev1" {
			t.Fatalf("notification body %s; want blobName dev1/%s", m.GetData(), wantName)
		}
		if wantName == "a.txt" && body["blobSizeInBytes"] != float64(5) {
			t.Errorf("blobSizeInBytes = %v; want 5", body["blobSizeInBytes"])
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// Released: the same notification comes again.
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReleaseMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	recv("a.txt")
	// Accepted: the next message is the next notification.
	notify("b.txt", 7)
	recv("b.txt")
}
