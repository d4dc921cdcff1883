package device

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/iotctl/iotctl/internal/stacks"
	"github.com/iotctl/iotctl/pkg/message"
)

// doneCall is one call of a SendEventAsync done callback.
type doneCall struct {
	i   int // which send
	err error
}

// dones gives each send i a done callback reporting on ch.
type dones struct{ ch chan doneCall }

func newDones() *dones { return &dones{ch: make(chan doneCall, 1000)} }

func (d *dones) fn(i int) func(error) { return func(err error) { d.ch <- doneCall{i, err} } }

// collect waits for one call per send 0..n-1 and returns their errors;
// it fails the test on a send called twice.
func (d *dones) collect(t *testing.T, n int) []error {
	t.Helper()
	errs := make([]error, n)
	seen := make([]bool, n)
	for range n {
		c := recv(t, d.ch, "a done callback")
		if seen[c.i] {
			t.Fatalf("done of send %d called twice (%v, then %v)", c.i, errs[c.i], c.err)
		}
		seen[c.i], errs[c.i] = true, c.err
	}
	return errs
}

// none fails the test if a done was called that should not have been.
func (d *dones) none(t *testing.T, why string) {
	t.Helper()
	select {
	case c := <-d.ch:
		t.Fatalf("done of send %d called with %v %s", c.i, c.err, why)
	default:
	}
}

// watched is dev1 connected to a new broker, its state events logged
// (the first StateConnected read), the broker's connects and
// subscribes drained.
func watched(t *testing.T) (*testBroker, *Client, *eventLog) {
	t.Helper()
	b := newTestBroker(t)
	drain(t, b.connects)
	drain(t, b.subscribes)
	events := newEventLog()
	o := b.options("dev1")
	o.OnState = events.on
	c := connect(t, o, nil)
	events.waitState(t, StateConnected)
	return b, c, events
}

func body(i int) []byte { return []byte("m" + strconv.Itoa(i)) }

// clientGoroutines counts the goroutines running (or parked in) code
// of a Client or its connection.
func clientGoroutines() int { return stacks.Count("device.(*Client).", "device.(*conn).") }

// Messages waiting for their PUBACK keep no goroutine: SendEventAsync
// returns once the PUBLISH is written, and the connection's reader
// calls each done, once, when the hub acknowledges. (Not parallel: it
// counts the package's goroutines.)
func TestSendEventAsyncWaitsOnNoGoroutine(t *testing.T) {
	b, c, _ := watched(t)
	release := b.holdAcks()
	before := clientGoroutines()
	const n = 50
	d := newDones()
	for i := range n {
		if err := c.SendEventAsync(testCtx(t), &message.Message{Body: body(i)}, d.fn(i)); err != nil {
			t.Fatalf("SendEventAsync %d = %v", i, err)
		}
	}
	if after := clientGoroutines(); after > before {
		t.Errorf("%d goroutines of the client with %d messages waiting for their PUBACK, %d before; want no more",
			after, n, before)
	}
	recv(t, b.telemetry, "the first message")
	d.none(t, "while the hub holds the PUBACKs")
	release()
	for i, err := range d.collect(t, n) {
		if err != nil {
			t.Errorf("done of send %d = %v; want nil", i, err)
		}
	}
	for range n - 1 {
		recv(t, b.telemetry, "the other messages")
	}
	c.mu.Lock()
	inflight, unsent := c.inflight, len(c.unsent)
	c.mu.Unlock()
	if inflight != 0 || unsent != 0 {
		t.Errorf("after every PUBACK: %d in flight, %d unsent; want 0, 0", inflight, unsent)
	}
}

// A message whose connection drops before its PUBACK is sent again on
// the next connection; its done is called once, when that one is
// acknowledged.
func TestSendEventAsyncInFlightGoesAgainAfterReconnect(t *testing.T) {
	t.Parallel()
	b, c, events := watched(t)
	release := b.holdAcks()
	d := newDones()
	if err := c.SendEventAsync(testCtx(t), &message.Message{Body: body(0)}, d.fn(0)); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, b.telemetry, "the message"); string(r.payload) != "m0" {
		t.Fatalf("hub got %q; want m0", r.payload)
	}
	b.drop("dev1")
	events.waitState(t, StateDisconnected)
	d.none(t, "when the connection dropped")
	release()
	events.waitState(t, StateConnected)
	if errs := d.collect(t, 1); errs[0] != nil {
		t.Fatalf("done = %v; want nil", errs[0])
	}
	if r := recv(t, b.telemetry, "the message sent again"); string(r.payload) != "m0" {
		t.Fatalf("hub got %q after the reconnect; want m0 again", r.payload)
	}
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("after")}); err != nil {
		t.Fatalf("SendEvent after the reconnect = %v", err)
	}
	d.none(t, "a second time")
}

// Cancelling ctx ends the wait, for a PUBACK or for a connection, with
// ctx.Err(), once; a PUBACK that comes later is ignored.
func TestSendEventAsyncContextEndsTheWait(t *testing.T) {
	t.Parallel()
	b, c, events := watched(t)
	release := b.holdAcks()
	d := newDones()
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.SendEventAsync(ctx, &message.Message{Body: body(0)}, d.fn(0)); err != nil {
		t.Fatal(err)
	}
	recv(t, b.telemetry, "the message")
	cancel()
	if errs := d.collect(t, 1); !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("done after cancel = %v; want context.Canceled", errs[0])
	}
	release()
	// PUBACKs come in order: once this one's came, the first's did.
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("next")}); err != nil {
		t.Fatalf("SendEvent = %v", err)
	}
	d.none(t, "on the PUBACK after the cancel")

	// While the client reconnects, the message waits in its queue.
	b.close()
	events.waitState(t, StateDisconnected)
	ctx, cancel = context.WithCancel(context.Background())
	d = newDones()
	if err := c.SendEventAsync(ctx, &message.Message{Body: body(1)}, d.fn(0)); err != nil {
		t.Fatalf("SendEventAsync while reconnecting = %v; want nil (queued)", err)
	}
	cancel()
	if errs := d.collect(t, 1); !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("done after cancel = %v; want context.Canceled", errs[0])
	}
	c.mu.Lock()
	inflight, unsent := c.inflight, len(c.unsent)
	c.mu.Unlock()
	if inflight != 0 || unsent != 0 {
		t.Errorf("after the cancels: %d in flight, %d unsent; want 0, 0", inflight, unsent)
	}
	c.Close(context.Background())
	d.none(t, "by Close after the cancel")
}

// Close ends every message not acknowledged yet with ErrClosed, once
// each: those waiting for their PUBACK and those waiting for a
// connection.
func TestCloseEndsEveryPendingSend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down bool // the hub is gone: the messages wait for a connection
	}{{"waiting for the PUBACK", false}, {"waiting for a connection", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, c, events := watched(t)
			b.holdAcks()
			if tc.down {
				b.close()
				events.waitState(t, StateDisconnected)
			}
			const n = 5
			d := newDones()
			for i := range n {
				if err := c.SendEventAsync(context.Background(), &message.Message{Body: body(i)}, d.fn(i)); err != nil {
					t.Fatalf("SendEventAsync %d = %v", i, err)
				}
			}
			if !tc.down {
				recv(t, b.telemetry, "the first message")
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // no waiting for the PUBACKs
			c.Close(ctx)
			for i, err := range d.collect(t, n) {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("done of send %d = %v; want ErrClosed", i, err)
				}
			}
			d.none(t, "again")
		})
	}
}

// A refused reconnect ends the messages that waited for it with its
// *ConnectError.
func TestRefusedReconnectEndsPendingSends(t *testing.T) {
	t.Parallel()
	b, c, _ := watched(t)
	release := b.holdAcks()
	d := newDones()
	if err := c.SendEventAsync(context.Background(), &message.Message{Body: body(0)}, d.fn(0)); err != nil {
		t.Fatal(err)
	}
	recv(t, b.telemetry, "the message")
	b.refuseAll.Store(true)
	b.drop("dev1")
	release()
	var ce *ConnectError
	if errs := d.collect(t, 1); !errors.As(errs[0], &ce) || !errors.Is(errs[0], ErrUnauthorized) {
		t.Fatalf("done = %v; want the *ConnectError of the refusal", errs[0])
	}
}

// Messages sent while the first Connect retries end when it gives up,
// with ErrNotConnected and its error.
func TestFailedConnectEndsPendingSends(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	events := newEventLog()
	o := b.options("dev1")
	o.ConnectionString = "HostName=127.0.0.1:1;DeviceId=dev1;SharedAccessKey=" + testKey // nothing listens
	o.RetryConnect = true
	o.OnState = events.on
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	connected := make(chan error, 1)
	go func() { connected <- c.Connect(ctx) }()
	events.waitState(t, StateReconnecting)
	d := newDones()
	if err := c.SendEventAsync(context.Background(), &message.Message{}, d.fn(0)); err != nil {
		t.Fatalf("SendEventAsync while Connect retries = %v; want nil (queued)", err)
	}
	cancel()
	if err := recv(t, connected, "Connect"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect = %v; want context.Canceled", err)
	}
	if errs := d.collect(t, 1); !errors.Is(errs[0], ErrNotConnected) || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("done = %v; want ErrNotConnected wrapping context.Canceled", errs[0])
	}
}
