// Package durable tests that the local hub keeps the telemetry it
// acknowledged across a crash, with the real iotctl binary in separate
// processes: `hub serve`, a `device simulate` fleet and `hub monitor`.
package durable

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/loopback"
)

// TestSigkillLosesNoAcknowledgedTelemetry kills the hub with SIGKILL in
// the middle of a 200-device QoS 1 fleet and starts it again on the same
// data dir. Every message the fleet counted as acknowledged is then read
// by `hub monitor --from start`, and a monitor that ran across the
// restart received every event exactly once, with no gap in any
// partition's sequence numbers.
func TestSigkillLosesNoAcknowledgedTelemetry(t *testing.T) {
	bin := buildIotctl(t)
	env := isolatedEnv(t)
	dataDir := t.TempDir()
	// An address of the test's own: nothing else can take the port
	// while the hub restarts.
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}

	hub := startHub(t, bin, env, addr, dataDir)
	info := hub.info
	common := []string{"--ca-file", info.CAFile}

	monitor := start(t, bin, env, append([]string{"hub", "monitor", "--from", "start", "-o", "json",
		"--connection-string", info.ConnectionString}, common...)...)
	running := newEventLog()
	go monitor.lines(func(l string) { running.add(t, l) })

	fleet := start(t, bin, env, append([]string{"device", "simulate", "--devices", "200", "--interval", "200ms", "-o", "json",
		"--hub-connection-string", info.ConnectionString, "--data", `{"d":"{{deviceId}}","n":{{counter}}}`}, common...)...)
	acks := newAckLog()
	go fleet.lines(func(l string) { acks.add(t, l) })

	acks.waitFor(t, "200 devices connected and 2,000 messages acknowledged", func() bool { return acks.connected >= 200 && len(acks.acked) >= 2000 })
	if err := hub.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	hub.wait(t)
	ackedAtKill := acks.count()
	t.Logf("hub killed with SIGKILL after %d acknowledged messages", ackedAtKill)

	startHub(t, bin, env, addr, dataDir) // stopped at the test's end
	acks.waitFor(t, "the fleet reconnected and 2,000 more messages acknowledged", func() bool {
		return acks.connected >= 400 && len(acks.acked) >= ackedAtKill+2000
	})
	if err := fleet.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	fleet.wait(t)
	acked := acks.snapshot()

	// A monitor started after it all reads the whole log from the start.
	after := newEventLog()
	reader := start(t, bin, env, append([]string{"hub", "monitor", "--from", "start", "-o", "json", "--timeout", "5s",
		"--connection-string", info.ConnectionString}, common...)...)
	reader.lines(func(l string) { after.add(t, l) })
	reader.wait(t)
	stored := after.snapshot()
	if len(stored.dups) > 0 {
		t.Errorf("hub monitor --from start read %d events twice, e.g. %v", len(stored.dups), stored.dups[0])
	}
	missing := 0
	for m := range acked {
		if !stored.bodies[m] {
			if missing < 5 {
				t.Errorf("message %s was acknowledged to the fleet but is not in the log", m)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged messages are missing after the SIGKILL", missing, len(acked))
	}
	checkNoGaps(t, "hub monitor --from start", stored)

	// The monitor that ran across the restart has the same events.
	running.waitFor(t, fmt.Sprintf("the running monitor to receive all %d events", stored.n), func() bool { return running.n >= stored.n })
	seen := running.snapshot()
	if len(seen.dups) > 0 {
		t.Errorf("the monitor running across the restart received %d events twice, e.g. %v", len(seen.dups), seen.dups[0])
	}
	checkNoGaps(t, "the monitor running across the restart", seen)
	if seen.n != stored.n {
		t.Errorf("the monitor running across the restart received %d events; the log holds %d", seen.n, stored.n)
	}
	t.Logf("%d messages acknowledged (%d before the SIGKILL), %d events in the log", len(acked), ackedAtKill, stored.n)
}

// checkNoGaps fails unless each partition's sequence numbers run from
// 0 without a gap.
func checkNoGaps(t *testing.T, who string, s eventSnapshot) {
	t.Helper()
	for p, seqs := range s.seqs {
		for i := int64(0); i < int64(len(seqs)); i++ {
			if !seqs[i] {
				t.Errorf("%s: partition %s has %d events but not sequence number %d", who, p, len(seqs), i)
				break
			}
		}
	}
}

// buildIotctl builds the iotctl binary into a temporary directory.
func buildIotctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "iotctl")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// isolatedEnv is the environment without iotctl's settings, with a
// home of its own.
func isolatedEnv(t *testing.T) []string {
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "XDG_DATA_HOME=" + filepath.Join(home, ".local")}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && !strings.HasPrefix(k, "IOTCTL_") && !strings.HasPrefix(k, "XDG_") && !strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is an iotctl process whose stdout the test reads.
type proc struct {
	cmd    *exec.Cmd
	out    io.Reader
	stderr *strings.Builder
	done   chan struct{}
}

func start(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = env
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: c, out: out, stderr: &strings.Builder{}, done: make(chan struct{})}
	c.Stderr = &lockedWriter{w: p.stderr}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
			t.Errorf("iotctl %s did not end within 20 s of SIGTERM", strings.Join(args[:2], " "))
		}
		if t.Failed() {
			t.Logf("iotctl %s stderr:\n%s", strings.Join(args[:2], " "), p.stderr.String())
		}
	})
	return p
}

// lines calls fn with each line of stdout until it ends, then waits for
// the process.
func (p *proc) lines(fn func(string)) {
	sc := bufio.NewScanner(p.out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	_ = p.cmd.Wait()
	close(p.done)
}

func (p *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("iotctl did not end within 30 s")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

type hubProc struct {
	*proc
	info struct {
		ConnectionString string `json:"connectionString"`
		CAFile           string `json:"caFile"`
	}
}

// startHub starts `iotctl hub serve` and waits for the JSON object it
// prints once it listens.
func startHub(t *testing.T, bin string, env []string, addr, dataDir string) *hubProc {
	t.Helper()
	h := &hubProc{proc: start(t, bin, env, "hub", "serve", "--addr", addr, "--data-dir", dataDir, "-o", "json")}
	ready := make(chan error, 1)
	go func() {
		dec := json.NewDecoder(h.out)
		ready <- dec.Decode(&h.info)
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), h.out))
		_ = h.cmd.Wait()
		close(h.done)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("hub serve printed no JSON: %v; stderr %s", err, h.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("hub serve did not start within 30 s; stderr %s", h.stderr.String())
	}
	return h
}

// waiter lets a test wait, with a deadline, for a condition on state
// that other goroutines change.
type waiter struct {
	mu      sync.Mutex
	changed chan struct{}
}

func (w *waiter) notify() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}

// waitFor waits until cond (called with w.mu held) holds.
func (w *waiter) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(40 * time.Second)
	for {
		w.mu.Lock()
		if cond() {
			w.mu.Unlock()
			return
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// message identifies a fleet message by its body {"d": device, "n": counter}.
func message(body json.RawMessage) (string, error) {
	var b struct {
		D string `json:"d"`
		N int64  `json:"n"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.D == "" {
		return "", fmt.Errorf("body %s is not a fleet message", body)
	}
	return fmt.Sprintf("%s#%d", b.D, b.N), nil
}

// ackLog collects what `device simulate -o json` reports.
type ackLog struct {
	waiter
	connected int
	acked     map[string]bool
}

func newAckLog() *ackLog { return &ackLog{acked: map[string]bool{}} }

func (a *ackLog) add(t *testing.T, line string) {
	var ev struct {
		Type string          `json:"type"`
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Errorf("device simulate printed %q: %v", line, err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Type {
	case "connected":
		a.connected++
	case "sent":
		m, err := message(ev.Body)
		if err != nil {
			t.Error(err)
			return
		}
		a.acked[m] = true
	}
	a.notify()
}

func (a *ackLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func (a *ackLog) snapshot() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool, len(a.acked))
	for k := range a.acked {
		out[k] = true
	}
	return out
}

// eventLog collects what `hub monitor -o json` prints.
type eventLog struct {
	waiter
	n      int
	seqs   map[string]map[int64]bool // partition → sequence numbers
	bodies map[string]bool
	dups   []string
}

type eventSnapshot struct {
	n      int
	seqs   map[string]map[int64]bool
	bodies map[string]bool
	dups   []string
}

func newEventLog() *eventLog {
	return &eventLog{seqs: map[string]map[int64]bool{}, bodies: map[string]bool{}}
}

func (e *eventLog) add(t *testing.T, line string) {
	var ev struct {
		Partition      string          `json:"partition"`
		SequenceNumber int64           `json:"sequenceNumber"`
		Body           json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Errorf("hub monitor printed %q: %v", line, err)
		return
	}
	m, err := message(ev.Body)
	if err != nil {
		t.Error(err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seqs[ev.Partition] == nil {
		e.seqs[ev.Partition] = map[int64]bool{}
	}
	if e.seqs[ev.Partition][ev.SequenceNumber] {
		e.dups = append(e.dups, fmt.Sprintf("partition %s sequence number %d", ev.Partition, ev.SequenceNumber))
	}
	e.seqs[ev.Partition][ev.SequenceNumber] = true
	e.bodies[m] = true
	e.n++
	e.notify()
}

func (e *eventLog) snapshot() eventSnapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := eventSnapshot{n: e.n, seqs: map[string]map[int64]bool{}, bodies: map[string]bool{}, dups: append([]string(nil), e.dups...)}
	for p, m := range e.seqs {
		s.seqs[p] = map[int64]bool{}
		for k := range m {
			s.seqs[p][k] = true
		}
	}
	for k := range e.bodies {
		s.bodies[k] = true
	}
	return s
}
