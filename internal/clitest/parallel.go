package clitest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// RaiseParallel, from TestMain, lets two parallel tests per CPU run at
// once unless the command line set -test.parallel (go test -parallel).
// Go's default, one per CPU (GOMAXPROCS), suits tests that keep a CPU
// busy; the run tests of iotctl's commands mostly wait, on a hub over
// loopback and on their commands' --timeout, so on a 2-CPU machine the
// default runs them nearly one after the other.
func RaiseParallel() {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(2*runtime.GOMAXPROCS(0)))
	}
}

// Main runs the tests of a command package, from TestMain: with more
// parallel tests at once (RaiseParallel), in a process kept from the
// user's configuration (IsolateProcess). It returns the exit code.
func Main(m *testing.M) int {
	RaiseParallel()
	cleanup, err := IsolateProcess()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	return m.Run()
}

// HubConfig writes a config file with the service connection string cs
// and the hub's CA file, and returns its path: a command run with
// --config and that file reaches the hub with no IOTCTL_* variable set,
// so its test may run in parallel.
func HubConfig(t testing.TB, cs, caFile string) string {
	t.Helper()
	config := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "connection-string: '" + cs + "'\nca-file: '" + caFile + "'\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return config
}
