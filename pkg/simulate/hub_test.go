package simulate

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/loopback"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
)

// These tests run the engine and the device client against the
// in-process hub (pkg/hub) over real TLS and MQTT.

// startHub starts a hub with o and closes it when the test ends.
func startHub(t *testing.T, o *hub.Options) *hub.Hub {
	t.Helper()
	h := hub.New(o)
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("starting the hub on %s: %v", o.Addr, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newHub is an in-memory hub on a free loopback port.
func newHub(t *testing.T) *hub.Hub {
	return startHub(t, &hub.Options{Addr: "127.0.0.1:0", InMemory: true})
}

// deviceCS registers id on h and returns its connection string.
func deviceCS(t *testing.T, h *hub.Hub, id string) string {
	t.Helper()
	if err := h.CreateDevice(id); err != nil {
		t.Fatalf("CreateDevice(%q) = %v", id, err)
	}
	cs, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// createFleet registers ids on h and returns their keys.
func createFleet(t *testing.T, h *hub.Hub, ids []string) KeyMap {
	t.Helper()
	keys := KeyMap{}
	for _, id := range ids {
		if err := h.CreateDevice(id); err != nil {
			t.Fatal(err)
		}
		d, err := h.Registry().Device(id)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = d.Authentication.SymmetricKey.PrimaryKey
	}
	return keys
}

// logOf returns every event of id in h's telemetry log, in order.
func logOf(h *hub.Hub, id string) []telemetry.Event {
	l := h.Telemetry()
	evs, _ := l.Read(l.PartitionOf(id), 0, 1<<30)
	var out []telemetry.Event
	for _, ev := range evs {
		if ev.DeviceID == id {
			out = append(out, ev)
		}
	}
	return out
}

// runFleet starts f.Run in the background; stop cancels it and returns
// its result.
func runFleet(t *testing.T, f *Fleet) (stop func() (Stats, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		s   Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := f.Run(ctx)
		done <- result{s, err}
	}()
	var once sync.Once
	var r result
	stop = func() (Stats, error) {
		once.Do(func() {
			cancel()
			r = recv(t, done, "Run to return after cancel")
		})
		return r.s, r.err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// invoke calls a direct method through the hub, as the service API does.
func invoke(t *testing.T, h *hub.Hub, id, name, payload string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	status, res, err := h.InvokeMethod(ctx, id, "", name, json.RawMessage(payload), 5*time.Second, waitFor)
	if err != nil {
		t.Fatalf("hub.InvokeMethod(%s, %s) = %v", name, payload, err)
	}
	return status, compact(t, res)
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %q", b)
	}
	out, _ := json.Marshal(m)
	return string(out)
}

var quickstartRE = regexp.MustCompile(`^\{"temperature": ([0-9.]+),"humidity": ([0-9.]+)\}$`)

// The default simulation is the quickstart device, end to end: its
// messages land in the hub's log as the quickstart sends them, and its
// direct method answers as the quickstart does.
func TestQuickstartDeviceAgainstHub(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	cs := deviceCS(t, h, "quickstart")
	s := newSink()
	f, err := New(&Options{Device: device.Options{ConnectionString: cs, CAFile: h.CAFile()}, Sink: s.put})
	if err != nil {
		t.Fatal(err)
	}
	stop := runFleet(t, f)
	s.next(t, EventConnected)
	var sent []Event
	for range 3 {
		sent = append(sent, s.next(t, EventSent))
	}

	got := logOf(h, "quickstart")
	if len(got) < 3 {
		t.Fatalf("hub side: %d messages in the log after 3 sent events; want at least 3", len(got))
	}
	for i, ev := range got[:3] {
		m := ev.Message
		if string(m.Body) != string(sent[i].Body) {
			t.Errorf("message %d: the hub logged %s; the engine reported sending %s", i+1, m.Body, sent[i].Body)
		}
		sm := quickstartRE.FindSubmatch(m.Body)
		if sm == nil {
			t.Errorf("message %d body %q; want the quickstart's {\"temperature\": t,\"humidity\": h}", i+1, m.Body)
			continue
		}
		temp, _ := strconv.ParseFloat(string(sm[1]), 64)
		hum, _ := strconv.ParseFloat(string(sm[2]), 64)
		if temp < 20 || temp >= 35 || hum < 60 || hum >= 80 {
			t.Errorf("message %d: temperature %v humidity %v; want [20, 35) and [60, 80)", i+1, temp, hum)
		}
		if want := strconv.FormatBool(temp > 30); m.Properties["temperatureAlert"] != want {
			t.Errorf("message %d: temperatureAlert %q with temperature %v; want %q", i+1, m.Properties["temperatureAlert"], temp, want)
		}
		if m.ContentType != "application/json" || m.ContentEncoding != "utf-8" {
			t.Errorf("message %d: content type %q encoding %q; want application/json and utf-8", i+1, m.ContentType, m.ContentEncoding)
		}
	}

	const ok = `{"Response":"Executed direct method SetTelemetryInterval"}`
	tests := []struct {
		method, payload string
		status          int
		res             string
	}{
		{"SetTelemetryInterval", `"10"`, 200, ok},
		{"SetTelemetryInterval", `10`, 200, ok},
		{"SetTelemetryInterval", `"ten"`, 400, `{"Response":"Invalid parameter"}`},
		{"SetTelemetryInterval", `{"seconds":10}`, 400, `{"Response":"Invalid parameter"}`},
		{"reboot", `null`, 404, `{"Response":"Direct method reboot not defined"}`},
	}
	for _, tt := range tests {
		status, res := invoke(t, h, "quickstart", tt.method, tt.payload)
		if status != tt.status || res != tt.res {
			t.Errorf("InvokeMethod(%s, %s) = %d %s; want %d %s", tt.method, tt.payload, status, res, tt.status, tt.res)
		}
		e := s.next(t, EventMethod)
		if e.Method != tt.method || e.Status != tt.status {
			t.Errorf("method event %+v; want %s answered %d", e, tt.method, tt.status)
		}
		if wantIv := map[bool]float64{true: 10}[tt.status == 200]; e.IntervalSeconds != wantIv {
			t.Errorf("method event for %s %s: interval %vs; want %vs", tt.method, tt.payload, e.IntervalSeconds, wantIv)
		}
	}
	st, err := stop()
	if !errors.Is(err, context.Canceled) || st.Errors != 0 || st.Methods != int64(len(tests)) {
		t.Errorf("Run = %+v, %v; want context.Canceled, no errors, %d methods", st, err, len(tests))
	}
}

// SetTelemetryInterval 3 spaces the following messages at least 3 s
// apart in the hub's log. Only lower bounds are asserted: a slow
// machine makes gaps longer, never shorter.
func TestSetTelemetryIntervalSpacesMessages(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	cs := deviceCS(t, h, "spacing")
	s := newSink()
	f, err := New(&Options{Device: device.Options{ConnectionString: cs, CAFile: h.CAFile()}, Interval: 100 * time.Millisecond, Sink: s.put})
	if err != nil {
		t.Fatal(err)
	}
	stop := runFleet(t, f)
	for range 5 {
		s.next(t, EventSent)
	}
	if status, res := invoke(t, h, "spacing", "SetTelemetryInterval", `3`); status != 200 {
		t.Fatalf("SetTelemetryInterval 3 = %d %s; want 200", status, res)
	}
	// Events after the method event: the sends they report were
	// followed by a wait of the new interval.
	var after []int64
	deadline := time.After(3 * waitFor)
	var method *Event
	for len(after) < 3 {
		select {
		case e := <-s.ch:
			switch {
			case e.Type == EventMethod:
				method = &e
			case e.Type == EventSent && method != nil:
				after = append(after, e.Seq)
			}
		case <-deadline:
			t.Fatalf("timed out: sent events after the method %v", after)
		}
	}
	if method.IntervalSeconds != 3 || method.Status != 200 {
		t.Errorf("the engine reported %+v; want status 200 and interval 3s", method)
	}
	stop()

	// One sender, QoS 1, no reconnect: log entry i is message i+1.
	got := logOf(h, "spacing")
	enq := func(seq int64) time.Time {
		if int(seq) > len(got) {
			t.Fatalf("message %d is not in the hub's log (%d messages)", seq, len(got))
		}
		return got[seq-1].EnqueuedTime
	}
	minBefore := time.Hour
	for seq := int64(2); seq <= 5; seq++ {
		minBefore = min(minBefore, enq(seq).Sub(enq(seq-1)))
	}
	if minBefore >= 2500*time.Millisecond {
		t.Errorf("at 100ms, every gap was at least %v: the interval cannot be told apart", minBefore)
	}
	for _, seq := range after[:2] {
		if gap := enq(seq + 1).Sub(enq(seq)); gap < 2500*time.Millisecond {
			t.Errorf("after SetTelemetryInterval 3: messages %d and %d were enqueued %v apart; want about 3s", seq, seq+1, gap)
		}
	}
}

// The hub restarts on the same data dir while a device sends QoS 1
// messages: the device reconnects by itself, and every message the
// client reported as acknowledged is in one of the two hubs' logs.
func TestHubRestartLosesNoAcknowledgedMessage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// An address of the test's own: nothing else can take the port
	// while the hub restarts.
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	o := &hub.Options{Addr: addr, DataDir: dir}
	h1 := startHub(t, o)
	cs := deviceCS(t, h1, "restart")
	ca := h1.CAFile()

	states := make(chan device.Event, 1000)
	c, err := device.New(&device.Options{ConnectionString: cs, CAFile: ca, MinRetryDelay: 20 * time.Millisecond,
		MaxRetryDelay: 200 * time.Millisecond, OnState: func(e device.Event) { states <- e }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect = %v", err)
	}
	defer c.Close(context.Background())

	// Four senders keep messages in flight when the hub goes away.
	var next atomic.Int64
	acked := make(chan int64, 100000)
	errs := make(chan error, 100)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := next.Add(1)
				m := &message.Message{Body: []byte(strconv.FormatInt(n, 10)), Properties: map[string]string{"seq": strconv.FormatInt(n, 10)}}
				if err := c.SendEvent(ctx, m); err != nil {
					errs <- fmt.Errorf("SendEvent(seq %d) = %w", n, err)
					return
				}
				acked <- n
			}
		}()
	}
	var ackedSeqs []int64
	waitAcked := func(n int, when string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for target := len(ackedSeqs) + n; len(ackedSeqs) < target; {
			select {
			case s := <-acked:
				ackedSeqs = append(ackedSeqs, s)
			case err := <-errs:
				t.Fatalf("%s: %v", when, err)
			case <-deadline:
				t.Fatalf("%s: only %d messages acknowledged", when, len(ackedSeqs))
			}
		}
	}
	waitState := func(want device.State, when string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case e := <-states:
				if e.Final {
					t.Fatalf("%s: the client gave up: %+v", when, e)
				}
				if e.State == want {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no %s state within 30s", when, want)
			}
		}
	}
	waitState(device.StateConnected, "first connect")
	waitAcked(200, "before the restart")
	if err := h1.Close(); err != nil {
		t.Fatalf("closing the first hub: %v", err)
	}
	waitState(device.StateDisconnected, "after closing the hub")
	h2 := startHub(t, o)
	waitState(device.StateConnected, "after restarting the hub")
	waitAcked(200, "after the restart")
	close(stop)
	// Senders waiting on a PUBACK finish; count what they got. A send
	// caught by the restart must not hang on the dead connection
	// (paho's Publish did, for its 30 s write timeout).
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(waitFor):
		t.Fatalf("a SendEvent still hangs %v after the device reconnected to the new hub", waitFor)
	}
	close(acked)
	for s := range acked {
		ackedSeqs = append(ackedSeqs, s)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	seen := map[int64]int{}
	for _, h := range []*hub.Hub{h1, h2} {
		for _, ev := range logOf(h, "restart") {
			n, err := strconv.ParseInt(ev.Message.Properties["seq"], 10, 64)
			if err != nil {
				t.Fatalf("hub side: a message without seq: %+v", ev.Message)
			}
			seen[n]++
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	var lost []int64
	for _, n := range ackedSeqs {
		if seen[n] == 0 {
			lost = append(lost, n)
		}
	}
	t.Logf("%d acknowledged, %d distinct in the logs (%d before the restart, %d after), %d duplicates",
		len(ackedSeqs), len(seen), len(logOf(h1, "restart")), len(logOf(h2, "restart")), dups)
	if len(lost) > 0 || len(ackedSeqs) > len(seen) {
		t.Errorf("acknowledged but in neither hub's log: %v (%d acknowledged, %d distinct logged)", lost, len(ackedSeqs), len(seen))
	}
}

// With a 5 s SAS token the client reconnects every 4 s with a fresh
// one, and the simulation sends on without a single error.
func TestShortTokenTTLKeepsSending(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	cs := deviceCS(t, h, "short-ttl")
	s := newSink()
	const count = 80 // at 250ms: about 20 s
	f, err := New(&Options{Device: device.Options{ConnectionString: cs, CAFile: h.CAFile(), TokenTTL: 5 * time.Second},
		Interval: 250 * time.Millisecond, Count: count, Sink: s.put})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := f.Run(ctx)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	renewals, connects := 0, 0
	var errEvents []Event
	for len(s.ch) > 0 {
		e := <-s.ch
		switch {
		case e.Type == EventReconnecting && e.Reason == device.ReasonTokenRenewal && e.Attempt == 0:
			renewals++
		case e.Type == EventConnected:
			connects++
		case e.Type == EventError, e.Type == EventDisconnected && e.Error != "":
			errEvents = append(errEvents, e)
		}
	}
	if st.Sent != count || st.Acked != count || st.Errors != 0 {
		t.Errorf("stats %+v; want %d sent and acknowledged and no errors", st, count)
	}
	if len(errEvents) > 0 {
		t.Errorf("error events: %+v", errEvents)
	}
	if renewals < 3 || connects < renewals+1 || st.Reconnects < 3 {
		t.Errorf("%d token renewals, %d connects, %d reconnects over %d messages; want at least 3 renewals each followed by a connect",
			renewals, connects, st.Reconnects, count)
	}
	if got := len(logOf(h, "short-ttl")); got < count {
		t.Errorf("hub side: %d messages in the log; want at least %d", got, count)
	}
}

// A fleet reads its CA file once, in New, and shares the pool: the
// devices connect even when the file is gone by the time they do.
func TestFleetReadsCAFileOnce(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	ids := FleetIDs("ca-", 3)
	keys := createFleet(t, h, ids)
	pem, err := os.ReadFile(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := New(&Options{Device: device.Options{HostName: h.HostName(), CAFile: ca}, DeviceIDs: ids, Keys: keys,
		Count: 1, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()
	st, err := f.Run(ctx)
	if err != nil || st.Acked != 3 || st.Errors != 0 {
		t.Errorf("Run with the CA file removed after New = %+v, %v; want 3 messages acknowledged and no errors", st, err)
	}
}

// caRegistry creates certificateAuthority devices in a hub's registry.
type caRegistry struct {
	h       *hub.Hub
	created atomic.Int64
}

func (r *caRegistry) EnsureDevice(context.Context, string) (string, error) {
	return "", errors.New("a certificate fleet asked for a key")
}

func (r *caRegistry) EnsureCADevice(_ context.Context, id string) error {
	_, err := r.h.Registry().CreateDevice(&iothub.Device{DeviceID: id,
		Authentication: &iothub.Authentication{Type: iothub.AuthCertificateAuthority}})
	if err == nil {
		r.created.Add(1)
	}
	return err
}

// A fleet with an Issuer connects every device with a certificate the
// issuer signs for it, after creating the devices as
// certificateAuthority identities, and the hub that trusts the issuer
// accepts them.
func TestCertificateFleet(t *testing.T) {
	t.Parallel()
	now := time.Now()
	caPEM, caKeyPEM, err := devicecert.NewCA("fleet CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "fleet-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	issuer, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, &hub.Options{Addr: "127.0.0.1:0", InMemory: true, DeviceCAFiles: []string{caFile}})
	reg := &caRegistry{h: h}
	ids := FleetIDs("x509-", 3)
	f, err := New(&Options{Device: device.Options{HostName: h.HostName(), CAFile: h.CAFile()}, DeviceIDs: ids,
		Keys: reg, Issuer: &issuer, Count: 2, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()
	st, err := f.Run(ctx)
	if err != nil || st.Acked != 6 || st.Errors != 0 || reg.created.Load() != 3 {
		t.Fatalf("Run = %+v, %v, %d devices created; want 6 messages acknowledged, no errors, 3 created", st, err, reg.created.Load())
	}
	for _, id := range ids {
		if evs := logOf(h, id); len(evs) != 2 || evs[0].AuthMethod != "x509" {
			t.Errorf("%s: %d events in the hub's log (auth %v); want 2 over x509", id, len(evs), evs)
		}
	}
}
