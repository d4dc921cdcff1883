package cmd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/cmd/demo"
	"github.com/iotctl/iotctl/internal/clitest"
)

// The demo's flags, and its refusals before anything starts, through
// runF.
func TestDemoFlags(t *testing.T) {
	run := func(args ...string) (*demo.Options, error) { return clitest.RunF(t, nil, demo.NewCmdDemo, args...) }
	got, err := run("--invoke-after", "3s", "--payload", "2", "--after", "2", "--interval", "500ms")
	if err != nil || got == nil || got.InvokeAfter != 3*time.Second || got.Payload != "2" || got.After != 2 || got.Interval != 500*time.Millisecond {
		t.Errorf("demo flags = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--after", "0"}, "--after must be at least 1"},
		{[]string{"--invoke-after", "0s"}, "must be positive"},
		{[]string{"--interval", "-1s"}, "must be positive"},
		{[]string{"--payload", "ten"}, "is not JSON"},
	} {
		got, err := run(tc.args...)
		if got != nil || err == nil || !strings.Contains(err.Error(), tc.want) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
			t.Errorf("demo %q = %+v, %v; want exit 3 with %q before runF", tc.args, got, err, tc.want)
		}
	}
}
