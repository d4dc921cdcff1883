package cmd

import (
	"context"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// ExecuteEnv is Execute with env for the whole environment that the
// configuration reads (IOTCTL_*, see cmdutil.Factory.Getenv) instead of
// the process's: a test that runs iotctl this way sets no process
// variable and may run in parallel.
func ExecuteEnv(ctx context.Context, args []string, streams *cmdutil.IOStreams, env map[string]string) int {
	f := cmdutil.NewFactory(streams)
	f.Getenv = func(k string) string { return env[k] }
	return execute(ctx, f, args)
}
