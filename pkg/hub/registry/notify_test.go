package registry

import (
	"testing"
	"time"
)

// FeedbackAdded wakes a waiter when a settled message produces
// feedback and when a taken batch is given back, not when nothing
// changed.
func TestFeedbackAdded(t *testing.T) {
	s := newStore(t, nil)
	mustCreate(t, s, "d")
	woke := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(2 * time.Second):
			return false
		}
	}

	ch := s.FeedbackAdded()
	if _, err := s.Enqueue("d", "", &C2DMessage{MessageID: "m1", Ack: AckFull}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("FeedbackAdded fired on Enqueue, which adds no feedback")
	default:
	}
	m, err := s.Receive("d", "")
	if err != nil || m == nil {
		t.Fatalf("Receive = %v, %v", m, err)
	}
	if err := s.Complete("d", "", m.LockToken); err != nil {
		t.Fatal(err)
	}
	if !woke(ch) {
		t.Fatal("FeedbackAdded did not fire after Complete of a message with ack full")
	}

	b, err := s.TakeFeedback(0)
	if err != nil || b == nil {
		t.Fatalf("TakeFeedback = %v, %v", b, err)
	}
	ch = s.FeedbackAdded()
	if err := s.AbandonFeedback(b.LockToken); err != nil {
		t.Fatal(err)
	}
	if !woke(ch) {
		t.Fatal("FeedbackAdded did not fire after AbandonFeedback")
	}
	b, _ = s.TakeFeedback(0)
	ch = s.FeedbackAdded()
	if err := s.CompleteFeedback(b.LockToken); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("FeedbackAdded fired on CompleteFeedback, which makes nothing available")
	default:
	}
}
