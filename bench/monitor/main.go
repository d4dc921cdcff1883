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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
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
	tmp, err := os.MkdirTemp("", "bench-monitor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if bin == "" {
		if bin, err = benchkit.Build(ctx, tmp); err != nil {
			return err
		}
	}
	interop := filepath.Join(benchkit.RepoRoot(), "test", "interop")
	if err := benchkit.NodeReady(ctx, interop, "@azure/event-hubs"); err != nil {
		return err
	}

	env := benchkit.CleanEnv("XDG_CONFIG_HOME=" + filepath.Join(tmp, "config"))
	hub, err := benchkit.StartHub(ctx, bin, &benchkit.HubOptions{Addr: ip + ":8883", StandardPorts: true, HostName: ip, SANs: []string{ip}, Env: env})
	if err != nil {
		return fmt.Errorf("iotctl hub serve on %s (binding 443 and 5671 needs root or CAP_NET_BIND_SERVICE): %w", ip, err)
	}
	defer hub.Stop()
	info := &hub.Info
	hubPID := hub.PID()
	rssStart := benchkit.RSSKB(hubPID)

	start := time.Now()
	if err := fill(ctx, info, events, devices, window); err != nil {
		return fmt.Errorf("filling the backlog: %w", err)
	}
	fillTime := time.Since(start)
	rssFilled := benchkit.RSSKB(hubPID)

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
		d := benchkit.Median(r.times)
		fmt.Printf("%-38s %7.2fs %9.0f %6.2fs %9.2fs %6.1f MB %9.2fs %6.1f MB\n", r.name, d.Seconds(), float64(events)/d.Seconds(),
			slices.Min(r.times).Seconds(), benchkit.Median(r.cpu).Seconds(), float64(slices.Max(r.maxRSS))/1024,
			benchkit.Median(r.hubCPU).Seconds(), float64(slices.Max(r.hubPeak))/1024)
	}
	fmt.Printf("(MEDIAN, BEST: process start to exit; CPU: user + system, median; MAX RSS: the reader's peak; HUB RSS: the hub's peak while serving it)\n")
	ours, theirs := benchkit.Median(readers[0].times), benchkit.Median(readers[1].times)
	fmt.Printf("\niotctl / node events/s = %.2f\n", theirs.Seconds()/ours.Seconds())
	if len(readers[1].read) > 0 {
		rd, st := benchkit.Median(readers[1].read), benchkit.Median(readers[1].startup)
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
		m := benchkit.RSSKB(hubPID)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				peak <- max(m, benchkit.RSSKB(hubPID))
				return
			case <-t.C:
				m = max(m, benchkit.RSSKB(hubPID))
			}
		}
	}()
	hubCPU0 := benchkit.CPUTime(hubPID)
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	r.hubCPU = append(r.hubCPU, benchkit.CPUTime(hubPID)-hubCPU0)
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

// fill creates the devices and sends events messages from them at QoS
// 1, window unacknowledged per connection.
func fill(ctx context.Context, info *benchkit.HubInfo, events, devices, window int) error {
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
	return benchkit.Parallel(devices, devices, func(i int) error {
		id := fmt.Sprintf("bench-mon-%03d", i)
		d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: id})
		if err != nil {
			return err
		}
		key, err := sas.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
		if err != nil {
			return err
		}
		c, err := benchkit.ConnectDevice(ctx, cs.Host()+":8883", cs.Host(), id, key, tc)
		if err != nil {
			return fmt.Errorf("%s connecting: %w", id, err)
		}
		defer c.Disconnect(100)
		n := events / devices
		if i < events%devices {
			n++
		}
		w := benchkit.NewWindow(ctx, window)
		for j := range n {
			if err := w.Send(func() paho.Token {
				m := &message.Message{MessageID: fmt.Sprintf("%s-%d", id, j), ContentType: "application/json", ContentEncoding: "utf-8",
					Properties: map[string]string{"temperatureAlert": strconv.FormatBool(j%10 == 0)}}
				body := fmt.Appendf(nil, `{"deviceId":%q,"n":%d,"temperature":%.1f,"humidity":%.1f}`, id, j, 20+float64(j%100)/10, 60+float64(j%50)/5)
				return c.Publish(message.TelemetryTopic(id, "", m), 1, false, body)
			}); err != nil {
				return err
			}
		}
		return w.Drain()
	})
}
