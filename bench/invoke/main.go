// Command invoke times one direct-method call made by a fresh process,
// from process start to exit: `iotctl method invoke` beside a Node
// script that makes the same call with the official service SDK
// (test/interop/js/invoke.js, azure-iothub Client.invokeDeviceMethod),
// against the same local hub and the same connected device, in the same
// run. It prints a table of medians and the goal: iotctl at most a
// tenth of the Node script's time and under 50 ms.
//
//	go run ./bench/invoke            # as root: the Node SDK needs port 443
//	go run ./bench/invoke -runs 51 -ip 127.0.0.212
//
// It builds iotctl, starts `iotctl hub serve --in-memory` on
// IP:8883 with --standard-ports (the Node REST client always uses
// 443), creates a device with `iotctl hub device create`, connects it
// with `iotctl device simulate`, and then alternates the two clients.
// Node's modules come from test/interop (npm ci when missing).
// Everything stays on the loopback address and ends by itself.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
)

func main() {
	runs := flag.Int("runs", 21, "timed calls per client (at least 20 for the goal)")
	warmup := flag.Int("warmup", 3, "untimed calls per client first")
	ip := flag.String("ip", "127.0.0.211", "loopback address for the hub (it binds 443, 8883 and 5671 there)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*runs, *warmup, *ip, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/invoke:", err)
		os.Exit(1)
	}
}

const (
	deviceID = "bench-invoke"
	method   = "SetTelemetryInterval"
	payload  = "10"
)

func run(runs, warmup int, ip string, timeout time.Duration) error {
	if !strings.HasPrefix(ip, "127.") {
		return fmt.Errorf("-ip %s: use a loopback address", ip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tmp, err := os.MkdirTemp("", "bench-invoke-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin, err := benchkit.Build(ctx, tmp)
	if err != nil {
		return err
	}
	interop := filepath.Join(benchkit.RepoRoot(), "test", "interop")
	if err := benchkit.NodeReady(ctx, interop, "azure-iothub"); err != nil {
		return err
	}

	env := benchkit.CleanEnv("XDG_CONFIG_HOME=" + filepath.Join(tmp, "config"))
	hub, err := benchkit.StartHub(ctx, bin, &benchkit.HubOptions{Addr: ip + ":8883", StandardPorts: true, HostName: ip, SANs: []string{ip}, Env: env})
	if err != nil {
		return fmt.Errorf("iotctl hub serve on %s (binding 443 needs root or CAP_NET_BIND_SERVICE): %w", ip, err)
	}
	defer hub.Stop()
	info := &hub.Info
	env = append(env, "IOTCTL_CONNECTION_STRING="+info.ConnectionString, "IOTCTL_CA_FILE="+info.CAFile)

	create := exec.CommandContext(ctx, bin, "hub", "device", "create", deviceID, "-o", "json")
	create.Env = env
	out, err := create.Output()
	if err != nil {
		return fmt.Errorf("iotctl hub device create: %v %s", err, stderrOf(err))
	}
	var created struct {
		ConnectionString string `json:"connectionString"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.ConnectionString == "" {
		return fmt.Errorf("iotctl hub device create printed %q: %v", out, err)
	}
	sim := exec.CommandContext(ctx, bin, "device", "simulate", "--connection-string", created.ConnectionString, "--interval", "1h")
	sim.Env = env
	sim.Stdout, sim.Stderr = io.Discard, io.Discard
	if err := sim.Start(); err != nil {
		return err
	}
	defer benchkit.Stop(sim, 5*time.Second)

	iotctl := func() *exec.Cmd {
		c := exec.CommandContext(ctx, bin, "method", "invoke", "--device-id", deviceID, "--name", method, "--payload", payload, "-o", "json")
		c.Env = env
		return c
	}
	node := func() *exec.Cmd {
		c := exec.CommandContext(ctx, "node", filepath.Join(interop, "js", "invoke.js"), info.ConnectionString, deviceID, method, payload)
		c.Dir = interop
		c.Env = append(slices.Clone(env), "NODE_EXTRA_CA_CERTS="+info.CAFile)
		return c
	}
	if err := waitOnline(ctx, iotctl); err != nil {
		return err
	}

	clients := []*client{
		{name: "iotctl method invoke", cmd: iotctl, check: true},
		{name: "node invoke.js (azure-iothub)", cmd: node, check: true},
		{name: "floor: iotctl version", cmd: func() *exec.Cmd { c := exec.CommandContext(ctx, bin, "version"); c.Env = env; return c }},
		{name: "floor: node -e ''", cmd: func() *exec.Cmd { c := exec.CommandContext(ctx, "node", "-e", ""); c.Env = env; return c }},
	}
	for i := range warmup + runs {
		for _, c := range clients {
			d, err := c.once()
			if err != nil {
				return err
			}
			if i >= warmup {
				c.times = append(c.times, d)
			}
		}
	}

	fmt.Printf("One direct method (%s %s) per process, start to exit; %d runs each after %d warm-up, alternating;\n", method, payload, runs, warmup)
	fmt.Printf("hub: iotctl hub serve --in-memory on %s (HTTPS on 443), device: iotctl device simulate.\n\n", ip)
	fmt.Printf("%-32s %9s %9s %9s %9s\n", "CLIENT", "MEDIAN", "MIN", "P90", "MAX")
	for _, c := range clients {
		fmt.Printf("%-32s %9s %9s %9s %9s\n", c.name, ms(benchkit.Median(c.times)), ms(slices.Min(c.times)),
			ms(benchkit.Percentile(c.times, 90)), ms(slices.Max(c.times)))
	}
	ours, theirs := benchkit.Median(clients[0].times), benchkit.Median(clients[1].times)
	ratio := float64(ours) / float64(theirs)
	fmt.Printf("\niotctl / node = %.3f (1/%.0f)\n", ratio, 1/ratio)
	met := ours*10 <= theirs && ours < 50*time.Millisecond && runs >= 20
	verdict := "met"
	if !met {
		verdict = "MISSED"
	}
	fmt.Printf("goal (iotctl <= node/10 and < 50 ms, median of >= 20 runs): %s\n", verdict)
	return nil
}

// client is one command line timed again and again.
type client struct {
	name  string
	cmd   func() *exec.Cmd
	check bool // the output must be {"status":200,...}
	times []time.Duration
}

func (c *client) once() (time.Duration, error) {
	cmd := c.cmd()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", c.name, err, errOut.String())
	}
	if c.check {
		var res struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Status != 200 {
			return 0, fmt.Errorf("%s printed %q (%v); want status 200", c.name, out.String(), err)
		}
	}
	return d, nil
}

// waitOnline calls the method until the simulated device answers.
func waitOnline(ctx context.Context, invoke func() *exec.Cmd) error {
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := invoke().Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the simulated device did not answer within 30s: %v", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
