// Package clitest holds what the tests of iotctl's commands share.
package clitest

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// processIsolated is set once IsolateProcess has kept the user's
// configuration out of the whole test binary.
var processIsolated atomic.Bool

// Isolate keeps the user's configuration out of a test of iotctl's
// commands: it clears every IOTCTL_* variable and points the default
// config file at empty directories, for the rest of t.
func Isolate(t testing.TB) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "IOTCTL_") {
			t.Setenv(k, "")
		}
	}
}

// proxyVars are the variables of an HTTP proxy that iotctl's commands
// and Go's net/http read (http.ProxyFromEnvironment).
var proxyVars = []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// IsolateProcess is Isolate for a whole test binary, from TestMain: it
// clears every IOTCTL_* variable and the proxy variables, and points
// HOME and XDG_CONFIG_HOME at a new empty directory, so that tests may
// run in parallel without t.Setenv. It returns a function that removes
// the directory.
func IsolateProcess() (cleanup func(), err error) {
	home, err := os.MkdirTemp("", "iotctl-test-home-")
	if err != nil {
		return nil, err
	}
	processIsolated.Store(true)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "IOTCTL_") {
			os.Unsetenv(k)
		}
	}
	for _, k := range proxyVars {
		os.Unsetenv(k)
	}
	os.Setenv("HOME", home)
	os.Setenv("XDG_CONFIG_HOME", home+"/.config")
	return func() { os.RemoveAll(home) }, nil
}
