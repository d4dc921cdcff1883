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
	parent.AddCommand(NewCmdRegistrationShow(f, nil), NewCmdRegistrationDelete(f, nil))
	return parent
}

// NewCmdRegistrationShow returns `dps registration show`; runF
// replaces RegistrationShowRun in tests.
func NewCmdRegistrationShow(f *cmdutil.Factory, runF func(*RegistrationOptions) error) *cobra.Command {
	o := &RegistrationOptions{F: f}
	cmd := &cobra.Command{
		Use:     "show [REGISTRATION_ID]",
		Short:   "Show a device's registration state",
		Long:    "Show a device's registration state.\n\nName it by its argument or by --registration-id. Exits 5 when the device has\nnot registered.",
		Example: "  $ iotctl dps registration show dev-1 -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.RegistrationID, err = cmdutil.IDArg(args, "registration id", "registration-id", o.RegistrationID); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return RegistrationShowRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.RegistrationID, "registration-id", "", "the device's registration id (or give it as the argument)")
	addServiceFlags(cmd.Flags())
	return cmd
}

// NewCmdRegistrationDelete returns `dps registration delete`; runF
// replaces RegistrationDeleteRun in tests.
func NewCmdRegistrationDelete(f *cmdutil.Factory, runF func(*RegistrationOptions) error) *cobra.Command {
	o := &RegistrationOptions{F: f}
	cmd := &cobra.Command{
		Use:     "delete [REGISTRATION_ID]",
		Short:   "Delete a device's registration state",
		Long:    "Delete a device's registration state. The device stays in the hub; its next\nregistration is a first assignment.\n\nName it by its argument or by --registration-id. Exits 5 when the device has\nnot registered.",
		Example: "  $ iotctl dps registration delete dev-1",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.RegistrationID, err = cmdutil.IDArg(args, "registration id", "registration-id", o.RegistrationID); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return RegistrationDeleteRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.RegistrationID, "registration-id", "", "the device's registration id (or give it as the argument)")
	addServiceFlags(cmd.Flags())
	return cmd
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
