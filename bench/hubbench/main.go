// Command hubbench measures the local hub as a separate process: how
// many MQTT/TLS device connections it holds and its memory, telemetry
// ingest at QoS 1, the memory of a hub holding a million stored events,
// and direct-method round trips over HTTPS.
//
//	go run ./bench/hubbench -mode connections -devices 10000
//	go run ./bench/hubbench -mode ingest -devices 100 -messages 200000 -store both
//	go run ./bench/hubbench -mode ingest -devices 100 -messages 400000 -cpuprofile hub.pprof
//	go run ./bench/hubbench -mode stored -devices 100 -messages 1000000
//	go run ./bench/hubbench -mode methods -devices 100 -callers 100 -calls 20000
//
// It builds iotctl, starts `iotctl hub serve` on a free loopback port
// with a temporary --data-dir (-store disk, the default: telemetry is
// acknowledged once synced to disk) or --in-memory (-store memory), or
// one after the other (-store both, which for ingest also prints the
// ratio), creates the devices through the REST API, and prints a line
// of figures. -mode stored ingests -messages, stops the hub, starts it
// again on the same data dir and prints its memory holding them.
// Everything stays on 127.0.0.1 and ends by itself.
//
// It prints the CPU time the hub and this process (the devices) spent
// per message, which moves much less than the rate when other work
// shares the cores. -client lean (the default) keeps the devices' side
// small (one write per PUBLISH, as the device SDKs write them); -client
// paho uses paho's client, which spends more CPU per message than the
// hub, on the same cores.
//
// Figures on a 2-core machine shared with other work (load average 11
// to 17, so rates move by half from run to run), 100 devices, window
// 64, 400,000 messages, three -store both runs with the lean client:
// on disk 51,635, 36,518 and 50,887 msg/s (hub 8.3 to 8.8 us of CPU
// per message) against 53,842, 62,027 and 66,872 msg/s in memory (7.2
// to 7.4 us); the devices 4.5 to 5.2 us. With -client paho: disk 22,867
// and 26,385 msg/s, memory 30,050 and 27,754 (hub 11.1 to 11.4 us on
// disk, 9.6 to 9.7 in memory; paho 13.7 to 14.3 us). -mode stored with
// 1,000,000 messages: 68,935 msg/s, hub RSS 118.5 MB right after the
// ingest (pebble's memtables of up to 32 MB included), 48.6 MB once
// restarted holding them; 30.8 MB of telemetry on disk.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
	"github.com/iotctl/iotctl/pkg/simulate"
)

func main() {
	var c config
	flag.StringVar(&c.mode, "mode", "connections", "connections, ingest, methods or stored (ingest, then the memory of the hub restarted holding what it stored)")
	flag.StringVar(&c.store, "store", "disk", "where the hub keeps telemetry: disk (--data-dir, durable), memory (--in-memory), or both, one run after the other")
	flag.IntVar(&c.devices, "devices", 1000, "devices to create and connect")
	flag.IntVar(&c.messages, "messages", 200000, "ingest, stored: messages to send in all")
	flag.IntVar(&c.window, "window", 64, "ingest, stored: unacknowledged messages per connection")
	flag.IntVar(&c.callers, "callers", 100, "methods: concurrent HTTPS callers")
	flag.IntVar(&c.calls, "calls", 20000, "methods: calls in all")
	flag.IntVar(&c.parallel, "parallel", 200, "concurrent connection attempts")
	flag.StringVar(&c.heapProfile, "heapprofile", "", "connections: write the hub's heap profile (after a collection) once every device is connected, the same as text with the runtime's memory statistics to FILE.txt, and its goroutine profile to FILE.goroutines")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "ingest, stored: write the hub's CPU profile during the ingest to this file (FILE-disk and FILE-memory with -store both; the hub serves it with --pprof-addr)")
	flag.DurationVar(&c.profileFor, "profile-for", 5*time.Second, "with -cpuprofile: how long to profile, from the start of the ingest")
	flag.StringVar(&c.client, "client", "lean", "ingest, stored: the devices' MQTT client: lean (one write per PUBLISH and little else, so that the cores go to the hub) or paho (github.com/eclipse/paho.mqtt.golang)")
	flag.StringVar(&c.sourceAddrs, "source-addrs", "", "connections: local addresses the devices connect from, e.g. 127.0.1.1-127.0.1.8 (about 28,000 connections each; default: the system's choice)")
	flag.StringVar(&c.bin, "bin", "", "iotctl binary to run as the hub, such as one built from another commit (default: build this tree's)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "hubbench:", err)
		os.Exit(1)
	}
}

type config struct {
	mode, store                                         string
	devices, messages, window, callers, calls, parallel int
	cpuProfile, heapProfile, bin, client, sourceAddrs   string
	profileFor                                          time.Duration
	srcs                                                []netip.Addr
}

type dev struct {
	id  string
	key []byte
	c   paho.Client // -client paho, and modes other than ingest and stored
	l   *leanDevice // -client lean, for ingest and stored
}

func run(c config) error {
	stores := []string{c.store}
	switch c.store {
	case "both":
		stores = []string{"disk", "memory"}
	case "disk", "memory":
	default:
		return fmt.Errorf("-store %q: give disk, memory or both", c.store)
	}
	if c.client != "lean" && c.client != "paho" {
		return fmt.Errorf("-client %q: give lean or paho", c.client)
	}
	if c.mode == "stored" && c.store != "disk" {
		return errors.New("-mode stored measures the log on disk: use -store disk")
	}
	srcs, err := simulate.ParseSourceAddrs(strings.Fields(c.sourceAddrs))
	if err != nil {
		return err
	}
	c.srcs = srcs
	// The hub inherits the limit: a connection each, and a few files.
	if err := benchkit.RaiseOpenFiles(uint64(c.devices) + 256); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "hubbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := c.bin
	if bin == "" {
		if bin, err = benchkit.Build(ctx, dir); err != nil {
			return err
		}
	}
	rates := map[string]float64{}
	for _, st := range stores {
		dataDir := ""
		if st == "disk" {
			if dataDir, err = os.MkdirTemp(dir, "data-"); err != nil {
				return err
			}
		}
		rate, err := runStore(ctx, bin, dataDir, st, c)
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		rates[st] = rate
	}
	if len(stores) == 2 && c.mode == "ingest" {
		fmt.Printf("ingest: disk %.0f msg/s = %.0f%% of memory %.0f msg/s\n", rates["disk"], 100*rates["disk"]/rates["memory"], rates["memory"])
	}
	return nil
}

// runStore starts a hub that keeps telemetry in dataDir (in memory when
// ""), connects the devices and measures c.mode; it returns the ingest
// rate for ingest.
func runStore(ctx context.Context, bin, dataDir, store string, c config) (float64, error) {
	ho := &benchkit.HubOptions{Stderr: os.Stderr, DataDir: dataDir}
	profile := c.cpuProfile
	if profile != "" || c.heapProfile != "" {
		ho.PprofAddr = "127.0.0.1:0"
		if c.store == "both" && profile != "" {
			profile += "-" + store
		}
	}
	h, err := benchkit.StartHub(ctx, bin, ho)
	if err != nil {
		return 0, err
	}
	defer h.Stop()
	cs := connstr.MustParse(h.Info.ConnectionString)
	svc, err := service.New(cs, &service.Options{CAFile: h.Info.CAFile})
	if err != nil {
		return 0, err
	}
	defer svc.Close()
	tc, err := service.TLSConfig(h.Info.CAFile, nil)
	if err != nil {
		return 0, err
	}
	n := c.devices
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%05d", i)
	}
	start := time.Now()
	keys, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("creating devices: %w", err)
	}
	devs := make([]*dev, n)
	for i, id := range ids {
		key, err := sas.DecodeKey(keys[i])
		if err != nil {
			return 0, err
		}
		devs[i] = &dev{id: id, key: key}
	}
	created := time.Since(start)
	rss0 := benchkit.RSSKB(h.PID())
	start = time.Now()
	var handler paho.MessageHandler
	if c.mode == "methods" {
		handler = func(c paho.Client, m paho.Message) {
			t, err := message.ParseTopic(m.Topic())
			if err == nil && t.Kind == message.KindMethodRequest {
				c.Publish(message.MethodResponseTopic(200, t.RequestID), 0, false, m.Payload())
			}
		}
	}
	if err := benchkit.Parallel(n, c.parallel, func(i int) error {
		if c.client == "lean" && (c.mode == "ingest" || c.mode == "stored" || c.mode == "connections") {
			var src netip.Addr
			if len(c.srcs) > 0 {
				src = c.srcs[i%len(c.srcs)]
			}
			var err error
			devs[i].l, err = dialLean(ctx, h.Info.Addresses[0], cs.HostName, devs[i].id, devs[i].key, tc, src)
			return err
		}
		return connect(ctx, devs[i], cs.HostName, h.Info.Addresses[0], tc, handler)
	}); err != nil {
		return 0, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		for _, d := range devs {
			if d.l != nil {
				d.l.close()
			} else if d.c != nil {
				d.c.Disconnect(0)
			}
		}
	}()
	connected := time.Since(start)
	rss1 := benchkit.RSSKB(h.PID())
	fmt.Printf("store=%s devices=%d created_in=%s connected_in=%s hub_rss_before=%dKB hub_rss_connected=%dKB per_connection=%.1fKB\n",
		store, n, created.Round(time.Millisecond), connected.Round(time.Millisecond), rss0, rss1, float64(rss1-rss0)/float64(n))
	switch c.mode {
	case "connections":
		if c.heapProfile == "" {
			return 0, nil
		}
		if err := benchkit.FetchPprof(ctx, "http://"+h.Info.PprofAddress+"/debug/pprof/heap?gc=1", c.heapProfile); err != nil {
			return 0, err
		}
		if err := benchkit.FetchPprof(ctx, "http://"+h.Info.PprofAddress+"/debug/pprof/heap?debug=1", c.heapProfile+".txt"); err != nil {
			return 0, err
		}
		return 0, benchkit.FetchPprof(ctx, "http://"+h.Info.PprofAddress+"/debug/pprof/goroutine?debug=1", c.heapProfile+".goroutines")
	case "ingest":
		return ingest(ctx, store, devs, c, h, profile)
	case "stored":
		if _, err := ingest(ctx, store, devs, c, h, profile); err != nil {
			return 0, err
		}
		return 0, stored(ctx, bin, dataDir, h)
	case "methods":
		return 0, methods(ctx, svc, devs, c.callers, c.calls)
	}
	return 0, fmt.Errorf("unknown mode %q", c.mode)
}

// stored stops the hub h, which has just stored its events in dataDir,
// starts it again on dataDir and prints its memory then and the size of
// the telemetry directory.
func stored(ctx context.Context, bin, dataDir string, h *benchkit.Hub) error {
	before := benchkit.RSSKB(h.PID())
	h.Stop()
	h2, err := benchkit.StartHub(ctx, bin, &benchkit.HubOptions{Stderr: os.Stderr, DataDir: dataDir})
	if err != nil {
		return fmt.Errorf("restarting: %w", err)
	}
	defer h2.Stop()
	var size int64
	err = filepath.WalkDir(filepath.Join(dataDir, "telemetry"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("stored: hub_rss_after_ingest=%dKB hub_rss_restarted_holding_them=%dKB telemetry_dir=%.1fMB\n",
		before, benchkit.RSSKB(h2.PID()), float64(size)/(1<<20))
	return nil
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

// ingest sends c.messages at QoS 1 from devs, c.window unacknowledged
// per connection, and prints the rate and the CPU time the hub and this
// process (the devices' side) spent per message: with both on one
// machine, the CPU per message says where the cost went even when other
// work shares the cores. With profile set, it writes the hub's CPU
// profile of the first c.profileFor of the ingest there.
func ingest(ctx context.Context, store string, devs []*dev, c config, h *benchkit.Hub, profile string) (float64, error) {
	per, window := c.messages/len(devs), c.window
	body := []byte(`{"temperature": 27.5,"humidity": 71.2}`)
	var acked atomic.Int64
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- fetchProfile(ctx, h.Info.PprofAddress, c.profileFor, profile) }()
	}
	hubCPU, ownCPU := benchkit.CPUTime(h.PID()), benchkit.CPUTime(os.Getpid())
	start := time.Now()
	err := benchkit.Parallel(len(devs), len(devs), func(i int) error {
		d := devs[i]
		topic := message.TelemetryTopic(d.id, "", &message.Message{ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"temperatureAlert": "false"}})
		if d.l != nil {
			n, err := d.l.publishAll(ctx, topic, body, per, window)
			acked.Add(n)
			return err
		}
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
	hubCPU, ownCPU = benchkit.CPUTime(h.PID())-hubCPU, benchkit.CPUTime(os.Getpid())-ownCPU
	if err != nil {
		return 0, err
	}
	n := acked.Load()
	rate := float64(n) / d.Seconds()
	fmt.Printf("store=%s ingest: %d messages acked at QoS 1 from %d connections (%s client) in %s = %.0f msg/s, hub_rss=%dKB, cpu per message: hub %.1fus devices %.1fus\n",
		store, n, len(devs), c.client, d.Round(time.Millisecond), rate, benchkit.RSSKB(h.PID()),
		perMessageMicros(hubCPU, n), perMessageMicros(ownCPU, n))
	if profile != "" {
		if err := <-profiled; err != nil {
			return 0, fmt.Errorf("profiling the hub: %w", err)
		}
		fmt.Printf("store=%s hub cpu profile: %s (go tool pprof -top %s)\n", store, profile, profile)
	}
	return rate, nil
}

func perMessageMicros(cpu time.Duration, n int64) float64 {
	return float64(cpu.Microseconds()) / float64(max(1, n))
}

// fetchProfile writes the CPU profile the hub serves at addr, taken
// over d, to file.
func fetchProfile(ctx context.Context, addr string, d time.Duration, file string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	return benchkit.FetchPprof(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), file)
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
