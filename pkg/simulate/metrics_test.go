package simulate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotctl/iotctl/internal/metricsrv"
	"github.com/iotctl/iotctl/internal/promtest"
	"github.com/iotctl/iotctl/pkg/device"
)

// A fleet of five against the in-process hub, one of them without a
// key, served on a metrics endpoint: scraped during the run, the
// endpoint shows the devices connected, the method call answered and
// the credentials error; scraped after the run, every counter is the
// summary's.
func TestMetricsAgreeWithTheSummary(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	ids := FleetIDs("prom-", 5)
	keys := createFleet(t, h, ids[:4]) // prom-00005 has no key
	s := newSink()
	f, err := New(&Options{Device: device.Options{HostName: h.HostName(), CAFile: h.CAFile()}, DeviceIDs: ids, Keys: keys,
		Interval: 20 * time.Millisecond, Sink: s.put})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := f.RegisterMetrics(reg, prometheus.Labels{MetricLabelFleet: "prom-", MetricLabelShard: "0"}); err != nil {
		t.Fatal(err)
	}
	if err := f.RegisterMetrics(reg, prometheus.Labels{MetricLabelFleet: "prom-", MetricLabelShard: "0"}); err == nil {
		t.Error("RegisterMetrics twice on one registry = nil; want the registry's error")
	}
	srv, err := metricsrv.Listen("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	series := func(name string, kv ...string) string {
		return promtest.Series("iotctl_simulate_"+name, append([]string{"fleet", "prom-", "shard", "0"}, kv...)...)
	}

	stop := runFleet(t, f)
	// Every device with a key has had a message acknowledged, and the
	// one without has had its credentials error: the events come in
	// any order.
	sentBy := map[string]bool{}
	credErrs := 0
	deadline := time.After(waitFor)
	for len(sentBy) < 4 || credErrs < 1 {
		select {
		case e := <-s.ch:
			switch e.Type {
			case EventSent:
				sentBy[e.DeviceID] = true
			case EventError:
				if e.DeviceID != "prom-00005" {
					t.Fatalf("error event %+v; want one for prom-00005 alone", e)
				}
				credErrs++
			}
		case <-deadline:
			t.Fatalf("timed out: messages acknowledged from %v, %d credentials errors; want all 4 devices with keys and 1 error", sentBy, credErrs)
		}
	}
	invoke(t, h, "prom-00002", "SetTelemetryInterval", "1")
	s.next(t, EventMethod)

	during := promtest.Scrape(t, srv.URL())
	for _, c := range []struct {
		series string
		want   float64
	}{
		{series("devices"), 5},
		{series("devices_connected"), 4},
		{series("method_calls_total"), 1},
		{series("errors_total", "kind", "credentials"), 1},
		{series("errors_total", "kind", "send"), 0},
	} {
		if got, ok := during[c.series]; !ok || got != c.want {
			t.Errorf("during the run: %s = %v (present %v); want %v", c.series, got, ok, c.want)
		}
	}
	if during[series("messages_acked_total")] < 4 || during[series("messages_acked_total")] > during[series("messages_sent_total")] {
		t.Errorf("during the run: %v acked of %v sent; want at least 4, at most those sent",
			during[series("messages_acked_total")], during[series("messages_sent_total")])
	}
	if _, ok := during["process_resident_memory_bytes"]; !ok {
		t.Error("during the run: no process_resident_memory_bytes; want the process collector's metrics too")
	}

	sum, err := stop()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v; want context.Canceled", err)
	}
	after := promtest.Scrape(t, srv.URL())
	var errs float64
	for k := range numErrorKinds {
		errs += after[series("errors_total", "kind", k.String())]
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"messages_sent_total", after[series("messages_sent_total")], float64(sum.Sent)},
		{"messages_acked_total", after[series("messages_acked_total")], float64(sum.Acked)},
		{"ack_latency_seconds_count", after[series("ack_latency_seconds_count")], float64(sum.Acked)},
		{"errors_total summed over kinds", errs, float64(sum.Errors)},
		{"reconnects_total", after[series("reconnects_total")], float64(sum.Reconnects)},
		{"method_calls_total", after[series("method_calls_total")], float64(sum.Methods)},
		{"c2d_received_total", after[series("c2d_received_total")], float64(sum.C2D)},
		{"twin_desired_total", after[series("twin_desired_total")], float64(sum.Twin)},
		{"devices_connected", after[series("devices_connected")], float64(sum.Connected)},
		{"devices", after[series("devices")], float64(sum.Devices)},
	} {
		if c.got != c.want {
			t.Errorf("after the run: %s = %v; the summary says %v", c.name, c.got, c.want)
		}
	}
	if sum.Acked < 4 || sum.Errors != 1 || sum.Methods != 1 {
		t.Errorf("summary %+v; want at least 4 messages acknowledged, 1 error, 1 method call", sum)
	}
}

// A scrape reads the counters at one moment: however fast messages
// are sent and acknowledged meanwhile, no scrape (and no Stats) shows
// more messages acknowledged than sent.
func TestScrapeNeverShowsMoreAckedThanSent(t *testing.T) {
	f, err := New(&Options{Device: device.Options{DeviceID: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := f.RegisterMetrics(reg, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// As sendOne counts: sent when handed over, acked after.
			f.sent.Add(1)
			f.acked.Add(1)
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 2000 {
		if s := f.Stats(); s.Acked > s.Sent {
			t.Fatalf("Stats %d: %d acknowledged of %d sent", i, s.Acked, s.Sent)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
		if acked, sent := got["iotctl_simulate_messages_acked_total"], got["iotctl_simulate_messages_sent_total"]; acked > sent {
			t.Fatalf("scrape %d: %v acknowledged of %v sent", i, acked, sent)
		}
	}
}
