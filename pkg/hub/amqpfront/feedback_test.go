package amqpfront

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// completeWithAck queues a message asking for full feedback and has the
// device complete it.
func completeWithAck(t *testing.T, h *testHub, dev, id string) {
	t.Helper()
	if _, err := h.reg.Enqueue(dev, "", &registry.C2DMessage{MessageID: id, Ack: registry.AckFull}); err != nil {
		t.Fatal(err)
	}
	m, err := h.reg.Receive(dev, "")
	if err != nil || m == nil {
		t.Fatalf("Receive = %v, %v", m, err)
	}
	if err := h.reg.Complete(dev, "", m.LockToken); err != nil {
		t.Fatal(err)
	}
}

// Feedback arrives as IoT Hub sends it; accepting a batch completes it,
// releasing it gives it back for another delivery.
func TestFeedback(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1")
	dev, _ := h.reg.Device("dev1")
	s := h.session("service", testHost)
	ctx := testCtx(t)
	r, err := s.NewReceiver(ctx, "amqps://myhub.local/messages/servicebound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The receiver is attached and waiting when the feedback is made.
	completeWithAck(t, h, "dev1", "msg-1")
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Properties
	if p == nil || p.ContentType == nil || *p.ContentType != FeedbackContentType || string(p.UserID) != "myhub" || p.MessageID == nil {
		t.Errorf("feedback properties %+v; want content type %s, user id myhub and a message id", p, FeedbackContentType)
	}
	if _, ok := m.Annotations["iothub-enqueuedtime"].(time.Time); !ok {
		t.Errorf("feedback annotations %v lack iothub-enqueuedtime", m.Annotations)
	}
	var recs []map[string]string
	if err := json.Unmarshal(m.GetData(), &recs); err != nil {
		t.Fatalf("feedback body %s: %v", m.GetData(), err)
	}
	if len(recs) != 1 || recs[0]["originalMessageId"] != "msg-1" || recs[0]["statusCode"] != "Success" || recs[0]["description"] != "Success" ||
		recs[0]["deviceId"] != "dev1" || recs[0]["deviceGenerationId"] != dev.GenerationID || recs[0]["enqueuedTimeUtc"] == "" {
		t.Errorf("feedback records %s", m.GetData())
	}
	if err := r.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for n, _ := h.reg.PendingFeedback(); n != 0; n, _ = h.reg.PendingFeedback() {
		if time.Now().After(deadline) {
			t.Fatalf("%d feedback records left after the batch was accepted", n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Released: delivered again.
	completeWithAck(t, h, "dev1", "msg-2")
	m, err = r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReleaseMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	m, err = r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(m.GetData(), &recs); err != nil || len(recs) != 1 || recs[0]["originalMessageId"] != "msg-2" {
		t.Errorf("redelivered feedback %s", m.GetData())
	}
	_ = r.AcceptMessage(ctx, m)

	// A receiver that goes away with a batch gives it back.
	completeWithAck(t, h, "dev1", "msg-3")
	if _, err := r.Receive(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := s.NewReceiver(ctx, "/messages/serviceBound/feedback", &amqp.ReceiverOptions{SettlementMode: amqp.ReceiverSettleModeFirst.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	m, err = r2.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(m.GetData(), &recs); err != nil || len(recs) != 1 || recs[0]["originalMessageId"] != "msg-3" {
		t.Errorf("feedback after the first receiver left: %s", m.GetData())
	}
}
