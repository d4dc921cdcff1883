// Command monitor times reading a telemetry backlog from the local
// hub's Event Hub-compatible endpoint: `iotctl hub monitor --from start
// --count N -o json > /dev/null` beside the official Event Hubs consumer
// (@azure/event-hubs EventHubConsumerClient, test/interop/js/ehbench.js,
// writing the same JSON lines to /dev/null), reading the same backlog in
// the same run, alternating. It prints events/s for each, their ratio,
// each reader's peak RSS and the hub's RSS while it serves the read.
//
//	go run ./bench/monitor                    # as root: Event Hubs clients use port 5671
//	go run ./bench/monitor -events 100000 -runs 5 -ip 127.0.0.214
//
// It builds iotctl, starts `iotctl hub serve --in-memory` on IP:8883
// with --standard-ports, creates -devices devices through the service
// API, fills the backlog over MQTT at QoS 1 (paho, -window messages in
// flight per connection), then reads it: one untimed run of each reader
// into a counter that checks every event arrived once, then -runs timed
// runs of each into /dev/null. Node's modules come from test/interop
// (npm ci when missing). Everything stays on the loopback address and
// ends by itself (-timeout).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
)

func main() {
	events := flag.Int("events", 100000, "events in the backlog, and events each reader reads")
	devices := flag.Int("devices", 20, "devices sending the backlog")
	window := flag.Int("window", 64, "unacknowledged messages per device connection while filling")
	runs := flag.Int("runs", 3, "timed reads per reader, alternating")
	ip := flag.String("ip", "127.0.0.213", "loopback address for the hub (it binds 443, 8883 and 5671 there)")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	bin := flag.String("bin", "", "iotctl binary to run (default: build one from this repository)")
	flag.Parse()
	if err := run(*events, *devices, *window, *runs, *ip, *bin, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/monitor:", err)
		os.Exit(1)
	}
}

func run(events, devices, window, runs int, ip, bin string, timeout time.Duration) error {
	if !strings.HasPrefix(ip, "127.") {
		return fmt.Errorf("-ip %s: use a loopback address", ip)
	}
	if events < devices || devices < 1 || runs < 1 {
		return errors.New("want -events >= -devices >= 1 and -runs >= 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root := repoRoot()
	tmp, err := os.MkdirTemp("", "bench-monitor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if bin == "" {
		bin = filepath.Join(tmp, "iotctl")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	interop := filepath.Join(root, "test", "interop")
	if err := nodeReady(ctx, interop); err != nil {
		return err
	}

	env := cleanEnv("XDG_CONFIG_HOME=" + filepath.Join(tmp, "config"))
	hub, info, err := startHub(ctx, bin, ip, env)
	if err != nil {
		return err
	}
	defer stop(hub)
	hubPID := hub.Process.Pid
	rssStart := rssKB(hubPID)

	start := time.Now()
	if err := fill(ctx, info, events, devices, window); err != nil {
		return fmt.Errorf("filling the backlog: %w", err)
	}
	fillTime := time.Since(start)
	rssFilled := rssKB(hubPID)

	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	readers := []*reader{
		{name: "iotctl hub monitor", cmd: func() *exec.Cmd {
			c := exec.CommandContext(ctx, bin, "hub", "monitor", "--from", "start", "--count", strconv.Itoa(events), "-o", "json")
			c.Env = append(slices.Clone(env), "IOTCTL_CONNECTION_STRING="+info.ConnectionString, "IOTCTL_CA_FILE="+info.CAFile)
			return c
		}},
		{name: "node ehbench.js (@azure/event-hubs)", cmd: func() *exec.Cmd {
			c := exec.CommandContext(ctx, "node", filepath.Join(interop, "js", "ehbench.js"), info.EventHub, strconv.Itoa(events))
			c.Dir = interop
			c.Env = append(slices.Clone(env), "NODE_EXTRA_CA_CERTS="+info.CAFile)
			return c
		}},
	}
	// One untimed run each: every event once, in order per partition.
	for _, r := range readers {
		if err := r.check(events); err != nil {
			return err
		}
	}
	for range runs {
		for _, r := range readers {
			if err := r.timed(devnull, hubPID); err != nil {
				return err
			}
		}
	}

	fmt.Printf("Reading a backlog of %d events (%d devices, 4 partitions) from the start, %d timed runs each after one checked run, alternating;\n",
		events, devices, runs)
	fmt.Printf("hub: iotctl hub serve --in-memory on %s (AMQP 5671), filled over MQTT in %s (%.0f msg/s).\n\n",
		ip, fillTime.Round(time.Millisecond), float64(events)/fillTime.Seconds())
	fmt.Printf("%-38s %8s %9s %7s %10s %9s %10s %9s\n", "READER (stdout > /dev/null)", "MEDIAN", "EVENTS/S", "BEST", "READER CPU", "MAX RSS", "HUB CPU", "HUB RSS")
	for _, r := range readers {
		d := median(r.times)
		fmt.Printf("%-38s %7.2fs %9.0f %6.2fs %9.2fs %6.1f MB %9.2fs %6.1f MB\n", r.name, d.Seconds(), float64(events)/d.Seconds(),
			slices.Min(r.times).Seconds(), median(r.cpu).Seconds(), float64(slices.Max(r.maxRSS))/1024,
			median(r.hubCPU).Seconds(), float64(slices.Max(r.hubPeak))/1024)
	}
	fmt.Printf("(MEDIAN, BEST: process start to exit; CPU: user + system, median; MAX RSS: the reader's peak; HUB RSS: the hub's peak while serving it)\n")
	ours, theirs := median(readers[0].times), median(readers[1].times)
	fmt.Printf("\niotctl / node events/s = %.2f\n", theirs.Seconds()/ours.Seconds())
	if len(readers[1].read) > 0 {
		rd, st := median(readers[1].read), median(readers[1].startup)
		fmt.Printf("node without its start-up (%s to load the SDK): median read %.2fs = %.0f events/s\n", st.Round(time.Millisecond), rd.Seconds(), float64(events)/rd.Seconds())
	}
	fmt.Printf("hub RSS: %.1f MB at start, %.1f MB with the backlog\n", float64(rssStart)/1024, float64(rssFilled)/1024)
	return nil
}

// reader is one command that reads the backlog.
type reader struct {
	name    string
	cmd     func() *exec.Cmd
	times   []time.Duration
	cpu     []time.Duration // the reader's user + system time
	hubCPU  []time.Duration // the hub's user + system time during the read
	maxRSS  []int64         // KB
	hubPeak []int           // KB
	// From the Node script's summary: its start-up (loading the SDK)
	// and the read after it.
	startup, read []time.Duration
}

// check runs the reader once with its output counted: every event once,
// sequence numbers increasing per partition.
func (r *reader) check(want int) error {
	c := r.cmd()
	var errOut bytes.Buffer
	c.Stderr = &errOut
	out, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	seen := map[string]int64{}
	n := 0
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var bad error
	for sc.Scan() {
		var ev struct {
			Type           string `json:"type"`
			Partition      string `json:"partition"`
			SequenceNumber int64  `json:"sequenceNumber"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Type != "event" {
			bad = fmt.Errorf("%s printed %q (%v); want an event", r.name, sc.Text(), err)
			continue
		}
		if last, ok := seen[ev.Partition]; ok && ev.SequenceNumber <= last && bad == nil {
			bad = fmt.Errorf("%s: partition %s sequence number %d after %d", r.name, ev.Partition, ev.SequenceNumber, last)
		}
		seen[ev.Partition] = ev.SequenceNumber
		n++
	}
	if err := c.Wait(); err != nil {
		return fmt.Errorf("%s: %v\n%s", r.name, err, errOut.String())
	}
	if bad != nil {
		return bad
	}
	if n != want {
		return fmt.Errorf("%s printed %d events; want %d", r.name, n, want)
	}
	return nil
}

// timed runs the reader once with stdout to /dev/null, sampling the
// hub's RSS meanwhile.
func (r *reader) timed(devnull *os.File, hubPID int) error {
	c := r.cmd()
	var errOut bytes.Buffer
	c.Stdout, c.Stderr = devnull, &errOut
	stopSampling := make(chan struct{})
	peak := make(chan int, 1)
	go func() {
		m := rssKB(hubPID)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				peak <- max(m, rssKB(hubPID))
				return
			case <-t.C:
				m = max(m, rssKB(hubPID))
			}
		}
	}()
	hubCPU0 := cpuTime(hubPID)
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	r.hubCPU = append(r.hubCPU, cpuTime(hubPID)-hubCPU0)
	close(stopSampling)
	r.hubPeak = append(r.hubPeak, <-peak)
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", r.name, err, errOut.String())
	}
	r.times = append(r.times, d)
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = append(r.maxRSS, ru.Maxrss)
	}
	r.cpu = append(r.cpu, c.ProcessState.UserTime()+c.ProcessState.SystemTime())
	// The Node script's summary is its last stderr line.
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	var s struct {
		Result *struct {
			Count     int   `json:"count"`
			StartupMs int64 `json:"startupMs"`
			ReadMs    int64 `json:"readMs"`
		} `json:"result"`
	}
	if json.Unmarshal([]byte(lines[len(lines)-1]), &s) == nil && s.Result != nil {
		r.startup = append(r.startup, time.Duration(s.Result.StartupMs)*time.Millisecond)
		r.read = append(r.read, time.Duration(s.Result.ReadMs)*time.Millisecond)
	}
	return nil
}

type hubInfo struct {
	HostName         string `json:"hostName"`
	CAFile           string `json:"caFile"`
	ConnectionString string `json:"connectionString"`
	EventHub         string `json:"eventHubConnectionString"`
}

func startHub(ctx context.Context, bin, ip string, env []string) (*exec.Cmd, *hubInfo, error) {
	cmd := exec.CommandContext(ctx, bin, "hub", "serve", "--addr", ip+":8883", "--standard-ports", "--host-name", ip, "--san", ip,
		"--in-memory", "-o", "json", "--log-level", "error")
	cmd.Env = env
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(out)
	var info hubInfo
	if err := json.NewDecoder(br).Decode(&info); err != nil {
		stop(cmd)
		return nil, nil, fmt.Errorf("iotctl hub serve on %s (binding 443 and 5671 needs root or CAP_NET_BIND_SERVICE): %v\n%s", ip, err, errOut.String())
	}
	go io.Copy(io.Discard, br)
	return cmd, &info, nil
}

// fill creates the devices and sends events messages from them at QoS
// 1, window unacknowledged per connection.
func fill(ctx context.Context, info *hubInfo, events, devices, window int) error {
	cs := connstr.MustParse(info.ConnectionString)
	svc, err := service.New(cs, &service.Options{CAFile: info.CAFile})
	if err != nil {
		return err
	}
	defer svc.Close()
	tc, err := service.TLSConfig(info.CAFile, nil)
	if err != nil {
		return err
	}
	tc.ServerName = cs.Host()
	return parallelDo(devices, devices, func(i int) error {
		id := fmt.Sprintf("bench-mon-%03d", i)
		d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: id})
		if err != nil {
			return err
		}
		key, err := sas.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
		if err != nil {
			return err
		}
		c, err := connect(ctx, id, key, cs.Host(), cs.Host()+":8883", tc)
		if err != nil {
			return fmt.Errorf("%s connecting: %w", id, err)
		}
		defer c.Disconnect(100)
		n := events / devices
		if i < events%devices {
			n++
		}
		sem := make(chan paho.Token, window)
		wait := func() error {
			t := <-sem
			select {
			case <-t.Done():
			case <-ctx.Done():
				return ctx.Err()
			}
			return t.Error()
		}
		for j := range n {
			if len(sem) == cap(sem) {
				if err := wait(); err != nil {
					return err
				}
			}
			m := &message.Message{MessageID: fmt.Sprintf("%s-%d", id, j), ContentType: "application/json", ContentEncoding: "utf-8",
				Properties: map[string]string{"temperatureAlert": strconv.FormatBool(j%10 == 0)}}
			body := fmt.Appendf(nil, `{"deviceId":%q,"n":%d,"temperature":%.1f,"humidity":%.1f}`, id, j, 20+float64(j%100)/10, 60+float64(j%50)/5)
			sem <- c.Publish(message.TelemetryTopic(id, "", m), 1, false, body)
		}
		for len(sem) > 0 {
			if err := wait(); err != nil {
				return err
			}
		}
		return nil
	})
}

func connect(ctx context.Context, id string, key []byte, host, addr string, tc *tls.Config) (paho.Client, error) {
	tok, err := sas.Sign(sas.DeviceResource(host, id), key, &sas.SignOptions{TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	opts := paho.NewClientOptions().AddBroker("tls://" + addr).SetClientID(id).
		SetUsername(host + "/" + id + "/?api-version=2021-04-12").SetPassword(tok.Encode()).
		SetTLSConfig(tc.Clone()).SetCleanSession(false).SetAutoReconnect(false).SetProtocolVersion(4).
		SetKeepAlive(5 * time.Minute).SetOrderMatters(false).SetMaxResumePubInFlight(1024)
	c := paho.NewClient(opts)
	t := c.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c, t.Error()
}

// parallelDo runs f(0..n-1) with at most p at once and returns the
// first error.
func parallelDo(n, p int, f func(int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := atomic.Int64{}
	for range min(p, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// cpuTime reads a process's user + system time from /proc (in clock
// ticks of 10 ms, USER_HZ on Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
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

// nodeReady installs the pinned Node SDKs when they are missing.
func nodeReady(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not on PATH: install Node.js 20 or newer")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "event-hubs")); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return nil
}

// stop interrupts a process and kills it if it has not exited in 5s.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// cleanEnv is the environment without iotctl settings or proxies, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "IOTCTL_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") || k == "NODE_OPTIONS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func median(s []time.Duration) time.Duration {
	s = slices.Clone(s)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
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
