// Command hubbench measures the local hub as a separate process: how
// many MQTT/TLS device connections it holds and its memory, telemetry
// ingest at QoS 1, and direct-method round trips over HTTPS.
//
//	go run ./bench/hubbench -mode connections -devices 10000
//	go run ./bench/hubbench -mode ingest -devices 100 -messages 200000
//	go run ./bench/hubbench -mode methods -devices 100 -callers 100 -calls 20000
//
// It builds iotctl, starts `iotctl hub serve --in-memory` on a free
// loopback port, creates the devices through the REST API, and prints
// one line of figures. Everything stays on 127.0.0.1 and ends by itself.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
)

func main() {
	mode := flag.String("mode", "connections", "connections, ingest or methods")
	devices := flag.Int("devices", 1000, "devices to create and connect")
	messages := flag.Int("messages", 200000, "ingest: messages to send in all")
	window := flag.Int("window", 64, "ingest: unacknowledged messages per connection")
	callers := flag.Int("callers", 100, "methods: concurrent HTTPS callers")
	calls := flag.Int("calls", 20000, "methods: calls in all")
	parallel := flag.Int("parallel", 200, "concurrent connection attempts")
	flag.Parse()
	if err := run(*mode, *devices, *messages, *window, *callers, *calls, *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "hubbench:", err)
		os.Exit(1)
	}
}

// startHub builds iotctl and starts `iotctl hub serve --in-memory` on a
// free loopback port. The binary's directory is removed by the returned
// cleanup, which also stops the hub.
func startHub(ctx context.Context) (*benchkit.Hub, func(), error) {
	dir, err := os.MkdirTemp("", "hubbench-")
	if err != nil {
		return nil, nil, err
	}
	bin, err := benchkit.Build(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	h, err := benchkit.StartHub(ctx, bin, &benchkit.HubOptions{Stderr: os.Stderr})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return h, func() { h.Stop(); os.RemoveAll(dir) }, nil
}

type dev struct {
	id  string
	key []byte
	c   paho.Client
}

func run(mode string, n, messages, window, callers, calls, parallel int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, cleanup, err := startHub(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	cs := connstr.MustParse(h.Info.ConnectionString)
	svc, err := service.New(cs, &service.Options{CAFile: h.Info.CAFile})
	if err != nil {
		return err
	}
	defer svc.Close()
	tc, err := service.TLSConfig(h.Info.CAFile, nil)
	if err != nil {
		return err
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%05d", i)
	}
	start := time.Now()
	keys, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return fmt.Errorf("creating devices: %w", err)
	}
	devs := make([]*dev, n)
	for i, id := range ids {
		key, err := sas.DecodeKey(keys[i])
		if err != nil {
			return err
		}
		devs[i] = &dev{id: id, key: key}
	}
	created := time.Since(start)
	rss0 := benchkit.RSSKB(h.PID())
	start = time.Now()
	var handler paho.MessageHandler
	if mode == "methods" {
		handler = func(c paho.Client, m paho.Message) {
			t, err := message.ParseTopic(m.Topic())
			if err == nil && t.Kind == message.KindMethodRequest {
				c.Publish(message.MethodResponseTopic(200, t.RequestID), 0, false, m.Payload())
			}
		}
	}
	if err := benchkit.Parallel(n, parallel, func(i int) error {
		return connect(ctx, devs[i], cs.HostName, h.Info.Addresses[0], tc, handler)
	}); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	connected := time.Since(start)
	rss1 := benchkit.RSSKB(h.PID())
	fmt.Printf("devices=%d created_in=%s connected_in=%s hub_rss_before=%dKB hub_rss_connected=%dKB per_connection=%.1fKB\n",
		n, created.Round(time.Millisecond), connected.Round(time.Millisecond), rss0, rss1, float64(rss1-rss0)/float64(n))
	switch mode {
	case "connections":
		return nil
	case "ingest":
		return ingest(ctx, devs, messages, window, h)
	case "methods":
		return methods(ctx, svc, devs, callers, calls)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func connect(ctx context.Context, d *dev, host, addr string, tc *tls.Config, handler paho.MessageHandler) error {
	c, err := benchkit.ConnectDevice(ctx, addr, host, d.id, d.key, tc)
	if err != nil {
		return err
	}
	d.c = c
	if handler != nil {
		st := d.c.Subscribe(message.MethodRequestFilter, 0, handler)
		<-st.Done()
		return st.Error()
	}
	return nil
}

func ingest(ctx context.Context, devs []*dev, total, window int, h *benchkit.Hub) error {
	per := total / len(devs)
	body := []byte(`{"temperature": 27.5,"humidity": 71.2}`)
	var acked atomic.Int64
	start := time.Now()
	err := benchkit.Parallel(len(devs), len(devs), func(i int) error {
		d := devs[i]
		topic := message.TelemetryTopic(d.id, "", &message.Message{ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"temperatureAlert": "false"}})
		w := benchkit.NewWindow(ctx, window)
		defer func() { acked.Add(w.Acked()) }()
		publish := func() paho.Token { return d.c.Publish(topic, 1, false, body) }
		for j := 0; j < per; j++ {
			if err := w.Send(publish); err != nil {
				return err
			}
		}
		return w.Drain()
	})
	d := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Printf("ingest: %d messages acked at QoS 1 from %d connections in %s = %.0f msg/s, hub_rss=%dKB\n",
		acked.Load(), len(devs), d.Round(time.Millisecond), float64(acked.Load())/d.Seconds(), benchkit.RSSKB(h.PID()))
	return nil
}

func methods(ctx context.Context, svc *service.Client, devs []*dev, callers, calls int) error {
	var done, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	err := benchkit.Parallel(callers, callers, func(w int) error {
		for i := w; i < calls; i += callers {
			d := devs[i%len(devs)]
			res, err := svc.InvokeMethod(ctx, service.Target{DeviceID: d.id}, service.MethodCall{Name: "bench", Payload: json.RawMessage(`{"i":1}`), ResponseTimeout: 30 * time.Second})
			if err != nil || res.Status != 200 {
				failed.Add(1)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				continue
			}
			done.Add(1)
		}
		return nil
	})
	d := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Printf("methods: %d round trips (%d failed) from %d HTTPS callers to %d devices in %s = %.0f calls/s\n",
		done.Load(), failed.Load(), callers, len(devs), d.Round(time.Millisecond), float64(done.Load())/d.Seconds())
	if e, ok := firstErr.Load().(error); ok {
		return errors.New("first failure: " + e.Error())
	}
	return nil
}
