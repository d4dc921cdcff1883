package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

const exitCodesTopic = "exit-codes"

func newCmdHelp(f *cmdutil.Factory, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command | " + exitCodesTopic + "]",
		Short: "Help about any command, or the exit-code table",
		Long: `Help about any command. 'iotctl help exit-codes' prints the exit codes that
scripts can rely on.`,
		Example: "  $ iotctl help hub sas\n  $ iotctl help exit-codes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == exitCodesTopic {
				return printExitCodes(f.IO.Out)
			}
			target, _, err := root.Find(args)
			if err != nil || target == nil {
				return cmdutil.Usagef("unknown help topic %q", args)
			}
			return target.Help()
		},
	}
}

func printExitCodes(w io.Writer) error {
	_, err := fmt.Fprint(w, "iotctl exit codes:\n\n"+cmdutil.ExitCodesText())
	return err
}
