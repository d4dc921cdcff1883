package hub

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
)

// deviceUpdateOptions are the inputs of `hub device update` and `hub
// device renew-key`: what to change in an identity.
type deviceUpdateOptions struct {
	f            *cmdutil.Factory
	DeviceID     string
	ModuleID     string
	Status       string // "", enabled or disabled
	StatusReason *string
	PrimaryKey   string
	SecondaryKey string
	Edge         *bool
	KeyType      string // renew-key: primary, secondary, both or swap
	Etag         string
	ShowSecrets  bool
}

func newCmdDeviceUpdate(f *cmdutil.Factory, runF func(*deviceUpdateOptions) error) *cobra.Command {
	opts := &deviceUpdateOptions{f: f}
	var deviceID, reason string
	var edge bool
	c := &cobra.Command{
		Use:   "update [DEVICE_ID]",
		Short: "Change a device's status, keys or IoT Edge flag (or a module's keys)",
		Long: `Change an existing device or module identity: --status enabled|disabled (a
disabled device is refused when it next connects or authenticates), with
--status-reason; --primary-key/--secondary-key (base64 of 16 to 64 bytes) for a
sas identity; --edge=true|false for a device. What is not given stays as it is.

The identity is read, changed and written back only if nobody changed it in
between (its etag), or only if its etag is --etag. Keys are printed only with
--show-secrets.`,
		Example: `  $ iotctl hub device update MyGoDevice --status disabled --status-reason "stolen"
  $ iotctl hub device update MyGoDevice --status enabled
  $ iotctl hub device update dev1 --module-id mod1 --primary-key "$(head -c 32 /dev/urandom | base64)"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, deviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			fl := cmd.Flags()
			if fl.Changed("status-reason") {
				opts.StatusReason = &reason
			}
			if fl.Changed("edge") {
				opts.Edge = &edge
			}
			if err := opts.checkUpdate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return deviceUpdateRun(cmd.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&deviceID, "device-id", "d", "", "device id")
	fl.StringVarP(&opts.ModuleID, "module-id", "m", "", "update a module of the device instead")
	fl.StringVar(&opts.Status, "status", "", "enabled or disabled (default: unchanged)")
	fl.StringVar(&reason, "status-reason", "", "why the status is what it is (default: unchanged)")
	fl.StringVar(&opts.PrimaryKey, "primary-key", "", "new primary key, base64 (default: unchanged)")
	fl.StringVar(&opts.SecondaryKey, "secondary-key", "", "new secondary key, base64 (default: unchanged)")
	fl.BoolVar(&edge, "edge", false, "mark the device as an IoT Edge device, or not with --edge=false (default: unchanged)")
	fl.StringVar(&opts.Etag, "etag", "", "update only if the identity's etag is this (default: the etag just read)")
	fl.BoolVar(&opts.ShowSecrets, "show-secrets", false, "print the keys and the connection string")
	return c
}

func (o *deviceUpdateOptions) checkUpdate() error {
	if o.Status != "" && o.Status != "enabled" && o.Status != "disabled" {
		return cmdutil.Usagef("--status %q: use enabled or disabled", o.Status)
	}
	if o.Status == "" && o.StatusReason == nil && o.PrimaryKey == "" && o.SecondaryKey == "" && o.Edge == nil {
		return cmdutil.Usagef("nothing to update: give --status, --status-reason, --primary-key, --secondary-key or --edge")
	}
	if o.ModuleID != "" && (o.Status != "" || o.StatusReason != nil || o.Edge != nil) {
		return cmdutil.Usagef("a module has keys but no status or IoT Edge flag of its own: --module-id goes with --primary-key and --secondary-key only")
	}
	return checkCreateFlags("sas", o.PrimaryKey, o.SecondaryKey, "", "", "", "")
}

func newCmdDeviceRenewKey(f *cmdutil.Factory, runF func(*deviceUpdateOptions) error) *cobra.Command {
	opts := &deviceUpdateOptions{f: f}
	var deviceID string
	c := &cobra.Command{
		Use:   "renew-key [DEVICE_ID]",
		Short: "Make new keys for a device or module (or swap its two keys)",
		Long: `Replace a sas identity's primary key, secondary key or both with new random keys
(32 bytes, as IoT Hub makes them), or swap the two (--key-type swap), as 'az iot
hub device-identity renew-key' does. Connections that use the old key go on until
they next authenticate. The new keys are printed only with --show-secrets;
'hub device show --show-connection-string' prints the new connection string.`,
		Example: `  $ iotctl hub device renew-key MyGoDevice --key-type primary
  $ iotctl hub device renew-key dev1 --module-id mod1 --key-type swap
  $ iotctl hub device renew-key MyGoDevice --key-type both --show-secrets -o json | jq -r .connectionString`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, deviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			switch opts.KeyType {
			case "primary", "secondary", "both", "swap":
			default:
				return cmdutil.Usagef("--key-type %q: use primary, secondary, both or swap", opts.KeyType)
			}
			if runF != nil {
				return runF(opts)
			}
			return deviceUpdateRun(cmd.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&deviceID, "device-id", "d", "", "device id")
	fl.StringVarP(&opts.ModuleID, "module-id", "m", "", "renew a module's keys instead")
	fl.StringVar(&opts.KeyType, "key-type", "primary", "which key: primary, secondary, both or swap")
	fl.StringVar(&opts.Etag, "etag", "", "renew only if the identity's etag is this (default: the etag just read)")
	fl.BoolVar(&opts.ShowSecrets, "show-secrets", false, "print the new keys and the connection string")
	return c
}

// deviceUpdateRun reads the identity, changes it as opts say and writes
// it back on the etag it read (or opts.Etag).
func deviceUpdateRun(ctx context.Context, opts *deviceUpdateOptions) error {
	p, client, err := printerClient(ctx, opts.f)
	if err != nil {
		return err
	}
	if opts.ModuleID != "" {
		m, err := client.GetModule(ctx, opts.DeviceID, opts.ModuleID)
		if err != nil {
			return err
		}
		if err := opts.applyKeys(m.Authentication, opts.DeviceID+"/"+opts.ModuleID); err != nil {
			return err
		}
		m, err = client.UpdateModule(ctx, m, opts.etag(m.Etag))
		if err != nil {
			return err
		}
		return printIdentity(p, moduleIdentity(m, opts.ShowSecrets, client.HostName()))
	}
	d, err := client.GetDevice(ctx, opts.DeviceID)
	if err != nil {
		return err
	}
	if opts.Status != "" {
		d.Status = opts.Status
	}
	if opts.StatusReason != nil {
		d.StatusReason = opts.StatusReason
	}
	if opts.Edge != nil {
		if d.Capabilities == nil {
			d.Capabilities = &service.Capabilities{}
		}
		d.Capabilities.IotEdge = *opts.Edge
	}
	if err := opts.applyKeys(d.Authentication, opts.DeviceID); err != nil {
		return err
	}
	d, err = client.UpdateDevice(ctx, d, opts.etag(d.Etag))
	if err != nil {
		return err
	}
	return printIdentity(p, deviceIdentity(d, opts.ShowSecrets, client.HostName()))
}

func (o *deviceUpdateOptions) etag(read string) string {
	if o.Etag != "" {
		return o.Etag
	}
	return read
}

// applyKeys sets the keys opts give, or renews them (KeyType), on a
// sas identity; an X.509 identity has no keys to set.
func (o *deviceUpdateOptions) applyKeys(a *service.Authentication, who string) error {
	if o.KeyType == "" && o.PrimaryKey == "" && o.SecondaryKey == "" {
		return nil
	}
	var k *service.SymmetricKey
	if a != nil {
		k = a.Keys()
	}
	if k == nil {
		typ := "no authentication"
		if a != nil {
			typ = a.Type
		}
		return cmdutil.Usagef("%s authenticates with %s, not keys: it has no keys to set", who, typ)
	}
	if o.PrimaryKey != "" {
		k.PrimaryKey = o.PrimaryKey
	}
	if o.SecondaryKey != "" {
		k.SecondaryKey = o.SecondaryKey
	}
	switch o.KeyType {
	case "primary":
		k.PrimaryKey = sas.NewKey()
	case "secondary":
		k.SecondaryKey = sas.NewKey()
	case "both":
		k.PrimaryKey, k.SecondaryKey = sas.NewKey(), sas.NewKey()
	case "swap":
		k.PrimaryKey, k.SecondaryKey = k.SecondaryKey, k.PrimaryKey
	}
	return nil
}

// c2dPurgeOptions are the inputs of `hub c2d purge`.
type c2dPurgeOptions struct {
	f        *cmdutil.Factory
	DeviceID string
}

func newCmdC2DPurge(f *cmdutil.Factory, runF func(*c2dPurgeOptions) error) *cobra.Command {
	opts := &c2dPurgeOptions{f: f}
	var deviceID string
	c := &cobra.Command{
		Use:   "purge [DEVICE_ID]",
		Short: "Delete every cloud-to-device message queued for a device",
		Long: `Delete every cloud-to-device message queued for a device (HTTPS), including one
delivered and not yet completed, and print how many there were.`,
		Example: `  $ iotctl hub c2d purge MyGoDevice
  $ iotctl hub c2d purge -d MyGoDevice -o json | jq .totalMessagesPurged`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, deviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			if runF != nil {
				return runF(opts)
			}
			return c2dPurgeRun(cmd.Context(), opts)
		},
	}
	c.Flags().StringVarP(&deviceID, "device-id", "d", "", "device id")
	return c
}

func c2dPurgeRun(ctx context.Context, opts *c2dPurgeOptions) error {
	p, client, err := printerClient(ctx, opts.f)
	if err != nil {
		return err
	}
	r, err := client.PurgeC2D(ctx, opts.DeviceID)
	if err != nil {
		return err
	}
	if r.DeviceID == "" {
		r.DeviceID = opts.DeviceID
	}
	return p.Print(r, func(t *output.Table) {
		t.Header("DEVICE", "PURGED")
		t.Row(r.DeviceID, fmt.Sprint(r.TotalMessagesPurged))
	})
}
