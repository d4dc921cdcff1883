package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// startHub starts an in-memory hub on a free loopback port.
func startHub(t *testing.T) *Hub { return startHubAt(t, nil) }

// startHubAt starts a hub whose clock is now (nil: time.Now).
func startHubAt(t *testing.T, now func() time.Time) *Hub {
	t.Helper()
	h := New(&Options{Addr: "127.0.0.1:0", InMemory: true, Now: now})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func createDevice(t *testing.T, h *Hub, id string) *connstr.ConnectionString {
	t.Helper()
	if _, err := h.reg.CreateDevice(&iothub.Device{DeviceID: id}); err != nil {
		t.Fatalf("CreateDevice(%s): %v", id, err)
	}
	s, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	return connstr.MustParse(s)
}

func tlsFor(t *testing.T, h *Hub) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// device is a minimal hand-made IoT Hub MQTT device on paho, kept
// independent of pkg/device so the hub is tested against plain MQTT.
type device struct {
	c        paho.Client
	received chan paho.Message
	lost     chan error
}

func dial(t *testing.T, h *Hub, cs *connstr.ConnectionString, password string) (*device, error) {
	t.Helper()
	return dialAck(t, h, cs, password, true)
}

// dialAck is dial with paho's automatic acknowledgement on or off: with
// ack false the device never PUBACKs what the hub sends.
func dialAck(t *testing.T, h *Hub, cs *connstr.ConnectionString, password string, ack bool) (*device, error) {
	t.Helper()
	return dialAckAt(t, h, h.Addrs()[0], cs, password, ack)
}

// dialAckAt is dialAck to the hub's address addr.
func dialAckAt(t *testing.T, h *Hub, addr string, cs *connstr.ConnectionString, password string, ack bool) (*device, error) {
	t.Helper()
	if password == "" {
		key, _ := cs.Key()
		tok, err := sas.Sign(sas.DeviceResource(cs.HostName, cs.DeviceID), key, nil)
		if err != nil {
			t.Fatal(err)
		}
		password = tok.Encode()
	}
	d := &device{received: make(chan paho.Message, 100), lost: make(chan error, 1)}
	opts := paho.NewClientOptions().
		AddBroker("tls://" + addr).
		SetClientID(cs.DeviceID).
		SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").
		SetPassword(password).
		SetTLSConfig(tlsFor(t, h)).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4).
		SetAutoAckDisabled(!ack).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.received <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err })
	d.c = paho.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d, nil
}

func (d *device) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := d.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

func (d *device) publish(t *testing.T, topic string, qos byte, body string) {
	t.Helper()
	tok := d.c.Publish(topic, qos, false, body)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (d *device) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-d.received:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the hub")
	}
	return nil
}

func TestConnectAuthentication(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	if _, err := dial(t, h, cs, ""); err != nil {
		t.Fatalf("connect with the device key: %v", err)
	}
	key, _ := sas.DecodeKey("c2VjcmV0")
	wrong, _ := sas.Sign(sas.DeviceResource(cs.HostName, "dev1"), key, nil)
	expired, _ := sas.Sign(sas.DeviceResource(cs.HostName, "dev1"), mustKey(t, cs), &sas.SignOptions{Expiry: time.Now().Add(-time.Minute)})
	other, _ := sas.Sign(sas.DeviceResource(cs.HostName, "dev2"), mustKey(t, cs), nil)
	for name, pw := range map[string]string{"wrong key": wrong.Encode(), "expired": expired.Encode(), "other device's scope": other.Encode(), "not a token": "hello"} {
		if _, err := dial(t, h, cs, pw); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("%s: connect error %v; want not authorized", name, err)
		}
	}
	unknown := *cs
	unknown.DeviceID = "ghost"
	if _, err := dial(t, h, &unknown, ""); err == nil {
		t.Errorf("unknown device connected")
	}
}

func mustKey(t *testing.T, cs *connstr.ConnectionString) []byte {
	k, err := cs.Key()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTelemetryIsStoredWithProperties(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	topic := "devices/dev1/messages/events/%24.mid=msg-abc&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c"
	for i := 0; i < 10; i++ {
		d.publish(t, topic, 1, fmt.Sprintf(`{"n":%d}`, i))
	}
	p := h.Telemetry().PartitionOf("dev1")
	evs, _ := h.Telemetry().Read(p, 0, 100)
	if len(evs) != 10 {
		t.Fatalf("log holds %d events; want 10", len(evs))
	}
	m := evs[9].Message
	if evs[9].DeviceID != "dev1" || string(m.Body) != `{"n":9}` || m.MessageID != "msg-abc" || m.ContentType != "application/json" ||
		m.Properties["alert"] != "high" || m.Properties["sp ace"] != "a/b&c" || evs[9].SequenceNumber != 9 {
		t.Errorf("event = %+v, message %+v", evs[9], m)
	}
}

func TestForeignTopicDisconnects(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	createDevice(t, h, "dev2")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.c.Publish("devices/dev2/messages/events/", 1, false, "x")
	select {
	case <-d.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing to another device's topic did not disconnect")
	}
}

func TestDirectMethod(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	ctx := context.Background()
	if _, _, err := h.InvokeMethod(ctx, "dev1", "", "m", nil, 0, time.Second); !errors.Is(err, ErrDeviceNotOnline) {
		t.Fatalf("offline device: %v; want ErrDeviceNotOnline", err)
	}
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.InvokeMethod(ctx, "dev1", "", "m", nil, 0, time.Second); !errors.Is(err, ErrDeviceNotOnline) {
		t.Fatalf("device not subscribed: %v; want ErrDeviceNotOnline", err)
	}
	d.subscribe(t, message.MethodRequestFilter, 0)
	type result struct {
		status  int
		payload json.RawMessage
		err     error
	}
	done := make(chan result, 1)
	go func() {
		s, p, err := h.InvokeMethod(ctx, "dev1", "", "SetTelemetryInterval", json.RawMessage(`"10"`), 0, 10*time.Second)
		done <- result{s, p, err}
	}()
	req := d.next(t)
	tp, err := message.ParseTopic(req.Topic())
	if err != nil || tp.Kind != message.KindMethodRequest || tp.MethodName != "SetTelemetryInterval" || string(req.Payload()) != `"10"` {
		t.Fatalf("request %q %q: %v", req.Topic(), req.Payload(), err)
	}
	d.publish(t, message.MethodResponseTopic(200, tp.RequestID), 0, `{"Response":"Executed direct method SetTelemetryInterval"}`)
	r := <-done
	if r.err != nil || r.status != 200 || string(r.payload) != `{"Response":"Executed direct method SetTelemetryInterval"}` {
		t.Fatalf("InvokeMethod = %d %s %v", r.status, r.payload, r.err)
	}
	// A device that never answers.
	if _, _, err := h.InvokeMethod(ctx, "dev1", "", "silent", nil, 0, 200*time.Millisecond); !errors.Is(err, ErrMethodTimeout) {
		t.Fatalf("silent device: %v; want ErrMethodTimeout", err)
	}
	d.next(t) // the silent request
}

func TestMethodWaitsForConnect(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	done := make(chan error, 1)
	go func() {
		_, _, err := h.InvokeMethod(context.Background(), "dev1", "", "m", nil, 30*time.Second, 10*time.Second)
		done <- err
	}()
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, message.MethodRequestFilter, 0)
	req := d.next(t)
	tp, _ := message.ParseTopic(req.Topic())
	d.publish(t, message.MethodResponseTopic(204, tp.RequestID), 0, "")
	if err := <-done; err != nil {
		t.Fatalf("InvokeMethod with connect timeout: %v", err)
	}
}

func TestTwinOverMQTT(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, message.TwinResponseFilter, 0)
	d.subscribe(t, message.TwinDesiredFilter, 0)
	d.publish(t, message.TwinPatchReportedTopic("r1"), 0, `{"interval":5,"fw":{"v":"1.0"}}`)
	res := d.next(t)
	tp, err := message.ParseTopic(res.Topic())
	if err != nil || tp.Status != 204 || tp.RequestID != "r1" || tp.Version < 2 || len(res.Payload()) != 0 {
		t.Fatalf("patch response %q %q: %v", res.Topic(), res.Payload(), err)
	}
	d.publish(t, message.TwinGetTopic("r2"), 0, " ")
	res = d.next(t)
	tp, _ = message.ParseTopic(res.Topic())
	var twin struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(res.Payload(), &twin); err != nil || tp.Status != 200 || twin.Reported["interval"] != float64(5) {
		t.Fatalf("get response %q %s: %v", res.Topic(), res.Payload(), err)
	}
	if _, ok := twin.Desired["$version"]; !ok {
		t.Errorf("desired %v has no $version", twin.Desired)
	}
	_, delta, err := h.reg.PatchTwin("dev1", "", &iothub.TwinUpdate{Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"interval":7}`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	h.DesiredChanged("dev1", "", delta.Patch, delta.Version)
	n := d.next(t)
	tp, _ = message.ParseTopic(n.Topic())
	var patch map[string]any
	_ = json.Unmarshal(n.Payload(), &patch)
	if tp.Kind != message.KindTwinDesired || patch["interval"] != float64(7) || patch["$version"] != float64(delta.Version) {
		t.Fatalf("desired notification %q %s", n.Topic(), n.Payload())
	}
}

func TestC2DDeliveredAndCompleted(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m1", Body: []byte("hello"), Properties: map[string]string{"color": "red"}}); err != nil {
		t.Fatal(err)
	}
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, message.C2DFilter("dev1"), 1)
	m := d.next(t)
	tp, err := message.ParseTopic(m.Topic())
	if err != nil || tp.Kind != message.KindC2D || tp.Message.MessageID != "m1" || tp.Message.Properties["color"] != "red" ||
		!strings.EqualFold(tp.Message.To, "/devices/dev1/messages/devicebound") || string(m.Payload()) != "hello" || m.Qos() != 1 {
		t.Fatalf("c2d %q %q qos %d: %v", m.Topic(), m.Payload(), m.Qos(), err)
	}
	// paho acks on return from the handler; the hub then completes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := h.reg.PendingC2D("dev1", "")
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still pending after the PUBACK", n)
		}
		<-time.After(20 * time.Millisecond)
	}
	// One enqueued while connected is pushed at once.
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m2", Body: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	h.C2DEnqueued("dev1", "")
	if m := d.next(t); string(m.Payload()) != "again" {
		t.Fatalf("second c2d %q", m.Payload())
	}
}

// A connection that replaces another (same device id) gets the C2D
// message the first left unacknowledged at once, not a minute later
// when its lock expires.
func TestC2DUnackedGoesToTheReplacingConnection(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m1", Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	d1, err := dialAck(t, h, cs, "", false)
	if err != nil {
		t.Fatal(err)
	}
	d1.subscribe(t, message.C2DFilter("dev1"), 1)
	if m := d1.next(t); string(m.Payload()) != "hello" {
		t.Fatalf("first connection got %q", m.Payload())
	}
	d2, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d2.subscribe(t, message.C2DFilter("dev1"), 1)
	if m := d2.next(t); string(m.Payload()) != "hello" {
		t.Fatalf("replacing connection got %q", m.Payload())
	}
	for deadline := time.Now().Add(10 * time.Second); ; <-time.After(20 * time.Millisecond) {
		if n, _ := h.reg.PendingC2D("dev1", ""); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message is still queued after the replacing connection acknowledged it")
		}
	}
	if h.core.Connected() != 1 {
		t.Errorf("%d sessions; want the replacing one only", h.core.Connected())
	}
}

// A message left unacknowledged is delivered again on the same
// connection once its lock has expired, by the hub's periodic sweep.
func TestC2DRedeliveredAfterItsLockExpired(t *testing.T) {
	var ahead atomic.Int64 // the hub's clock runs this far ahead
	h := startHubAt(t, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	cs := createDevice(t, h, "dev1")
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m1", Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	d, err := dialAck(t, h, cs, "", false)
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, message.C2DFilter("dev1"), 1)
	if m := d.next(t); string(m.Payload()) != "hello" {
		t.Fatalf("first delivery %q", m.Payload())
	}
	ahead.Store(int64(registry.DefaultC2DLockDuration + time.Second))
	m := d.next(t) // the sweep runs every core.ExpirySweep (5 s)
	tp, err := message.ParseTopic(m.Topic())
	if err != nil || string(m.Payload()) != "hello" || tp.Message.MessageID != "m1" {
		t.Fatalf("redelivery %q %q: %v", m.Topic(), m.Payload(), err)
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in, host, id string
		ok           bool
	}{
		{"h.net/dev1/?api-version=2021-04-12&DeviceClientType=x", "h.net", "dev1", true},
		{"h.net/dev1/api-version=2020-09-30", "h.net", "dev1", true},
		{"localhost:8443/dev1/mod1/?api-version=2021-04-12", "localhost:8443", "dev1/mod1", true},
		{"h.net/dev1", "h.net", "dev1", true},
		{"h.net", "", "", false},
		{"/dev1/?api-version=1", "", "", false},
	}
	for _, tt := range tests {
		host, id, ok := parseUsername(tt.in)
		if host != tt.host || id != tt.id || ok != tt.ok {
			t.Errorf("parseUsername(%q) = %q, %q, %v; want %q, %q, %v", tt.in, host, id, ok, tt.host, tt.id, tt.ok)
		}
	}
}
