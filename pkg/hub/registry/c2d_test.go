package registry

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

func TestEnqueueLimits(t *testing.T) {
	s := newStore(t, &Options{C2DMaxPending: 3})
	mustCreate(t, s, "d")
	m, err := s.Enqueue("d", "", &C2DMessage{Body: []byte("x"), Properties: map[string]string{"p": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID == "" || m.To != "/devices/d/messages/devicebound" || m.Ack != AckNone || m.ExpiryTime.IsZero() || m.SequenceNumber != 1 {
		t.Errorf("stored = %+v", m)
	}
	s.Enqueue("d", "", &C2DMessage{})
	s.Enqueue("d", "", &C2DMessage{})
	_, err = s.Enqueue("d", "", &C2DMessage{})
	wantCode(t, "Enqueue(4th)", err, ErrQueueFull)
	_, err = s.Enqueue("nope", "", &C2DMessage{})
	wantCode(t, "Enqueue(no device)", err, ErrDeviceNotFound)
	_, err = s.Enqueue("d", "nope", &C2DMessage{})
	wantCode(t, "Enqueue(no module)", err, ErrModuleNotFound)
	_, err = s.Enqueue("d", "", &C2DMessage{Ack: "sometimes"})
	wantCode(t, "Enqueue(bad ack)", err, ErrArgumentInvalid)

	s2 := newStore(t, nil)
	mustCreate(t, s2, "d")
	_, err = s2.Enqueue("d", "", &C2DMessage{Body: make([]byte, 64*1024+1)})
	wantCode(t, "Enqueue(too big)", err, ErrMessageTooLarge)
	for i := range 50 {
		if _, err := s2.Enqueue("d", "", &C2DMessage{}); err != nil {
			t.Fatalf("Enqueue #%d: %v", i, err)
		}
	}
	_, err = s2.Enqueue("d", "", &C2DMessage{})
	wantCode(t, "Enqueue(51st)", err, ErrQueueFull)
	if n, _ := s2.PendingC2D("d", ""); n != 50 {
		t.Errorf("PendingC2D = %d", n)
	}
}

func TestReceiveCompleteAbandonReject(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	mustCreate(t, s, "d")
	if m, err := s.Receive("d", ""); m != nil || err != nil {
		t.Fatalf("Receive(empty) = %v, %v", m, err)
	}
	_, err := s.Receive("nope", "")
	wantCode(t, "Receive(nope)", err, ErrDeviceNotFound)
	s.Enqueue("d", "", &C2DMessage{MessageID: "a", Ack: "full"})
	s.Enqueue("d", "", &C2DMessage{MessageID: "b", Ack: "positive"})
	s.Enqueue("d", "", &C2DMessage{MessageID: "c", Ack: "negative"})

	a, _ := s.Receive("d", "")
	b, _ := s.Receive("d", "")
	if a.MessageID != "a" || b.MessageID != "b" || a.DeliveryCount != 1 || a.LockToken == "" {
		t.Fatalf("received %+v %+v", a, b)
	}
	wantCode(t, "Abandon", s.Abandon("d", "", a.LockToken), nil)
	a2, _ := s.Receive("d", "")
	if a2.MessageID != "a" || a2.DeliveryCount != 2 || a2.LockToken == a.LockToken {
		t.Fatalf("after abandon got %+v", a2)
	}
	wantCode(t, "Complete(old token)", s.Complete("d", "", a.LockToken), ErrDeviceMessageLockLost)
	wantCode(t, "Complete(a)", s.Complete("d", "", a2.LockToken), nil)
	wantCode(t, "Complete(b)", s.Complete("d", "", b.LockToken), nil)
	c, _ := s.Receive("d", "")
	wantCode(t, "Reject(c)", s.Reject("d", "", c.LockToken), nil)
	if n, _ := s.PendingC2D("d", ""); n != 0 {
		t.Errorf("pending = %d", n)
	}
	batch, err := s.TakeFeedback(0)
	if err != nil || batch == nil {
		t.Fatalf("TakeFeedback = %v, %v", batch, err)
	}
	var got []string
	for _, r := range batch.Records {
		got = append(got, r.OriginalMessageID+":"+string(r.StatusCode))
		if r.DeviceID != "d" || r.DeviceGenerationID == "" || r.Description == "" {
			t.Errorf("record %+v", r)
		}
	}
	if strings.Join(got, ",") != "a:Success,b:Success,c:Rejected" {
		t.Errorf("feedback = %v", got)
	}
	if again, _ := s.TakeFeedback(0); again != nil {
		t.Errorf("locked feedback taken twice")
	}
	wantCode(t, "AbandonFeedback", s.AbandonFeedback(batch.LockToken), nil)
	batch2, _ := s.TakeFeedback(2)
	if batch2 == nil || len(batch2.Records) != 2 {
		t.Fatalf("TakeFeedback(2) after abandon = %+v", batch2)
	}
	wantCode(t, "CompleteFeedback", s.CompleteFeedback(batch2.LockToken), nil)
	wantCode(t, "CompleteFeedback again", s.CompleteFeedback(batch2.LockToken), ErrDeviceMessageLockLost)
	if n, _ := s.PendingFeedback(); n != 1 {
		t.Errorf("PendingFeedback = %d; want 1", n)
	}
}

func TestLockExpiryAndDeliveryCount(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now, C2DMaxDeliveryCount: 2})
	mustCreate(t, s, "d")
	s.Enqueue("d", "", &C2DMessage{MessageID: "a", Ack: "negative"})
	m1, _ := s.Receive("d", "")
	if m, _ := s.Receive("d", ""); m != nil {
		t.Fatalf("locked message delivered again")
	}
	clk.Add(DefaultC2DLockDuration)
	wantCode(t, "Complete(expired lock)", s.Complete("d", "", m1.LockToken), ErrDeviceMessageLockLost)
	m2, _ := s.Receive("d", "")
	if m2 == nil || m2.DeliveryCount != 2 {
		t.Fatalf("redelivery = %+v", m2)
	}
	clk.Add(DefaultC2DLockDuration)
	if m, _ := s.Receive("d", ""); m != nil {
		t.Fatalf("message delivered past max delivery count: %+v", m)
	}
	b, _ := s.TakeFeedback(0)
	if b == nil || len(b.Records) != 1 || b.Records[0].StatusCode != FeedbackDeliveryCountExceeded {
		t.Fatalf("feedback = %+v", b)
	}
}

// A message the device abandons as many times as the max delivery count
// is dropped with the feedback DeliveryCountExceeded, as one whose lock
// expires that often is; a settlement with a lock token the store never
// gave leaves the queue as it was.
func TestAbandonPastMaxDeliveryCount(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now, C2DMaxDeliveryCount: 3})
	mustCreate(t, s, "d")
	s.Enqueue("d", "", &C2DMessage{MessageID: "a", Ack: "full"})
	for n := 1; n <= 3; n++ {
		m, _ := s.Receive("d", "")
		if m == nil || m.MessageID != "a" || m.DeliveryCount != n {
			t.Fatalf("delivery %d = %+v; want a with delivery count %d", n, m, n)
		}
		wantCode(t, "Complete(unknown lock)", s.Complete("d", "", "not-a-lock"), ErrDeviceMessageLockLost)
		wantCode(t, "Reject(unknown lock)", s.Reject("d", "", "not-a-lock"), ErrDeviceMessageLockLost)
		wantCode(t, "Abandon", s.Abandon("d", "", m.LockToken), nil)
	}
	if m, _ := s.Receive("d", ""); m != nil {
		t.Fatalf("delivered past the max delivery count: %+v", m)
	}
	if n, _ := s.PendingC2D("d", ""); n != 0 {
		t.Errorf("pending after the max delivery count = %d; want 0", n)
	}
	b, _ := s.TakeFeedback(0)
	if b == nil || len(b.Records) != 1 || b.Records[0].OriginalMessageID != "a" || b.Records[0].StatusCode != FeedbackDeliveryCountExceeded {
		t.Fatalf("feedback = %+v; want one DeliveryCountExceeded record for a", b)
	}
}

func TestExpiryAndPurge(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	mustCreate(t, s, "d")
	s.CreateModule(&iothub.Module{DeviceID: "d", ModuleID: "m"})
	s.Enqueue("d", "", &C2DMessage{MessageID: "short", Ack: "full", ExpiryTime: clk.Now().Add(time.Minute)})
	s.Enqueue("d", "", &C2DMessage{MessageID: "long", Ack: "positive"})
	m, _ := s.Enqueue("d", "m", &C2DMessage{MessageID: "mod", Ack: "negative"})
	if m.To != "/devices/d/modules/m/messages/devicebound" {
		t.Errorf("module To = %q", m.To)
	}
	clk.Add(2 * time.Minute)
	if n, _ := s.PendingC2D("d", ""); n != 1 {
		t.Errorf("PendingC2D after expiry = %d", n)
	}
	n, err := s.ExpireC2D()
	if err != nil || n != 1 {
		t.Errorf("ExpireC2D = %d, %v", n, err)
	}
	n, err = s.PurgeC2D("d", "m")
	if err != nil || n != 1 {
		t.Errorf("PurgeC2D(module) = %d, %v", n, err)
	}
	n, _ = s.PurgeC2D("d", "")
	if n != 1 {
		t.Errorf("PurgeC2D = %d", n)
	}
	_, err = s.PurgeC2D("x", "")
	wantCode(t, "PurgeC2D(x)", err, ErrDeviceNotFound)
	b, _ := s.TakeFeedback(0)
	var got []string
	for _, r := range b.Records {
		got = append(got, r.OriginalMessageID+":"+string(r.StatusCode))
	}
	// "long" asked for positive only, so its purge gives no record.
	if strings.Join(got, ",") != "short:Expired,mod:Purged" {
		t.Errorf("feedback = %v", got)
	}
}

func TestWantsFeedback(t *testing.T) {
	all := []FeedbackStatus{FeedbackSuccess, FeedbackExpired, FeedbackDeliveryCountExceeded, FeedbackRejected, FeedbackPurged}
	want := map[string]string{AckNone: "00000", AckPositive: "10000", AckNegative: "01111", AckFull: "11111"}
	for ack, w := range want {
		got := ""
		for _, st := range all {
			if wantsFeedback(ack, st) {
				got += "1"
			} else {
				got += "0"
			}
		}
		if got != w {
			t.Errorf("wantsFeedback(%s) = %s; want %s", ack, got, w)
		}
	}
}

func TestDeliverableC2D(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	for _, id := range []string{"empty", "ready", "locked"} {
		mustCreate(t, s, id)
	}
	if _, err := s.CreateModule(&iothub.Module{DeviceID: "ready", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	s.Enqueue("ready", "", &C2DMessage{MessageID: "a"})
	s.Enqueue("ready", "m1", &C2DMessage{MessageID: "b"})
	s.Enqueue("locked", "", &C2DMessage{MessageID: "c"})
	if m, _ := s.Receive("locked", ""); m == nil {
		t.Fatal("Receive(locked) = nil")
	}
	got, err := s.DeliverableC2D()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Identity{{"ready", ""}, {"ready", "m1"}}; !slices.Equal(got, want) {
		t.Errorf("DeliverableC2D = %v; want %v", got, want)
	}
	clk.Add(DefaultC2DLockDuration) // the lock expires: "locked" can be delivered again
	got, _ = s.DeliverableC2D()
	if want := []Identity{{"locked", ""}, {"ready", ""}, {"ready", "m1"}}; !slices.Equal(got, want) {
		t.Errorf("after the lock expired, DeliverableC2D = %v; want %v", got, want)
	}
}
