package amqpfront

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// deviceHub is a test hub whose Front serves devices over a core.
type deviceHub struct {
	*testHub
	core *core.Core
}

func newDeviceHub(t *testing.T, opts *Options) *deviceHub {
	t.Helper()
	return newDeviceHubWith(t, nil, opts)
}

// newDeviceHubWith is newDeviceHub with registry options.
func newDeviceHubWith(t *testing.T, ropts *registry.Options, opts *Options) *deviceHub {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// The core needs the registry the test hub opens; make the hub
	// first, then give its Front the core.
	h := newTestHub(t, ropts, &o)
	c := core.New(ctx, &core.Options{Registry: h.reg, Telemetry: h.tel})
	o.Core = c
	h.f = New(h.reg, h.tel, &o)
	return &deviceHub{testHub: h, core: c}
}

// identityToken signs a token with the device's (or module's) primary
// key for its resource, as device SDKs do.
func (h *deviceHub) identityToken(deviceID, moduleID string, expiry time.Time) (audience, token string) {
	h.t.Helper()
	var key string
	audience = testHost + "/devices/" + deviceID
	if moduleID == "" {
		d, err := h.reg.Device(deviceID)
		if err != nil {
			h.t.Fatal(err)
		}
		key = d.Authentication.SymmetricKey.PrimaryKey
	} else {
		m, err := h.reg.Module(deviceID, moduleID)
		if err != nil {
			h.t.Fatal(err)
		}
		key = m.Authentication.SymmetricKey.PrimaryKey
		audience += "/modules/" + moduleID
	}
	k, err := sas.DecodeKey(key)
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := sas.Sign(audience, k, &sas.SignOptions{Expiry: expiry})
	if err != nil {
		h.t.Fatal(err)
	}
	return audience, tok.Encode()
}

// deviceSession dials with SASL ANONYMOUS, opens a session and puts
// the identity's own token on $cbs, as the device SDKs open.
func (h *deviceHub) deviceSession(deviceID, moduleID string) (*amqp.Session, *cbs) {
	h.t.Helper()
	c := h.dial(nil)
	s, err := c.NewSession(testCtx(h.t), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	cb := newCBS(h.t, s)
	aud, tok := h.identityToken(deviceID, moduleID, time.Now().Add(time.Hour))
	if code, desc := cb.put(h.t, aud, tok); code != 200 {
		h.t.Fatalf("put-token for %s: %d %s", aud, code, desc)
	}
	return s, cb
}

// waitFor waits until cond holds, woken by the identity's changes in
// the core, or fails the test at the deadline.
func (h *deviceHub) waitFor(ctx context.Context, id core.Identity, what string, cond func() bool) {
	h.t.Helper()
	for {
		ch := h.core.Wait(id)
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			h.t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// readEvents waits for n events in the device's partition and returns
// them.
func (h *deviceHub) readEvents(ctx context.Context, deviceID string, n int) []*message.Message {
	h.t.Helper()
	p := h.tel.PartitionOf(deviceID)
	for {
		evs, changed := h.tel.Read(p, 0, 100)
		if len(evs) >= n {
			out := make([]*message.Message, len(evs))
			for i, ev := range evs {
				out[i] = ev.Message
			}
			return out
		}
		select {
		case <-changed:
		case <-ctx.Done():
			h.t.Fatalf("%d events from %s in the log; want %d", len(evs), deviceID, n)
		}
	}
}

// feedback waits until the registry has n feedback records and
// returns them by original message id.
func (h *deviceHub) feedback(ctx context.Context, n int) map[string]registry.Feedback {
	h.t.Helper()
	seen := map[string]registry.Feedback{}
	for len(seen) < n {
		added := h.reg.FeedbackAdded()
		b, err := h.reg.TakeFeedback(10)
		if err != nil {
			h.t.Fatal(err)
		}
		if b != nil {
			for _, r := range b.Records {
				seen[r.OriginalMessageID] = r
			}
			continue
		}
		select {
		case <-added:
		case <-ctx.Done():
			h.t.Fatalf("%d feedback records %v; want %d", len(seen), seen, n)
		}
	}
	return seen
}

// receiveOne grants a manual-credit receiver one credit and returns
// the message that comes.
func receiveOne(ctx context.Context, t *testing.T, rcv *amqp.Receiver) *amqp.Message {
	t.Helper()
	if err := rcv.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A device's telemetry over AMQP reaches the log with the same
// message model MQTT's property bag gives: every system property and
// application property, settled accepted once stored.
func TestDeviceTelemetryKeepsEveryProperty(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "")
	snd, err := s.NewSender(ctx, "/devices/d1/messages/events", nil)
	if err != nil {
		t.Fatalf("attaching the telemetry sender: %v", err)
	}
	ctime := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	ct, ce, to := "application/json", "utf-8", "/devices/d1/messages/events"
	msg := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: "m-1", CorrelationID: amqp.UUID(uuid.MustParse("7c2f0d0e-3a43-4b1c-9d1e-9d6f2b8c1a00")),
			UserID: []byte("user"), To: &to, ContentType: &ct, ContentEncoding: &ce, AbsoluteExpiryTime: &exp},
		Annotations: amqp.Annotations{"iothub-interface-id": "dtmi:com:example:Thermostat;1", "dt-subject": "thermostat1"},
		ApplicationProperties: map[string]any{"temperatureAlert": "true", "level": int32(3), "empty": "", "nothing": nil,
			"iothub-creation-time-utc": ctime.Format(time.RFC3339Nano)},
		Data: [][]byte{[]byte(`{"t":21.5}`)},
	}
	if err := snd.Send(ctx, msg, nil); err != nil {
		t.Fatalf("Send = %v; want accepted", err)
	}
	got := h.readEvents(ctx, "d1", 1)[0]
	// What MQTT gives for the same properties (mqtt.go parses the topic).
	want := &message.Message{MessageID: "m-1", CorrelationID: "7c2f0d0e-3a43-4b1c-9d1e-9d6f2b8c1a00", UserID: "user",
		To: to, ContentType: ct, ContentEncoding: ce, ExpiryTime: exp, CreationTime: ctime,
		InterfaceID: "dtmi:com:example:Thermostat;1", ComponentName: "thermostat1",
		Properties: map[string]string{"temperatureAlert": "true", "level": "3", "empty": ""}}
	want.SetNull("nothing")
	topic, err := message.ParseDeviceTopic(message.TelemetryTopic("d1", "", want))
	if err != nil {
		t.Fatal(err)
	}
	mqtt := topic.Message
	if string(got.Body) != `{"t":21.5}` {
		t.Errorf("body = %q", got.Body)
	}
	got.Body = nil
	if !reflect.DeepEqual(got, mqtt) {
		t.Errorf("stored message\n%+v\nwant what MQTT stores\n%+v", got, mqtt)
	}
}

// A message over 256 KB is rejected with
// amqp:link:message-size-exceeded, and the link goes on.
func TestDeviceTelemetryTooLarge(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "")
	snd, err := s.NewSender(ctx, "/devices/d1/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = snd.Send(ctx, &amqp.Message{Data: [][]byte{make([]byte, message.MaxTelemetrySize+1)}}, nil)
	if condition(err) != string(amqp.ErrCondMessageSizeExceeded) || !strings.Contains(err.Error(), "256") && !strings.Contains(err.Error(), "262144") {
		t.Fatalf("Send of 256 KB + 1 = %v; want rejected with amqp:link:message-size-exceeded naming the limit", err)
	}
	if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("ok")}}, nil); err != nil {
		t.Fatalf("Send after the refused one = %v", err)
	}
}

// C2D over AMQP: link credit lets messages out, accepted completes,
// rejected rejects (never again), released abandons (delivered again
// with its delivery count up), as IoT Hub settles them.
func TestDeviceC2DOutcomes(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	for _, id := range []string{"complete", "reject", "abandon"} {
		if _, err := h.reg.Enqueue("d1", "", &registry.C2DMessage{MessageID: id, Ack: "full", Body: []byte(id),
			Properties: map[string]string{"k": id}}); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := h.deviceSession("d1", "")
	rcv, err := s.NewReceiver(ctx, "/devices/d1/messages/devicebound", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatalf("attaching the C2D receiver: %v", err)
	}
	if err := rcv.IssueCredit(3); err != nil {
		t.Fatal(err)
	}
	got := map[string]*amqp.Message{}
	for range 3 {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := m.Properties.MessageID.(string)
		got[id] = m
		if m.ApplicationProperties["k"] != id || string(m.GetData()) != id {
			t.Errorf("message %q: properties %v, body %q", id, m.ApplicationProperties, m.GetData())
		}
		if m.ApplicationProperties["iothub-ack"] != "full" {
			t.Errorf("message %q: iothub-ack = %v; want full", id, m.ApplicationProperties["iothub-ack"])
		}
		lock, _ := m.Annotations[annLockToken].(string)
		if u, err := uuid.Parse(lock); err != nil || string(m.DeliveryTag) != string(u[:]) {
			t.Errorf("message %q: lock token %q, delivery tag %x; want the lock token's uuid bytes", id, lock, m.DeliveryTag)
		}
		if m.Annotations[annDeliveryCount] != int32(1) {
			t.Errorf("message %q: delivery count %v; want 1", id, m.Annotations[annDeliveryCount])
		}
	}
	if err := rcv.AcceptMessage(ctx, got["complete"]); err != nil {
		t.Fatal(err)
	}
	if err := rcv.RejectMessage(ctx, got["reject"], nil); err != nil {
		t.Fatal(err)
	}
	if err := rcv.ReleaseMessage(ctx, got["abandon"]); err != nil {
		t.Fatal(err)
	}
	// Only the abandoned one comes again, with its delivery count up.
	again := receiveOne(ctx, t, rcv)
	if again.Properties.MessageID != "abandon" || again.Annotations[annDeliveryCount] != int32(2) {
		t.Fatalf("redelivered %v with delivery count %v; want abandon, 2", again.Properties.MessageID, again.Annotations[annDeliveryCount])
	}
	if err := rcv.AcceptMessage(ctx, again); err != nil {
		t.Fatal(err)
	}
	// The feedback says what the device did with each.
	want := map[string]string{"complete": "Success", "reject": "Message rejected", "abandon": "Success"}
	seen := map[string]string{}
	for id, r := range h.feedback(ctx, 3) {
		seen[id] = r.Description
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("feedback %v; want %v", seen, want)
	}
}

// A direct method reaches the device on its method receiver with the
// request id as an AMQP uuid and the method name, and its answer on
// the method sender completes the call.
func TestDeviceMethods(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "")
	props := map[string]any{"com.microsoft:channel-correlation-id": "methods:" + uuid.NewString(), "com.microsoft:api-version": "2021-04-12"}
	snd, err := s.NewSender(ctx, "/devices/d1/methods/devicebound", &amqp.SenderOptions{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "/devices/d1/methods/devicebound", &amqp.ReceiverOptions{Properties: props, Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		status  int
		payload json.RawMessage
		err     error
	}
	res := make(chan result, 1)
	go func() {
		st, p, err := h.core.InvokeMethod(ctx, "d1", "", "reboot", json.RawMessage(`{"delay":1}`), 5*time.Second, 5*time.Second)
		res <- result{st, p, err}
	}()
	req, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = rcv.AcceptMessage(ctx, req)
	id, ok := req.Properties.CorrelationID.(amqp.UUID)
	if !ok {
		t.Fatalf("correlation-id is %T; want an AMQP uuid", req.Properties.CorrelationID)
	}
	if req.ApplicationProperties[propMethodName] != "reboot" || string(req.GetData()) != `{"delay":1}` {
		t.Errorf("request: properties %v, body %q", req.ApplicationProperties, req.GetData())
	}
	// Answer with the correlation id as a string, as the Node SDK does
	// when it does not recognise the form, and as a uuid.
	if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: id},
		ApplicationProperties: map[string]any{propMethodStatus: int32(201)}, Data: [][]byte{[]byte(`{"ok":true}`)}}, nil); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.status != 201 || string(r.payload) != `{"ok":true}` {
		t.Fatalf("InvokeMethod = %d %s %v; want 201 {\"ok\":true}", r.status, r.payload, r.err)
	}
	// An answer to no request is refused.
	err = snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: "nope"},
		ApplicationProperties: map[string]any{propMethodStatus: int32(200)}}, nil)
	if condition(err) != string(CondArgumentError) {
		t.Errorf("answer without a known correlation id: %v; want %s", err, CondArgumentError)
	}
}

// The twin link pair: GET, PATCH of reported properties, and desired
// notifications after PUT, with IoT Hub's annotations.
func TestDeviceTwin(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "")
	props := map[string]any{"com.microsoft:channel-correlation-id": "twin:" + uuid.NewString()}
	snd, err := s.NewSender(ctx, "/devices/d1/twin", &amqp.SenderOptions{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "/devices/d1/twin", &amqp.ReceiverOptions{Properties: props, Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	request := func(op, resource, body string) *amqp.Message {
		t.Helper()
		cid := uuid.NewString()
		ann := amqp.Annotations{"operation": op}
		if resource != "" {
			ann["resource"] = resource
		}
		if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: cid}, Annotations: ann,
			Data: [][]byte{[]byte(body)}}, nil); err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = rcv.AcceptMessage(ctx, m)
		if m.Properties == nil || m.Properties.CorrelationID != cid {
			t.Fatalf("%s answer correlation id %v; want %q", op, m.Properties, cid)
		}
		return m
	}
	m := request("PATCH", "/properties/reported", `{"fw":"1.2"}`)
	if m.Annotations["status"] != int32(204) || m.Annotations["version"] != int64(2) {
		t.Errorf("PATCH answer annotations %v; want status int 204, version long 2", m.Annotations)
	}
	m = request("GET", "", " ")
	var tw struct{ Desired, Reported map[string]any }
	if err := json.Unmarshal(m.GetData(), &tw); err != nil || m.Annotations["status"] != int32(200) || tw.Reported["fw"] != "1.2" {
		t.Errorf("GET answer %v %s (%v); want status 200 and the reported fw", m.Annotations, m.GetData(), err)
	}
	m = request("PUT", "/notifications/twin/properties/desired", " ")
	if m.Annotations["status"] != int32(200) {
		t.Errorf("PUT answer %v; want status 200", m.Annotations)
	}
	id := core.Identity{DeviceID: "d1"}
	h.waitFor(ctx, id, "the desired subscription", func() bool { return h.core.Session(id).Conn().Listening(core.Desired) })
	h.core.DesiredChanged("d1", "", json.RawMessage(`{"mode":"eco"}`), 7)
	n, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Properties != nil && n.Properties.CorrelationID != nil || n.Annotations["version"] != int64(7) ||
		string(n.GetData()) != `{"$version":7,"mode":"eco"}` {
		t.Errorf("desired notification %v %v %s; want no correlation id, version 7 and the patch with $version", n.Properties, n.Annotations, n.GetData())
	}
	m = request("POST", "/what", " ")
	if m.Annotations["status"] != int32(400) || !strings.Contains(string(m.GetData()), "unknown twin operation") {
		t.Errorf("unknown operation answer %v %s; want 400 naming the problem", m.Annotations, m.GetData())
	}
}

// A module attaches under its own address with its own token, sends
// telemetry as the module and receives its input messages on its
// events address.
func TestModuleOverAMQP(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: "d1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "m1")
	snd, err := s.NewSender(ctx, "/devices/d1/modules/m1/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, &amqp.Message{ApplicationProperties: map[string]any{"iothub-outputname": "out1"}, Data: [][]byte{[]byte("x")}}, nil); err != nil {
		t.Fatal(err)
	}
	p := h.tel.PartitionOf("d1")
	evs, _ := h.tel.Read(p, 0, 10)
	if len(evs) != 1 || evs[0].ModuleID != "m1" || evs[0].Message.OutputName != "out1" {
		t.Fatalf("events %+v; want one from module m1 with output out1", evs)
	}
	if _, err := h.reg.Enqueue("d1", "m1", &registry.C2DMessage{MessageID: "in", Body: []byte("in")}); err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "/devices/d1/modules/m1/messages/events", &amqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Properties.MessageID != "in" {
		t.Errorf("input message %v", m.Properties.MessageID)
	}
	if _, ok := m.Annotations[annInputName]; !ok {
		t.Errorf("input message annotations %v; want x-opt-input-name", m.Annotations)
	}
	_ = rcv.AcceptMessage(ctx, m)
}

// Links a token does not cover are refused with amqp:unauthorized-access
// and a description naming the resource and the way out: another
// device's address, a module's address with the device's token, the
// device's address with a module's token; a put-token whose audience
// the token does not cover is answered 401.
func TestDeviceLinksOutsideTheToken(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1", "d2")
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: "d1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	s, cb := h.deviceSession("d1", "")
	for _, addr := range []string{"/devices/d2/messages/events", "/devices/d1/modules/m1/messages/events"} {
		_, err := s.NewSender(ctx, addr, nil)
		if condition(err) != string(amqp.ErrCondUnauthorizedAccess) || !strings.Contains(err.Error(), strings.TrimPrefix(strings.TrimSuffix(addr, "/messages/events"), "/")) {
			t.Errorf("attaching %s with d1's token: %v; want amqp:unauthorized-access naming the identity", addr, err)
		}
	}
	ms, _ := h.deviceSession("d1", "m1")
	if _, err := ms.NewSender(ctx, "/devices/d1/messages/events", nil); condition(err) != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("attaching the device's address with the module's token: %v; want amqp:unauthorized-access", err)
	}
	_, tok := h.identityToken("d1", "", time.Now().Add(time.Hour))
	if code, desc := cb.put(t, testHost+"/devices/d2", tok); code != 401 || !strings.Contains(desc, "audience") {
		t.Errorf("put-token of d1's token for d2: %d %q; want 401 naming the audience", code, desc)
	}
	// Nothing of d2 connected.
	if h.core.Session(core.Identity{DeviceID: "d2"}) != nil {
		t.Error("d2 is connected after refused links")
	}
}

// An expired device token ends the device's links with
// amqp:unauthorized-access; a token put again before the expiry keeps
// them. The clock is a fake, so nothing waits.
func TestDeviceTokenExpiryAndRenewal(t *testing.T) {
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	h := newDeviceHub(t, &Options{Now: clock.Now, AfterFunc: clock.AfterFunc})
	h.createDevice("d1", "d2")
	ctx := testCtx(t)
	c := h.dial(nil)
	expiry := clock.Now().Add(10 * time.Second)
	// Two devices on one connection, each in its own session with its
	// own token put on the connection's one $cbs link pair, as pooled
	// C# clients and gateways do.
	links := map[string]*amqp.Sender{}
	cs, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cb := newCBS(t, cs)
	for _, id := range []string{"d1", "d2"} {
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		aud, tok := h.identityToken(id, "", expiry)
		if code, desc := cb.put(t, aud, tok); code != 200 {
			t.Fatalf("put-token %s: %d %s", id, code, desc)
		}
		if links[id], err = s.NewSender(ctx, "/devices/"+id+"/messages/events", nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.core.Connected(); n != 2 {
		t.Fatalf("%d identities connected; want 2", n)
	}
	// d1 renews; d2 does not.
	aud, tok := h.identityToken("d1", "", expiry.Add(time.Hour))
	if code, desc := cb.put(t, aud, tok); code != 200 {
		t.Fatalf("renewing: %d %s", code, desc)
	}
	clock.advance(expiry)
	// The expiry ends d2's session on the hub's side, then its links
	// reach the client detached: wait for the first, so that the send
	// cannot overtake the detach.
	id := core.Identity{DeviceID: "d2"}
	h.waitFor(ctx, id, "d2 to disconnect", func() bool { return h.core.Session(id) == nil })
	err = links["d2"].Send(ctx, &amqp.Message{Data: [][]byte{[]byte("late")}}, nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != amqp.ErrCondUnauthorizedAccess {
		t.Fatalf("d2 sending after its token expired: %v; want the link detached with amqp:unauthorized-access", err)
	}
	if err := links["d1"].Send(ctx, &amqp.Message{Data: [][]byte{[]byte("renewed")}}, nil); err != nil {
		t.Fatalf("d1 sending with a renewed token: %v", err)
	}
	if h.core.Session(core.Identity{DeviceID: "d1"}) == nil {
		t.Error("d1 disconnected; its renewed token should keep it")
	}
}

// The uuids of method requests go back to the core's request ids, and
// a uuid of another connection is not taken for one.
func TestRequestIDs(t *testing.T) {
	a, b := newRequestIDs(), newRequestIDs()
	for _, rid := range []string{"1", "42", "4611686018427387903"} {
		u, err := a.encode(rid)
		if err != nil {
			t.Fatalf("encode(%q): %v", rid, err)
		}
		if got := uuid.UUID(u); got.Version() != 4 || got.Variant() != uuid.RFC4122 {
			t.Errorf("encode(%q) = %s; want a version 4 RFC 4122 uuid", rid, got)
		}
		for _, v := range []any{u, uuid.UUID(u).String(), u[:]} {
			if got, ok := a.decode(v); !ok || got != rid {
				t.Errorf("decode(%T of encode(%q)) = %q, %v", v, rid, got, ok)
			}
		}
		if _, ok := b.decode(u); ok {
			t.Errorf("another connection decoded %q's uuid", rid)
		}
	}
	if _, err := a.encode("x"); err == nil {
		t.Error(`encode("x") = nil error`)
	}
}

// No SDK sends the modified outcome; IoT Hub's meaning of it is taken
// as abandon, and modified with undeliverable-here as reject.
func TestDeviceC2DModified(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "")
	rcv, err := s.NewReceiver(ctx, "/devices/d1/messages/devicebound", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	next := func(id string) *amqp.Message {
		t.Helper()
		m := receiveOne(ctx, t, rcv)
		if m.Properties.MessageID != id {
			t.Fatalf("received %v; want %s", m.Properties.MessageID, id)
		}
		return m
	}
	enqueue := func(id string) {
		t.Helper()
		if _, err := h.reg.Enqueue("d1", "", &registry.C2DMessage{MessageID: id, Ack: "full"}); err != nil {
			t.Fatal(err)
		}
		h.core.C2DEnqueued("d1", "")
	}
	// Modified with undeliverable-here: rejected, with its feedback.
	enqueue("undeliverable")
	if err := rcv.ModifyMessage(ctx, next("undeliverable"), &amqp.ModifyMessageOptions{DeliveryFailed: true, UndeliverableHere: true}); err != nil {
		t.Fatal(err)
	}
	if fb := h.feedback(ctx, 1); fb["undeliverable"].StatusCode != registry.FeedbackRejected {
		t.Fatalf("feedback %+v; want undeliverable rejected", fb)
	}
	// Modified: abandoned, delivered again with its delivery count up.
	enqueue("modified")
	if err := rcv.ModifyMessage(ctx, next("modified"), &amqp.ModifyMessageOptions{DeliveryFailed: true}); err != nil {
		t.Fatal(err)
	}
	if m := next("modified"); m.Annotations[annDeliveryCount] != int32(2) {
		t.Errorf("delivered again with delivery count %v; want 2", m.Annotations[annDeliveryCount])
	}
}

// A device that attaches its telemetry link with sender settle mode
// "settled" (fire and forget) has its messages stored all the same.
func TestDeviceTelemetrySettled(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	s, _ := h.deviceSession("d1", "")
	snd, err := s.NewSender(ctx, "/devices/d1/messages/events", &amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{{byte('0' + i)}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := h.readEvents(ctx, "d1", 3)
	for i, m := range got {
		if string(m.Body) != string(rune('0'+i)) {
			t.Errorf("event %d body %q", i, m.Body)
		}
	}
}

// Identities share a connection and even a session (the C SDK's shared
// transport puts every device's links on one session): each is its own
// core session, with its own token, and one leaving does not end the
// other.
func TestDevicesShareASession(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1", "d2")
	ctx := testCtx(t)
	s, cb := h.deviceSession("d1", "")
	aud, tok := h.identityToken("d2", "", time.Now().Add(time.Hour))
	if code, desc := cb.put(t, aud, tok); code != 200 {
		t.Fatalf("put-token d2: %d %s", code, desc)
	}
	senders := map[string]*amqp.Sender{}
	for _, id := range []string{"d1", "d2"} {
		snd, err := s.NewSender(ctx, "/devices/"+id+"/messages/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		senders[id] = snd
	}
	if n := h.core.Connected(); n != 2 {
		t.Fatalf("%d identities connected; want 2", n)
	}
	if err := senders["d1"].Close(ctx); err != nil {
		t.Fatal(err)
	}
	id := core.Identity{DeviceID: "d1"}
	h.waitFor(ctx, id, "d1 to disconnect with its last link", func() bool { return h.core.Session(id) == nil })
	if err := senders["d2"].Send(ctx, &amqp.Message{Data: [][]byte{[]byte("d2")}}, nil); err != nil {
		t.Fatalf("d2 after d1 left: %v", err)
	}
	if evs := h.readEvents(ctx, "d2", 1); string(evs[0].Body) != "d2" {
		t.Errorf("d2's event %q", evs[0].Body)
	}
}

// Identities whose links share one session, the session of $cbs (the
// C SDK's shared transport): a token that expires ends only its
// identity's links, a token refused for a third identity changes
// nothing, and the session goes on: the other identity sends on it,
// and the expired one attaches there again with a new token.
func TestDeviceTokenExpiryOnASharedSession(t *testing.T) {
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	h := newDeviceHub(t, &Options{Now: clock.Now, AfterFunc: clock.AfterFunc})
	h.createDevice("d1", "d2", "d3")
	ctx := testCtx(t)
	c := h.dial(nil)
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cb := newCBS(t, s)
	expiry := clock.Now().Add(10 * time.Second)
	links := map[string]*amqp.Sender{}
	for _, id := range []string{"d1", "d2"} {
		exp := expiry
		if id == "d1" {
			exp = expiry.Add(time.Hour)
		}
		aud, tok := h.identityToken(id, "", exp)
		if code, desc := cb.put(t, aud, tok); code != 200 {
			t.Fatalf("put-token %s: %d %s", id, code, desc)
		}
		if links[id], err = s.NewSender(ctx, "/devices/"+id+"/messages/events", nil); err != nil {
			t.Fatal(err)
		}
	}
	rcv, err := s.NewReceiver(ctx, "/devices/d2/messages/devicebound", &amqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	// d3's token is signed with another key: refused, and its attach
	// on the session too.
	aud, tok := h.identityToken("d3", "", expiry)
	bad := tok[:strings.Index(tok, "sig=")+4] + "AAAA" + tok[strings.Index(tok, "&se="):]
	if code, _ := cb.put(t, aud, bad); code != 401 {
		t.Fatalf("put-token of a forged token: %d; want 401", code)
	}
	if _, err := s.NewSender(ctx, "/devices/d3/messages/events", nil); condition(err) != string(amqp.ErrCondUnauthorizedAccess) {
		t.Fatalf("attach of d3 without a token: %v; want amqp:unauthorized-access", err)
	}
	if n := h.core.Connected(); n != 2 {
		t.Fatalf("%d identities connected; want d1 and d2", n)
	}
	clock.advance(expiry)
	id := core.Identity{DeviceID: "d2"}
	h.waitFor(ctx, id, "d2 to disconnect", func() bool { return h.core.Session(id) == nil })
	for what, err := range map[string]error{
		"sending":   links["d2"].Send(ctx, &amqp.Message{Data: [][]byte{[]byte("late")}}, nil),
		"receiving": func() error { _, err := rcv.Receive(ctx, nil); return err }(),
	} {
		var le *amqp.LinkError
		if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != amqp.ErrCondUnauthorizedAccess {
			t.Errorf("d2 %s after its token expired: %v; want its link detached with amqp:unauthorized-access", what, err)
		}
	}
	if err := links["d1"].Send(ctx, &amqp.Message{Data: [][]byte{[]byte("d1")}}, nil); err != nil {
		t.Fatalf("d1 on the session after d2's token expired: %v", err)
	}
	if evs := h.readEvents(ctx, "d1", 1); string(evs[0].Body) != "d1" {
		t.Errorf("d1's event %q", evs[0].Body)
	}
	aud, tok = h.identityToken("d2", "", clock.Now().Add(time.Hour))
	if code, desc := cb.put(t, aud, tok); code != 200 {
		t.Fatalf("put-token d2 again: %d %s", code, desc)
	}
	again, err := s.NewSender(ctx, "/devices/d2/messages/events", nil)
	if err != nil {
		t.Fatalf("d2 attaching again on the same session: %v", err)
	}
	if err := again.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("back")}}, nil); err != nil {
		t.Fatalf("d2 sending again: %v", err)
	}
	if h.core.Session(core.Identity{DeviceID: "d1"}) == nil {
		t.Error("d1 disconnected; only d2's token expired")
	}
}

// A device that accepts a C2D message after its lock expired changes
// nothing: the message stays queued and is delivered again, and only
// the settlement of that delivery completes it.
func TestDeviceC2DSettledAfterTheLockExpired(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	h := newDeviceHubWith(t, &registry.Options{Now: clock.Now, C2DLockDuration: time.Minute}, nil)
	h.createDevice("d1")
	ctx := testCtx(t)
	if _, err := h.reg.Enqueue("d1", "", &registry.C2DMessage{MessageID: "m", Ack: "full"}); err != nil {
		t.Fatal(err)
	}
	s, _ := h.deviceSession("d1", "")
	rcv, err := s.NewReceiver(ctx, "/devices/d1/messages/devicebound", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	first := receiveOne(ctx, t, rcv)
	clock.advance(clock.Now().Add(2 * time.Minute))
	if err := rcv.AcceptMessage(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := receiveOne(ctx, t, rcv)
	if again.Properties.MessageID != "m" || again.Annotations[annDeliveryCount] != int32(2) {
		t.Fatalf("after the stale accept: %v at delivery %v; want m delivered again (2)", again.Properties.MessageID, again.Annotations[annDeliveryCount])
	}
	if err := rcv.AcceptMessage(ctx, again); err != nil {
		t.Fatal(err)
	}
	if fb := h.feedback(ctx, 1); fb["m"].StatusCode != registry.FeedbackSuccess {
		t.Errorf("feedback %+v; want m Success", fb)
	}
	if n, err := h.reg.PendingC2D("d1", ""); err != nil || n != 0 {
		t.Errorf("%d messages queued (%v); want 0", n, err)
	}
}

// A connection takes a session per device for as many devices as the
// C# SDK pools on one (995), and more than amqp1's default of 256.
func TestConnectionTakesAThousandSessions(t *testing.T) {
	h := newDeviceHub(t, nil)
	c := h.dial(nil)
	ctx := testCtx(t)
	for i := range 1000 {
		if _, err := c.NewSession(ctx, nil); err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
	}
}

// One token of a policy with DeviceConnect put for the whole hub (the
// C# SDK's pooled clients with a policy's connection string put one
// for the host) lets every device attach; a policy without it does
// not.
func TestPolicyTokenForDevices(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1", "d2")
	ctx := testCtx(t)
	s := h.session("device", testHost)
	for _, id := range []string{"d1", "d2"} {
		snd, err := s.NewSender(ctx, "/devices/"+id+"/messages/events", nil)
		if err != nil {
			t.Fatalf("%s with the device policy's token: %v", id, err)
		}
		if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte(id)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.core.Connected(); n != 2 {
		t.Errorf("%d identities connected; want 2", n)
	}
	svc := h.session("service", testHost)
	if _, err := svc.NewSender(ctx, "/devices/d1/messages/events", nil); condition(err) != string(amqp.ErrCondUnauthorizedAccess) ||
		!strings.Contains(err.Error(), "DeviceConnect") {
		t.Errorf("a device link with the service policy's token: %v; want amqp:unauthorized-access naming DeviceConnect", err)
	}
}

// SASL PLAIN with "{deviceId}@sas.{hub}" and the device's token, as
// the older device SDKs authenticate, authorizes that device's links
// and no other's; a token of another device is refused at SASL.
func TestDeviceSASLPlain(t *testing.T) {
	h := newDeviceHub(t, nil)
	h.createDevice("d1", "d2")
	ctx := testCtx(t)
	_, tok := h.identityToken("d1", "", time.Now().Add(time.Hour))
	c := h.dial(&amqp.ConnOptions{SASLType: amqp.SASLTypePlain("d1@sas.myhub", tok)})
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "/devices/d1/messages/events", nil)
	if err != nil {
		t.Fatalf("d1's link after SASL PLAIN as d1: %v", err)
	}
	if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("x")}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewSender(ctx, "/devices/d2/messages/events", nil); condition(err) != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("d2's link after SASL PLAIN as d1: %v; want amqp:unauthorized-access", err)
	}
	if _, err := h.tryDial(&amqp.ConnOptions{SASLType: amqp.SASLTypePlain("d2@sas.myhub", tok)}); err == nil {
		t.Error("SASL PLAIN as d2 with d1's token succeeded")
	}
}
