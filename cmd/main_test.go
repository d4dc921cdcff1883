package cmd

import (
	"fmt"
	"os"
	"testing"

	"github.com/iotctl/iotctl/internal/clitest"
)

// TestMain keeps the user's IOTCTL_* variables and config file out of
// every test of the package, once for all of them, so that tests that
// set no variable may run in parallel; and lets more of those run at
// once than there are CPUs, as most of them wait.
func TestMain(m *testing.M) {
	clitest.RaiseParallel()
	cleanup, err := clitest.IsolateProcess()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}
