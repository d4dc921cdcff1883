package hub

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/sas"
)

// sasOptions are the inputs of `hub sas`.
type sasOptions struct {
	f        *cmdutil.Factory
	ttl      time.Duration
	expiry   string
	deviceID string
	moduleID string
	resource string
	keyType  string

	// expiryTime is --expiry parsed by check.
	expiryTime time.Time
}

type sasResult struct {
	Token    string `json:"token"`
	Resource string `json:"sr"`
	Expiry   int64  `json:"se"`
	Time     string `json:"expiry"`
	KeyName  string `json:"skn,omitempty"`
}

// newCmdSAS returns `hub sas`; runF replaces sasRun in tests of flag
// parsing (nil: sasRun).
func newCmdSAS(f *cmdutil.Factory, runF func(*sasOptions) error) *cobra.Command {
	o := &sasOptions{f: f}
	c := &cobra.Command{
		Use:   "sas",
		Short: "Generate a SAS token from a connection string (offline)",
		Long: `Generate a shared access signature token from a connection string, offline.

With a service (policy) string the token is for the hub (sr={host}, skn={policy})
or, with --resource, for any resource URI under it. With a device or module string
it is that identity's token (sr={host}/devices/{id}[/modules/{mid}]), the MQTT
password a device sends. A token for a device signed with the device's own key
needs that key: a service string cannot make one offline (use the device's
connection string, which 'iotctl hub device show' prints).

The connection string comes from --connection-string, IOTCTL_CONNECTION_STRING or
IOTCTL_DEVICE_CONNECTION_STRING. -o json adds sr, se, the expiry time and skn.

The curl example lists devices with a token: HUB is the hub's host name (and
port), and --cacert trusts the local hub's CA (Azure needs no --cacert).`,
		Example: `  $ iotctl hub sas --connection-string "$SERVICE_CS" --ttl 24h
  $ iotctl hub sas --connection-string "$DEVICE_CS" --expiry 2030-01-01T00:00:00Z -o json
  $ curl --cacert "$IOTCTL_CA_FILE" -H "Authorization: $(iotctl hub sas)" "https://$HUB/devices?api-version=2021-04-12"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return sasRun(o)
		},
	}
	fl := c.Flags()
	fl.String(cmdutil.KeyConnectionString, "", "service, device or module connection string")
	fl.DurationVar(&o.ttl, "ttl", time.Hour, "how long the token is valid")
	fl.StringVar(&o.expiry, "expiry", "", "absolute expiry time (RFC 3339), instead of --ttl")
	fl.StringVarP(&o.deviceID, "device-id", "d", "", "device the token is for (must match a device connection string)")
	fl.StringVarP(&o.moduleID, "module-id", "m", "", "module the token is for (must match a module connection string)")
	fl.StringVar(&o.resource, "resource", "", "resource URI to sign instead of the default, e.g. myhub.azure-devices.net/messages/events")
	fl.StringVar(&o.keyType, "key-type", "primary", "which key: a connection string carries one key, so only primary is possible offline")
	return c
}

// check refuses a --key-type other than primary, an --expiry that is
// not RFC 3339 or is not in the future (by the Factory's clock), and a
// --ttl that is not positive.
func (o *sasOptions) check() error {
	if o.keyType != "primary" {
		if o.keyType == "secondary" {
			return cmdutil.Usagef("--key-type secondary: a connection string carries one key; pass the connection string made with the secondary key instead")
		}
		return cmdutil.Usagef("--key-type %q: use primary", o.keyType)
	}
	if o.expiry != "" {
		t, err := time.Parse(time.RFC3339, o.expiry)
		if err != nil {
			return cmdutil.Usagef("--expiry %q is not an RFC 3339 time such as 2030-01-01T00:00:00Z", o.expiry)
		}
		if now := o.f.Now(); !t.After(now) {
			return cmdutil.Usagef("--expiry %s is in the past (%s ago): the hub refuses an expired token; give a later time, or --ttl", o.expiry, now.Sub(t).Round(time.Second))
		}
		o.expiryTime = t
	} else if o.ttl <= 0 {
		return cmdutil.Usagef("--ttl must be positive")
	}
	return nil
}

func sasRun(o *sasOptions) error {
	p, err := o.f.Printer()
	if err != nil {
		return err
	}
	s := o.f.V.GetString(cmdutil.KeyConnectionString)
	if s == "" {
		s = o.f.V.GetString(cmdutil.KeyDeviceConnectionString)
	}
	if s == "" {
		return cmdutil.Usagef("no connection string: pass --connection-string or set IOTCTL_CONNECTION_STRING")
	}
	cs, err := connstr.Parse(s)
	if err != nil {
		return err
	}
	opts := &sas.SignOptions{TTL: o.ttl, Now: o.f.Now, Expiry: o.expiryTime}
	resource, err := o.resource0(cs)
	if err != nil {
		return err
	}
	var key []byte
	switch cs.Auth() {
	case connstr.AuthKey:
		key, err = cs.Key()
		if err != nil {
			return err
		}
	case connstr.AuthToken:
		return cmdutil.Usagef("this connection string carries a ready-made token, not a key: nothing to sign with")
	case connstr.AuthX509:
		return cmdutil.Usagef("this connection string uses an X.509 certificate, not a key: nothing to sign with")
	}
	opts.KeyName = cs.SharedAccessKeyName
	tok, err := sas.Sign(resource, key, opts)
	if err != nil {
		return err
	}
	res := sasResult{Token: tok.Encode(), Resource: tok.Resource, Expiry: tok.ExpiryUnix(),
		Time: tok.Expiry().Format(time.RFC3339), KeyName: tok.KeyName}
	if p.Format == output.FormatTable {
		_, err := fmt.Fprintln(o.f.IO.Out, res.Token)
		return err
	}
	return p.Print(res, nil)
}

// resource0 works out the resource URI to sign.
func (o *sasOptions) resource0(cs *connstr.ConnectionString) (string, error) {
	switch cs.Kind {
	case connstr.KindService, connstr.KindEventHub:
		if o.deviceID != "" || o.moduleID != "" {
			return "", cmdutil.Usagef("a token signed with a device's own key needs that device's key, which a %s connection string does not have and which only the registry knows: use the device connection string ('iotctl hub device show ID' prints it), or --resource %s/devices/ID for a policy-signed token", cs.Kind, cs.HostName)
		}
		if o.resource != "" {
			return o.resource, nil
		}
		if cs.Kind == connstr.KindEventHub {
			return "sb://" + cs.HostName + "/" + cs.EntityPath, nil
		}
		return cs.HostName, nil
	}
	if o.deviceID != "" && o.deviceID != cs.DeviceID {
		return "", cmdutil.Usagef("--device-id %q does not match the connection string's DeviceId %q", o.deviceID, cs.DeviceID)
	}
	if o.moduleID != "" && o.moduleID != cs.ModuleID {
		return "", cmdutil.Usagef("--module-id %q does not match the connection string's ModuleId %q", o.moduleID, cs.ModuleID)
	}
	if o.resource != "" {
		return o.resource, nil
	}
	if cs.Kind == connstr.KindModule {
		return sas.ModuleResource(cs.HostName, cs.DeviceID, cs.ModuleID), nil
	}
	return sas.DeviceResource(cs.HostName, cs.DeviceID), nil
}
