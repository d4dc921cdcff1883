// Package cmd is iotctl's command tree (cobra). Commands bind flags
// into options and call into pkg/; they hold no protocol logic.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/cmd/demo"
	"github.com/iotctl/iotctl/cmd/device"
	"github.com/iotctl/iotctl/cmd/dps"
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

// NewRootCmd builds the whole command tree on f. It registers no
// completion of flag values: execute does, for a command line that asks
// for completions (see completing).
func NewRootCmd(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "iotctl",
		Short: "Azure IoT Hub from the terminal: device simulator, service client and local hub",
		Long: `iotctl works with Azure IoT Hub from a terminal or a shell script. It acts as a
device (MQTT), as a back end (HTTPS and AMQP) and as a hub (a local emulator that
speaks the same protocols, so everything also runs offline).

Configuration: every flag can also be set as IOTCTL_<FLAG> (IOTCTL_INTERVAL=3s),
as IOTCTL_<COMMAND>_<FLAG> for one command (IOTCTL_DEVICE_SIMULATE_INTERVAL), and
in the config file (--config or IOTCTL_CONFIG, default
` + cmdutil.DefaultConfigFile() + `), at the top level or in the
command's section ("device simulate:"). Flags win over the environment, which
wins over the file. Unknown keys in the file are reported on stderr.
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
		newCmdVersion(f, nil),
		newCmdCompletion(f, nil),
		hub.NewCmdHub(f),
		device.NewCmdDevice(f),
		method.NewCmdMethod(f),
		demo.NewCmdDemo(f, nil),
		dps.NewCmdDPS(f),
	)
	root.SetHelpCommand(newCmdHelp(f, root))
	requireSubcommands(root)
	return root
}

// completing reports whether args ask for completions: the shell
// scripts of `iotctl completion` run cobra's hidden __complete (or
// __completeNoDesc) command. Only then are the completion functions of
// the tree's flags registered. Cobra keeps those in one process-wide map
// keyed by flag (flagCompletionFunctions in cobra's completions.go,
// github.com/spf13/cobra/pull/2012), which holds every tree ever
// registered there for the life of the process: a process that builds
// many trees (a test binary) grows by each, and a command line that
// completes nothing pays for the registration for nothing.
func completing(args []string) bool {
	return len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd)
}

// requireSubcommands makes root and every command below it that only
// groups others refuse an argument that names none of them: "iotctl hub
// foo" is an unknown command (exit 3), not the help of "iotctl hub" and
// exit 0, and "iotctl foo" says the same in the same words, with the
// commands there are. Without arguments such a command prints its help.
func requireSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireSubcommands(sub)
	}
	if c.Runnable() || !c.HasSubCommands() {
		return
	}
	c.Args = unknownSubcommand
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// unknownSubcommand is the Args of a command that only groups others:
// any argument is an unknown command, with the subcommands it may have
// meant.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default for the root
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(quoteAll(s), " or ") + "?"
	} else {
		var names []string
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		msg += "; its commands are " + strings.Join(names, ", ")
	}
	return &cmdutil.UsageError{Err: errors.New(msg)}
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return q
}

// Execute runs iotctl with args and returns the exit code. Errors are
// printed on stderr as "iotctl: message".
func Execute(ctx context.Context, args []string, streams *cmdutil.IOStreams) int {
	return execute(ctx, cmdutil.NewFactory(streams), args)
}

// ExecuteFactory is Execute with the Factory f: its streams, clock,
// environment (Getenv) and Microsoft Entra ID credential
// (NewCredential). A test that runs iotctl this way sets no process
// variable and may run in parallel.
func ExecuteFactory(ctx context.Context, f *cmdutil.Factory, args []string) int {
	return execute(ctx, f, args)
}

// execute is Execute with the Factory f (its streams, clock and
// environment).
func execute(ctx context.Context, f *cmdutil.Factory, args []string) int {
	streams := f.IO
	root := NewRootCmd(f)
	if completing(args) {
		registerCompletions(f, root)
	}
	root.SetArgs(args)
	ran := false
	pre := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, a []string) error {
		ran = true
		return pre(cmd, a)
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		if ctx.Err() != nil && ran {
			return interrupted(streams.ErrOut)
		}
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
	if ran && ctx.Err() != nil {
		// Interrupted (Ctrl-C): whatever the command returned is a
		// consequence of it.
		return interrupted(streams.ErrOut)
	}
	printError(streams.ErrOut, cmdutil.Explain(err))
	return cmdutil.ExitCode(err)
}

// interrupted reports the end of a run cut short by its context and
// returns its exit code.
func interrupted(w io.Writer) int {
	fmt.Fprintln(w, "iotctl: interrupted")
	return cmdutil.ExitInterrupted
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
