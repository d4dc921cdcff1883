package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/message"
)

// newLeanShared makes a telemetry-only shared connection closed when
// the test ends.
func newLeanShared(t *testing.T) *AMQPShared {
	t.Helper()
	return newSharedBy(t, NewAMQPSharedTelemetry)
}

// leanCur is s's live connection on the lean engine.
func leanCur(s *AMQPShared) *leanConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	lc, _ := s.cur.(*leanConn)
	return lc
}

// inLog returns the message from id with body in the hub's log, nil if
// none.
func inLog(h *hub.Hub, id, body string) *message.Message {
	log := h.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 1000)
	for _, ev := range evs {
		if ev.DeviceID == id && string(ev.Message.Body) == body {
			return ev.Message
		}
	}
	return nil
}

// More devices than a session takes share one connection on the lean
// engine, connecting at once; each one's telemetry reaches the hub
// under its id with every property the go-amqp path sends.
func TestAMQPLeanManyDevicesOneConnection(t *testing.T) {
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	n := devicesPerSession + 20
	conns := make([]Conn, n)
	for i := range n {
		cs := hubDevice(t, h, fmt.Sprintf("lean%03d", i))
		c, err := s.Open(&Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Transport: TransportAMQP})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Connect(testCtx(t)); err != nil {
				errs <- fmt.Errorf("Connect(%s) = %w", c.DeviceID(), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lc := leanCur(s)
	if lc == nil {
		t.Fatal("the shared connection is not on the lean engine")
	}
	lc.mu.Lock()
	sessions := len(lc.sessions)
	lc.mu.Unlock()
	if sessions != 2 {
		t.Errorf("%d devices are on %d sessions; want 2 (%d a session)", n, sessions, devicesPerSession)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, c := range conns {
		if got := c.(*leanClient).cur.lc; got != lc {
			t.Fatalf("device %d is not on the shared connection", i)
		}
		m := &message.Message{Body: []byte(c.DeviceID()), MessageID: "m" + c.DeviceID(), CorrelationID: "c1",
			ContentType: "application/json", ContentEncoding: "utf-8", CreationTime: created,
			Properties: map[string]string{"temperatureAlert": "true"}, InterfaceID: "dtmi:x;1", ComponentName: "thermostat"}
		if err := c.SendEvent(testCtx(t), m); err != nil {
			t.Fatalf("SendEvent(%s) = %v", c.DeviceID(), err)
		}
	}
	for _, c := range conns {
		id := c.DeviceID()
		got := inLog(h, id, id)
		if got == nil {
			t.Errorf("no message from %s in the hub's log", id)
			continue
		}
		if got.MessageID != "m"+id || got.CorrelationID != "c1" || got.ContentType != "application/json" ||
			got.ContentEncoding != "utf-8" || got.Properties["temperatureAlert"] != "true" || !got.CreationTime.Equal(created) ||
			got.InterfaceID != "dtmi:x;1" || got.ComponentName != "thermostat" {
			t.Errorf("the hub logged %+v from %s; want every property sent", got, id)
		}
	}
}

// A device whose token is refused stops with ErrUnauthorized; the
// device already on the connection goes on.
func TestAMQPLeanRefusedTokenLeavesTheOthers(t *testing.T) {
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	keep := openShared(t, h, s, "lkeep", Options{}, nil)
	cs := hubDevice(t, h, "lforged")
	bad, err := s.Open(&Options{HostName: cs.HostName, DeviceID: "lforged", SharedAccessKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		CAFile: h.CAFile(), Transport: TransportAMQP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close(context.Background()) })
	if err := bad.Connect(testCtx(t)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Connect with a wrong key = %v; want ErrUnauthorized", err)
	}
	if err := keep.SendEvent(testCtx(t), &message.Message{Body: []byte("ok")}); err != nil {
		t.Errorf("SendEvent beside the refused device = %v", err)
	}
	if keep.(*leanClient).cur.lc != leanCur(s) {
		t.Error("the device beside the refused one left the shared connection")
	}
}

// A device whose token expires loses its own link (the hub detaches
// it): its reconnect puts the same expired token and is refused for
// good, while the device beside it goes on sending.
func TestAMQPLeanExpiredTokenEndsOnlyItsDevice(t *testing.T) {
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	keep := openShared(t, h, s, "lkeep2", Options{}, nil)
	short := openShortToken(t, h, s, "lshort")
	if err := short.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect(lshort) = %v", err)
	}
	// A device that only sends learns of the detach from the hub at
	// once (the connection's reader), not at its next send.
	select {
	case <-short.Done():
	case <-testCtx(t).Done():
		t.Fatal("the device with the expired token is still running")
	}
	if err := short.Err(); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("lshort stopped with %v; want ErrUnauthorized", err)
	}
	if !keep.Connected() {
		t.Error("the other device on the connection is disconnected")
	}
	if err := keep.SendEvent(testCtx(t), &message.Message{Body: []byte("still here")}); err != nil {
		t.Errorf("SendEvent beside the expired device = %v; want nil", err)
	}
	if keep.(*leanClient).cur.lc != leanCur(s) {
		t.Error("the device beside the expired one is no longer on the shared connection")
	}
}

// A device's token is renewed on the live connection before it
// expires: the link stays, no state changes, and it sends after the
// first token's expiry.
func TestAMQPLeanTokenRenewalKeepsTheLink(t *testing.T) {
	// In parallel: it waits for the first token to expire (see
	// TestAMQPTokenRenewalKeepsTheLinks).
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	cs := hubDevice(t, h, "lrenew")
	events := newEventLog()
	c, err := s.Open(&Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Transport: TransportAMQP,
		TokenTTL: 5 * time.Second, OnState: events.on})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	puts := make(chan time.Time, 100)
	c.(*leanClient).cfg.onPutToken = func(exp time.Time) { puts <- exp }
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	checkRenewedPastExpiry(t, c, puts, events)
}

// A lost connection reconnects every device that was on it, on one new
// shared connection.
func TestAMQPLeanLostConnectionReconnectsAll(t *testing.T) {
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	logs := map[string]*eventLog{}
	var conns []Conn
	for _, id := range []string{"lr1", "lr2", "lr3"} {
		logs[id] = newEventLog()
		conns = append(conns, openShared(t, h, s, id, Options{OnState: logs[id].on, MinRetryDelay: 10 * time.Millisecond}, nil))
	}
	old := leanCur(s)
	old.conn.Close()
	for _, l := range logs {
		l.waitState(t, StateConnected) // the first connect
		l.waitState(t, StateDisconnected)
		l.waitState(t, StateConnected)
	}
	for _, c := range conns {
		if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("again")}); err != nil {
			t.Errorf("SendEvent(%s) after the reconnect = %v", c.DeviceID(), err)
		}
		if got := c.(*leanClient).cur.lc; got == old || got != leanCur(s) {
			t.Errorf("%s is not on the new shared connection", c.DeviceID())
		}
	}
}

// A telemetry-only device has no twin: its twin calls say so.
func TestAMQPLeanHasNoTwin(t *testing.T) {
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	c := openShared(t, h, s, "ltwin", Options{}, nil)
	if _, err := c.GetTwin(testCtx(t)); !errors.Is(err, ErrNotSupported) {
		t.Errorf("GetTwin = %v; want ErrNotSupported", err)
	}
	if _, err := c.UpdateReported(testCtx(t), map[string]any{"a": 1}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("UpdateReported = %v; want ErrNotSupported", err)
	}
}

// The lean engine runs over AMQP over WebSocket as over TLS: the
// connection is pkg/device's dial, shared by the devices.
func TestAMQPLeanOverWebSocket(t *testing.T) {
	t.Parallel()
	h := startHub(t, nil)
	s := newLeanShared(t)
	for _, id := range []string{"lws1", "lws2"} {
		c := openShared(t, h, s, id, Options{WebSocket: true}, nil)
		if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte(id)}); err != nil {
			t.Fatalf("SendEvent(%s) over WebSocket = %v", id, err)
		}
		if inLog(h, id, id) == nil {
			t.Errorf("no message from %s in the hub's log", id)
		}
		if c.(*leanClient).cur.lc != leanCur(s) {
			t.Errorf("%s is not on the shared connection", id)
		}
	}
}
