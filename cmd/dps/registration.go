package dps

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// RegistrationOptions are the inputs of `dps registration show|delete`.
type RegistrationOptions struct {
	F              *cmdutil.Factory
	RegistrationID string
}

// NewCmdRegistration returns `dps registration` with show and delete.
func NewCmdRegistration(f *cmdutil.Factory) *cobra.Command {
	parent := &cobra.Command{
		Use:   "registration",
		Short: "Show or delete a device's registration state in a DPS",
		Long: `Show or delete the registration state DPS keeps for a device (status, assigned
hub, device id, substatus, times), with the DPS service connection string
(--dps-connection-string or IOTCTL_DPS_CONNECTION_STRING). Deleting it leaves
the device in the hub; the device's next registration is a first assignment.
Exits 5 when the device has not registered.`,
		Example: `  $ iotctl dps registration show dev-1
  $ iotctl dps registration delete dev-1`,
	}
	show := &cobra.Command{
		Use:     "show REGISTRATION_ID",
		Short:   "Show a device's registration state",
		Example: "  $ iotctl dps registration show dev-1 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return RegistrationShowRun(cmd.Context(), &RegistrationOptions{F: f, RegistrationID: args[0]})
		},
	}
	del := &cobra.Command{
		Use:     "delete REGISTRATION_ID",
		Short:   "Delete a device's registration state",
		Example: "  $ iotctl dps registration delete dev-1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return RegistrationDeleteRun(cmd.Context(), &RegistrationOptions{F: f, RegistrationID: args[0]})
		},
	}
	for _, c := range []*cobra.Command{show, del} {
		addServiceFlags(c.Flags())
		parent.AddCommand(c)
	}
	return parent
}

// RegistrationShowRun prints a registration state.
func RegistrationShowRun(ctx context.Context, o *RegistrationOptions) error {
	p, err := o.F.Printer()
	if err != nil {
		return err
	}
	return withService(ctx, o.F, func(ctx context.Context, s *provisioning.Service) error {
		st, err := s.RegistrationState(ctx, o.RegistrationID)
		if err != nil {
			return err
		}
		return p.Print(st, func(t *output.Table) {
			t.Header("FIELD", "VALUE")
			t.Row("registration id", st.RegistrationID)
			t.Row("status", st.Status)
			if st.Substatus != "" {
				t.Row("substatus", st.Substatus)
			}
			t.Row("assigned hub", st.AssignedHub)
			t.Row("device id", st.DeviceID)
			if st.ErrorMessage != "" {
				t.Row("error", fmt.Sprintf("%d %s", st.ErrorCode, st.ErrorMessage))
			}
			t.Row("created", st.CreatedDateTimeUTC)
			t.Row("updated", st.LastUpdatedDateTimeUTC)
			t.Row("etag", st.Etag)
		})
	})
}

// RegistrationDeleteRun deletes a registration state.
func RegistrationDeleteRun(ctx context.Context, o *RegistrationOptions) error {
	return withService(ctx, o.F, func(ctx context.Context, s *provisioning.Service) error {
		if err := s.DeleteRegistrationState(ctx, o.RegistrationID); err != nil {
			return err
		}
		fmt.Fprintf(o.F.IO.Diag(), "deleted the registration state of %s\n", o.RegistrationID)
		return nil
	})
}
