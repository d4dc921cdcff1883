// Package dps holds the `iotctl dps` commands: enrollments, enrollment
// groups and registration states through the DPS service API, a
// device's registration with a Device Provisioning Service and the
// offline key derivation of enrollment groups.
package dps

import (
	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// NewCmdDPS returns the `dps` command and its subcommands.
func NewCmdDPS(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "dps",
		Short: "Device Provisioning Service: enrollments, registrations, register a device, derive a group member's key",
		Long: `Commands for the Azure IoT Hub Device Provisioning Service (DPS), against Azure
or the local one that 'iotctl hub serve' runs beside the hub.`,
		Example: `  $ iotctl dps enrollment-group create --enrollment-id fleet
  $ iotctl dps derive-key --group-key "$GROUP_KEY" --registration-id dev-1
  $ iotctl dps register --id-scope "$IOTCTL_DPS_ID_SCOPE" --registration-id dev-1 --group-key "$GROUP_KEY"`,
	}
	c.AddCommand(NewCmdDeriveKey(f, nil), NewCmdRegister(f, nil),
		NewCmdEnrollment(f, false), NewCmdEnrollment(f, true), NewCmdRegistration(f))
	return c
}
