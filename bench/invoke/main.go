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
	"bufio"
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
	"syscall"
	"time"
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
	root := repoRoot()
	tmp, err := os.MkdirTemp("", "bench-invoke-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "iotctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
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
	defer stop(sim)

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
		s := slices.Clone(c.times)
		slices.Sort(s)
		fmt.Printf("%-32s %9s %9s %9s %9s\n", c.name, ms(median(s)), ms(s[0]), ms(s[(len(s)-1)*9/10]), ms(s[len(s)-1]))
	}
	ours, theirs := median(sorted(clients[0].times)), median(sorted(clients[1].times))
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

type hubInfo struct {
	HostName         string `json:"hostName"`
	CAFile           string `json:"caFile"`
	ConnectionString string `json:"connectionString"`
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
		return nil, nil, fmt.Errorf("iotctl hub serve on %s (binding 443 needs root or CAP_NET_BIND_SERVICE): %v\n%s", ip, err, errOut.String())
	}
	go io.Copy(io.Discard, br)
	return cmd, &info, nil
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

// nodeReady installs the pinned Node SDKs when they are missing.
func nodeReady(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not on PATH: install Node.js 20 or newer")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iothub")); err == nil {
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

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

func median(s []time.Duration) time.Duration {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}
