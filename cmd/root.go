// Package cmd is iotctl's command tree (cobra). Commands bind flags
// into options and call into pkg/; they hold no protocol logic.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/cmd/demo"
	"github.com/iotctl/iotctl/cmd/device"
	"github.com/iotctl/iotctl/cmd/hub"
	"github.com/iotctl/iotctl/cmd/method"
	"github.com/iotctl/iotctl/pkg/output"
)

// SystemStreams returns the process's real standard streams.
func SystemStreams() *cmdutil.IOStreams {
	return &cmdutil.IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		OutTTY: output.IsTerminal(os.Stdout), ErrTTY: output.IsTerminal(os.Stderr),
	}
}

// NewRootCmd builds the whole command tree on f.
func NewRootCmd(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "iotctl",
		Short: "Azure IoT Hub from the terminal: device simulator, service client and local hub",
		Long: `iotctl works with Azure IoT Hub from a terminal or a shell script. It acts as a
device (MQTT), as a back end (HTTPS and AMQP) and as a hub (a local emulator that
speaks the same protocols, so everything also runs offline).

Configuration: flags win over IOTCTL_* environment variables, which win over the
config file (--config, default ` + cmdutil.DefaultConfigFile() + `).
Exit codes: see 'iotctl help exit-codes'.`,
		Example: `  $ iotctl hub connstr parse "$IOTCTL_CONNECTION_STRING"
  $ iotctl hub sas --connection-string "$CS" --ttl 24h
  $ iotctl help exit-codes`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return f.Load(cmd)
		},
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	pf := root.PersistentFlags()
	pf.String(cmdutil.KeyConfig, "", "config file (default "+cmdutil.DefaultConfigFile()+")")
	pf.StringP(cmdutil.KeyOutput, "o", "table", "output format: table, json or yaml")
	pf.String(cmdutil.KeyLogLevel, "warn", "log level on stderr: debug, info, warn or error")
	pf.String(cmdutil.KeyLogFormat, "text", "log format on stderr: text or json")

	root.AddCommand(
		newCmdVersion(f),
		newCmdCompletion(f),
		hub.NewCmdHub(f),
		device.NewCmdDevice(f),
		method.NewCmdMethod(f),
		demo.NewCmdDemo(f),
	)
	root.SetHelpCommand(newCmdHelp(f, root))
	registerCompletions(f, root)
	return root
}

// Execute runs iotctl with args and returns the exit code. Errors are
// printed on stderr as "iotctl: message".
func Execute(ctx context.Context, args []string, streams *cmdutil.IOStreams) int {
	f := cmdutil.NewFactory(streams)
	root := NewRootCmd(f)
	root.SetArgs(args)
	ran := false
	pre := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, a []string) error {
		ran = true
		return pre(cmd, a)
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cmdutil.ExitOK
	}
	if !ran {
		// cobra failed before any command ran: unknown command, bad
		// arguments, bad flags.
		var ue *cmdutil.UsageError
		if !errors.As(err, &ue) {
			err = &cmdutil.UsageError{Err: err}
		}
	}
	if ctx.Err() != nil && cmdutil.ExitCode(err) == cmdutil.ExitFailure {
		err = &cmdutil.ExitError{Code: cmdutil.ExitInterrupted, Err: err}
	}
	printError(streams.ErrOut, err)
	return cmdutil.ExitCode(err)
}

func printError(w io.Writer, err error) {
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return
	}
	fmt.Fprintf(w, "iotctl: %v\n", err)
	var ue *cmdutil.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintln(w, "Run 'iotctl --help' or add --help to a command for usage.")
	}
}
