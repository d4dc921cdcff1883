package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/message"
)

// amqpHub starts an in-process hub and returns it with a client.
func amqpHub(t *testing.T) (*hub.Hub, *Client) {
	t.Helper()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, policyClient(t, h, "iothubowner")
}

// policyClient is a client of h with the connection string of policy.
func policyClient(t *testing.T, h *hub.Hub, policy string) *Client {
	t.Helper()
	s, err := h.ServiceConnectionString(policy)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(connstr.MustParse(s), &Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func connectDevice(t *testing.T, h *hub.Hub, id string, c2d chan *message.Message) *device.Client {
	t.Helper()
	if err := h.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	cs, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(&device.Options{ConnectionString: cs, CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	if c2d != nil {
		d.SetC2DHandler(func(m *message.Message) { c2d <- m })
	}
	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

func TestC2DAndFeedback(t *testing.T) {
	h, c := amqpHub(t)
	got := make(chan *message.Message, 1)
	connectDevice(t, h, "dev1", got)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fb, err := c.FeedbackReceiver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close(ctx)
	m := &message.Message{Body: []byte("hello"), ContentType: "text/plain", Ack: message.AckFull, Properties: map[string]string{"color": "red"}}
	if err := c.SendC2D(ctx, "dev1", "", m); err != nil {
		t.Fatalf("SendC2D: %v", err)
	}
	if m.MessageID == "" {
		t.Fatal("SendC2D set no message id")
	}
	select {
	case r := <-got:
		if string(r.Body) != "hello" || r.MessageID != m.MessageID || r.Properties["color"] != "red" || r.ContentType != "text/plain" {
			t.Errorf("the device got %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("the device got no C2D message")
	}
	for {
		recs, err := fb.Receive(ctx)
		if err != nil {
			t.Fatalf("feedback: %v", err)
		}
		for _, r := range recs {
			if r.OriginalMessageID == m.MessageID {
				if r.StatusCode != "Success" || r.DeviceID != "dev1" {
					t.Errorf("feedback record %+v", r)
				}
				return
			}
		}
	}
}

func TestC2DRefusals(t *testing.T) {
	h, c := amqpHub(t)
	if err := h.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.SendC2D(ctx, "nobody", "", &message.Message{Body: []byte("x")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown device: %v; want ErrNotFound", err)
	}
	big := &message.Message{Body: []byte(strings.Repeat("x", message.MaxC2DSize+1))}
	if err := c.SendC2D(ctx, "dev1", "", big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("65 KB message: %v; want ErrTooLarge", err)
	}
	for i := 0; i < 50; i++ {
		if err := c.SendC2D(ctx, "dev1", "", &message.Message{Body: []byte("x")}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := c.SendC2D(ctx, "dev1", "", &message.Message{Body: []byte("x")}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("51st message: %v; want ErrQueueFull", err)
	}
	bad := connstr.MustParse(strings.Replace(mustCS(t, h), "SharedAccessKey=", "SharedAccessKey=AAAA", 1))
	wrong, err := New(bad, &Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.SendC2D(ctx, "dev1", "", &message.Message{Body: []byte("x")}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong key: %v; want ErrUnauthorized", err)
	}
}

func mustCS(t *testing.T, h *hub.Hub) string {
	s, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMonitorFollowsRedirect(t *testing.T) {
	h, c := amqpHub(t)
	d := connectDevice(t, h, "dev1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := d.SendEvent(ctx, &message.Message{Body: []byte(`{"n":1}`), ContentType: "application/json", Properties: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []Event
	stop := errors.New("stop")
	err := c.Monitor(ctx, MonitorOptions{From: "start"}, func(ev Event) error {
		got = append(got, ev)
		if len(got) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Monitor = %v", err)
	}
	ev := got[2]
	if ev.DeviceID != "dev1" || string(ev.Body) != `{"n":1}` || ev.Properties["k"] != "v" || ev.System["content-type"] != "application/json" || ev.SequenceNumber != 2 {
		t.Errorf("event = %+v", ev)
	}
	// The Event Hub-compatible connection string reads the same events.
	ehcs, err := h.EventHubConnectionString("service")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = MonitorEventHub(ctx, connstr.MustParse(ehcs), &Options{CAFile: h.CAFile()}, MonitorOptions{From: "start"}, func(Event) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("MonitorEventHub = %v", err)
	}
	// A consumer group the hub does not have is final, not retried.
	err = c.Monitor(ctx, MonitorOptions{From: "start", ConsumerGroup: "nosuchgroup"}, func(Event) error { return nil })
	if !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "not restored") {
		t.Errorf("Monitor in an unknown consumer group = %v; want ErrNotFound at the first try", err)
	}
}

// A policy without ServiceConnect is refused at the hub's events
// address; the refusal stays in the error chain, so that hub monitor
// exits with the code for refused credentials.
func TestMonitorWithoutServiceConnect(t *testing.T) {
	h, _ := amqpHub(t)
	c := policyClient(t, h, "registryRead")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Monitor(ctx, MonitorOptions{From: "start"}, func(Event) error { return nil })
	var ae *AMQPError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ae) || ae.Condition != "amqp:unauthorized-access" {
		t.Fatalf("Monitor as registryRead = %v; want an *AMQPError amqp:unauthorized-access matching ErrUnauthorized", err)
	}
	if !errors.Is(err, ErrRedirect) {
		t.Errorf("Monitor as registryRead = %v; want it to say the redirect failed (ErrRedirect)", err)
	}
}
