// Package interop tests iotctl's hub and clients against the official
// Azure IoT Node SDKs (pinned in package-lock.json) and Python SDKs
// (pinned in python/requirements.txt). The tests install the Node SDKs
// with `npm ci` when node_modules is missing and the Python SDKs into a
// virtual environment of their own (see requirePython), and need node,
// npm and Python 3.9+ with venv on PATH and the right to bind ports
// 443, 8883 and 5671 on loopback addresses (root, or
// CAP_NET_BIND_SERVICE). Set IOTCTL_SKIP_INTEROP=1 to skip them;
// nothing else skips them.
package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub"
)

var (
	npmOnce sync.Once
	npmErr  error
	// nextAddr hands each test its own loopback address.
	nextAddr atomic.Int32
)

func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// requireNode skips only with IOTCTL_SKIP_INTEROP=1 and fails, saying
// why, when the Node SDKs cannot be made ready.
func requireNode(t *testing.T) {
	t.Helper()
	if os.Getenv("IOTCTL_SKIP_INTEROP") == "1" {
		t.Skip("IOTCTL_SKIP_INTEROP=1")
	}
	npmOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			npmErr = fmt.Errorf("node is not on PATH: install Node.js (20 or newer) to run the interoperability tests, or set IOTCTL_SKIP_INTEROP=1")
			return
		}
		if _, err := os.Stat(filepath.Join(dir(), "node_modules", "azure-iothub")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir()
		out, err := cmd.CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("npm ci in %s failed: %v\n%s", dir(), err, out)
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
}

// loopbackIP hands each test its own loopback address; the second and
// third bytes come from the process id, so two runs side by side do not
// collide.
func loopbackIP() string {
	pid := os.Getpid()
	return fmt.Sprintf("127.%d.%d.%d", 1+pid%250, (pid/250)%250, 10+nextAddr.Add(1))
}

// env is one test's hub on its own loopback address with the standard
// ports, as the Node service SDK always uses 443.
type env struct {
	t   *testing.T
	hub *hub.Hub
	ip  string
	cs  string // iothubowner
}

func newEnv(t *testing.T) *env { return newEnvWith(t, hub.Options{}) }

func (e *env) nodeCmd(ctx context.Context, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join("js", script)}, args...)...)
	cmd.Dir = dir()
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+e.hub.CAFile())
	return cmd
}

// service runs one azure-iothub operation and decodes its answer.
func (e *env) service(op string, args any) (json.RawMessage, *nodeError) {
	e.t.Helper()
	b, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := e.nodeCmd(ctx, "service.js", e.cs, op, string(b)).Output()
	if err != nil {
		e.t.Fatalf("node service.js %s %s: %v\n%s", op, b, err, stderrOf(err))
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  *nodeError      `json:"error"`
	}
	if err := json.Unmarshal(lastLine(out), &res); err != nil {
		e.t.Fatalf("node service.js %s printed %q: %v", op, out, err)
	}
	return res.Result, res.Error
}

type nodeError struct {
	Name       string `json:"name"`
	Message    string `json:"message"`
	StatusCode int    `json:"statusCode"`
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func lastLine(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return []byte(lines[len(lines)-1])
}

// nodeDevice is a running `node device.js ... serve`.
type nodeDevice struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan map[string]any
}

func (e *env) startDevice(cs string) *nodeDevice {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.nodeCmd(ctx, "device.js", cs, "serve")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	d := &nodeDevice{cmd: cmd, stdin: stdin, events: make(chan map[string]any, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				d.events <- m
			}
		}
		close(d.events)
	}()
	e.t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	if ev := d.waitFor(e.t, "ready"); ev == nil {
		e.t.Fatalf("the Node device did not get ready; stderr:\n%s", stderr.String())
	}
	return d
}

// waitFor returns the next event of the given kind, failing on an
// error event or after 60 s.
func (d *nodeDevice) waitFor(t *testing.T, kind string) map[string]any {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-d.events:
			if !ok {
				t.Fatalf("the Node device exited while waiting for %q", kind)
			}
			if ev["event"] == "error" {
				t.Fatalf("the Node device failed: %v", ev)
			}
			if ev["event"] == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("the Node device sent no %q event within 60s", kind)
		}
	}
}
