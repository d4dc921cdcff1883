package amqpfront

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/internal/entratest"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// put-token answers 200 for a valid policy token whose scope covers
// the audience in any of the forms the SDKs use, and 401 otherwise,
// with status-code as an AMQP int.
func TestPutToken(t *testing.T) {
	h := newTestHub(t, nil, nil)
	c := h.dial(nil)
	s, err := c.NewSession(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cb := newCBS(t, s)
	hour := time.Now().Add(time.Hour)
	other, _ := registry.OpenMemory(nil)
	defer other.Close()
	stranger := &testHub{t: t, reg: other}

	for _, tc := range []struct {
		name, audience, token string
		want                  int32
		desc                  string
	}{
		{"node service (host)", testHost, h.token("service", testHost, hour), 200, "OK"},
		{"python (https://host)", "https://myhub.local", h.token("service", "myhub.local", hour), 200, "OK"},
		{"event hubs (sb://host/eventhub)", "sb://myhub.local:5671/myhub", h.token("service", "sb://myhub.local:5671/myhub", hour), 200, "OK"},
		{"event hubs management", "sb://myhub.local:5671/myhub/$management", h.token("iothubowner", "sb://myhub.local:5671/myhub/$management", hour), 200, "OK"},
		{"ip address host", "127.0.0.1", h.token("iothubowner", "127.0.0.1", hour), 200, "OK"},
		{"wrong key", testHost, stranger.token("service", testHost, hour), 401, "bad signature"},
		{"expired", testHost, h.token("service", testHost, time.Now().Add(-time.Minute)), 401, "expired"},
		{"another hub", "otherhub.local", h.token("service", "otherhub.local", hour), 401, "scope"},
		{"narrower than the audience", testHost, h.token("service", testHost+"/messages/events", hour), 401, "does not cover"},
		{"not a token", testHost, "hello", 401, "malformed"},
		{"event hubs client signing with the key text", "sb://myhub.local:5671/myhub/$management", h.sbToken("service", "sb://myhub.local:5671/myhub/$management", hour), 200, "OK"},
		{"key text for the hub itself", testHost, h.sbToken("service", testHost, hour), 401, "bad signature"},
		{"key text, expired", "sb://myhub.local/myhub", h.sbToken("service", "sb://myhub.local/myhub", time.Now().Add(-time.Minute)), 401, "expired"},
	} {
		code, desc := cb.put(t, tc.audience, tc.token)
		if code != tc.want || !strings.Contains(desc, tc.desc) {
			t.Errorf("%s: put-token = %d %q; want %d with %q", tc.name, code, desc, tc.want, tc.desc)
		}
	}

	// Another operation is a bad request.
	ctx := testCtx(t)
	if err := cb.s.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "x"},
		ApplicationProperties: map[string]any{"operation": "get-token"}, Value: "x"}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := cb.r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ApplicationProperties["status-code"] != int32(400) || res.Properties.CorrelationID != "x" {
		t.Errorf("get-token answered %v %+v; want 400 correlated to x", res.ApplicationProperties, res.Properties)
	}
}

// A UUID message-id comes back as a UUID correlation-id.
func TestPutTokenUUIDCorrelation(t *testing.T) {
	h := newTestHub(t, nil, nil)
	s := h.session("", "")
	cb := newCBS(t, s)
	ctx := testCtx(t)
	id := amqp.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if err := cb.s.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: id},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": testHost},
		Value:                 h.token("service", testHost, time.Now().Add(time.Hour))}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := cb.r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Properties.CorrelationID != id || res.ApplicationProperties["status-code"] != int32(200) {
		t.Errorf("reply = %+v %v; want correlation-id %v and 200", res.Properties, res.ApplicationProperties, id)
	}
}

// Links that need a token and have none, or one of a policy without
// ServiceConnect, are refused with amqp:unauthorized-access.
func TestUnauthorizedLinks(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1")
	for name, s := range map[string]*amqp.Session{
		"no token":               h.session("", ""),
		"registryRead token":     h.session("registryRead", testHost),
		"token for another node": h.session("service", testHost+"/messages/servicebound/feedback"),
	} {
		ctx := testCtx(t)
		_, err := s.NewSender(ctx, "/messages/devicebound", nil)
		if got := condition(err); got != "amqp:unauthorized-access" {
			t.Errorf("%s: sender on /messages/devicebound: %v; want amqp:unauthorized-access", name, err)
		}
		for _, src := range []string{"myhub/ConsumerGroups/$Default/Partitions/0", "$management", "messages/events/"} {
			_, err := s.NewReceiver(ctx, src, nil)
			if got := condition(err); got != "amqp:unauthorized-access" {
				t.Errorf("%s: receiver on %s: %v; want amqp:unauthorized-access", name, src, err)
			}
		}
		if name != "token for another node" {
			if _, err := s.NewReceiver(ctx, "/messages/serviceBound/feedback", nil); condition(err) != "amqp:unauthorized-access" {
				t.Errorf("%s: feedback receiver: %v; want amqp:unauthorized-access", name, err)
			}
		}
	}
	// Unknown nodes are not found; device nodes, on a Front without a
	// device core, are not implemented.
	s := h.session("service", testHost)
	if _, err := s.NewSender(testCtx(t), "/messages/nothing", nil); condition(err) != "amqp:not-found" {
		t.Errorf("sender on an unknown node: %v; want amqp:not-found", err)
	}
	if _, err := s.NewSender(testCtx(t), "/devices/dev1/messages/events", nil); condition(err) != "amqp:not-implemented" {
		t.Errorf("sender on a device node without a core: %v; want amqp:not-implemented", err)
	}
}

// SASL PLAIN with {policy}@sas.root.{hub} and a token, or with a policy
// name and its key, authorizes the connection without CBS; wrong
// credentials fail SASL.
func TestSASLPlain(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1")
	owner, _ := h.reg.Policy("iothubowner")
	tok := h.token("iothubowner", "myhub.local", time.Now().Add(time.Hour))
	for name, sasl := range map[string]amqp.SASLType{
		"token":      amqp.SASLTypePlain("iothubowner@sas.root.myhub", tok),
		"policy key": amqp.SASLTypePlain("iothubowner", owner.PrimaryKey),
	} {
		c := h.dial(&amqp.ConnOptions{SASLType: sasl})
		s, err := c.NewSession(testCtx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := s.NewSender(testCtx(t), "/messages/devicebound", nil)
		if err != nil {
			t.Fatalf("%s: sender on /messages/devicebound: %v", name, err)
		}
		to := "/devices/dev1/messages/devicebound"
		if err := snd.Send(testCtx(t), &amqp.Message{Properties: &amqp.MessageProperties{To: &to}, Data: [][]byte{[]byte("hi")}}, nil); err != nil {
			t.Errorf("%s: sending C2D: %v", name, err)
		}
	}
	for name, sasl := range map[string]amqp.SASLType{
		"wrong key":               amqp.SASLTypePlain("iothubowner", "d3Jvbmcga2V5IHdyb25nIGtleQ=="),
		"token of another policy": amqp.SASLTypePlain("service@sas.root.myhub", tok),
		"device user":             amqp.SASLTypePlain("dev1@sas.myhub", tok),
		"expired token":           amqp.SASLTypePlain("iothubowner@sas.root.myhub", h.token("iothubowner", "myhub.local", time.Now().Add(-time.Minute))),
	} {
		if c, err := h.tryDial(&amqp.ConnOptions{SASLType: sasl}); err == nil {
			c.Close()
			t.Errorf("%s: SASL PLAIN was accepted", name)
		}
	}
}

// fakeClock is a clock and Options.AfterFunc that move only when the
// test advances them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	d       time.Duration
	f       func()
	stopped bool
	fired   bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), d: d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// pending returns the timers neither stopped nor fired.
func (c *fakeClock) pending() []*fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			out = append(out, t)
		}
	}
	return out
}

// advance moves the clock to now and runs the timers due by then.
func (c *fakeClock) advance(now time.Time) {
	c.mu.Lock()
	c.now = now
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(now) {
			t.fired = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// A token's expiry closes the links it authorized with
// amqp:unauthorized-access and a description that says the token
// expired, at the moment it expires, unless a new token for the same
// audience was put before. The clock is a fake, so nothing waits.
func TestTokenExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	h := newTestHub(t, nil, &Options{Now: clock.Now, AfterFunc: clock.AfterFunc})
	c := h.dial(nil)
	ctx := testCtx(t)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cb := newCBS(t, s)
	expiry := clock.Now().Add(10 * time.Second)
	// An Event Hubs audience, renewed before it expires, keeps its link.
	events := "sb://myhub.local/myhub"
	if code, desc := cb.put(t, events, h.token("service", events, expiry)); code != 200 {
		t.Fatalf("put-token: %d %s", code, desc)
	}
	part, err := s.NewReceiver(ctx, "myhub/ConsumerGroups/$Default/Partitions/0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, desc := cb.put(t, events, h.token("service", events, expiry.Add(time.Hour))); code != 200 {
		t.Fatalf("renewing put-token: %d %s", code, desc)
	}
	// A hub-wide token that is not renewed.
	if code, desc := cb.put(t, testHost, h.token("service", testHost, expiry)); code != 200 {
		t.Fatalf("put-token: %d %s", code, desc)
	}
	fb, err := s.NewReceiver(ctx, "/messages/serviceBound/feedback", nil)
	if err != nil {
		t.Fatal(err)
	}
	// One timer per live token, each set for its expiry exactly.
	pending := clock.pending()
	if len(pending) != 2 {
		t.Fatalf("%d expiry timers pending; want 2 (the renewed token's and the hub-wide one's)", len(pending))
	}
	for _, tm := range pending {
		if tm.d != 10*time.Second && tm.d != time.Hour+10*time.Second {
			t.Errorf("expiry timer set for %v; want the time left on a token (10s or 1h10s)", tm.d)
		}
	}

	clock.advance(expiry.Add(-time.Millisecond))
	if n := len(clock.pending()); n != 2 {
		t.Fatalf("a millisecond before the expiry, %d of 2 expiry timers pending; want both", n)
	}
	clock.advance(expiry)
	_, err = fb.Receive(ctx, nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != amqp.ErrCondUnauthorizedAccess ||
		!strings.Contains(le.RemoteErr.Description, "expired") {
		t.Fatalf("feedback receiver after its token expired: %v; want detached with amqp:unauthorized-access saying the token expired", err)
	}
	// The renewed link still works.
	dev := deviceOn(h, 0)
	h.appendEvents(dev, 1)
	if _, err := part.Receive(ctx, nil); err != nil {
		t.Errorf("partition receiver with a renewed token: %v", err)
	}
	// A link attached after the expiry on the same connection is refused.
	if _, err := s.NewReceiver(ctx, "/messages/serviceBound/feedback", nil); condition(err) != "amqp:unauthorized-access" {
		t.Errorf("feedback receiver after the token expired: %v; want amqp:unauthorized-access", err)
	}
}

// A Microsoft Entra ID principal, even an IoT Hub Data Contributor, is
// refused the built-in endpoint (the redirect and the Event
// Hub-compatible nodes) with the reason, and keeps its other nodes.
func TestBearerRefusedEventHub(t *testing.T) {
	is := entratest.NewIssuer(t, "https://issuer.test/tenant/v2.0")
	h := newTestHub(t, nil, &Options{Entra: is.HubAuth(t, map[string][]string{"writer": {"IoT Hub Data Contributor"}})})
	s, err := h.dial(nil).NewSession(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	// As the C# service SDK puts it (IotHubTokenCredentialProperties.cs).
	if code, desc := newCBS(t, s).putWith(t, map[string]any{"type": "Bearer", "name": "amqps://" + testHost + "/"},
		"Bearer "+is.Mint(t, "writer", auth.Audience, time.Hour)); code != 200 {
		t.Fatalf("put-token of a Data Contributor: %d %s", code, desc)
	}
	ctx := testCtx(t)
	for _, src := range []string{"messages/events/", "myhub/ConsumerGroups/$Default/Partitions/0", "myhub/$management"} {
		_, err := s.NewReceiver(ctx, src, nil)
		if condition(err) != "amqp:unauthorized-access" || !strings.Contains(err.Error(), "only shared access keys") {
			t.Errorf("receiver on %s: %v; want amqp:unauthorized-access saying the endpoint takes only shared access keys", src, err)
		}
	}
	if _, err := s.NewReceiver(ctx, "/messages/serviceBound/feedback", nil); err != nil {
		t.Errorf("feedback receiver of a Data Contributor: %v", err)
	}
}
