package hub

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// runFlags executes the command newCmd makes with args and a runF that
// captures its options: no hub, no network. It returns the options
// runF got (nil when the command failed before calling it) and the
// command's error.
func runFlags[T any](t *testing.T, newCmd func(*cmdutil.Factory, func(*T) error) *cobra.Command, args ...string) (*T, error) {
	t.Helper()
	var got *T
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	c := newCmd(f, func(o *T) error { got = o; return nil })
	c.SetArgs(args)
	c.SetOut(&bytes.Buffer{})
	c.SetErr(&bytes.Buffer{})
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	err := c.Execute()
	return got, err
}

// usageCase is a command line that must fail before runF with a usage
// error (exit 3) whose message contains want.
type usageCase struct {
	args []string
	want string
}

// checkUsage runs each case through runFlags and checks it is refused
// with exit 3 and the words wanted, before runF.
func checkUsage[T any](t *testing.T, newCmd func(*cmdutil.Factory, func(*T) error) *cobra.Command, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := runFlags(t, newCmd, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
			t.Errorf("%q: err %v (exit %d); want exit %d with %q", tc.args, err, cmdutil.ExitCode(err), cmdutil.ExitUsage, tc.want)
		}
		if got != nil {
			t.Errorf("%q: runF was called with %+v; want a refusal before it", tc.args, got)
		}
	}
}

func TestTwinFlags(t *testing.T) {
	show, err := runFlags(t, newCmdTwinShow, "-d", "dev1", "-m", "mod1")
	if err != nil || show == nil || show.DeviceID != "dev1" || show.ModuleID != "mod1" {
		t.Errorf("twin show -d dev1 -m mod1 = %+v, %v", show, err)
	}
	upd, err := runFlags(t, newCmdTwinUpdate, "dev1", "--desired", `{"a":1}`, "--tags", `{"t":null}`, "--etag", "AAA=")
	if err != nil || upd == nil || upd.DeviceID != "dev1" || upd.Desired != `{"a":1}` || upd.Tags != `{"t":null}` || upd.Etag != "AAA=" {
		t.Errorf("twin update = %+v, %v", upd, err)
	}
	checkUsage(t, newCmdTwinShow, []usageCase{
		{nil, "no device id"},
		{[]string{"dev1", "-d", "dev2"}, "twice"},
	})
	checkUsage(t, newCmdTwinUpdate, []usageCase{
		{[]string{"dev1"}, "nothing to update"},
		{[]string{"dev1", "--desired", `[1]`}, "--desired must be a JSON object"},
		{[]string{"dev1", "--desired", `null`}, "--desired must be a JSON object"},
		{[]string{"dev1", "--tags", `{bad`}, "--tags must be a JSON object"},
		{[]string{"--tags", `{"a":1}`}, "no device id"},
	})
}
