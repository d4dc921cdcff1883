// Package method holds `iotctl method`: direct methods, as a back end
// calls them.
package method

import (
	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// NewCmdMethod returns the `method` command.
func NewCmdMethod(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:     "method",
		Short:   "Invoke direct methods on devices and modules",
		Example: `  $ iotctl method invoke --device-id MyGoDevice --name SetTelemetryInterval --payload 10`,
	}
	c.AddCommand(NewCmdInvoke(f, nil))
	return c
}
