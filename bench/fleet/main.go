// Command fleet measures `iotctl device simulate` as a fleet, and a
// fleet of official Azure IoT Node SDK device clients beside it, against
// `iotctl hub serve --in-memory` on one machine. See README.md.
//
//	go run ./bench/fleet -devices 10000 -node 1000
//
// For each run it starts a fresh hub, creates the devices through the
// service client (pkg/service), writes a keys file and starts the
// fleet; it reports the time until every device is connected, the
// fleet process's resident memory per device, the messages per second
// it sustains at one message per second per device, the CPU it uses,
// and, in a separate run, the highest aggregate rate (devices sending
// as fast as their acknowledgements come). Everything listens on one
// loopback address and ends by itself.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
	"github.com/iotctl/iotctl/pkg/simulate"
)

type config struct {
	devices      int
	steady       time.Duration
	warmup       time.Duration
	connectRate  float64
	connectWait  time.Duration
	rateDevices  int
	rateDuration time.Duration
	rateArgs     string
	node         int
	nodeParallel int
	compare      bool
	bin          string
	cfgDir       string // empty XDG_CONFIG_HOME for the iotctl processes
	ip           string
	out          string
	gogc         string
	interval     string
	fleetArgs    string
	transport    string
	perConn      int
}

func main() {
	var c config
	flag.IntVar(&c.devices, "devices", 10000, "iotctl fleet size at one message per second per device (0: skip)")
	flag.DurationVar(&c.steady, "steady", 30*time.Second, "measuring window once every device is connected")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "wait between all connected and the measuring window")
	flag.Float64Var(&c.connectRate, "connect-rate", 0, "the simulator's --connect-rate (0: no limit)")
	flag.DurationVar(&c.connectWait, "connect-timeout", 3*time.Minute, "give up waiting for all devices to connect after this")
	flag.IntVar(&c.rateDevices, "rate-devices", 100, "fleet size of the highest-rate run (0: skip)")
	flag.DurationVar(&c.rateDuration, "rate-duration", 20*time.Second, "measuring window of the highest-rate run")
	flag.StringVar(&c.rateArgs, "rate-args", "", "extra simulator flags for the highest-rate run, e.g. \"--qos 0\" or \"--rate 15000\"")
	flag.IntVar(&c.node, "node", 1000, "Node SDK fleet size (0: skip)")
	flag.IntVar(&c.nodeParallel, "node-parallel", 100, "concurrent open() calls in the Node fleet")
	flag.BoolVar(&c.compare, "compare", true, "also run iotctl at the Node fleet's size, for the memory ratio")
	flag.StringVar(&c.bin, "iotctl", "", "iotctl binary to use (default: build one from this repository)")
	flag.StringVar(&c.ip, "ip", "127.0.0.77", "loopback address for the hub; it binds 8883, 443 and 5671 there (root or CAP_NET_BIND_SERVICE)")
	flag.StringVar(&c.out, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&c.interval, "interval", "1s", "the fleet's --interval in the main run, e.g. 1m for one message per minute per device")
	flag.StringVar(&c.fleetArgs, "fleet-args", "", "extra simulator flags for the main run, e.g. \"--source-addr 127.0.1.1-127.0.1.4\" or \"--max-connecting 64\"")
	flag.StringVar(&c.transport, "transport", "mqtt", "the main run's --transport: mqtt, or amqp for a fleet that shares connections")
	flag.IntVar(&c.perConn, "devices-per-connection", 0, "with -transport amqp, the fleet's --devices-per-connection (0: the simulator's default)")
	flag.StringVar(&c.gogc, "gogc", "", "GOGC for the iotctl fleet process only (default: inherited)")
	flag.Parse()
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// result is one fleet run's figures.
type result struct {
	Name              string  `json:"name"`
	Devices           int     `json:"devices"`
	Connected         int     `json:"connected"`
	AllConnectedSec   float64 `json:"allConnectedSeconds"` // -1: not all within the timeout
	RSSKB             int     `json:"rssKB"`               // at the end of the window
	PeakRSSKB         int     `json:"peakRSSKB"`           // VmHWM
	RSSPerDeviceKB    float64 `json:"rssPerDeviceKB"`
	PeakPerDeviceKB   float64 `json:"peakPerDeviceKB"`
	MsgsPerSec        float64 `json:"msgsPerSecond"` // acknowledged, over the window
	CPUCores          float64 `json:"cpuCores"`      // the fleet process, over the window
	HubCPUCores       float64 `json:"hubCpuCores"`
	HubRSSKB          int     `json:"hubRSSKB"`
	ReaderCPUCores    float64 `json:"readerCpuCores"` // this program, reading the fleet's output
	Errors            int64   `json:"errors"`
	Reconnects        int64   `json:"reconnects"`
	ExitCode          int     `json:"exitCode"`
	Command           string  `json:"command"`
	WindowSec         float64 `json:"windowSeconds"`
	DevicesCreatedSec float64 `json:"devicesCreatedSeconds"`
}

func run(c *config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root := benchkit.RepoRoot()
	var err error
	if c.cfgDir, err = os.MkdirTemp("", "fleetbench-config-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.cfgDir)
	if c.bin == "" {
		dir, err := os.MkdirTemp("", "fleetbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if c.bin, err = benchkit.Build(ctx, dir); err != nil {
			return err
		}
	}
	fmt.Printf("machine: %d CPUs; iotctl %s\n", runtime.NumCPU(), c.bin)
	var results []*result
	add := func(r *result, err error) error {
		if r != nil {
			results = append(results, r)
			printResult(r)
		}
		return err
	}
	// The hub and the fleet inherit the limit: a connection per device
	// each (per shared connection over AMQP), and a few files.
	mainArgs, mainConns := strings.Fields(c.fleetArgs), c.devices
	switch c.transport {
	case "mqtt":
	case "amqp":
		per := c.perConn
		if per == 0 {
			per = simulate.DefaultAMQPDevicesPerConnection
		}
		mainArgs = append([]string{"--transport", "amqp", "--devices-per-connection", strconv.Itoa(per)}, mainArgs...)
		mainConns = (c.devices + per - 1) / per
	default:
		return fmt.Errorf("-transport %q: use mqtt or amqp", c.transport)
	}
	if err := benchkit.RaiseOpenFiles(uint64(max(mainConns, c.node, c.rateDevices)) + 256); err != nil {
		return err
	}
	if c.devices > 0 {
		if err := add(c.iotctlRun(ctx, "iotctl 1 msg/"+strings.TrimPrefix(c.interval, "1"), c.devices, c.interval, c.steady, mainArgs...)); err != nil {
			return err
		}
	}
	if c.rateDevices > 0 {
		if err := add(c.iotctlRun(ctx, "iotctl max rate", c.rateDevices, "1ms", c.rateDuration, strings.Fields(c.rateArgs)...)); err != nil {
			return err
		}
	}
	if c.node > 0 {
		if c.compare && c.node != c.devices {
			if err := add(c.iotctlRun(ctx, "iotctl 1 msg/s", c.node, "1s", c.steady)); err != nil {
				return err
			}
		}
		if err := add(c.nodeRun(ctx, root, c.node)); err != nil {
			return err
		}
	}
	fmt.Println()
	fmt.Println("| run | devices | all connected | RSS | RSS/device | peak/device | hub RSS | msgs/s | CPU fleet | CPU hub | CPU reader | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		conn := fmt.Sprintf("%.1f s", r.AllConnectedSec)
		if r.AllConnectedSec < 0 {
			conn = fmt.Sprintf("%d/%d", r.Connected, r.Devices)
		}
		fmt.Printf("| %s | %d | %s | %.0f MB | %.1f KB | %.1f KB | %.0f MB | %.0f | %.2f | %.2f | %.2f | %d |\n", r.Name, r.Devices, conn,
			float64(r.RSSKB)/1024, r.RSSPerDeviceKB, r.PeakPerDeviceKB, float64(r.HubRSSKB)/1024, r.MsgsPerSec, r.CPUCores, r.HubCPUCores, r.ReaderCPUCores, r.Errors)
	}
	// The runtime's fixed part cancels out between two sizes.
	var small, large *result
	for _, r := range results {
		if !strings.HasPrefix(r.Name, "iotctl 1 msg/s") {
			continue
		}
		if small == nil || r.Devices < small.Devices {
			small = r
		}
		if large == nil || r.Devices > large.Devices {
			large = r
		}
	}
	if small != nil && large != small {
		fmt.Printf("\niotctl memory per additional device (%d to %d devices): %.1f KB\n", small.Devices, large.Devices,
			float64(large.RSSKB-small.RSSKB)/float64(large.Devices-small.Devices))
	}
	var goAt, nodeAt *result
	for _, r := range results {
		if c.node > 0 && r.Devices == c.node && strings.HasPrefix(r.Name, "iotctl 1 msg/s") {
			goAt = r
		}
		if strings.HasPrefix(r.Name, "node") {
			nodeAt = r
		}
	}
	if goAt != nil && nodeAt != nil && goAt.RSSPerDeviceKB > 0 {
		fmt.Printf("\nmemory per device at %d devices: Node SDK %.1f KB, iotctl %.1f KB: Node/iotctl = %.1f\n",
			c.node, nodeAt.RSSPerDeviceKB, goAt.RSSPerDeviceKB, nodeAt.RSSPerDeviceKB/goAt.RSSPerDeviceKB)
	}
	if c.out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(c.out, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func printResult(r *result) {
	fmt.Printf("%s: %d devices; all connected in %.1fs (%d connected); RSS %d KB (peak %d KB) = %.1f KB/device (peak %.1f KB); %.0f msgs/s over %.0fs; CPU %.2f cores (hub %.2f, hub RSS %d MB, reader %.2f); %d errors, %d reconnects; exit %d\n  %s\n",
		r.Name, r.Devices, r.AllConnectedSec, r.Connected, r.RSSKB, r.PeakRSSKB, r.RSSPerDeviceKB, r.PeakPerDeviceKB, r.MsgsPerSec, r.WindowSec,
		r.CPUCores, r.HubCPUCores, r.HubRSSKB/1024, r.ReaderCPUCores, r.Errors, r.Reconnects, r.ExitCode, r.Command)
}

// startHub starts a fresh in-memory hub on c.ip with the standard
// ports (the Node SDK connects to 8883 and 443 only).
func (c *config) startHub(ctx context.Context) (*benchkit.Hub, error) {
	return benchkit.StartHub(ctx, c.bin, &benchkit.HubOptions{Addr: c.ip + ":8883", StandardPorts: true,
		Env: append(os.Environ(), "XDG_CONFIG_HOME="+c.cfgDir), Stderr: os.Stderr, StopWait: 15 * time.Second})
}

// createDevices registers ids through the service API and writes a
// keys file "id key" per line.
func createDevices(ctx context.Context, h *benchkit.Hub, ids []string) (string, time.Duration, error) {
	start := time.Now()
	keys, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return "", 0, err
	}
	took := time.Since(start)
	f, err := os.CreateTemp("", "fleet-keys-*.txt")
	if err != nil {
		return "", 0, err
	}
	w := bufio.NewWriter(f)
	for i, id := range ids {
		fmt.Fprintf(w, "%s %s\n", id, keys[i])
	}
	if err := w.Flush(); err != nil {
		return "", 0, err
	}
	return f.Name(), took, f.Close()
}

// fleetStats is what both fleets report every second.
type fleetStats struct {
	at        time.Time
	connected int64
	acked     int64
	errors    int64
	reconns   int64
	elapsed   float64 // the fleet's own clock, seconds
}

// watcher follows a fleet process's stdout.
type watcher struct {
	mu        sync.Mutex
	last      fleetStats
	connected map[string]bool
	allAt     time.Duration // since start, 0 until all connected
	all       chan struct{}
	exited    chan struct{}
	start     time.Time
	firstErrs []string
}

func newWatcher(start time.Time) *watcher {
	return &watcher{connected: map[string]bool{}, all: make(chan struct{}), exited: make(chan struct{}), start: start}
}

func (w *watcher) allConnected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.allAt == 0 {
		w.allAt = time.Since(w.start)
		close(w.all)
	}
}

func (w *watcher) stats() fleetStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *watcher) noteError(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.firstErrs) < 5 {
		w.firstErrs = append(w.firstErrs, s)
	}
}

// readIotctl reads `device simulate -o json` lines: per-device
// connected events and the stats events (the per-message events are
// skipped without decoding).
func (w *watcher) readIotctl(r *bufio.Reader, n int) {
	defer close(w.exited)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(line, []byte(`{"type":"sent"`)):
		case bytes.HasPrefix(line, []byte(`{"type":"connected"`)):
			var e struct {
				DeviceID string `json:"deviceId"`
			}
			_ = json.Unmarshal(line, &e)
			w.mu.Lock()
			w.connected[e.DeviceID] = true
			all := len(w.connected) == n
			w.mu.Unlock()
			if all {
				w.allConnected()
			}
		case bytes.HasPrefix(line, []byte(`{"type":"stats"`)), bytes.HasPrefix(line, []byte(`{"type":"summary"`)):
			var e struct {
				Stats simulate.Stats `json:"stats"`
			}
			if json.Unmarshal(line, &e) == nil {
				w.mu.Lock()
				w.last = fleetStats{at: time.Now(), connected: e.Stats.Connected, acked: e.Stats.Acked, errors: e.Stats.Errors,
					reconns: e.Stats.Reconnects, elapsed: e.Stats.ElapsedSeconds}
				w.mu.Unlock()
			}
		case bytes.HasPrefix(line, []byte(`{"type":"error"`)):
			w.noteError(strings.TrimSpace(string(line)))
		}
	}
}

// readNode reads fleet.js lines.
func (w *watcher) readNode(r *bufio.Reader) {
	defer close(w.exited)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e struct {
			Type      string  `json:"type"`
			Elapsed   float64 `json:"elapsed"`
			Connected int64   `json:"connected"`
			Acked     int64   `json:"acked"`
			Errors    int64   `json:"errors"`
			Message   string  `json:"message"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Type {
		case "allConnected":
			w.allConnected()
		case "stats", "summary":
			w.mu.Lock()
			w.last = fleetStats{at: time.Now(), connected: e.Connected, acked: e.Acked, errors: e.Errors, elapsed: e.Elapsed}
			w.mu.Unlock()
		case "error":
			w.noteError(e.Message)
		}
	}
}

// measure waits for all devices to connect (or the timeout), then
// warms up, then measures over window; then it interrupts the fleet.
func (c *config) measure(ctx context.Context, r *result, h *benchkit.Hub, cmd *exec.Cmd, w *watcher, window time.Duration) {
	pid, hubPid := cmd.Process.Pid, h.PID()
	t := time.NewTimer(c.connectWait)
	select {
	case <-w.all:
		r.AllConnectedSec = w.allAt.Seconds()
	case <-t.C:
		r.AllConnectedSec = -1
	case <-w.exited:
		r.AllConnectedSec = -1
	case <-ctx.Done():
	}
	t.Stop()
	sleep(ctx, w.exited, c.warmup)
	self := os.Getpid()
	s0, cpu0, hcpu0, rcpu0 := w.stats(), benchkit.CPUTime(pid).Seconds(), benchkit.CPUTime(hubPid).Seconds(), benchkit.CPUTime(self).Seconds()
	t0 := time.Now()
	sleep(ctx, w.exited, window)
	s1, cpu1, hcpu1, rcpu1 := w.stats(), benchkit.CPUTime(pid).Seconds(), benchkit.CPUTime(hubPid).Seconds(), benchkit.CPUTime(self).Seconds()
	wall := time.Since(t0).Seconds()
	r.RSSKB, r.PeakRSSKB = benchkit.RSSKB(pid), benchkit.ProcStatusKB(pid, "VmHWM")
	r.HubRSSKB = benchkit.RSSKB(hubPid)
	r.RSSPerDeviceKB = float64(r.RSSKB) / float64(r.Devices)
	r.PeakPerDeviceKB = float64(r.PeakRSSKB) / float64(r.Devices)
	if s1.elapsed > s0.elapsed {
		r.MsgsPerSec = float64(s1.acked-s0.acked) / (s1.elapsed - s0.elapsed)
	}
	r.WindowSec = s1.elapsed - s0.elapsed
	r.CPUCores = (cpu1 - cpu0) / wall
	r.HubCPUCores = (hcpu1 - hcpu0) / wall
	r.ReaderCPUCores = (rcpu1 - rcpu0) / wall
	r.Connected = int(s1.connected)
	r.Errors, r.Reconnects = s1.errors, s1.reconns

	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.exited:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-w.exited
	}
	_ = cmd.Wait()
	r.ExitCode = cmd.ProcessState.ExitCode()
	if s := w.stats(); s.errors > r.Errors {
		r.Errors = s.errors
	}
	for _, e := range w.firstErrs {
		fmt.Fprintln(os.Stderr, "  first errors:", e)
	}
}

func (c *config) iotctlRun(ctx context.Context, name string, n int, interval string, window time.Duration, extra ...string) (*result, error) {
	h, err := c.startHub(ctx)
	if err != nil {
		return nil, err
	}
	defer h.Stop()
	ids := simulate.FleetIDs("fleet-", n)
	keys, took, err := createDevices(ctx, h, ids)
	if err != nil {
		return nil, err
	}
	defer os.Remove(keys)
	args := []string{"device", "simulate", "--keys-file", keys, "--devices", strconv.Itoa(n), "--device-prefix", "fleet-",
		"--hub-connection-string", h.Info.ConnectionString, "--ca-file", h.Info.CAFile, "--interval", interval,
		"--connect-rate", strconv.FormatFloat(c.connectRate, 'f', -1, 64), "-o", "json", "--stats-interval", "1s", "--log-level", "error"}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+c.cfgDir)
	if c.gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+c.gogc)
		args = append([]string{"(GOGC=" + c.gogc + ")"}, args...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	shown := strings.Join(args, " ")
	shown = strings.Replace(shown, h.Info.ConnectionString, "$HUB_CS", 1)
	r := &result{Name: strings.TrimSpace(name + " (interval " + interval + ") " + strings.Join(extra, " ")), Devices: n, Command: "iotctl " + shown, DevicesCreatedSec: took.Seconds()}
	fmt.Printf("%s: %d devices created in %.1fs; starting the fleet\n", name, n, took.Seconds())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := newWatcher(start)
	go w.readIotctl(bufio.NewReaderSize(out, 1<<16), n)
	c.measure(ctx, r, h, cmd, w, window)
	return r, nil
}

func (c *config) nodeRun(ctx context.Context, root string, n int) (*result, error) {
	h, err := c.startHub(ctx)
	if err != nil {
		return nil, err
	}
	defer h.Stop()
	ids := simulate.FleetIDs("node-", n)
	keys, took, err := createDevices(ctx, h, ids)
	if err != nil {
		return nil, err
	}
	defer os.Remove(keys)
	cfg, _ := json.Marshal(map[string]any{"host": h.Info.HostName, "keysFile": keys, "devices": n, "intervalMs": 1000,
		"parallel": c.nodeParallel, "twin": true})
	script := filepath.Join(root, "test", "interop", "js", "fleet.js")
	if _, err := os.Stat(filepath.Join(root, "test", "interop", "node_modules", "azure-iot-device")); err != nil {
		return nil, fmt.Errorf("the Node SDKs are not installed: run npm ci in test/interop")
	}
	cmd := exec.CommandContext(ctx, "node", script, string(cfg))
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+h.Info.CAFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r := &result{Name: "node SDK 1 msg/s", Devices: n, Command: "node test/interop/js/fleet.js " + string(cfg), DevicesCreatedSec: took.Seconds()}
	fmt.Printf("node: %d devices created in %.1fs; starting the fleet\n", n, took.Seconds())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := newWatcher(start)
	go w.readNode(bufio.NewReader(out))
	c.measure(ctx, r, h, cmd, w, c.steady)
	return r, nil
}

// sleep waits d, or less if the fleet exits or ctx ends.
func sleep(ctx context.Context, exited <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-exited:
	case <-ctx.Done():
	}
}
