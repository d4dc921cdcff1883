package clitest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// RunF executes the command newCmd makes (a NewCmdX(f, runF)) with args
// and a runF that captures its options: no hub, no network. The
// configuration is loaded as the root command loads it, from an empty
// environment (the Factory's Getenv: no IOTCTL_* or AZURE_* variable)
// and no config file; setup, when not nil, sees the Factory first (to
// fix its clock or its environment, say). In a test binary whose
// TestMain isolated the process (Main, IsolateProcess) it sets no
// process variable, so its test may run in parallel; elsewhere it
// calls Isolate, and its test may not. It returns the options runF got
// (nil when the command failed before calling it) and the command's
// error.
func RunF[T any](t *testing.T, setup func(*cmdutil.Factory), newCmd func(*cmdutil.Factory, func(*T) error) *cobra.Command, args ...string) (*T, error) {
	t.Helper()
	if !processIsolated.Load() {
		Isolate(t)
	}
	var got *T
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	f.Getenv = func(string) string { return "" }
	if setup != nil {
		setup(f)
	}
	c := newCmd(f, func(o *T) error { got = o; return nil })
	c.PreRunE = func(cmd *cobra.Command, _ []string) error { return f.Load(cmd) }
	c.SetArgs(args)
	c.SetOut(&bytes.Buffer{})
	c.SetErr(&bytes.Buffer{})
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	return got, c.Execute()
}

// UsageCase is a command line that must fail before runF with a usage
// error (exit 3) whose message contains Want.
type UsageCase struct {
	Args []string
	Want string
}

// CheckUsage runs each case through RunF and checks it is refused with
// exit 3 and the words wanted, before runF.
func CheckUsage[T any](t *testing.T, setup func(*cmdutil.Factory), newCmd func(*cmdutil.Factory, func(*T) error) *cobra.Command, cases []UsageCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := RunF(t, setup, newCmd, tc.Args...)
		if err == nil || !strings.Contains(err.Error(), tc.Want) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
			t.Errorf("%q: err %v (exit %d); want exit %d with %q", tc.Args, err, cmdutil.ExitCode(err), cmdutil.ExitUsage, tc.Want)
		}
		if got != nil {
			t.Errorf("%q: runF was called with %+v; want a refusal before it", tc.Args, got)
		}
	}
}
