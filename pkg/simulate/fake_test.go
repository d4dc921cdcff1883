package simulate

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/message"
)

const waitFor = 10 * time.Second

// fakeConn is an in-memory Conn: sends land on a channel, the test
// calls the handlers itself.
type fakeConn struct {
	opts       device.Options
	connectErr error

	mu      sync.Mutex
	methods map[string]device.MethodHandler
	def     device.MethodHandler
	desired device.DesiredHandler
	c2d     device.C2DHandler

	sent     chan *message.Message
	reported chan json.RawMessage
	closed   chan struct{}
	once     sync.Once
}

func newFake(o *device.Options) *fakeConn {
	return &fakeConn{opts: *o, sent: make(chan *message.Message, 1000), reported: make(chan json.RawMessage, 100),
		closed: make(chan struct{}), methods: map[string]device.MethodHandler{}}
}

func (c *fakeConn) Connect(context.Context) error {
	if c.connectErr != nil {
		c.opts.OnState(device.Event{State: device.StateDisconnected, Reason: device.ReasonConnectFailed, Err: c.connectErr, Final: true})
		return c.connectErr
	}
	c.opts.OnState(device.Event{State: device.StateConnected})
	return nil
}

func (c *fakeConn) SendEvent(ctx context.Context, m *message.Message) error {
	select {
	case c.sent <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *fakeConn) UpdateReported(_ context.Context, patch any) (int64, error) {
	c.reported <- patch.(json.RawMessage)
	return 42, nil
}

func (c *fakeConn) HandleMethod(name string, fn device.MethodHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.methods[name] = fn
}

func (c *fakeConn) SetDefaultMethodHandler(fn device.MethodHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.def = fn
}

func (c *fakeConn) SetDesiredHandler(fn device.DesiredHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.desired = fn
}

func (c *fakeConn) SetC2DHandler(fn device.C2DHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c2d = fn
}

func (c *fakeConn) Close(context.Context) error {
	c.once.Do(func() {
		close(c.closed)
		c.opts.OnState(device.Event{State: device.StateClosed, Reason: device.ReasonClosed})
	})
	return nil
}

func (c *fakeConn) DeviceID() string { return c.opts.DeviceID }

// call invokes a direct method as the hub would.
func (c *fakeConn) call(name, payload string) device.MethodResponse {
	c.mu.Lock()
	fn := c.methods[name]
	if fn == nil {
		fn = c.def
	}
	c.mu.Unlock()
	if fn == nil {
		return device.NotDefined(name)
	}
	return fn(context.Background(), &device.MethodRequest{Name: name, RequestID: "1", Payload: []byte(payload)})
}

// fakeFleet makes a Fleet whose devices are fakeConns, reported on conns.
func fakeFleet(t *testing.T, o *Options) (*Fleet, chan *fakeConn) {
	t.Helper()
	f, err := New(o)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	conns := make(chan *fakeConn, 100)
	f.dial = func(o *device.Options) (Conn, error) {
		c := newFake(o)
		conns <- c
		return c, nil
	}
	return f, conns
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// sink collects events on a channel.
type sink struct{ ch chan Event }

func newSink() *sink        { return &sink{ch: make(chan Event, 10000)} }
func (s *sink) put(e Event) { s.ch <- e }
func (s *sink) next(t *testing.T, typ string) Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e := <-s.ch:
			if e.Type == typ {
				return e
			}
		case <-deadline:
			t.Fatalf("timed out waiting for a %s event", typ)
		}
	}
}

var messageWithProps = message.Message{MessageID: "m1", Body: []byte("hello"), Properties: map[string]string{"color": "red"}}
