package hub

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/output"
)

// File names `hub device-ca create` writes.
const (
	deviceCAFile    = "device-ca.pem"
	deviceCAKeyFile = "device-ca-key.pem"
)

func newCmdDeviceCA(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "device-ca",
		Short: "Make a CA that signs X.509 device certificates",
		Long: `A device CA signs the certificates of devices registered with certificateAuthority
authentication (iotctl hub device create --auth x509-ca), and of the devices of a
certificate fleet (iotctl device simulate --devices N --device-ca).`,
		Example: `  $ iotctl hub device-ca create ./certs`,
	}
	c.AddCommand(newCmdDeviceCACreate(f, nil))
	return c
}

// deviceCA is what `hub device-ca create` prints.
type deviceCA struct {
	CertFile string    `json:"certFile"`
	KeyFile  string    `json:"keyFile"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
}

// deviceCACreateOptions are the inputs of `hub device-ca create`.
type deviceCACreateOptions struct {
	f    *cmdutil.Factory
	Dir  string
	Name string
	Days int
}

// newCmdDeviceCACreate returns `hub device-ca create`; runF replaces
// deviceCACreateRun in tests of flag parsing (nil: deviceCACreateRun).
func newCmdDeviceCACreate(f *cmdutil.Factory, runF func(*deviceCACreateOptions) error) *cobra.Command {
	opts := &deviceCACreateOptions{f: f, Dir: "."}
	c := &cobra.Command{
		Use:   "create [DIR]",
		Short: "Make a device CA certificate and key in DIR",
		Long: `Make a CA certificate and its key (ECDSA P-256) for signing X.509 device
certificates, and write them to DIR (default: the current directory) as
device-ca.pem and device-ca-key.pem (readable by you only). Existing files are
never replaced: the command exits 3 instead.

Give the certificate to the local hub with 'iotctl hub serve --device-ca
DIR/device-ca.pem', and both files to a certificate fleet with 'iotctl device
simulate --devices N --device-ca DIR/device-ca.pem --device-ca-key
DIR/device-ca-key.pem'. On Azure IoT Hub, upload the certificate and prove you
hold its key before devices it signs can connect. This is a CA for testing: keep
production keys elsewhere.`,
		Example: `  $ iotctl hub device-ca create ./certs
  $ iotctl hub serve --device-ca ./certs/device-ca.pem
  $ iotctl device simulate --devices 100 --hub-connection-string "$IOTCTL_CONNECTION_STRING" \
      --device-ca ./certs/device-ca.pem --device-ca-key ./certs/device-ca-key.pem`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if opts.Days < 1 {
				return cmdutil.Usagef("--days must be at least 1")
			}
			if runF != nil {
				return runF(opts)
			}
			return deviceCACreateRun(opts)
		},
	}
	c.Flags().StringVar(&opts.Name, "name", "iotctl device CA", "the CA's subject common name")
	c.Flags().IntVar(&opts.Days, "days", 365, "days the CA is valid")
	return c
}

// deviceCACreateRun makes the CA, valid from an hour before the
// Factory's clock for --days, and writes its files.
func deviceCACreateRun(opts *deviceCACreateOptions) error {
	p, err := opts.f.Printer(output.FormatTable, output.FormatJSON, output.FormatYAML)
	if err != nil {
		return err
	}
	dir := opts.Dir
	out := deviceCA{CertFile: filepath.Join(dir, deviceCAFile), KeyFile: filepath.Join(dir, deviceCAKeyFile), Subject: "CN=" + opts.Name}
	if err := checkNewPair(dir, out.CertFile, out.KeyFile); err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	now := opts.f.Now()
	out.NotAfter = now.Add(time.Duration(opts.Days) * 24 * time.Hour).UTC().Truncate(time.Second)
	certPEM, keyPEM, err := devicecert.NewCA(opts.Name, now.Add(-time.Hour), out.NotAfter)
	if err != nil {
		return fmt.Errorf("making the CA: %w", err)
	}
	if err := writePair(out.CertFile, certPEM, out.KeyFile, keyPEM); err != nil {
		return err
	}
	return p.Print(out, func(t *output.Table) {
		t.Header("FIELD", "VALUE")
		t.Row("certificate", out.CertFile)
		t.Row("key", out.KeyFile)
		t.Row("subject", out.Subject)
		t.Row("valid until", out.NotAfter.Format(time.RFC3339))
	})
}
