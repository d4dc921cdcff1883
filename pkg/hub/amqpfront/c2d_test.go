package amqpfront

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

func strp(s string) *string { return &s }

// A C2D message sent to /messages/devicebound (in any case, with the
// amqps://host prefix) is queued with its properties, accepted, and
// announced with C2DEnqueued.
func TestC2DEnqueue(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev#1")
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: "dev#1", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}
	s := h.session("service", testHost)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "amqps://myhub.local:5671/messages/deviceBound", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := amqp.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Millisecond).UTC()
	err = snd.Send(ctx, &amqp.Message{
		Properties: &amqp.MessageProperties{
			MessageID:          id,
			CorrelationID:      "corr-1",
			UserID:             []byte("backend"),
			To:                 strp("/devices/dev%231/messages/devicebound"),
			ContentType:        strp("application/json"),
			ContentEncoding:    strp("utf-8"),
			AbsoluteExpiryTime: &exp,
		},
		ApplicationProperties: map[string]any{"iothub-ack": "full", "color": "red", "n": int64(5), "flag": true},
		Data:                  [][]byte{[]byte(`{"cmd":`), []byte(`"on"}`)},
	}, nil)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	m, err := h.reg.Receive("dev#1", "")
	if err != nil || m == nil {
		t.Fatalf("registry Receive = %v, %v", m, err)
	}
	want := registry.C2DMessage{MessageID: "12345678-9abc-def0-1234-56789abcdef0", CorrelationID: "corr-1", UserID: "backend",
		To: "/devices/dev#1/messages/devicebound", ContentType: "application/json", ContentEncoding: "utf-8", Ack: "full"}
	if m.MessageID != want.MessageID || m.CorrelationID != want.CorrelationID || m.UserID != want.UserID || m.To != want.To ||
		m.ContentType != want.ContentType || m.ContentEncoding != want.ContentEncoding || m.Ack != want.Ack ||
		!m.ExpiryTime.Equal(exp) || string(m.Body) != `{"cmd":"on"}` {
		t.Errorf("queued %+v; want %+v, expiry %v, body {\"cmd\":\"on\"}", m, want, exp)
	}
	if m.Properties["color"] != "red" || m.Properties["n"] != "5" || m.Properties["flag"] != "true" || len(m.Properties) != 3 {
		t.Errorf("queued properties %v; want color=red n=5 flag=true", m.Properties)
	}

	// A module, with a string message id.
	if err := snd.Send(ctx, &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: "m-2", To: strp("/devices/dev%231/modules/mod1/messages/devicebound")},
		Value:      "hello module",
	}, nil); err != nil {
		t.Fatalf("Send to a module: %v", err)
	}
	m, err = h.reg.Receive("dev#1", "mod1")
	if err != nil || m == nil || m.MessageID != "m-2" || string(m.Body) != "hello module" {
		t.Errorf("module queue: %+v, %v", m, err)
	}
	select {
	case <-h.kick:
	case <-time.After(testTimeout):
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.enqueued) != 2 || h.enqueued[0] != "dev#1/" || h.enqueued[1] != "dev#1/mod1" {
		t.Errorf("C2DEnqueued calls %v; want [dev#1/ dev#1/mod1]", h.enqueued)
	}
}

// Messages IoT Hub refuses are rejected with its conditions.
func TestC2DRejections(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1", "full")
	for range registry.DefaultC2DMaxPending {
		if _, err := h.reg.Enqueue("full", "", &registry.C2DMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	s := h.session("service", testHost)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		msg  *amqp.Message
		cond string
		desc string
	}{
		{"no to", &amqp.Message{Data: [][]byte{[]byte("x")}}, "amqp:not-allowed", "Amqp Message.Properties.To must contain the device identifier"},
		{"to without a device", &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/messages/devicebound")}, Data: [][]byte{[]byte("x")}},
			"amqp:not-allowed", "must contain the device identifier"},
		{"unknown device", &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/devices/nobody/messages/devicebound")}, Data: [][]byte{[]byte("x")}},
			"amqp:not-found", "DeviceNotFound"},
		{"unknown module", &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/devices/dev1/modules/m/messages/devicebound")}, Data: [][]byte{[]byte("x")}},
			"amqp:not-found", "ModuleNotFound"},
		{"over 64 KB", &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/devices/dev1/messages/devicebound")}, Data: [][]byte{make([]byte, 64*1024+1)}},
			"amqp:link:message-size-exceeded", "MessageTooLarge"},
		{"queue full", &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/devices/full/messages/devicebound")}, Data: [][]byte{[]byte("x")}},
			"amqp:resource-limit-exceeded", "DeviceMaximumQueueDepthExceeded"},
		{"bad ack", &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/devices/dev1/messages/devicebound")},
			ApplicationProperties: map[string]any{"iothub-ack": "sometimes"}, Data: [][]byte{[]byte("x")}},
			"com.microsoft:argument-error", "ArgumentInvalid"},
	} {
		err := snd.Send(ctx, tc.msg, nil)
		var ae *amqp.Error
		if got := condition(err); got != tc.cond || !asError(err, &ae) || !strings.Contains(ae.Description, tc.desc) {
			t.Errorf("%s: Send = %v; want rejected with %s (%q)", tc.name, err, tc.cond, tc.desc)
		}
	}
	if n, _ := h.reg.PendingC2D("dev1", ""); n != 0 {
		t.Errorf("dev1 has %d messages after only refused sends", n)
	}
	// The link survives rejections.
	if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{To: strp("/devices/dev1/messages/devicebound")}, Data: [][]byte{[]byte("ok")}}, nil); err != nil {
		t.Errorf("Send after rejections: %v", err)
	}
}

// Messages for one device are queued in the order they were sent,
// even when the sender does not wait between them.
func TestC2DOrder(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1", "dev2")
	s := h.session("service", testHost)
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "/messages/devicebound", &amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		dev := []string{"dev1", "dev2"}[i%2]
		if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: uint64(i), To: strp("/devices/" + dev + "/messages/devicebound")}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, dev := range []string{"dev1", "dev2"} {
		deadline := time.Now().Add(testTimeout)
		for {
			if k, _ := h.reg.PendingC2D(dev, ""); k == n/2 || time.Now().After(deadline) {
				break
			}
			<-h.kick
		}
		prev := -1
		for range n / 2 {
			m, err := h.reg.Receive(dev, "")
			if err != nil || m == nil {
				t.Fatalf("%s: Receive = %v, %v", dev, m, err)
			}
			var id int
			for _, c := range m.MessageID {
				id = id*10 + int(c-'0')
			}
			if id <= prev {
				t.Fatalf("%s: message %s came after %d", dev, m.MessageID, prev)
			}
			prev = id
		}
	}
}

func asError(err error, target **amqp.Error) bool { return errors.As(err, target) }
