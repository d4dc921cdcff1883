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
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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

type hubProc struct {
	cmd  *exec.Cmd
	info struct {
		HostName         string   `json:"hostName"`
		Addresses        []string `json:"addresses"`
		CAFile           string   `json:"caFile"`
		ConnectionString string   `json:"connectionString"`
	}
}

func startHub(ctx context.Context) (*hubProc, error) {
	dir, err := os.MkdirTemp("", "hubbench-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "iotctl")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	h := &hubProc{cmd: exec.CommandContext(ctx, bin, "hub", "serve", "--addr", "127.0.0.1:0", "--in-memory", "-o", "json", "--log-level", "error")}
	h.cmd.Stderr = os.Stderr
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	if err := json.NewDecoder(bufio.NewReader(out)).Decode(&h.info); err != nil {
		return nil, fmt.Errorf("reading the hub's start-up JSON: %w", err)
	}
	return h, nil
}

func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// rssKB reads a process's resident set size.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

type dev struct {
	id  string
	key []byte
	c   paho.Client
}

func run(mode string, n, messages, window, callers, calls, parallel int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, err := startHub(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = h.cmd.Process.Kill(); _ = h.cmd.Wait() }()
	cs := connstr.MustParse(h.info.ConnectionString)
	svc, err := service.New(cs, &service.Options{CAFile: h.info.CAFile})
	if err != nil {
		return err
	}
	tc, err := service.TLSConfig(h.info.CAFile, nil)
	if err != nil {
		return err
	}
	devs := make([]*dev, n)
	start := time.Now()
	if err := parallelDo(n, 16, func(i int) error {
		id := fmt.Sprintf("bench-%05d", i)
		d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: id})
		if err != nil {
			return err
		}
		key, err := sas.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
		devs[i] = &dev{id: id, key: key}
		return err
	}); err != nil {
		return fmt.Errorf("creating devices: %w", err)
	}
	created := time.Since(start)
	rss0 := rssKB(h.cmd.Process.Pid)
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
	if err := parallelDo(n, parallel, func(i int) error {
		return connect(ctx, devs[i], cs.HostName, h.info.Addresses[0], tc, handler)
	}); err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	connected := time.Since(start)
	rss1 := rssKB(h.cmd.Process.Pid)
	fmt.Printf("devices=%d created_in=%s connected_in=%s hub_rss_before=%dKB hub_rss_connected=%dKB per_connection=%.1fKB\n",
		n, created.Round(time.Millisecond), connected.Round(time.Millisecond), rss0, rss1, float64(rss1-rss0)/float64(n))
	switch mode {
	case "connections":
		return nil
	case "ingest":
		return ingest(devs, messages, window, h)
	case "methods":
		return methods(ctx, svc, devs, callers, calls)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func connect(ctx context.Context, d *dev, host, addr string, tc *tls.Config, handler paho.MessageHandler) error {
	tok, err := sas.Sign(sas.DeviceResource(host, d.id), d.key, &sas.SignOptions{TTL: time.Hour})
	if err != nil {
		return err
	}
	opts := paho.NewClientOptions().AddBroker("tls://" + addr).SetClientID(d.id).
		SetUsername(host + "/" + d.id + "/?api-version=2021-04-12").SetPassword(tok.Encode()).
		SetTLSConfig(tc.Clone()).SetCleanSession(false).SetAutoReconnect(false).SetProtocolVersion(4).
		SetKeepAlive(5 * time.Minute).SetOrderMatters(false).SetMaxResumePubInFlight(1024)
	d.c = paho.NewClient(opts)
	t := d.c.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.Error() != nil {
		return t.Error()
	}
	if handler != nil {
		st := d.c.Subscribe(message.MethodRequestFilter, 0, handler)
		<-st.Done()
		return st.Error()
	}
	return nil
}

func ingest(devs []*dev, total, window int, h *hubProc) error {
	per := total / len(devs)
	body := []byte(`{"temperature": 27.5,"humidity": 71.2}`)
	var acked atomic.Int64
	start := time.Now()
	err := parallelDo(len(devs), len(devs), func(i int) error {
		d := devs[i]
		topic := message.TelemetryTopic(d.id, "", &message.Message{ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"temperatureAlert": "false"}})
		sem := make(chan paho.Token, window)
		for j := 0; j < per; j++ {
			if len(sem) == cap(sem) {
				t := <-sem
				<-t.Done()
				if t.Error() != nil {
					return t.Error()
				}
				acked.Add(1)
			}
			sem <- d.c.Publish(topic, 1, false, body)
		}
		for len(sem) > 0 {
			t := <-sem
			<-t.Done()
			if t.Error() != nil {
				return t.Error()
			}
			acked.Add(1)
		}
		return nil
	})
	d := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Printf("ingest: %d messages acked at QoS 1 from %d connections in %s = %.0f msg/s, hub_rss=%dKB\n",
		acked.Load(), len(devs), d.Round(time.Millisecond), float64(acked.Load())/d.Seconds(), rssKB(h.cmd.Process.Pid))
	return nil
}

func methods(ctx context.Context, svc *service.Client, devs []*dev, callers, calls int) error {
	var done, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	err := parallelDo(callers, callers, func(w int) error {
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

// parallelDo runs f(0..n-1) with at most p at once and returns the
// first error.
func parallelDo(n, p int, f func(int) error) error {
	var wg sync.WaitGroup
	var first atomic.Value
	next := atomic.Int64{}
	for w := 0; w < p && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := first.Load().(error); ok {
		return e
	}
	return nil
}
