package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Running the built iotctl binary as a user would: once (env.iotctl), or
// in the background printing JSON Lines (env.startCLI, read with next).

var (
	buildOnce sync.Once
	iotctlBin string
	buildErr  error
)

// iotctl builds the iotctl binary once, to run it as a user would.
func iotctl(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		tmp, err := os.MkdirTemp("", "iotctl-interop-")
		if err != nil {
			buildErr = err
			return
		}
		iotctlBin = filepath.Join(tmp, "iotctl")
		cmd := exec.Command("go", "build", "-o", iotctlBin, ".")
		cmd.Dir = filepath.Join(dir(), "..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building iotctl: %v", buildErr)
	}
	return iotctlBin
}

// cliEnv is the environment iotctl runs in: the env's service
// connection string and CA, and a configuration directory of its own.
func (e *env) cliEnv() []string {
	return append(os.Environ(), "IOTCTL_CONNECTION_STRING="+e.cs, "IOTCTL_CA_FILE="+e.hub.CAFile(), "XDG_CONFIG_HOME="+e.t.TempDir())
}

// iotctl runs the iotctl binary against the env's hub until it exits.
func (e *env) iotctl(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(iotctl(e.t), args...)
	cmd.Env = e.cliEnv()
	var o, er bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &er
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return o.String(), er.String(), code
}

// cliProc is the iotctl binary running in the background and printing
// JSON Lines (`device simulate -o json`, `hub monitor -o json`), until
// it exits or the test ends. Every stdout line is kept; next reads them
// in order, so none is dropped and the process never waits for the
// test to read.
type cliProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	name   string        // "iotctl device simulate", for failure messages
	more   chan struct{} // a line came (capacity 1)
	exited chan struct{} // closed once the process exited and stdout is read
	code   int           // the exit code once exited is closed; -1 when killed

	mu     sync.Mutex
	stdout []string
	read   int // stdout lines next has looked at
	stderr bytes.Buffer
}

// startCLI runs the iotctl binary with args in cliEnv, reading its
// stdout as it comes. When the test ends the process is interrupted as
// Ctrl-C would, and killed if it has not exited 10 s later.
func (e *env) startCLI(args ...string) *cliProc {
	e.t.Helper()
	p := &cliProc{t: e.t, more: make(chan struct{}, 1), exited: make(chan struct{})}
	p.cmd = exec.Command(iotctl(e.t), args...)
	p.name = "iotctl"
	for _, a := range args[:min(2, len(args))] { // the command, without flags
		if strings.HasPrefix(a, "-") {
			break
		}
		p.name += " " + a
	}
	p.cmd.Env = e.cliEnv()
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout = append(p.stdout, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
		close(p.exited)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// nextLine returns the first stdout line next has not looked at, and
// false when there is none yet.
func (p *cliProc) nextLine() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.read == len(p.stdout) {
		return "", false
	}
	p.read++
	return p.stdout[p.read-1], true
}

// next decodes the stdout lines next has not looked at yet, in order,
// and returns the first one that decodes as a T and for which ok holds;
// lines that are not JSON are passed over. It fails the test when the
// process exits first or nothing matches within the given time.
func next[T any](p *cliProc, within time.Duration, what string, ok func(T) bool) T {
	p.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if line, more := p.nextLine(); more {
			var v T
			if json.Unmarshal([]byte(line), &v) == nil && ok(v) {
				return v
			}
			continue
		}
		select {
		case <-p.more:
		case <-p.exited:
			if p.unread() {
				continue
			}
			p.t.Fatalf("%s exited (code %d) before it %s\n%s", p.name, p.code, what, p.output())
		case <-deadline.C:
			p.t.Fatalf("%s had not %s after %s\n%s", p.name, what, within, p.output())
		}
	}
}

func (p *cliProc) unread() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.read < len(p.stdout)
}

// interrupt interrupts the process as Ctrl-C would and returns its exit
// code, failing the test when it has not exited within the given time.
// The lines it printed until then stay readable with next.
func (p *cliProc) interrupt(within time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		p.t.Fatalf("interrupting %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %s of an interrupt\n%s", p.name, within, p.output())
	}
	return p.code
}

// output is what the process printed so far (the last 40 stdout
// lines), for failure messages.
func (p *cliProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.stdout
	if len(out) > 40 {
		out = append([]string{fmt.Sprintf("... (%d lines before)", len(out)-40)}, out[len(out)-40:]...)
	}
	return "stdout:\n" + strings.Join(out, "\n") + "\nstderr:\n" + p.stderr.String()
}
