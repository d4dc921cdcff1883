package goeventhubs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/connstr"
)

// session dials the hub with go-amqp over TLS, authenticated with SASL
// PLAIN as policy and its key (the Service Bus form).
func (h *testHub) session(policy string) *amqp.Session {
	h.t.Helper()
	cs := connstr.MustParse(h.eventHubCS(policy))
	ctx := testCtx(h.t)
	conn, err := amqp.Dial(ctx, "amqps://"+cs.HostName, &amqp.ConnOptions{
		TLSConfig: h.tls,
		SASLType:  amqp.SASLTypePlain(cs.SharedAccessKeyName, cs.SharedAccessKey),
	})
	if err != nil {
		h.t.Fatalf("amqp.Dial: %v", err)
	}
	h.t.Cleanup(func() { _ = conn.Close() })
	s, err := conn.NewSession(ctx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// NewReceiver at the hub's messages/events fails with the redirect
// itself, as against IoT Hub: go-amqp returns it from NewReceiver only
// when the attach is answered with neither source nor target.
func TestRedirectShape(t *testing.T) {
	h := startHub(t)
	s := h.session("service")
	_, err := s.NewReceiver(testCtx(t), "messages/events/", nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondLinkRedirect {
		t.Fatalf("NewReceiver(messages/events/) = %v (%T); want *amqp.Error amqp:link:redirect", err, err)
	}
	if addr, _ := ae.Info["address"].(string); !strings.HasSuffix(addr, "/iothub/") || ae.Info["hostname"] == nil {
		t.Errorf("redirect info %v; want the hostname and the address of event hub iothub", ae.Info)
	}
}

// The legacy start filter x-opt-enqueuedtimeutc (older Event Hubs
// clients, Microsoft's AMQP samples) selects by enqueued time in
// milliseconds, quoted or not.
func TestLegacyEnqueuedTimeFilter(t *testing.T) {
	h := startHub(t)
	evs := h.send("dev1", 4)
	s := h.session("service")
	from := evs[1].EnqueuedTime.UnixMilli()
	var want []int64
	for _, ev := range evs {
		if ev.EnqueuedTime.UnixMilli() > from {
			want = append(want, ev.SequenceNumber)
		}
	}
	if len(want) == 0 {
		t.Fatalf("the events do not have enqueued times of their own (%d): nothing after it", from)
	}
	for _, sel := range []string{
		fmt.Sprintf("amqp.annotation.x-opt-enqueuedtimeutc > '%d'", from),
		fmt.Sprintf("amqp.annotation.x-opt-enqueuedtimeutc > %d", from),
	} {
		ctx := testCtx(t)
		r, err := s.NewReceiver(ctx, "iothub/ConsumerGroups/$Default/Partitions/"+h.partition("dev1"),
			&amqp.ReceiverOptions{Credit: 10, Filters: []amqp.LinkFilter{amqp.NewSelectorFilter(sel)}})
		if err != nil {
			t.Fatalf("receiver with %q: %v", sel, err)
		}
		var got []int64
		for len(got) < len(want) {
			m, err := r.Receive(ctx, nil)
			if err != nil {
				t.Fatalf("%q: Receive after %v: %v", sel, got, err)
			}
			_ = r.AcceptMessage(ctx, m)
			seq, _ := m.Annotations["x-opt-sequence-number"].(int64)
			got = append(got, seq)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: %v; want %v", sel, got, want)
		}
		_ = r.Close(ctx)
	}
}
