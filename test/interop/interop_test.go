// Package interop tests iotctl's hub and clients against the official
// Azure IoT Node SDKs (pinned in package-lock.json) and Python SDKs
// (pinned in python/requirements.txt) and Java SDKs (pinned in
// java/pom.xml, see java_test.go). The tests install the Node SDKs
// with `npm ci` when node_modules is missing and the Python SDKs into a
// virtual environment of their own (see requirePython), and need node,
// npm and Python 3.9+ with venv on PATH and the right to bind ports
// 443, 8883 and 5671 on loopback addresses (root, or
// CAP_NET_BIND_SERVICE). Set IOTCTL_SKIP_INTEROP=1 to skip them;
// nothing else skips them.
package interop

import (
	"bufio"
	"bytes"
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

	"github.com/iotctl/iotctl/internal/nodemodules"
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

// skipIfAsked skips the test with IOTCTL_SKIP_INTEROP=1, the only way
// to skip the interoperability tests.
func skipIfAsked(t *testing.T) {
	t.Helper()
	if os.Getenv("IOTCTL_SKIP_INTEROP") == "1" {
		t.Skip("IOTCTL_SKIP_INTEROP=1")
	}
}

// requireNode skips only with IOTCTL_SKIP_INTEROP=1 and fails, saying
// why, when the Node SDKs cannot be made ready.
func requireNode(t *testing.T) {
	t.Helper()
	skipIfAsked(t)
	npmOnce.Do(func() {
		if err := nodemodules.Ensure(context.Background(), dir()); err != nil {
			npmErr = fmt.Errorf("%v: the interoperability tests need the pinned Node SDKs, or set IOTCTL_SKIP_INTEROP=1", err)
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
type nodeDevice struct{ p *scriptProc }

func (e *env) startDevice(cs string) *nodeDevice {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &nodeDevice{p: startScript(e.t, e.nodeCmd(ctx, "device.js", cs, "serve"), cancel, "the Node device")}
	d.waitFor(e.t, "ready")
	return d
}

// waitFor returns the next event of the given kind, failing on an
// error event or after 60 s.
func (d *nodeDevice) waitFor(t *testing.T, kind string) map[string]any {
	t.Helper()
	return nextEvent(t, d.p.events, d.p.name, kind, d.p.stderrDetail)
}

// scriptProc is a script (Node or Python) that runs beside the test,
// reading JSON commands on stdin and printing JSON events, one per
// line, on stdout.
type scriptProc struct {
	t      *testing.T
	name   string // for failure messages
	stdin  io.WriteCloser
	events chan map[string]any
	mu     sync.Mutex
	stderr bytes.Buffer
}

// startScript starts cmd, made with a context that cancel cancels.
// When the test ends the script's stdin is closed, which ends it, and
// it is killed if it has not exited 15 s later.
func startScript(t *testing.T, cmd *exec.Cmd, cancel context.CancelFunc, name string) *scriptProc {
	t.Helper()
	p := &scriptProc{t: t, name: name, events: make(chan map[string]any, 100)}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.events <- m
			}
		}
		close(p.events)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	return p
}

// stderrDetail is what the script printed on stderr, for a failure
// message.
func (p *scriptProc) stderrDetail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "; stderr:\n" + p.stderr.String()
}

// send writes one command.
func (p *scriptProc) send(cmd map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("writing %s to %s: %v", b, p.name, err)
	}
}

// waitFor returns the next event of the given kind (see nextEvent).
func (p *scriptProc) waitFor(kind string) map[string]any {
	p.t.Helper()
	return nextEvent(p.t, p.events, p.name, kind, p.stderrDetail)
}

// nextEvent returns the next event of the given kind from a script's
// events, failing when an "error" event comes, when the events end
// (the script exited) or after 60 s; detail adds what the script
// printed on stderr to the failure.
func nextEvent(t *testing.T, events <-chan map[string]any, who, kind string, detail func() string) map[string]any {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("%s exited while the test waited for %q%s", who, kind, detail())
			}
			if ev["event"] == "error" {
				t.Fatalf("%s failed while the test waited for %q: %v%s", who, kind, ev, detail())
			}
			if ev["event"] == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("%s sent no %q event within 60 s%s", who, kind, detail())
		}
	}
}
