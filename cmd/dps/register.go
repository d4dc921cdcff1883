package dps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	hubdps "github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// Configuration keys of `dps register` read besides its flags: the ID
// scope `hub serve` exports (IOTCTL_DPS_ID_SCOPE).
const keyDPSIDScope = "dps-id-scope"

// RegisterOptions are the inputs of `dps register`.
type RegisterOptions struct {
	F              *cmdutil.Factory
	DPSHost        string
	IDScope        string
	RegistrationID string
	// Key is the device's symmetric key, or with CertFile the PEM file
	// of the certificate's private key.
	Key      string
	GroupKey string
	CertFile string
	Payload  string
	Timeout  time.Duration
}

// registration is what `dps register` prints.
type registration struct {
	RegistrationID   string          `json:"registrationId"`
	Status           string          `json:"status"`
	Substatus        string          `json:"substatus,omitempty"`
	AssignedHub      string          `json:"assignedHub"`
	DeviceID         string          `json:"deviceId"`
	ConnectionString string          `json:"connectionString"`
	Payload          json.RawMessage `json:"payload,omitempty"`
}

// NewCmdRegister returns `dps register`; runF replaces the run function
// in tests (nil: RegisterRun).
func NewCmdRegister(f *cmdutil.Factory, runF func(*RegisterOptions) error) *cobra.Command {
	o := &RegisterOptions{F: f}
	c := &cobra.Command{
		Use:   "register",
		Short: "Register a device with DPS and print the hub it was assigned and its connection string",
		Long: `Register a device with a Device Provisioning Service over HTTPS, as the device
SDKs do (PUT .../register, then poll the operation), and print the hub DPS
assigned it, its device id and its device connection string; -o env prints an
export of IOTCTL_DEVICE_CONNECTION_STRING for eval.

Attestation:
  --key KEY          the device's symmetric key (individual enrollment)
  --group-key KEY    an enrollment group's key: the device key is derived from it
  --cert FILE        an X.509 certificate (CN = registration id), with --key FILE
                     for its private key when it is not in the same file

The ID scope comes from --id-scope or IOTCTL_DPS_ID_SCOPE (which 'hub serve'
exports). --dps-host defaults to Azure's global endpoint
(global.azure-devices-provisioning.net), or to the local hub's host when the
configured service connection string (IOTCTL_CONNECTION_STRING) names a hub that
is not Azure's. Trust a local hub's CA with --ca-file (IOTCTL_CA_FILE).

Exit codes: 4 when DPS refuses the device (wrong key or certificate, disabled or
missing enrollment, another ID scope), 1 when the registration failed, 7 on
--timeout.`,
		Example: `  $ iotctl dps register --registration-id dev-1 --group-key "$GROUP_KEY"
  $ eval "$(iotctl dps register --registration-id dev-1 --key "$KEY" -o env)"; iotctl device send --data hi
  $ iotctl dps register --id-scope 0ne00111111 --registration-id cam-1 --cert cam-1.pem --key cam-1-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return RegisterRun(cmd.Context(), o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.DPSHost, "dps-host", "", "DPS device endpoint host[:port] (default: the global endpoint, or the local hub's host)")
	fl.StringVar(&o.IDScope, "id-scope", "", "the DPS ID scope (default: IOTCTL_DPS_ID_SCOPE, or dps-id-scope in the config file)")
	// The key hub serve's env.sh exports, and the one a fleet through
	// DPS will read.
	cmdutil.SetConfigKey(fl, "id-scope", keyDPSIDScope)
	fl.StringVar(&o.RegistrationID, "registration-id", "", "the device's registration id")
	fl.StringVar(&o.Key, "key", "", "the device's symmetric key, or with --cert the private key file (PEM)")
	fl.StringVar(&o.GroupKey, "group-key", "", "an enrollment group key to derive the device key from")
	fl.StringVar(&o.CertFile, "cert", "", "X.509 certificate file (PEM) for X.509 attestation")
	fl.StringVar(&o.Payload, "payload", "", "custom JSON data sent with the registration")
	fl.DurationVar(&o.Timeout, "timeout", time.Minute, "how long to wait for DPS to assign the device")
	fl.String(cmdutil.KeyConnectionString, "", "service connection string whose host is the default --dps-host when it is not Azure's")
	fl.String(cmdutil.KeyCAFile, "", "PEM file of CA certificates to trust besides the system's (a local hub's ca.pem)")
	return c
}

func (o *RegisterOptions) check() error {
	if o.IDScope == "" {
		return cmdutil.Usagef("no ID scope: pass --id-scope or set IOTCTL_DPS_ID_SCOPE (hub serve prints it)")
	}
	if o.RegistrationID == "" {
		return cmdutil.Usagef("give --registration-id")
	}
	if err := hubdps.ValidateID("registration id", o.RegistrationID); err != nil {
		return usage(err)
	}
	n := 0
	for _, set := range []bool{o.CertFile != "", o.GroupKey != "", o.Key != "" && o.CertFile == ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return cmdutil.Usagef("give one way to attest: --key (symmetric key), --group-key (derived key) or --cert (X.509)")
	}
	if o.Payload != "" && !json.Valid([]byte(o.Payload)) {
		return cmdutil.Usagef("--payload is not valid JSON")
	}
	if o.Timeout <= 0 {
		return cmdutil.Usagef("--timeout must be positive")
	}
	return nil
}

// dpsHost is --dps-host, else the configured hub's host when it is not
// Azure's, else the global endpoint.
func (o *RegisterOptions) dpsHost() string {
	if o.DPSHost != "" {
		return o.DPSHost
	}
	return provisioning.DefaultHost(o.F.V.GetString(cmdutil.KeyConnectionString))
}

// RegisterRun registers the device and prints the outcome.
func RegisterRun(ctx context.Context, o *RegisterOptions) error {
	format, err := o.F.Output(output.FormatTable, output.FormatJSON, output.FormatYAML, "env")
	if err != nil {
		return err
	}
	po := &provisioning.Options{Host: o.dpsHost(), IDScope: o.IDScope, RegistrationID: o.RegistrationID, SymmetricKey: o.Key}
	if o.Payload != "" {
		po.Payload = json.RawMessage(o.Payload)
	}
	switch {
	case o.GroupKey != "":
		if po.SymmetricKey, err = hubdps.DeriveKey(o.GroupKey, o.RegistrationID); err != nil {
			return cmdutil.Usagef("--group-key is not base64: copy the enrollment group's primary or secondary key whole")
		}
	case o.CertFile != "":
		cert, err := device.LoadKeyPair(o.CertFile, o.Key)
		if err != nil {
			return &cmdutil.UsageError{Err: err}
		}
		po.Certificate, po.SymmetricKey = cert, ""
	}
	if po.RootCAs, err = rootCAs(o.F); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	res, err := provisioning.Register(ctx, po)
	if err != nil {
		return exitError(err, po.Host)
	}
	cs := connstr.ConnectionString{Kind: connstr.KindDevice, HostName: res.State.AssignedHub, DeviceID: res.State.DeviceID, SharedAccessKey: po.SymmetricKey}
	if po.Certificate != nil {
		cs.SharedAccessKey, cs.X509 = "", true
	}
	out := registration{RegistrationID: o.RegistrationID, Status: res.State.Status, Substatus: res.State.Substatus,
		AssignedHub: res.State.AssignedHub, DeviceID: res.State.DeviceID, ConnectionString: cs.Format(), Payload: res.State.Payload}
	if format == "env" {
		_, err := fmt.Fprintf(o.F.IO.Out, "export IOTCTL_DEVICE_CONNECTION_STRING=%s\n", output.ShellQuote(out.ConnectionString))
		return err
	}
	p := output.New(o.F.IO.Out, format, o.F.IO.OutTTY)
	return p.Print(out, func(t *output.Table) {
		t.Header("FIELD", "VALUE")
		t.Row("registration id", out.RegistrationID)
		t.Row("status", out.Status+" ("+out.Substatus+")")
		t.Row("assigned hub", out.AssignedHub)
		t.Row("device id", out.DeviceID)
		t.Row("connection string", out.ConnectionString)
	})
}

// exitError maps a registration error to iotctl's exit codes: a
// refusal exits 4, a deadline 7, the rest 1.
func exitError(err error, host string) error {
	var pe *provisioning.Error
	switch {
	case errors.As(err, &pe) && pe.Refused():
		return &cmdutil.ExitError{Code: cmdutil.ExitAuth, Err: fmt.Errorf("DPS at %s refused the registration: %w", host, err)}
	case errors.Is(err, context.DeadlineExceeded):
		return &cmdutil.ExitError{Code: cmdutil.ExitTimeout, Err: fmt.Errorf("DPS at %s did not assign the device within --timeout: %w", host, err)}
	case errors.Is(err, provisioning.ErrUsage):
		return &cmdutil.UsageError{Err: err}
	}
	return fmt.Errorf("registering with DPS at %s: %w", host, err)
}
