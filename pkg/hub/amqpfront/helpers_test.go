package amqpfront

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// testTimeout bounds every wait in the tests.
const testTimeout = 10 * time.Second

const testHost = "myhub.local:5671"

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testHub is a Front over an in-memory registry and telemetry log.
type testHub struct {
	t        testing.TB
	f        *Front
	reg      *registry.Store
	tel      *telemetry.Log
	mu       sync.Mutex
	enqueued []string // device/module of each C2DEnqueued call
	kick     chan struct{}
}

func newTestHub(t testing.TB, ropts *registry.Options, opts *Options) *testHub {
	t.Helper()
	reg, err := registry.OpenMemory(ropts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	h := &testHub{t: t, reg: reg, kick: make(chan struct{}, 1000)}
	// The telemetry clock moves on a millisecond per event, so every
	// event has its own AMQP timestamp.
	var ms atomic.Int64
	base := time.Now().Truncate(time.Millisecond)
	h.tel = telemetry.New(4, 0, 0, func() time.Time { return base.Add(time.Duration(ms.Add(1)) * time.Millisecond) })
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.HostNames == nil {
		o.HostNames = []string{testHost, "127.0.0.1"}
	}
	o.C2DEnqueued = func(d, m string) {
		h.mu.Lock()
		h.enqueued = append(h.enqueued, d+"/"+m)
		h.mu.Unlock()
		h.kick <- struct{}{}
	}
	h.f = New(reg, h.tel, &o)
	return h
}

func (h *testHub) createDevice(ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		if _, err := h.reg.CreateDevice(&iothub.Device{DeviceID: id}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// dial serves one connection over net.Pipe and connects a go-amqp
// client to it. The default client uses SASL ANONYMOUS.
func (h *testHub) dial(copts *amqp.ConnOptions) *amqp.Conn {
	h.t.Helper()
	c, err := h.tryDial(copts)
	if err != nil {
		h.t.Fatalf("amqp.NewConn: %v", err)
	}
	return c
}

func (h *testHub) tryDial(copts *amqp.ConnOptions) (*amqp.Conn, error) {
	h.t.Helper()
	if copts == nil {
		copts = &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()}
	}
	ctx := testCtx(h.t)
	cli, srv := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.f.Serve(ctx, srv)
	}()
	c, err := amqp.NewConn(ctx, cli, copts)
	if err != nil {
		_ = cli.Close()
		<-done
		return nil, err
	}
	h.t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	return c, nil
}

// token signs a SAS token of a policy for resource.
func (h *testHub) token(policy, resource string, expiry time.Time) string {
	h.t.Helper()
	p, err := h.reg.Policy(policy)
	if err != nil {
		h.t.Fatal(err)
	}
	key, err := sas.DecodeKey(p.PrimaryKey)
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := sas.Sign(resource, key, &sas.SignOptions{KeyName: policy, Expiry: expiry})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok.Encode()
}

// sbToken signs a token the way Event Hubs and Service Bus clients do:
// with the text of the key rather than its base64-decoded bytes.
func (h *testHub) sbToken(policy, resource string, expiry time.Time) string {
	h.t.Helper()
	p, err := h.reg.Policy(policy)
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := sas.Sign(resource, []byte(p.PrimaryKey), &sas.SignOptions{KeyName: policy, Expiry: expiry})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok.Encode()
}

// cbs is a client's pair of links on $cbs.
type cbs struct {
	s   *amqp.Sender
	r   *amqp.Receiver
	seq int
}

func newCBS(t testing.TB, sess *amqp.Session) *cbs {
	t.Helper()
	ctx := testCtx(t)
	s, err := sess.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatalf("attaching a sender to $cbs: %v", err)
	}
	r, err := sess.NewReceiver(ctx, "$cbs", &amqp.ReceiverOptions{TargetAddress: "cbs-reply", Credit: 10})
	if err != nil {
		t.Fatalf("attaching a receiver to $cbs: %v", err)
	}
	return &cbs{s: s, r: r}
}

// put sends a put-token request of type servicebus.windows.net:sastoken
// and returns the reply's status-code (which must be an AMQP int) and
// status-description.
func (c *cbs) put(t testing.TB, audience, token string) (int32, string) {
	t.Helper()
	return c.putWith(t, map[string]any{"type": "servicebus.windows.net:sastoken", "name": audience}, token)
}

// putWith sends a put-token request with the application properties
// props (operation is added) and returns the reply's status.
func (c *cbs) putWith(t testing.TB, props map[string]any, token string) (int32, string) {
	t.Helper()
	ctx := testCtx(t)
	c.seq++
	id := "req-" + string(rune('a'+c.seq))
	replyTo := "cbs-reply"
	to := "$cbs"
	ap := map[string]any{"operation": "put-token"}
	for k, v := range props {
		ap[k] = v
	}
	err := c.s.Send(ctx, &amqp.Message{
		Properties:            &amqp.MessageProperties{MessageID: id, ReplyTo: &replyTo, To: &to},
		ApplicationProperties: ap,
		Value:                 token,
	}, nil)
	if err != nil {
		t.Fatalf("sending put-token: %v", err)
	}
	res, err := c.r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("receiving the put-token reply: %v", err)
	}
	_ = c.r.AcceptMessage(ctx, res)
	if res.Properties == nil || res.Properties.CorrelationID != id {
		t.Fatalf("put-token reply properties %+v; want correlation-id %q", res.Properties, id)
	}
	code, ok := res.ApplicationProperties["status-code"].(int32)
	if !ok {
		t.Fatalf("status-code is %T %v; want an AMQP int (int32)", res.ApplicationProperties["status-code"], res.ApplicationProperties["status-code"])
	}
	desc, _ := res.ApplicationProperties["status-description"].(string)
	return code, desc
}

// session dials, opens a session and, when policy is not empty, puts a
// token of that policy for audience.
func (h *testHub) session(policy, audience string) *amqp.Session {
	h.t.Helper()
	c := h.dial(nil)
	s, err := c.NewSession(testCtx(h.t), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if policy != "" {
		cb := newCBS(h.t, s)
		if code, desc := cb.put(h.t, audience, h.token(policy, audience, time.Now().Add(time.Hour))); code != 200 {
			h.t.Fatalf("put-token for %s as %s: %d %s", audience, policy, code, desc)
		}
	}
	return s
}

// appendEvents adds n telemetry events from deviceID.
func (h *testHub) appendEvents(deviceID string, n int) []telemetry.Event {
	out := make([]telemetry.Event, 0, n)
	for i := range n {
		ev, err := h.tel.Append(telemetry.Event{DeviceID: deviceID, AuthMethod: "sas", GenerationID: "638000000000000001",
			Message: &message.Message{
				Body:            []byte(`{"n":` + string(rune('0'+i%10)) + `}`),
				MessageID:       "m-" + string(rune('a'+i%26)),
				CorrelationID:   "c-1",
				ContentType:     "application/json",
				ContentEncoding: "utf-8",
				Properties:      map[string]string{"temperatureAlert": "true"},
			}})
		if err != nil {
			h.t.Fatalf("Append: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// condition returns the AMQP error condition carried by err, from a
// refused attach, a rejected message or a detached link.
func condition(err error) string {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return string(ae.Condition)
	}
	var le *amqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return string(le.RemoteErr.Condition)
	}
	return ""
}

// deviceOn returns a device id whose telemetry goes to partition p.
func deviceOn(h *testHub, p int) string {
	for i := 0; ; i++ {
		id := "dev-" + strconv.Itoa(i)
		if h.tel.PartitionOf(id) == p {
			return id
		}
	}
}
