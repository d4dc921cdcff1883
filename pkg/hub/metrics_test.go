package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotctl/iotctl/internal/metricsrv"
	"github.com/iotctl/iotctl/internal/promtest"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/service"
)

// A hub with Options.Metrics, scraped over HTTP after a device
// connected, sent 3 messages, answered a method, got 2 C2D messages
// sent over AMQP: the connections by protocol, messages in, method
// calls by result, C2D events and queue depths say so; with the
// telemetry in memory and on disk, which store messages apart.
func TestMetrics(t *testing.T) {
	t.Run("in memory", func(t *testing.T) { testMetrics(t, &Options{InMemory: true}) })
	t.Run("on disk", func(t *testing.T) { testMetrics(t, &Options{DataDir: t.TempDir()}) })
}

func testMetrics(t *testing.T, o *Options) {
	reg := prometheus.NewRegistry()
	o.Addr, o.Metrics = "127.0.0.1:0", reg
	h := New(o)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv, err := metricsrv.Listen("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	cs := createDevice(t, h, "dev1")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d.publish(t, message.TelemetryTopic("dev1", "", &message.Message{}), 1, `{"n":`+strconv.Itoa(i)+`}`)
	}
	ctx := context.Background()
	if _, _, err := h.InvokeMethod(ctx, "dev1", "", "m", nil, 0, time.Second); !errors.Is(err, ErrDeviceNotOnline) {
		t.Fatalf("device not subscribed to methods: %v; want ErrDeviceNotOnline", err)
	}
	d.subscribe(t, message.MethodRequestFilter, 0)
	done := make(chan error, 1)
	go func() {
		_, _, err := h.InvokeMethod(ctx, "dev1", "", "reboot", json.RawMessage(`{}`), 0, 10*time.Second)
		done <- err
	}()
	req := d.next(t)
	tp, err := message.ParseTopic(req.Topic())
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, message.MethodResponseTopic(200, tp.RequestID), 0, `{}`)
	if err := <-done; err != nil {
		t.Fatalf("InvokeMethod = %v", err)
	}

	svcCS, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(connstr.MustParse(svcCS), &service.Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for range 2 {
		if err := svc.SendC2D(ctx, "dev1", "", &message.Message{Body: []byte("hi")}); err != nil {
			t.Fatalf("SendC2D = %v", err)
		}
	}

	m := promtest.Scrape(t, srv.URL())
	want := func(series string, v float64) {
		t.Helper()
		if got, ok := m[series]; !ok || got != v {
			t.Errorf("%s = %v (present %v); want %v", series, got, ok, v)
		}
	}
	want(promtest.Series("iotctl_hub_connections", "protocol", "mqtt"), 1)
	want(promtest.Series("iotctl_hub_devices_connected"), 1)
	want(promtest.Series("iotctl_hub_messages_in_total", "protocol", "mqtt"), 3)
	want(promtest.Series("iotctl_hub_method_calls_total", "result", "answered"), 1)
	want(promtest.Series("iotctl_hub_method_calls_total", "result", "not_online"), 1)
	want(promtest.Series("iotctl_hub_c2d_messages_total", "event", "enqueued"), 2)
	want(promtest.Series("iotctl_hub_c2d_queued"), 2)
	if m[promtest.Series("iotctl_hub_connections_total", "protocol", "amqp")] < 1 {
		t.Errorf("iotctl_hub_connections_total{protocol=amqp} = %v; want the service client's connection", m[promtest.Series("iotctl_hub_connections_total", "protocol", "amqp")])
	}
	events := 0.0
	for i := range h.telemetry.Partitions() {
		events += m[promtest.Series("iotctl_hub_telemetry_events", "partition", strconv.Itoa(i))]
	}
	if events != 3 {
		t.Errorf("iotctl_hub_telemetry_events summed over partitions = %v; want 3", events)
	}

	// The device takes its C2D messages; paho completes each.
	d.subscribe(t, message.C2DFilter("dev1"), 1)
	d.next(t)
	d.next(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = promtest.Scrape(t, srv.URL())
		if m[promtest.Series("iotctl_hub_c2d_messages_total", "event", "completed")] == 2 || time.Now().After(deadline) {
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	want(promtest.Series("iotctl_hub_c2d_messages_total", "event", "delivered"), 2)
	want(promtest.Series("iotctl_hub_c2d_messages_total", "event", "completed"), 2)
	want(promtest.Series("iotctl_hub_c2d_queued"), 0)
}
