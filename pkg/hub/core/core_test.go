package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is a transport for the core's tests: it records what the
// core sends and reports each event on a channel.
type fakeConn struct {
	mu        sync.Mutex
	listening map[Feature]bool
	credit    int // C2D messages it takes; -1: any number
	refused   chan struct{}
	c2d       chan *registry.C2DMessage
	methods   chan [3]string // name, request id, payload
	desired   chan []byte
	closed    chan error
}

func newFakeConn(fs ...Feature) *fakeConn {
	c := &fakeConn{listening: map[Feature]bool{}, credit: -1, refused: make(chan struct{}, 10), c2d: make(chan *registry.C2DMessage, 100),
		methods: make(chan [3]string, 10), desired: make(chan []byte, 10), closed: make(chan error, 10)}
	for _, f := range fs {
		c.listening[f] = true
	}
	return c
}

func (c *fakeConn) Listening(f Feature) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.listening[f] }
func (c *fakeConn) SendMethod(name, rid string, payload []byte) error {
	c.methods <- [3]string{name, rid, string(payload)}
	return nil
}
func (c *fakeConn) SendDesired(_ int64, body []byte) error { c.desired <- body; return nil }
func (c *fakeConn) SendC2D(m *registry.C2DMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.credit == 0 {
		c.refused <- struct{}{}
		return ErrNoCredit
	}
	if c.credit > 0 {
		c.credit--
	}
	c.c2d <- m
	return nil
}
func (c *fakeConn) Close(reason error) { c.closed <- reason }

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
	}
	var zero T
	return zero
}

// newCore returns a core over an in-memory registry with devices dev1
// and dev2, whose goroutines end before the test does.
func newCore(t *testing.T, now func() time.Time) (*Core, *registry.Store) {
	t.Helper()
	reg, err := registry.OpenMemory(&registry.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	log := telemetry.NewMemory(&telemetry.Options{Partitions: 2, Now: now})
	for _, id := range []string{"dev1", "dev2"} {
		if _, err := reg.CreateDevice(&iothub.Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c := New(ctx, &Options{Registry: reg, Telemetry: log, Now: now, Go: func(f func()) bool {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
		return true
	}})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = log.Close()
		_ = reg.Close()
	})
	return c, reg
}

var dev1 = Identity{DeviceID: "dev1"}

// A direct method goes to the identity's connection and its answer
// comes back by request id; an answer from another identity is dropped.
func TestInvokeMethodThroughAConn(t *testing.T) {
	c, _ := newCore(t, time.Now)
	ctx := context.Background()
	if _, _, err := c.InvokeMethod(ctx, "dev1", "", "m", nil, 0, time.Second); !errors.Is(err, ErrDeviceNotOnline) {
		t.Fatalf("offline: %v; want ErrDeviceNotOnline", err)
	}
	conn := newFakeConn(Methods)
	s := c.Attach(dev1, conn, AttachOptions{AuthMethod: "sas"})
	other := c.Attach(Identity{DeviceID: "dev2"}, newFakeConn(Methods), AttachOptions{AuthMethod: "sas"})
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		st, b, err := c.InvokeMethod(ctx, "dev1", "", "reboot", json.RawMessage(`{"a":1}`), 0, 10*time.Second)
		done <- result{st, string(b), err}
	}()
	req := recv(t, conn.methods, "method request")
	if req[0] != "reboot" || req[2] != `{"a":1}` {
		t.Fatalf("the connection got %q", req)
	}
	other.MethodResponse(req[1], 500, []byte("wrong device"))
	s.MethodResponse(req[1], 201, []byte("not json"))
	r := recv(t, done, "method result")
	if r.err != nil || r.status != 201 || r.body != `"not json"` {
		t.Fatalf("InvokeMethod = %d %s %v; want 201 \"not json\"", r.status, r.body, r.err)
	}
	s.Detach(nil)
	other.Detach(nil)
}

// Queued C2D messages go to the connection once it listens; complete,
// reject and abandon settle them in the registry; a lock the session was
// never handed is refused and changes nothing; messages left unsettled
// go back to the queue when the connection ends.
func TestC2DThroughAConn(t *testing.T) {
	c, reg := newCore(t, time.Now)
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, err := reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: id, Ack: registry.AckFull}); err != nil {
			t.Fatal(err)
		}
	}
	conn := newFakeConn()
	s := c.Attach(dev1, conn, AttachOptions{AuthMethod: "sas"})
	conn.mu.Lock()
	conn.listening[C2D] = true
	conn.mu.Unlock()
	s.Changed()
	got := map[string]*registry.C2DMessage{}
	for range 4 {
		m := recv(t, conn.c2d, "c2d message")
		got[m.MessageID] = m
	}
	if err := s.CompleteC2D("not-a-lock"); !errors.Is(err, registry.ErrDeviceMessageLockLost) {
		t.Errorf("settling an unknown lock: %v; want ErrDeviceMessageLockLost", err)
	}
	if err := s.CompleteC2D(got["a"].LockToken); err != nil {
		t.Fatal(err)
	}
	if err := s.RejectC2D(got["b"].LockToken); err != nil {
		t.Fatal(err)
	}
	if err := s.AbandonC2D(got["c"].LockToken); err != nil {
		t.Fatal(err)
	}
	again := recv(t, conn.c2d, "abandoned message delivered again")
	if again.MessageID != "c" || again.DeliveryCount != 2 {
		t.Errorf("after abandon got %s (delivery count %d); want c, 2", again.MessageID, again.DeliveryCount)
	}
	s.Detach(nil)
	if n, _ := reg.PendingC2D("dev1", ""); n != 2 {
		t.Errorf("%d messages queued after the connection ended; want c and d back", n)
	}
	if m, _ := reg.Receive("dev1", ""); m == nil {
		t.Error("the unsettled messages are still locked after the connection ended")
	}
	fb, err := reg.TakeFeedback(10)
	if err != nil || fb == nil {
		t.Fatalf("feedback: %v %v", fb, err)
	}
	status := map[string]string{}
	for _, r := range fb.Records {
		status[r.OriginalMessageID] = string(r.StatusCode)
	}
	if status["a"] != "Success" || status["b"] != "Rejected" || len(status) != 2 {
		t.Errorf("feedback %v; want a Success, b Rejected", status)
	}
}

// A connection that takes no message now (no AMQP credit) leaves the
// queue as it was, and gets the message at the next kick.
func TestC2DWaitsForCredit(t *testing.T) {
	c, reg := newCore(t, time.Now)
	if _, err := reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m"}); err != nil {
		t.Fatal(err)
	}
	conn := newFakeConn(C2D)
	conn.credit = 0
	s := c.Attach(dev1, conn, AttachOptions{AuthMethod: "sas"})
	// The first round finds no credit and puts the message back
	// before it looks at the queue again.
	recv(t, conn.refused, "refused delivery")
	conn.mu.Lock()
	conn.credit = 1
	conn.mu.Unlock()
	s.KickC2D()
	if m := recv(t, conn.c2d, "c2d message"); m.MessageID != "m" {
		t.Errorf("got %s", m.MessageID)
	}
	s.Detach(nil)
}

// A second connection of an identity closes the first with
// ErrReplaced; the first one's end does not disconnect the identity.
func TestAttachReplaces(t *testing.T) {
	c, _ := newCore(t, time.Now)
	first := newFakeConn()
	s1 := c.Attach(dev1, first, AttachOptions{})
	s2 := c.Attach(dev1, newFakeConn(), AttachOptions{})
	if err := recv(t, first.closed, "close of the first connection"); !errors.Is(err, ErrReplaced) {
		t.Errorf("first connection closed with %v; want ErrReplaced", err)
	}
	s1.Detach(ErrReplaced)
	if c.Session(dev1) != s2 || c.Connected() != 1 {
		t.Errorf("after the first detached: session %p, %d connected; want the second, 1", c.Session(dev1), c.Connected())
	}
	s2.Detach(nil)
	if ok, since, _ := c.State("dev1", ""); ok || since.IsZero() {
		t.Errorf("State after the end = %v, %v; want disconnected with a time", ok, since)
	}
}

// The core closes a connection when its token expires, by its clock,
// and Renew moves that end to the new token's expiry.
func TestTokenExpiryClosesAndRenewMovesIt(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, _ := newCore(t, clock)
	conn := newFakeConn()
	s := c.Attach(dev1, conn, AttachOptions{AuthMethod: "sas", Expiry: now.Add(time.Hour)})
	// The renewed token has expired by the core's clock: the
	// connection ends now, not in an hour.
	s.Renew(now.Add(-2 * time.Second))
	if err := recv(t, conn.closed, "close at expiry"); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("closed with %v; want ErrTokenExpired", err)
	}
	s.Detach(ErrTokenExpired)
}

// A device's telemetry goes to the log with who sent it; a message
// over 256 KB is refused before anything is stored.
func TestIngest(t *testing.T) {
	c, _ := newCore(t, time.Now)
	s := c.Attach(dev1, newFakeConn(), AttachOptions{AuthMethod: "x509"})
	defer s.Detach(nil)
	if pending, err := s.Ingest(&message.Message{Body: []byte("one")}, func(error) { t.Error("done called in memory") }); pending || err != nil {
		t.Fatalf("Ingest = %v, %v", pending, err)
	}
	if err := c.IngestBatch(Sender{Identity: dev1, AuthMethod: "sas"}, []*message.Message{{Body: []byte("two")}, {Body: []byte("three")}}); err != nil {
		t.Fatal(err)
	}
	big := &message.Message{Body: make([]byte, message.MaxTelemetrySize+1)}
	if err := c.IngestBatch(Sender{Identity: dev1}, []*message.Message{{Body: []byte("four")}, big}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a batch with a message over 256 KB: %v; want ErrTooLarge", err)
	}
	evs, _ := c.telemetry.Read(c.telemetry.PartitionOf("dev1"), 0, 10)
	var bodies []string
	for _, ev := range evs {
		bodies = append(bodies, string(ev.Message.Body)+"/"+ev.AuthMethod)
	}
	if len(bodies) != 3 || bodies[0] != "one/x509" || bodies[1] != "two/sas" || bodies[2] != "three/sas" {
		t.Errorf("the log holds %q; want one/x509 two/sas three/sas", bodies)
	}
}

// A desired patch reaches a connection that listens, with $version.
func TestDesiredChanged(t *testing.T) {
	c, _ := newCore(t, time.Now)
	conn := newFakeConn(Desired)
	s := c.Attach(dev1, conn, AttachOptions{})
	defer s.Detach(nil)
	c.DesiredChanged("dev1", "", json.RawMessage(`{"x":1}`), 7)
	if b := recv(t, conn.desired, "desired patch"); string(b) != `{"$version":7,"x":1}` {
		t.Errorf("got %s", b)
	}
}

// Once a session has left the table, State reports the connection
// times the registry keeps: a reader woken by the disconnection never
// sees an identity that is neither connected nor has its times.
func TestStateAfterDetachHasTheTimes(t *testing.T) {
	c, _ := newCore(t, time.Now)
	s := c.Attach(dev1, newFakeConn(), AttachOptions{})
	done := make(chan struct{})
	go func() { s.Detach(nil); close(done) }()
	for {
		changed := c.Wait(dev1)
		if c.Session(dev1) == nil {
			break
		}
		<-changed
	}
	if ok, since, last := c.State("dev1", ""); ok || since.IsZero() || last.IsZero() {
		t.Errorf("State right after the session left = %v, %v, %v; want disconnected with both times", ok, since, last)
	}
	<-done
}

type recordedEvents struct {
	mu   sync.Mutex
	seen []string
}

func (r *recordedEvents) add(s string)            { r.mu.Lock(); r.seen = append(r.seen, s); r.mu.Unlock() }
func (r *recordedEvents) MessageStored(tr string) { r.add("stored " + tr) }
func (r *recordedEvents) MethodCalled(err error) {
	r.add(map[bool]string{true: "method not online", false: "method other"}[errors.Is(err, ErrDeviceNotOnline)])
}
func (r *recordedEvents) C2D(e string) { r.add("c2d " + e) }

// Events hears of stored messages by transport, method calls and C2D
// deliveries and completions, whatever the transport.
func TestEvents(t *testing.T) {
	c, reg := newCore(t, time.Now)
	ev := &recordedEvents{}
	c.events = ev
	s := c.Attach(dev1, newFakeConn(), AttachOptions{Transport: "mqtt"})
	if _, err := s.Ingest(&message.Message{Body: []byte("a")}, nil); err != nil {
		t.Fatal(err)
	}
	s.Detach(nil)
	if err := c.Ingest(Sender{Identity: dev1, Transport: "https"}, &message.Message{Body: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	_, _, _ = c.InvokeMethod(context.Background(), "dev1", "", "m", nil, 0, time.Second)
	if _, err := reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m"}); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReceiveC2D(dev1, 0)
	if err != nil || m == nil {
		t.Fatalf("ReceiveC2D = %v, %v", m, err)
	}
	if err := c.SettleC2D("dev1", "", m.LockToken, Complete); err != nil {
		t.Fatal(err)
	}
	want := "[stored mqtt stored https method not online c2d delivered c2d completed]"
	if got := fmt.Sprint(ev.seen); got != want {
		t.Errorf("events %s; want %s", got, want)
	}
}
