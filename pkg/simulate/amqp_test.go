package simulate

import (
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// newAMQPFleet makes a fleet of n AMQP devices on a new hub with o's
// sharing and features. Each sends one message at once and the next an
// hour later: the tests stop the run long before, so every message sent
// is one the hub took.
func newAMQPFleet(t *testing.T, prefix string, n int, o Options) (*hub.Hub, []string, *sink, *Fleet) {
	t.Helper()
	h := newHub(t)
	ids := FleetIDs(prefix, n)
	s := newSink()
	o.Device = device.Options{HostName: h.HostName(), CAFile: h.CAFile(), Transport: device.TransportAMQP}
	o.DeviceIDs, o.Keys, o.Interval, o.Sink = ids, createFleet(t, h, ids), time.Hour, s.put
	f, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	return h, ids, s, f
}

// An AMQP fleet of 50 devices on 5 shared connections: every device
// connects and its message is acknowledged and logged under its id; a
// method call and a C2D message reach the device they were sent to.
func TestAMQPFleetOnSharedConnections(t *testing.T) {
	t.Parallel()
	h, ids, s, f := newAMQPFleet(t, "amqp-", 50, Options{DevicesPerConnection: 10})
	if f.pool == nil || f.pool.per != 10 {
		t.Fatal("the fleet does not share its AMQP connections 10 a connection")
	}
	stop := runFleet(t, f)
	sent := map[string]bool{}
	for len(sent) < len(ids) {
		sent[s.next(t, EventSent).DeviceID] = true
	}
	f.pool.mu.Lock()
	conns := len(f.pool.conns)
	f.pool.mu.Unlock()
	if conns != 5 {
		t.Errorf("%d shared connections for 50 devices 10 a connection; want 5", conns)
	}
	for _, id := range ids {
		if got := logOf(h, id); len(got) != 1 {
			t.Errorf("%s: %d messages in the hub's log; want 1", id, len(got))
		}
	}

	mid, cid := ids[22], ids[40]
	status, res := invoke(t, h, mid, "SetTelemetryInterval", `"7200"`)
	if status != 200 {
		t.Errorf("SetTelemetryInterval on %s = %d %s; want 200", mid, status, res)
	}
	if e := s.next(t, EventMethod); e.DeviceID != mid {
		t.Errorf("the method for %s was answered by %q", mid, e.DeviceID)
	}
	if _, err := h.Registry().Enqueue(cid, "", &registry.C2DMessage{MessageID: "c1", Body: []byte(`"hi"`)}); err != nil {
		t.Fatal(err)
	}
	h.C2DEnqueued(cid, "")
	if e := s.next(t, EventC2D); e.DeviceID != cid || e.MessageID != "c1" {
		t.Errorf("C2D event %+v; want message c1 at %s", e, cid)
	}

	st, _ := stop()
	if st.Sent != 50 || st.Acked != 50 || st.Errors != 0 || st.Methods != 1 || st.C2D != 1 {
		t.Errorf("Run = %+v; want 50 sent and acknowledged, no errors, 1 method, 1 C2D", st)
	}
}

// DevicesPerConnection is refused where connections cannot be shared,
// with the reason, and defaults by transport.
func TestDevicesPerConnectionChecked(t *testing.T) {
	ids := FleetIDs("d-", 3)
	keys := KeyMap{}
	base := func(tr device.Transport, per int) *Options {
		return &Options{Device: device.Options{HostName: "h", Transport: tr}, DeviceIDs: ids, Keys: keys, DevicesPerConnection: per}
	}
	for _, tt := range []struct {
		o    *Options
		want string
	}{
		{base(device.TransportMQTT, 10), "only AMQP devices share connections"},
		{base(device.TransportHTTPS, 2), "only AMQP devices share connections"},
		{base(device.TransportAMQP, 996), "at most 995"},
		{base(device.TransportAMQP, -1), "must not be negative"},
		{&Options{Device: device.Options{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=AAAA", Transport: device.TransportAMQP},
			DevicesPerConnection: 5}, "a single device has a connection of its own"},
	} {
		if _, err := New(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s, %d per connection) = %v; want an error saying %q", tt.o.Device.Transport, tt.o.DevicesPerConnection, err, tt.want)
		}
	}
	for _, tt := range []struct {
		tr   device.Transport
		per  int
		want int
	}{
		{device.TransportAMQP, 0, DefaultAMQPDevicesPerConnection},
		{device.TransportAMQP, 1, 1},
		{device.TransportAMQP, 995, 995},
		{device.TransportMQTT, 0, 1},
		{device.TransportMQTT, 1, 1},
	} {
		f, err := New(base(tt.tr, tt.per))
		if err != nil {
			t.Fatalf("New(%s, %d per connection) = %v", tt.tr, tt.per, err)
		}
		if got := f.opts.DevicesPerConnection; got != tt.want || (f.pool != nil) != (tt.want > 1) {
			t.Errorf("New(%s, %d per connection): %d per connection (pool %v); want %d", tt.tr, tt.per, got, f.pool != nil, tt.want)
		}
	}
}

// A telemetry-only AMQP fleet shares its connections on the lean
// engine, sends and has every message acknowledged, and its devices do
// not listen for methods (no methods link).
func TestAMQPTelemetryOnlyFleet(t *testing.T) {
	t.Parallel()
	h, ids, s, f := newAMQPFleet(t, "tel-", 6, Options{DevicesPerConnection: 3, TelemetryOnly: true})
	if f.pool == nil || !f.pool.telemetryOnly {
		t.Fatal("the telemetry-only fleet's shared connections are not on the lean engine")
	}
	stop := runFleet(t, f)
	for range ids {
		s.next(t, EventSent)
	}
	if _, _, err := h.InvokeMethod(t.Context(), ids[0], "", "SetTelemetryInterval", nil, 0, waitFor); err == nil {
		t.Error("a telemetry-only device answered a method; want it not listening")
	}
	st, _ := stop()
	if st.Sent != 6 || st.Acked != 6 || st.Errors != 0 || st.Methods != 0 {
		t.Errorf("Run = %+v; want 6 sent and acknowledged, no errors, no methods", st)
	}
	if _, err := New(&Options{Device: device.Options{HostName: "h"}, DeviceIDs: ids, Keys: KeyMap{}, TelemetryOnly: true,
		Methods: []MethodReply{{Name: "reboot", Status: 200}}}); err == nil || !strings.Contains(err.Error(), "TelemetryOnly") {
		t.Errorf("New(TelemetryOnly with Methods) = %v; want a refusal", err)
	}
}
