package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// newShared makes a shared connection closed when the test ends.
func newShared(t *testing.T) *AMQPShared {
	t.Helper()
	return newSharedBy(t, NewAMQPShared)
}

// newSharedBy is newShared made by newFn.
func newSharedBy(t *testing.T, newFn func(int) (*AMQPShared, error)) *AMQPShared {
	t.Helper()
	s, err := newFn(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openShared makes a client for the hub device id on s and connects it.
func openShared(t *testing.T, h *hub.Hub, s *AMQPShared, id string, o Options, setup func(Conn)) Conn {
	t.Helper()
	cs := hubDevice(t, h, id)
	o.ConnectionString, o.CAFile, o.Transport = cs.Format(), h.CAFile(), TransportAMQP
	c, err := s.Open(&o)
	if err != nil {
		t.Fatalf("Open(%s) = %v", id, err)
	}
	if setup != nil {
		setup(c)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect(%s) = %v", id, err)
	}
	return c
}

// Three devices on one shared connection: all use the one connection,
// each one's telemetry is logged under its id, a method call and a
// C2D message reach the device they were sent to and no other.
func TestAMQPSharedRoutesToTheRightDevice(t *testing.T) {
	h := startHub(t, nil)
	s := newShared(t)
	ids := []string{"s1", "s2", "s3"}
	c2d := make(chan string, 10)
	var conns []Conn
	for _, id := range ids {
		conns = append(conns, openShared(t, h, s, id, Options{}, func(c Conn) {
			c.SetDefaultMethodHandler(func(_ context.Context, r *MethodRequest) MethodResponse {
				return MethodResponse{Status: 200, Payload: []byte(`"` + id + `"`)}
			})
			c.SetC2DHandler(func(m *message.Message) { c2d <- id + ":" + string(m.Body) })
		}))
	}
	for i, c := range conns {
		if linksOf(c).lc != leanCur(s) {
			t.Errorf("%s is on a connection of its own; want the shared one", ids[i])
		}
		if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte(ids[i])}); err != nil {
			t.Fatalf("SendEvent(%s) = %v", ids[i], err)
		}
	}
	log := h.Telemetry()
	for _, id := range ids {
		evs, _ := log.Read(log.PartitionOf(id), 0, 100)
		found := false
		for _, ev := range evs {
			found = found || ev.DeviceID == id && string(ev.Message.Body) == id
		}
		if !found {
			t.Errorf("no message from %s with body %q in the hub's log", id, id)
		}
	}
	status, payload, err := h.InvokeMethod(testCtx(t), "s2", "", "who", nil, 0, waitFor)
	if err != nil || status != 200 || string(payload) != `"s2"` {
		t.Errorf("InvokeMethod(s2) = %d %s %v; want 200 \"s2\"", status, payload, err)
	}
	if _, err := h.Registry().Enqueue("s3", "", &registry.C2DMessage{MessageID: "c1", Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	h.C2DEnqueued("s3", "")
	select {
	case got := <-c2d:
		if got != "s3:hello" {
			t.Errorf("C2D for s3 reached %q; want s3:hello", got)
		}
	case <-testCtx(t).Done():
		t.Fatal("the C2D message for s3 never arrived")
	}
}

// linksOf is c's live links, nil while it is not connected.
func linksOf(c Conn) *leanLinks {
	lc := c.(*leanClient)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.cur
}

// sessionOf is the session c's links are on.
func sessionOf(c Conn) *leanSession {
	if l := linksOf(c); l != nil {
		return l.slot
	}
	return nil
}

// devicesOn is how many devices have a place on sl.
func devicesOn(s *AMQPShared, sl *leanSession) int {
	lc := leanCur(s)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return sl.devices
}

// The devices of a shared connection put their links on one session,
// as the C SDK does, up to devicesPerSession; the next device begins a
// second session, whose place it gives back when it closes. Each
// device's links are their own: closing one leaves the others' on the
// session.
func TestAMQPSharedDevicesShareSessions(t *testing.T) {
	h := startHub(t, nil)
	s := newShared(t)
	var conns []Conn
	for i := range devicesPerSession + 1 {
		conns = append(conns, openShared(t, h, s, fmt.Sprintf("ss%03d", i), Options{}, nil))
	}
	first := sessionOf(conns[0])
	for i, c := range conns[:devicesPerSession] {
		if sessionOf(c) != first {
			t.Fatalf("device %d is on another session than device 0's; want the first %d devices on one", i, devicesPerSession)
		}
	}
	last := conns[devicesPerSession]
	second := sessionOf(last)
	if second == nil || second == first {
		t.Fatalf("device %d is on the first session, which has its %d devices; want a second session", devicesPerSession, devicesPerSession)
	}
	if err := last.SendEvent(testCtx(t), &message.Message{Body: []byte("second")}); err != nil {
		t.Fatalf("SendEvent on the second session = %v", err)
	}
	last.Close(testCtx(t))
	if n := devicesOn(s, second); n != 0 {
		t.Errorf("%d devices on the second session after its only device closed; want 0", n)
	}
	// Closing a device detaches its links only: the device beside it on
	// the same session goes on.
	conns[0].Close(testCtx(t))
	if err := conns[1].SendEvent(testCtx(t), &message.Message{Body: []byte("beside")}); err != nil {
		t.Errorf("SendEvent beside a closed device = %v", err)
	}
	if sessionOf(conns[1]) != first {
		t.Error("the device beside the closed one left its session")
	}
	if n := devicesOn(s, first); n != devicesPerSession-1 {
		t.Errorf("%d devices on the first session after one closed; want %d", n, devicesPerSession-1)
	}
}

// A device whose token is refused on a shared connection stops with
// ErrUnauthorized and takes no place on a session; the devices already
// there go on.
func TestAMQPSharedRefusedTokenLeavesTheOthers(t *testing.T) {
	h := startHub(t, nil)
	s := newShared(t)
	keep := openShared(t, h, s, "stay", Options{}, func(c Conn) {
		c.SetDefaultMethodHandler(func(context.Context, *MethodRequest) MethodResponse { return MethodResponse{Status: 200} })
	})
	cs := hubDevice(t, h, "forged")
	bad, err := s.Open(&Options{HostName: cs.HostName, DeviceID: "forged", SharedAccessKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		CAFile: h.CAFile(), Transport: TransportAMQP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close(context.Background()) })
	if err := bad.Connect(testCtx(t)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Connect with a wrong key = %v; want ErrUnauthorized", err)
	}
	if n := devicesOn(s, sessionOf(keep)); n != 1 {
		t.Errorf("%d devices on the session; want the one that connected", n)
	}
	if err := keep.SendEvent(testCtx(t), &message.Message{Body: []byte("ok")}); err != nil {
		t.Errorf("SendEvent beside the refused device = %v", err)
	}
	if status, _, err := h.InvokeMethod(testCtx(t), "stay", "", "ping", nil, 0, waitFor); err != nil || status != 200 {
		t.Errorf("InvokeMethod beside the refused device = %d, %v; want 200", status, err)
	}
}

// A device whose token expires loses its own links; the device beside
// it on the same connection goes on sending.
func TestAMQPSharedExpiredTokenEndsOnlyItsDevice(t *testing.T) {
	h := startHub(t, nil)
	s := newShared(t)
	keep := openShared(t, h, s, "keep", Options{}, nil)

	short := openShortToken(t, h, s, "short")
	// A receiving link learns of the end at once; a device that only
	// sends telemetry learns of it at its next send.
	short.SetDefaultMethodHandler(func(context.Context, *MethodRequest) MethodResponse { return MethodResponse{Status: 200} })
	if err := short.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect(short) = %v", err)
	}
	// The hub ends short's links when its token expires; its reconnect
	// puts the same, expired, token and is refused for good.
	select {
	case <-short.Done():
	case <-testCtx(t).Done():
		t.Fatal("the device with the expired token is still running")
	}
	if err := short.Err(); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("short stopped with %v; want ErrUnauthorized", err)
	}
	if !keep.Connected() {
		t.Error("the other device on the connection is disconnected")
	}
	sl := sessionOf(keep)
	if sl == nil {
		t.Fatal("the device beside the expired one has no session")
	}
	if err := keep.SendEvent(testCtx(t), &message.Message{Body: []byte("still here")}); err != nil {
		t.Errorf("SendEvent beside the expired device = %v; want nil", err)
	}
	if n := devicesOn(s, sl); n != 1 {
		t.Errorf("%d devices on the session after the expired one left; want 1", n)
	}
	if l := linksOf(keep); l == nil || l.lc != leanCur(s) {
		t.Error("the device beside the expired one is no longer on the shared connection")
	}
}

// A lost connection reconnects every device that was on it, on one new
// shared connection.
func TestAMQPSharedLostConnectionReconnectsAll(t *testing.T) {
	h := startHub(t, nil)
	s := newShared(t)
	logs := map[string]*eventLog{}
	var conns []Conn
	for _, id := range []string{"r1", "r2"} {
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
		if l := linksOf(c); l == nil || l.lc == old || l.lc != leanCur(s) {
			t.Errorf("%s is not on the new shared connection", c.DeviceID())
		}
	}
}

// What cannot share a connection is refused with a reason: another
// transport, a certificate, another hub address, more devices than
// the connection takes.
func TestAMQPSharedRefusals(t *testing.T) {
	if _, err := NewAMQPShared(MaxDevicesPerAMQPConnection + 1); err == nil || !strings.Contains(err.Error(), "use 1 to 995") {
		t.Errorf("NewAMQPShared(996) = %v; want the range named", err)
	}
	s, err := NewAMQPShared(1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts := func(id, host string) *Options {
		return &Options{HostName: host, DeviceID: id, SharedAccessKey: "AAAA", Transport: TransportAMQP}
	}
	if _, err := s.Open(&Options{HostName: "h", DeviceID: "m", SharedAccessKey: "AAAA"}); err == nil || !strings.Contains(err.Error(), "Transport amqp") {
		t.Errorf("Open(MQTT) = %v; want a refusal naming the transport", err)
	}
	cert, _, _ := selfSigned(t)
	o := opts("x", "h")
	o.SharedAccessKey, o.Certificate = "", &cert
	if _, err := s.Open(o); err == nil || !strings.Contains(err.Error(), "X.509") {
		t.Errorf("Open(certificate) = %v; want a refusal naming X.509", err)
	}
	c, err := s.Open(opts("a", "h1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(opts("b", "h1")); err == nil || !strings.Contains(err.Error(), "has its 1 devices") {
		t.Errorf("Open beyond max = %v; want the limit named", err)
	}
	c.Close(context.Background())
	if _, err := s.Open(opts("b", "h2")); err == nil || !strings.Contains(err.Error(), "share connections by target") {
		t.Errorf("Open(other host) = %v; want a refusal naming both targets", err)
	}
}

// Closing the devices and the shared connection ends every goroutine.
func TestAMQPSharedCloseEndsEveryGoroutine(t *testing.T) {
	h := startHub(t, nil)
	ignore := goleak.IgnoreCurrent()
	s, err := NewAMQPShared(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g1", "g2"} {
		c := openShared(t, h, s, id, Options{}, func(c Conn) {
			c.SetC2DHandler(func(*message.Message) {})
			c.SetDesiredHandler(func(json.RawMessage, int64) {})
		})
		c.Close(context.Background())
	}
	s.Close()
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after Close: %v", err)
	}
}

// A device without handlers attaches its telemetry link only; a method
// handler set later attaches the methods links (and the hub's call
// reaches it), a twin request the twin links.
func TestAMQPLinksAttachedWhenNeeded(t *testing.T) {
	h := startHub(t, nil)
	s := newShared(t)
	c := openShared(t, h, s, "lazy", Options{}, nil)
	links := func() (methods, twin, c2d bool) {
		l := linksOf(c)
		l.amu.Lock()
		defer l.amu.Unlock()
		return l.mRcv != nil, l.tRcv != nil, l.c2d != nil
	}
	if m, tw, cd := links(); m || tw || cd {
		t.Fatalf("links of a device without handlers: methods %v, twin %v, C2D %v; want none but telemetry", m, tw, cd)
	}
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("x")}); err != nil {
		t.Fatalf("SendEvent = %v", err)
	}
	if _, _, err := h.InvokeMethod(testCtx(t), "lazy", "", "ping", nil, 0, waitFor); err == nil {
		t.Error("a method call reached a device without a method handler; want device not online")
	}
	c.HandleMethod("ping", func(context.Context, *MethodRequest) MethodResponse { return MethodResponse{Status: 200} })
	// The handler's links attach on their own goroutine: the call
	// waits for the device to listen.
	status, _, err := h.InvokeMethod(testCtx(t), "lazy", "", "ping", nil, waitFor, waitFor)
	if err != nil || status != 200 {
		t.Errorf("InvokeMethod after HandleMethod = %d, %v; want 200", status, err)
	}
	if _, err := c.UpdateReported(testCtx(t), map[string]any{"lazy": true}); err != nil {
		t.Fatalf("UpdateReported without the twin links attached = %v", err)
	}
	if m, tw, _ := links(); !m || !tw {
		t.Errorf("after a method handler and a twin request: methods %v, twin %v; want both", m, tw)
	}
}

// openShortToken makes a client for a new hub device id on s whose
// token (a fixed signature, not a key) expires in 3 s; it is not
// connected yet.
func openShortToken(t *testing.T, h *hub.Hub, s *AMQPShared, id string) Conn {
	t.Helper()
	cs := hubDevice(t, h, id)
	key, err := sas.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, id), key, &sas.SignOptions{Expiry: time.Now().Add(3 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Open(&Options{HostName: cs.HostName, DeviceID: id, SharedAccessSignature: tok.Encode(),
		CAFile: h.CAFile(), Transport: TransportAMQP, MinRetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
