package device

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	t.Cleanup(cancel)
	return ctx
}

// connect makes a client on b with opts and connects it.
func connect(t *testing.T, opts *Options, setup func(*Client)) *Client {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if setup != nil {
		setup(c)
	}
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect = %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestConnectSendsIoTHubCredentials(t *testing.T) {
	b := newTestBroker(t)
	connect(t, b.options("dev1"), nil)
	r := recv(t, b.connects, "CONNECT")
	if !r.accepted {
		t.Fatalf("broker refused the CONNECT: %s", r.reason)
	}
	wantUser := b.hostName + "/dev1/?api-version=2021-04-12&DeviceClientType=iotctl%2Fdevel"
	if r.clientID != "dev1" || r.username != wantUser || r.clean {
		t.Errorf("CONNECT client id %q username %q clean %v; want dev1, %q, false", r.clientID, r.username, r.clean, wantUser)
	}
	tok, err := sas.Parse(r.password)
	if err != nil {
		t.Fatalf("password is not a SAS token: %v", err)
	}
	if tok.KeyName != "" || tok.Resource != url.QueryEscape(b.hostName+"/devices/dev1") {
		t.Errorf("token sr %q skn %q; want the device resource and no skn", tok.Resource, tok.KeyName)
	}
	if d := time.Until(tok.Expiry()); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("token expires in %v; want about 1h", d)
	}
	subs := recv(t, b.subscribes, "SUBSCRIBE")
	slices.Sort(subs)
	if want := []string{message.MethodRequestFilter, message.TwinResponseFilter}; !slices.Equal(subs, want) {
		t.Errorf("subscribed to %q; want %q (no C2D or desired without handlers)", subs, want)
	}
}

func TestConnectAsModuleWithProductInfo(t *testing.T) {
	b := newTestBroker(t)
	connect(t, &Options{HostName: b.hostName, DeviceID: "dev1", ModuleID: "mod1", SharedAccessKey: testKey,
		RootCAs: b.pool, ProductInfo: "my app/1.0"}, nil)
	r := recv(t, b.connects, "CONNECT")
	if !r.accepted {
		t.Fatalf("broker refused the CONNECT: %s", r.reason)
	}
	if want := b.hostName + "/dev1/mod1/?api-version=2021-04-12&DeviceClientType=my%20app%2F1.0"; r.clientID != "dev1/mod1" || r.username != want {
		t.Errorf("client id %q username %q; want dev1/mod1 and %q", r.clientID, r.username, want)
	}
}

func TestGatewayHostNameIsDialledButHostNameIsSigned(t *testing.T) {
	b := newTestBroker(t)
	host := "myhub.example.net"
	b.expectHost.Store(&host)
	cs := "HostName=" + host + ";DeviceId=dev1;SharedAccessKey=" + testKey + ";GatewayHostName=" + b.hostName
	connect(t, &Options{ConnectionString: cs, CAFile: b.caFile}, nil)
	if r := recv(t, b.connects, "CONNECT"); !r.accepted || !strings.HasPrefix(r.username, host+"/dev1/") {
		t.Fatalf("CONNECT username %q accepted %v (%s); want the hub's host name", r.username, r.accepted, r.reason)
	}
}

func TestSendEventPublishesPropertiesAtQoS1(t *testing.T) {
	b := newTestBroker(t)
	c := connect(t, b.options("dev1"), nil)
	m := &message.Message{
		Body:            []byte(`{"temperature": 31.5,"humidity": 70}`),
		MessageID:       "m1",
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Properties:      map[string]string{"temperatureAlert": "true", "sp ace": "a/b&c"},
	}
	if err := c.SendEvent(testCtx(t), m); err != nil {
		t.Fatalf("SendEvent = %v", err)
	}
	// The broker records the PUBLISH before it acks it, so it is there.
	select {
	case r := <-b.telemetry:
		want := "devices/dev1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&sp%20ace=a%2Fb%26c&temperatureAlert=true"
		if r.topic != want || string(r.payload) != string(m.Body) || r.qos != 1 {
			t.Errorf("PUBLISH %q %q QoS %d; want %q, the body, QoS 1", r.topic, r.payload, r.qos, want)
		}
	default:
		t.Fatal("SendEvent returned before the broker had the message")
	}
}

func TestSendEventQoS0(t *testing.T) {
	b := newTestBroker(t)
	o := b.options("dev1")
	o.QoS = QoS0
	c := connect(t, o, nil)
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("x")}); err != nil {
		t.Fatalf("SendEvent = %v", err)
	}
	if r := recv(t, b.telemetry, "telemetry"); r.qos != 0 || r.topic != "devices/dev1/messages/events/" {
		t.Errorf("PUBLISH %q QoS %d; want the bare events topic at QoS 0", r.topic, r.qos)
	}
}

func TestMethodRequestGetsHandlerResponse(t *testing.T) {
	b := newTestBroker(t)
	got := make(chan *MethodRequest, 1)
	connect(t, b.options("dev1"), func(c *Client) {
		c.HandleMethod("SetTelemetryInterval", func(_ context.Context, r *MethodRequest) MethodResponse {
			got <- r
			return MethodResponse{Status: 200, Payload: ResponseJSON("Executed direct method SetTelemetryInterval")}
		})
	})
	b.publish(message.MethodRequestTopic("SetTelemetryInterval", "42"), []byte(`"10"`), 0)
	r := recv(t, got, "method call")
	if r.Name != "SetTelemetryInterval" || r.RequestID != "42" || string(r.Payload) != `"10"` {
		t.Errorf("handler got %+v", r)
	}
	res := recv(t, b.methodRes, "method response")
	if res.topic != "$iothub/methods/res/200/?$rid=42" || string(res.payload) != `{"Response":"Executed direct method SetTelemetryInterval"}` {
		t.Errorf("response %q %s", res.topic, res.payload)
	}
}

func TestUnregisteredMethodGets404(t *testing.T) {
	b := newTestBroker(t)
	connect(t, b.options("dev1"), nil)
	b.publish(message.MethodRequestTopic("Reboot", "7"), []byte(`{}`), 0)
	res := recv(t, b.methodRes, "method response")
	if res.topic != "$iothub/methods/res/404/?$rid=7" || string(res.payload) != `{"Response":"Direct method Reboot not defined"}` {
		t.Errorf("response %q %s; want 404 not defined", res.topic, res.payload)
	}
}

func TestDefaultMethodHandler(t *testing.T) {
	b := newTestBroker(t)
	connect(t, b.options("dev1"), func(c *Client) {
		c.SetDefaultMethodHandler(func(_ context.Context, r *MethodRequest) MethodResponse {
			return MethodResponse{Status: 202, Payload: []byte(`{"name":"` + r.Name + `"}`)}
		})
		c.HandleMethod("panics", func(context.Context, *MethodRequest) MethodResponse { panic("boom") })
	})
	b.publish(message.MethodRequestTopic("anything", "1"), nil, 0)
	if res := recv(t, b.methodRes, "method response"); res.topic != "$iothub/methods/res/202/?$rid=1" || string(res.payload) != `{"name":"anything"}` {
		t.Errorf("response %q %s", res.topic, res.payload)
	}
	b.publish(message.MethodRequestTopic("panics", "2"), nil, 0)
	if res := recv(t, b.methodRes, "method response"); res.topic != "$iothub/methods/res/500/?$rid=2" {
		t.Errorf("response to a panicking handler %q; want 500", res.topic)
	}
}

// answerTwin answers the next twin request with status, version and body.
func answerTwin(t *testing.T, b *testBroker, kind message.Kind, status int, version int64, body string) publishRecord {
	t.Helper()
	r := recv(t, b.twinReqs, "twin request")
	tp, err := message.ParseTopic(r.topic)
	if err != nil || tp.Kind != kind {
		t.Fatalf("twin request %q: kind %v, err %v; want %v", r.topic, tp, err, kind)
	}
	b.publish(message.TwinResponseTopic(status, tp.RequestID, version), []byte(body), 0)
	return r
}

func TestTwinGetPatchAndDesired(t *testing.T) {
	b := newTestBroker(t)
	desired := make(chan json.RawMessage, 1)
	versions := make(chan int64, 1)
	c := connect(t, b.options("dev1"), func(c *Client) {
		c.SetDesiredHandler(func(p json.RawMessage, v int64) { desired <- p; versions <- v })
	})
	if subs := recv(t, b.subscribes, "SUBSCRIBE"); !slices.Contains(subs, message.TwinDesiredFilter) {
		t.Errorf("subscribed to %q; want the desired filter too", subs)
	}
	ctx := testCtx(t)

	type twinResult struct {
		twin *Twin
		err  error
	}
	done := make(chan twinResult, 1)
	go func() { tw, err := c.GetTwin(ctx); done <- twinResult{tw, err} }()
	answerTwin(t, b, message.KindTwinGet, 200, 0, `{"desired":{"fan":true,"$version":3},"reported":{"$version":5}}`)
	res := recv(t, done, "GetTwin")
	if res.err != nil || res.twin.DesiredVersion() != 3 || res.twin.ReportedVersion() != 5 || !strings.Contains(string(res.twin.Desired), `"fan":true`) {
		t.Fatalf("GetTwin = %+v, %v", res.twin, res.err)
	}

	type patchResult struct {
		v   int64
		err error
	}
	pdone := make(chan patchResult, 1)
	go func() { v, err := c.UpdateReported(ctx, map[string]any{"temp": 21}); pdone <- patchResult{v, err} }()
	req := answerTwin(t, b, message.KindTwinPatchReported, 204, 6, "")
	if string(req.payload) != `{"temp":21}` {
		t.Errorf("patch body %s", req.payload)
	}
	if p := recv(t, pdone, "UpdateReported"); p.err != nil || p.v != 6 {
		t.Errorf("UpdateReported = %d, %v; want 6", p.v, p.err)
	}

	go func() { v, err := c.UpdateReported(ctx, json.RawMessage(`{"bad":`)); pdone <- patchResult{v, err} }()
	answerTwin(t, b, message.KindTwinPatchReported, 400, 0, `{"message":"malformed"}`)
	var se *StatusError
	if p := recv(t, pdone, "UpdateReported"); !errors.As(p.err, &se) || se.Status != 400 {
		t.Errorf("UpdateReported(bad) = %v; want a *StatusError 400", p.err)
	}
	if _, err := c.UpdateReported(ctx, []int{1}); err == nil {
		t.Error("UpdateReported(array) = nil; want an error")
	}

	b.publish(message.TwinDesiredTopic(9), []byte(`{"fan":false,"$version":9}`), 0)
	if p := recv(t, desired, "desired patch"); string(p) != `{"fan":false,"$version":9}` {
		t.Errorf("desired patch %s", p)
	}
	if v := recv(t, versions, "desired version"); v != 9 {
		t.Errorf("desired version %d; want 9", v)
	}
}

func TestC2DMessageWithProperties(t *testing.T) {
	b := newTestBroker(t)
	got := make(chan *message.Message, 1)
	connect(t, b.options("dev1"), func(c *Client) { c.SetC2DHandler(func(m *message.Message) { got <- m }) })
	if subs := recv(t, b.subscribes, "SUBSCRIBE"); !slices.Contains(subs, message.C2DFilter("dev1")) {
		t.Errorf("subscribed to %q; want the C2D filter", subs)
	}
	b.publish(message.C2DTopic("dev1", &message.Message{MessageID: "c1", Ack: "full", Properties: map[string]string{"color": "red"}}), []byte("hello"), 1)
	m := recv(t, got, "C2D message")
	if string(m.Body) != "hello" || m.MessageID != "c1" || m.Properties["color"] != "red" || m.Ack != "full" || !strings.EqualFold(m.To, "/devices/dev1/messages/devicebound") {
		t.Errorf("C2D message %+v", m)
	}
}

func TestLateC2DHandlerSubscribes(t *testing.T) {
	b := newTestBroker(t)
	c := connect(t, b.options("dev1"), nil)
	recv(t, b.subscribes, "first SUBSCRIBE")
	got := make(chan *message.Message, 1)
	c.SetC2DHandler(func(m *message.Message) { got <- m })
	if subs := recv(t, b.subscribes, "late SUBSCRIBE"); !slices.Equal(subs, []string{message.C2DFilter("dev1")}) {
		t.Fatalf("late subscribe %q", subs)
	}
	b.publish(message.C2DTopic("dev1", nil), []byte("late"), 1)
	if m := recv(t, got, "C2D message"); string(m.Body) != "late" {
		t.Errorf("body %q", m.Body)
	}
}

func TestRefusedCredentialsAreNotRetried(t *testing.T) {
	b := newTestBroker(t)
	events := newEventLog()
	o := b.options("dev1")
	o.ConnectionString = "HostName=" + b.hostName + ";DeviceId=dev1;SharedAccessKey=d3Jvbmcta2V5"
	o.RetryConnect = true
	o.OnState = events.on
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Connect(testCtx(t))
	var ce *ConnectError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ce) || ce.Code != 5 {
		t.Fatalf("Connect = %v; want a *ConnectError with code 5 wrapping ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "sig=") || strings.Contains(err.Error(), "d3Jvbmcta2V5") {
		t.Errorf("error %q contains key material", err)
	}
	if r := recv(t, b.connects, "CONNECT"); r.accepted {
		t.Fatal("the broker accepted a wrong key")
	}
	// Connect has returned and nothing runs in the background: one
	// CONNECT was all.
	if n := len(b.connects); n != 0 {
		t.Errorf("%d more CONNECTs after the refusal; want none", n)
	}
	if e := events.waitState(t, StateDisconnected); !e.Final || !errors.Is(e.Err, ErrUnauthorized) {
		t.Errorf("event %+v; want a final disconnect with ErrUnauthorized", e)
	}
	if err := c.SendEvent(testCtx(t), &message.Message{}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SendEvent after a failed Connect = %v; want ErrNotConnected", err)
	}
}

func TestReconnectAfterDropResubscribes(t *testing.T) {
	b := newTestBroker(t)
	events := newEventLog()
	o := b.options("dev1")
	o.OnState = events.on
	c := connect(t, o, func(c *Client) { c.SetC2DHandler(func(*message.Message) {}) })
	events.waitState(t, StateConnected)
	recv(t, b.connects, "CONNECT")
	recv(t, b.subscribes, "SUBSCRIBE")

	b.drop("dev1")
	if e := events.waitState(t, StateDisconnected); e.Final || e.Err == nil {
		t.Errorf("disconnect event %+v; want a non-final one with the error", e)
	}
	if e := events.waitState(t, StateReconnecting); e.Attempt != 1 || e.Delay <= 0 {
		t.Errorf("reconnecting event %+v; want attempt 1 after a delay", e)
	}
	events.waitState(t, StateConnected)
	if r := recv(t, b.connects, "second CONNECT"); !r.accepted {
		t.Fatalf("reconnect refused: %s", r.reason)
	}
	subs := recv(t, b.subscribes, "SUBSCRIBE after reconnect")
	slices.Sort(subs)
	if want := []string{message.MethodRequestFilter, message.TwinResponseFilter, message.C2DFilter("dev1")}; !slices.Equal(subs, sorted(want)) {
		t.Errorf("re-subscribed to %q; want %q", subs, want)
	}
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("after")}); err != nil {
		t.Fatalf("SendEvent after reconnect = %v", err)
	}
	b.publish(message.MethodRequestTopic("x", "9"), nil, 0)
	if res := recv(t, b.methodRes, "method response"); res.topic != "$iothub/methods/res/404/?$rid=9" {
		t.Errorf("method response after reconnect %q", res.topic)
	}
}

func TestRefusedReconnectIsFinal(t *testing.T) {
	b := newTestBroker(t)
	events := newEventLog()
	o := b.options("dev1")
	o.OnState = events.on
	c := connect(t, o, nil)
	events.waitState(t, StateConnected)
	b.refuseAll.Store(true)
	b.drop("dev1")
	e := events.waitState(t, StateDisconnected)
	if e.Final {
		t.Fatalf("first disconnect event is final: %+v", e)
	}
	if e := events.waitState(t, StateDisconnected); !e.Final || !errors.Is(e.Err, ErrUnauthorized) {
		t.Fatalf("event %+v; want a final ErrUnauthorized", e)
	}
	<-c.Done()
	if err := c.SendEvent(testCtx(t), &message.Message{}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("SendEvent = %v; want ErrUnauthorized", err)
	}
	if !errors.Is(c.Err(), ErrUnauthorized) {
		t.Errorf("Err() = %v", c.Err())
	}
}

func TestPlannedTokenRenewal(t *testing.T) {
	b := newTestBroker(t)
	events := newEventLog()
	o := b.options("dev1")
	o.OnState = events.on
	o.TokenTTL = 2 * time.Second
	c := connect(t, o, nil)
	first := recv(t, b.connects, "CONNECT")
	if e := events.waitState(t, StateReconnecting); e.Reason != ReasonTokenRenewal {
		t.Fatalf("reconnecting event %+v; want a token renewal", e)
	}
	events.waitState(t, StateConnected) // the first connect's event
	events.waitState(t, StateConnected)
	second := recv(t, b.connects, "CONNECT after renewal")
	if !first.accepted || !second.accepted {
		t.Fatalf("connects accepted %v, %v", first.accepted, second.accepted)
	}
	t1, _ := sas.Parse(first.password)
	t2, _ := sas.Parse(second.password)
	if t2.ExpiryUnix() <= t1.ExpiryUnix() {
		t.Errorf("renewed token expires at %d, the first at %d; want a fresh token", t2.ExpiryUnix(), t1.ExpiryUnix())
	}
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("renewed")}); err != nil {
		t.Fatalf("SendEvent after renewal = %v", err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	b := newTestBroker(t)
	events := newEventLog()
	o := b.options("dev1")
	o.OnState = events.on
	c := connect(t, o, nil)
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatalf("Close = %v", err)
	}
	events.waitState(t, StateClosed)
	if id := recv(t, b.gone, "disconnect"); id != "dev1" {
		t.Errorf("gone %q", id)
	}
	if err := c.SendEvent(testCtx(t), &message.Message{}); !errors.Is(err, ErrClosed) {
		t.Errorf("SendEvent after Close = %v; want ErrClosed", err)
	}
	if err := c.Connect(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close = %v; want ErrClosed", err)
	}
	if _, err := c.GetTwin(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("GetTwin after Close = %v; want ErrClosed", err)
	}
}

func TestConnectHonoursContext(t *testing.T) {
	b := newTestBroker(t)
	o := b.options("dev1")
	o.ConnectionString = "HostName=127.0.0.1:1;DeviceId=dev1;SharedAccessKey=" + testKey // nothing listens
	o.RetryConnect = true
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Connect(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect(cancelled ctx) = %v; want context.Canceled", err)
	}
	if err := c.SendEvent(context.Background(), &message.Message{}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SendEvent = %v; want ErrNotConnected", err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
