package cmd

import (
	"context"
	"os"
	"testing"

	"github.com/iotctl/iotctl/internal/clitest"
)

// TestAsIotctl, set to 1 in the environment of this test binary, makes
// the binary iotctl itself: TestMain runs its arguments as main.go
// does. A test runs iotctl as a process of its own this way, without
// building and linking a second binary of the same code.
const TestAsIotctl = "IOTCTL_TEST_AS_IOTCTL"

// TestMain keeps the user's IOTCTL_* variables and config file out of
// every test of the package, once for all of them, so that tests that
// set no variable may run in parallel; and lets more of those run at
// once than there are CPUs, as most of them wait.
func TestMain(m *testing.M) {
	if os.Getenv(TestAsIotctl) == "1" {
		os.Unsetenv(TestAsIotctl)
		os.Exit(Execute(context.Background(), os.Args[1:], SystemStreams()))
	}
	os.Exit(clitest.Main(m))
}
