// Package examples runs every example iotctl shows: each "$ ..." line
// of the Example of every command in the tree (hidden ones too), and
// each line of the README's shell blocks marked runnable. A failing
// example fails the build, so help texts and the README cannot promise
// what iotctl does not do.
//
// # How an example runs
//
// The test builds iotctl into a temporary directory put first on PATH
// (with a jq that writes every line at once, as it does on a terminal)
// and runs each example with "bash -c", with "set -o pipefail", in a
// fresh world of its own (see newWorld), several at a time:
//
//   - A local hub (pkg/hub, on localhost and a free port) with its data
//     directory in the example's own HOME (~/.local/share/iotctl/hub),
//     as "iotctl hub serve" would have it.
//   - The environment of a user who followed the README:
//     IOTCTL_CONNECTION_STRING (iothubowner), IOTCTL_CA_FILE,
//     IOTCTL_DEVICE_CONNECTION_STRING (MyGoDevice), and the placeholders
//     examples use: CS and SERVICE_CS (the service connection string),
//     DEVICE_CS (MyGoDevice's) and HUB (the hub's host name and port).
//     Nothing of the test's own environment that could change iotctl
//     (IOTCTL_*, XDG_*, proxies) gets through.
//   - The identities examples name: MyGoDevice, dev1, dev1/mod1 (SAS) and
//     cam1 (self-signed X.509, cam1.pem); and, when the example names
//     them, sim-00001 to sim-00010 having sent 10 messages each. An
//     identity the example creates itself ("hub device create") is left
//     out.
//   - Connected devices, unless the example acts as a device itself
//     ("iotctl device ..."): MyGoDevice runs the quickstart simulation
//     (a message every second, SetTelemetryInterval), dev1 answers
//     "echo" with its payload and dev1/mod1 answers "reboot".
//   - For "hub feedback" examples that do not wait on one message id, a
//     message sent to MyGoDevice with --ack full, whose feedback they read.
//   - For examples of file upload ("device upload", "hub
//     file-notifications", a storage connection string): file upload to
//     Azurite (storage_test.go) with notifications on, its connection
//     string in AZURE_STORAGE_CONNECTION_STRING; for "hub
//     file-notifications", MyGoDevice has uploaded engine.log.
//   - The hub's env.sh, as "hub serve" writes it, and in the
//     environment what it exports (IOTCTL_DPS_ID_SCOPE and
//     IOTCTL_DPS_CONNECTION_STRING too).
//   - DPS enrollments: the symmetric-key group "examples", whose key is
//     in GROUP_KEY (and dev-1's key derived from it in KEY; dev-1 has
//     registered), and cam-1 with the certificate cam-1.pem.
//   - In the working directory, the files examples read: cam1.pem and
//     cam1-key.pem, cam2.pem and cam2-key.pem, cam-1.pem and
//     cam-1-key.pem, cmd.json, engine.log, fleet-ca.pem and
//     fleet-ca-key.pem, certs/device-ca.pem and certs/device-ca-key.pem
//     (unless the example makes them), devices-root.pem and
//     devices-intermediate.pem. The hub trusts fleet-ca.pem and
//     certs/device-ca.pem as device CAs.
//
// Stand-ins: the local hub stands in for Azure, so "myhub.azure-devices.net"
// and "localhost:8443" (the default address of "hub serve") in an example
// become the hub's host and port, and the DPS ID scope "0ne00111111" its
// ID scope. "proxy.corp:3128" becomes a local
// CONNECT proxy (internal/proxytest); then the hub is named
// iothub.proxy.test, which only the proxy can reach, and the example
// passes only if a connection went through the proxy. An example
// running "iotctl hub serve" gets IOTCTL_ADDR=127.0.0.1:0, so that the
// hub it starts takes a free port (an --addr in the example wins), and
// ~/.local/share/iotctl/hub to itself (the world's hub keeps its data
// elsewhere).
//
// Worlds share nothing, so examples run in any order and at once; an
// example that deletes MyGoDevice does not take it from another.
//
// # What "runs" means
//
//   - An example exits 0 within finiteLimit, or with the code its
//     trailing comment shows ("# exits 8"). One that exits 0 must not
//     print iotctl's error line ("iotctl: ...") on stderr: an iotctl in
//     "$(...)" or before ";" failed. One that pipes into jq must not
//     print a line "null": the field it reads is missing.
//   - An example that runs until stopped (its command is "hub serve",
//     "device simulate", "hub monitor", "hub feedback" or "hub
//     file-notifications", with neither
//     --count nor --wait-on-msg, nor --k8s-job, which prints a
//     manifest instead of running) must still be running when it first
//     prints on stdout (within outputLimit), and must then stop on
//     Ctrl-C (SIGINT) with exit code 130 (within stopLimit).
//
// "go test ./test/examples -args -example REGEXP" runs only the examples
// that match REGEXP.
//
// The examples that are not run are in exceptions, with the reason for
// each; the README's blocks that are not run carry the reason in their
// marker (<!-- not-runnable: REASON -->). Both lists are logged. A
// runnable README block is marked <!-- runnable --> on the line before
// it; a block whose lines go together, marked <!-- runnable: script -->,
// runs as one script that stops at the first line that fails (set -e).
// Every shell block of the README carries one of these markers (or is
// the tour, which test/tour runs).
package examples

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/output"
)

const (
	// finiteLimit bounds an example that should end by itself.
	finiteLimit = 90 * time.Second
	// outputLimit bounds the wait for the first output of an example
	// that runs until stopped.
	outputLimit = 60 * time.Second
	// stopLimit bounds its stop after Ctrl-C.
	stopLimit = 20 * time.Second
	// parallel is how many examples run at once: most of their time is
	// spent waiting on the network or on a device's next message.
	parallel = 8
)

var onlyFlag = flag.String("example", "", "run only the examples that match this regular expression")

// exceptions are the examples that are not run, with the reason.
var exceptions = map[string]string{
	"iotctl completion bash > /etc/bash_completion.d/iotctl": "writes a system directory; " +
		"`source <(iotctl completion bash)` runs the same command",
}

// untilStopped tells the commands that run until stopped, and
// stopFlags the flags that make them stop by themselves.
var (
	untilStopped = regexp.MustCompile(`iotctl (hub serve|device simulate|hub monitor|hub feedback|hub file-notifications)\b`)
	stopFlags    = regexp.MustCompile(`\s--(count|wait-on-msg)[\s=]|\s--k8s-job\b`)
)

func runsUntilStopped(script string) bool {
	return untilStopped.MatchString(script) && !stopFlags.MatchString(script)
}

func TestExamples(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the examples are bash command lines")
	}
	for _, tool := range []string{"bash", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the examples need %s on PATH: %v", tool, err)
		}
	}
	var all examples
	helpExamples(&all)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	notRun, err := readmeExamples(string(readme), &all)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range notRun {
		t.Logf("not run: README.md:%d (%s): %s", b.Line, b.First, b.Reason)
	}
	only, err := regexp.Compile(*onlyFlag)
	if err != nil {
		t.Fatalf("-example: %v", err)
	}
	var run []*example
	for _, e := range all.list {
		if reason, ok := exceptions[e.Script]; ok {
			t.Logf("not run: %s: %s", e.name(), reason)
			continue
		}
		if only.MatchString(e.Script) {
			run = append(run, e)
		}
	}
	for s := range exceptions {
		if all.byText[s] == nil {
			t.Errorf("exceptions names %q, which no help text or README block shows any more: remove it", s)
		}
	}

	bin := buildIotctl(t)
	results := make([]string, len(run))
	took := make([]time.Duration, len(run))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, e := range run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			results[i] = runExample(t, bin, e)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, e := range run {
		t.Run(e.name(), func(t *testing.T) {
			t.Logf("ran in %s (its world included)", took[i].Round(time.Millisecond))
			if results[i] != "" {
				t.Errorf("%s\n(shown in %s)", results[i], strings.Join(e.Where, ", "))
			}
		})
	}
}

// buildIotctl builds the binary examples call, into a directory that
// also holds a jq that flushes every line.
func buildIotctl(t *testing.T) string {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "iotctl"), ".")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// On a terminal jq writes each line as it comes; into the test's
	// pipe it would keep them until it ends, and an example that runs
	// until stopped would seem to print nothing.
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nexec " + output.ShellQuote(jq) + " --unbuffered \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "jq"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// environ is the test's environment without what could change iotctl
// or the examples, with w's on top.
func environ(bin string, w *world) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "IOTCTL_"), strings.HasPrefix(k, "XDG_"), k == "HOME", k == "PATH", k == "CDPATH",
			strings.EqualFold(k, "HTTPS_PROXY"), strings.EqualFold(k, "HTTP_PROXY"), strings.EqualFold(k, "NO_PROXY"),
			strings.EqualFold(k, "ALL_PROXY"), k == "BASH_ENV", k == "ENV":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	keys := make([]string, 0, len(w.env))
	for k := range w.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+w.env[k])
	}
	return env
}

// standIns replaces the names of Azure, the default local hub, the
// example proxy and the example DPS ID scope with w's.
func standIns(script string, w *world) string {
	pairs := []string{"myhub.azure-devices.net", w.host, "localhost:8443", w.host, "0ne00111111", w.idScope}
	if w.proxy != nil {
		pairs = append(pairs, "proxy.corp:3128", w.proxy.Addr())
	}
	return strings.NewReplacer(pairs...).Replace(script)
}

// runExample runs e in a world of its own and returns what went wrong,
// "" when it ran.
func runExample(t *testing.T, bin string, e *example) string {
	w, err := newWorld(t, e)
	if err != nil {
		return "setting up the example's world: " + err.Error()
	}
	defer w.close()
	script := standIns(e.Script, w)
	set := "set -o pipefail\n"
	if e.Block {
		set = "set -e -o pipefail\n"
	}
	c := exec.Command("bash", "-c", set+script)
	c.Dir = w.dir
	c.Env = environ(bin, w)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, errOut := newOutputBuffer(), newOutputBuffer()
	c.Stdout, c.Stderr = out, errOut
	if err := c.Start(); err != nil {
		return err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	kill := func() {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
	report := func(format string, args ...any) string {
		return fmt.Sprintf("$ %s\n%s\nstdout:\n%s\nstderr:\n%s", script, fmt.Sprintf(format, args...), out.String(), errOut.String())
	}

	var fail string
	if runsUntilStopped(e.Script) {
		select {
		case err := <-done:
			fail = report("stopped by itself (%v) instead of running until stopped", exitCode(err))
		case <-time.After(outputLimit):
			kill()
			fail = report("printed nothing on stdout within %s", outputLimit)
		case <-out.first:
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGINT)
			select {
			case err := <-done:
				if code := exitCode(err); code != 130 {
					fail = report("exited %d on Ctrl-C, not 130", code)
				}
			case <-time.After(stopLimit):
				kill()
				fail = report("did not stop within %s of Ctrl-C", stopLimit)
			}
		}
	} else {
		select {
		case err := <-done:
			if code := exitCode(err); code != e.Exit {
				fail = report("exit code %d, want %d", code, e.Exit)
			} else if e.Exit == 0 && hasErrorLine(errOut.String()) {
				fail = report("an iotctl command failed (its exit code lost in a $(...) or before a ';')")
			}
		case <-time.After(finiteLimit):
			kill()
			fail = report("still running after %s", finiteLimit)
		}
	}
	if fail == "" && strings.Contains(script, "jq") && slices.Contains(strings.Split(out.String(), "\n"), "null") {
		fail = report("jq printed null: the output lacks the field the example reads")
	}
	if fail == "" && w.proxy != nil && w.proxy.Tunnels() == 0 {
		fail = report("no connection went through the proxy")
	}
	return fail
}

// hasErrorLine reports whether stderr holds the "iotctl: ..." line with
// which iotctl reports the error it exits with.
func hasErrorLine(stderr string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "iotctl: ") {
			return true
		}
	}
	return false
}

// exitCode is the exit code of a finished command: 0 for nil, -1 when
// it did not exit normally.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// outputBuffer collects what a command writes to one stream, for the
// test to read while the command runs; first is closed by the first
// write.
type outputBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	once  sync.Once
	first chan struct{}
}

func newOutputBuffer() *outputBuffer { return &outputBuffer{first: make(chan struct{})} }

func (o *outputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	n, err := o.b.Write(p)
	o.mu.Unlock()
	if n > 0 {
		o.once.Do(func() { close(o.first) })
	}
	return n, err
}

func (o *outputBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
