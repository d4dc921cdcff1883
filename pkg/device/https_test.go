package device

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
)

// openOn makes a client of the transport for a new device of h and
// connects it; setup runs before Connect.
func openOn(t *testing.T, h *hub.Hub, id string, o Options, setup func(Conn)) Conn {
	t.Helper()
	cs := hubDevice(t, h, id)
	o.ConnectionString, o.CAFile = cs.Format(), h.CAFile()
	c, err := Open(&o)
	if err != nil {
		t.Fatalf("Open(%s) = %v", o.Transport, err)
	}
	if setup != nil {
		setup(c)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect(%s) = %v", o.Transport, err)
	}
	return c
}

// A message sent over HTTPS reaches the hub's telemetry log with its
// body, system and application properties.
func TestHTTPSSendEventToHub(t *testing.T) {
	h := startHub(t, nil)
	c := openOn(t, h, "h1", Options{Transport: TransportHTTPS}, nil)
	m := &message.Message{Body: []byte(`{"t":21}`), MessageID: "m1", ContentType: "application/json",
		Properties: map[string]string{"alert": "true"}}
	if err := c.SendEvent(testCtx(t), m); err != nil {
		t.Fatalf("SendEvent = %v", err)
	}
	log := h.Telemetry()
	evs, _ := log.Read(log.PartitionOf("h1"), 0, 100)
	if len(evs) != 1 {
		t.Fatalf("the hub logged %d messages; want 1", len(evs))
	}
	got := evs[0].Message
	if string(got.Body) != `{"t":21}` || got.MessageID != "m1" || got.ContentType != "application/json" || got.Properties["alert"] != "true" {
		t.Errorf("logged %+v; want the body, message id, content type and alert=true sent", got)
	}
}

// A C2D message over AMQP (a connection of its own on go-amqp, a shared
// one on the lean engine) or HTTPS reaches the handler and is settled
// as C2DSettle says: complete and reject end it with their feedback
// (the next message comes only after the settlement: AMQP's credit is
// 1, HTTPS polls one at a time), abandon brings it back.
func TestC2DSettle(t *testing.T) {
	for _, tr := range []struct {
		Transport
		shared bool
	}{{TransportAMQP, false}, {TransportAMQP, true}, {TransportHTTPS, false}} {
		for _, tt := range []struct {
			settle Settle
			want   registry.FeedbackStatus
		}{
			{SettleComplete, "Success"},
			{SettleReject, "Rejected"},
			{SettleAbandon, ""},
		} {
			name := tr.String()
			if tr.shared {
				name += "-shared"
			}
			t.Run(name+"/"+tt.settle.String(), func(t *testing.T) {
				h := startHub(t, nil)
				got := make(chan *message.Message, 20)
				o := Options{Transport: tr.Transport, C2DSettle: tt.settle, PollInterval: 20 * time.Millisecond}
				setup := func(c Conn) { c.SetC2DHandler(func(m *message.Message) { got <- m }) }
				if tr.shared {
					openShared(t, h, newShared(t), "c1", o, setup)
				} else {
					openOn(t, h, "c1", o, setup)
				}
				for _, id := range []string{"a", "b"} {
					if _, err := h.Registry().Enqueue("c1", "", &registry.C2DMessage{MessageID: id, Body: []byte("hi " + id),
						Ack: registry.AckFull, Properties: map[string]string{"color": "red"}}); err != nil {
						t.Fatal(err)
					}
					h.C2DEnqueued("c1", "")
				}
				next := func() *message.Message {
					t.Helper()
					select {
					case m := <-got:
						return m
					case <-testCtx(t).Done():
						t.Fatal("no C2D message reached the handler")
						return nil
					}
				}
				m := next()
				if m.MessageID != "a" || string(m.Body) != "hi a" || m.Properties["color"] != "red" {
					t.Fatalf("first message %+v; want a, \"hi a\", color=red", m)
				}
				if tt.settle == SettleAbandon {
					for m := next(); m.MessageID != "a"; m = next() {
					} // a comes back
					if fb, _ := h.Registry().TakeFeedback(10); fb != nil {
						t.Errorf("feedback %+v after abandoning; want none", fb.Records)
					}
					return
				}
				if b := next(); b.MessageID != "b" {
					t.Fatalf("second message %s; want b", b.MessageID)
				}
				fb, err := h.Registry().TakeFeedback(10)
				if err != nil || fb == nil || len(fb.Records) == 0 {
					t.Fatalf("TakeFeedback = %v, %v; want a's record", fb, err)
				}
				if r := fb.Records[0]; r.OriginalMessageID != "a" || r.StatusCode != tt.want {
					t.Errorf("feedback %s %s; want a %s", r.OriginalMessageID, r.StatusCode, tt.want)
				}
			})
		}
	}
}

// A bad key gets a *StatusError wrapping ErrUnauthorized; a twin over
// HTTPS is ErrNotSupported.
func TestHTTPSErrors(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "e1")
	cs.SharedAccessKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	c, err := Open(&Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Transport: TransportHTTPS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if err := c.SendEvent(testCtx(t), &message.Message{}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SendEvent before Connect = %v; want ErrNotConnected", err)
	}
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect = %v", err)
	}
	err = c.SendEvent(testCtx(t), &message.Message{Body: []byte("x")})
	var se *StatusError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &se) || se.Status != 401 {
		t.Errorf("SendEvent with a wrong key = %v; want a 401 *StatusError wrapping ErrUnauthorized", err)
	}
	if _, err := c.GetTwin(testCtx(t)); !errors.Is(err, ErrNotSupported) {
		t.Errorf("GetTwin over HTTPS = %v; want ErrNotSupported", err)
	}
	if _, err := c.UpdateReported(testCtx(t), map[string]int{"a": 1}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("UpdateReported over HTTPS = %v; want ErrNotSupported", err)
	}
}

// What a transport cannot do is refused by Open with a way out.
func TestOpenRefusesWhatTheTransportCannotDo(t *testing.T) {
	const cs = "HostName=h.example;DeviceId=d;SharedAccessKey=AAAA"
	for _, o := range []Options{
		{ConnectionString: cs, C2DSettle: SettleReject},
		{ConnectionString: cs, C2DSettle: SettleAbandon},
		{ConnectionString: cs, Transport: TransportHTTPS, WebSocket: true},
		{ConnectionString: cs, Transport: Transport(7)},
	} {
		if c, err := Open(&o); err == nil {
			c.Close(context.Background())
			t.Errorf("Open(transport %s, settle %s, websocket %v) = nil error; want a refusal", o.Transport, o.C2DSettle, o.WebSocket)
		}
	}
}

func TestParseTransportAndSettle(t *testing.T) {
	for in, want := range map[string]Transport{"": TransportMQTT, "mqtt": TransportMQTT, "AMQP": TransportAMQP, "https": TransportHTTPS} {
		if got, err := ParseTransport(in); err != nil || got != want {
			t.Errorf("ParseTransport(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseTransport("http"); err == nil {
		t.Error(`ParseTransport("http") = nil error; want one naming the choices`)
	}
	for in, want := range map[string]Settle{"": SettleComplete, "complete": SettleComplete, "Reject": SettleReject, "abandon": SettleAbandon} {
		if got, err := ParseSettle(in); err != nil || got != want {
			t.Errorf("ParseSettle(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseSettle("drop"); err == nil {
		t.Error(`ParseSettle("drop") = nil error; want one naming the choices`)
	}
}
