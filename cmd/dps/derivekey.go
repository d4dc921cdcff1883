package dps

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	hubdps "github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/output"
)

// DeriveKeyOptions are the inputs of `dps derive-key`.
type DeriveKeyOptions struct {
	F              *cmdutil.Factory
	GroupKey       string
	RegistrationID string
}

type derivedKey struct {
	RegistrationID string `json:"registrationId"`
	DeviceKey      string `json:"deviceKey"`
}

// NewCmdDeriveKey returns `dps derive-key`; runF replaces the run
// function in tests (nil: DeriveKeyRun).
func NewCmdDeriveKey(f *cmdutil.Factory, runF func(*DeriveKeyOptions) error) *cobra.Command {
	o := &DeriveKeyOptions{F: f}
	c := &cobra.Command{
		Use:   "derive-key",
		Short: "Derive a device's key from an enrollment group key (offline)",
		Long: `Derive the symmetric key a device of an enrollment group registers with:
base64(HMAC-SHA256(key = base64decode(group key), message = registration id)),
as Azure DPS computes it. The device's identity in the hub gets the same key.

Offline: no network. It prints the key alone (-o json: {registrationId, deviceKey}).`,
		Example: `  $ iotctl dps derive-key --group-key "$GROUP_KEY" --registration-id dev-1
  $ KEY=$(iotctl dps derive-key --group-key "$GROUP_KEY" --registration-id dev-1)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.GroupKey == "" || o.RegistrationID == "" {
				return cmdutil.Usagef("give --group-key and --registration-id")
			}
			if runF != nil {
				return runF(o)
			}
			return DeriveKeyRun(o)
		},
	}
	c.Flags().StringVar(&o.GroupKey, "group-key", "", "the enrollment group's primary or secondary key (base64)")
	c.Flags().StringVar(&o.RegistrationID, "registration-id", "", "the device's registration id")
	return c
}

// DeriveKeyRun derives and prints the key.
func DeriveKeyRun(o *DeriveKeyOptions) error {
	p, err := o.F.Printer()
	if err != nil {
		return err
	}
	if err := hubdps.ValidateID("registration id", o.RegistrationID); err != nil {
		return usage(err)
	}
	key, err := hubdps.DeriveKey(o.GroupKey, o.RegistrationID)
	if err != nil {
		return usage(err)
	}
	if p.Format == output.FormatTable {
		_, err := o.F.IO.Out.Write([]byte(key + "\n"))
		return err
	}
	return p.Print(derivedKey{RegistrationID: o.RegistrationID, DeviceKey: key}, nil)
}

// usage turns a DPS validation error into a usage error (exit 3)
// without its "dps: " prefix.
func usage(err error) error {
	var de *hubdps.Error
	if errors.As(err, &de) {
		return cmdutil.Usagef("%s", de.Message)
	}
	return &cmdutil.UsageError{Err: err}
}
