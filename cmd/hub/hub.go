// Package hub holds the `iotctl hub` commands: the local hub, the
// registry, twins, cloud-to-device messages and offline helpers for
// connection strings and SAS tokens.
package hub

import (
	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// NewCmdHub returns the `hub` command and its subcommands.
func NewCmdHub(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "hub",
		Short: "Work with an IoT hub: local emulator, registry, twins, messages, connection strings, SAS tokens",
		Long: `Commands that act on an IoT hub as its back end does, plus the local hub emulator
and offline helpers for connection strings and SAS tokens.`,
		Example: `  $ iotctl hub connstr parse "$CS"
  $ iotctl hub sas --connection-string "$CS" --ttl 1h`,
	}
	c.AddCommand(
		newCmdServe(f, nil),
		newCmdDevice(f),
		newCmdDeviceCA(f),
		newCmdTwin(f),
		newCmdQuery(f, nil),
		newCmdC2D(f),
		newCmdFeedback(f, nil),
		newCmdFileNotifications(f, nil),
		newCmdMonitor(f, nil),
		newCmdConnstr(f),
		newCmdSAS(f, nil),
	)
	return c
}
