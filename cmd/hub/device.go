package hub

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
)

func newCmdDevice(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "device",
		Short: "Manage device and module identities in the hub's registry",
		Long: `Create, show, list, update and delete device and module identities, and renew
their keys. These commands use
the service connection string (--connection-string, IOTCTL_CONNECTION_STRING or the
config file) and, for the local hub, its CA (--ca-file or IOTCTL_CA_FILE).`,
		Example: `  $ iotctl hub device create --device-id MyGoDevice
  $ iotctl hub device show MyGoDevice --show-connection-string
  $ iotctl hub device list -o json | jq -r '.[].deviceId'
  $ iotctl hub device delete MyGoDevice`,
	}
	for _, sub := range []*cobra.Command{newCmdDeviceCreate(f, nil), newCmdDeviceShow(f, nil), newCmdDeviceList(f, nil),
		newCmdDeviceUpdate(f, nil), newCmdDeviceRenewKey(f, nil), newCmdDeviceDelete(f, nil)} {
		addServiceFlags(sub, cmdutil.LoginNeeds(deviceAction[sub.Name()]))
		c.AddCommand(sub)
	}
	return c
}

// deviceAction is the data action of each device command.
var deviceAction = map[string]auth.Action{
	"create": auth.ActionDevicesWrite, "update": auth.ActionDevicesWrite, "renew-key": auth.ActionDevicesWrite,
	"show": auth.ActionDevicesRead, "list": auth.ActionDevicesRead, "delete": auth.ActionDevicesDelete,
}

// identity is what the device commands print.
type identity struct {
	DeviceID         string `json:"deviceId"`
	ModuleID         string `json:"moduleId,omitempty"`
	Status           string `json:"status,omitempty"`
	ConnectionState  string `json:"connectionState"`
	Auth             string `json:"authType"`
	PrimaryKey       string `json:"primaryKey,omitempty"`
	SecondaryKey     string `json:"secondaryKey,omitempty"`
	Thumbprint       string `json:"primaryThumbprint,omitempty"`
	Edge             bool   `json:"iotEdge,omitempty"`
	LastActivity     string `json:"lastActivityTime"`
	C2DCount         int    `json:"cloudToDeviceMessageCount"`
	Etag             string `json:"etag"`
	ConnectionString string `json:"connectionString,omitempty"`
	CertFile         string `json:"certFile,omitempty"`
	KeyFile          string `json:"keyFile,omitempty"`
}

func deviceIdentity(d *service.Device, show bool, host string) identity {
	id := identity{DeviceID: d.DeviceID, Status: d.Status, ConnectionState: d.ConnectionState, LastActivity: d.LastActivityTime.Format("2006-01-02T15:04:05Z07:00"),
		C2DCount: d.CloudToDeviceMessageCount, Etag: d.Etag}
	if d.Capabilities != nil {
		id.Edge = d.Capabilities.IotEdge
	}
	fillAuth(&id, d.Authentication, show, host)
	return id
}

// twinIdentity is the identity a device's twin describes, as the query
// API returns it (no keys: those only come with the device itself).
func twinIdentity(t *service.Twin) identity {
	id := identity{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Status: t.Status, ConnectionState: t.ConnectionState,
		LastActivity: t.LastActivityTime.Format("2006-01-02T15:04:05Z07:00"), C2DCount: t.CloudToDeviceMessageCount,
		Etag: t.DeviceEtag, Auth: t.AuthenticationType}
	if t.Capabilities != nil {
		id.Edge = t.Capabilities.IotEdge
	}
	if t.X509Thumbprint.PrimaryThumbprint != nil {
		id.Thumbprint = *t.X509Thumbprint.PrimaryThumbprint
	}
	if t.AuthenticationType == "sas" {
		id.PrimaryKey, id.SecondaryKey = connstr.Redacted, connstr.Redacted
	}
	return id
}

func moduleIdentity(m *service.Module, show bool, host string) identity {
	id := identity{DeviceID: m.DeviceID, ModuleID: m.ModuleID, ConnectionState: m.ConnectionState, LastActivity: m.LastActivityTime.Format("2006-01-02T15:04:05Z07:00"),
		C2DCount: m.CloudToDeviceMessageCount, Etag: m.Etag}
	fillAuth(&id, m.Authentication, show, host)
	return id
}

func fillAuth(id *identity, a *service.Authentication, show bool, host string) {
	if a == nil {
		return
	}
	id.Auth = a.Type
	if a.X509Thumbprint != nil && a.X509Thumbprint.PrimaryThumbprint != nil {
		id.Thumbprint = *a.X509Thumbprint.PrimaryThumbprint
	}
	if a.Type == "selfSigned" || a.Type == "certificateAuthority" {
		// An x509=true connection string holds no secret: always shown.
		id.ConnectionString = identityConnectionString(host, id.DeviceID, id.ModuleID, "")
		return
	}
	k := a.Keys()
	if k == nil {
		return
	}
	id.PrimaryKey, id.SecondaryKey = connstr.Redacted, connstr.Redacted
	if show {
		id.PrimaryKey, id.SecondaryKey = k.PrimaryKey, k.SecondaryKey
		id.ConnectionString = identityConnectionString(host, id.DeviceID, id.ModuleID, k.PrimaryKey)
	}
}

// identityConnectionString is a device's or module's connection string
// with key, or with x509=true when key is "".
func identityConnectionString(host, deviceID, moduleID, key string) string {
	kind := connstr.KindDevice
	if moduleID != "" {
		kind = connstr.KindModule
	}
	cs := connstr.ConnectionString{Kind: kind, HostName: host, DeviceID: deviceID, ModuleID: moduleID, SharedAccessKey: key, X509: key == ""}
	return cs.Format()
}

func printIdentity(p *output.Printer, id identity) error {
	return p.Print(id, func(t *output.Table) {
		t.Header("FIELD", "VALUE")
		t.Row("device", id.DeviceID)
		if id.ModuleID != "" {
			t.Row("module", id.ModuleID)
		}
		if id.Status != "" {
			t.Row("status", id.Status)
		}
		t.Row("connection", id.ConnectionState)
		t.Row("auth", id.Auth)
		if id.PrimaryKey != "" {
			t.Row("primary key", id.PrimaryKey)
			t.Row("secondary key", id.SecondaryKey)
		}
		if id.Thumbprint != "" {
			t.Row("thumbprint", id.Thumbprint)
		}
		if id.Edge {
			t.Row("iot edge", "true")
		}
		t.Row("last activity", id.LastActivity)
		t.Row("c2d queued", id.C2DCount)
		if id.ConnectionString != "" {
			t.Row("connection string", id.ConnectionString)
		}
		if id.CertFile != "" {
			t.Row("certificate", id.CertFile)
			t.Row("key", id.KeyFile)
		}
	})
}

// idArg is the device id of a command that takes it as its argument
// or with --device-id.
func idArg(args []string, flag string) (string, error) {
	return cmdutil.IDArg(args, "device id", "device-id", flag)
}

// deviceCreateOptions are the inputs of `hub device create`.
type deviceCreateOptions struct {
	f                   *cmdutil.Factory
	DeviceID            string
	ModuleID            string
	Auth                string
	PrimaryKey          string
	SecondaryKey        string
	PrimaryThumbprint   string
	SecondaryThumbprint string
	CertFile            string
	GenerateCertDir     string
	Status              string
	Edge                bool
}

// newCmdDeviceCreate returns `hub device create`; runF replaces
// deviceCreateRun in tests of flag parsing (nil: deviceCreateRun).
func newCmdDeviceCreate(f *cmdutil.Factory, runF func(*deviceCreateOptions) error) *cobra.Command {
	opts := &deviceCreateOptions{f: f}
	c := &cobra.Command{
		Use:   "create [DEVICE_ID]",
		Short: "Create a device (or, with --module-id, a module) and print its connection string",
		Long: `Create a device or module identity. With --auth sas (the default) the hub makes
the keys unless --primary-key/--secondary-key give them, and the new identity's
connection string is printed (the keys themselves only with 'show --show-secrets').

--auth x509-thumbprint registers a self-signed certificate by its thumbprint:
give --primary-thumbprint (and --secondary-thumbprint), 40 or 64 hex digits
(SHA-1 or SHA-256), or --cert FILE (PEM) to register that certificate's SHA-256
thumbprint. --generate-cert DIR, for testing, makes a self-signed certificate
and key for the identity (CN = the device id, or DEVICE/MODULE; ECDSA P-256;
valid one year), writes them to DIR/ID.pem and DIR/ID-key.pem and registers its
thumbprint (it implies --auth x509-thumbprint). --auth x509-ca registers an
identity whose certificate is signed by a CA the hub trusts ('hub serve
--device-ca') with CN = the id. X.509 identities print their x509=true
connection string, for 'iotctl device' with --cert and --key.`,
		Example: `  $ iotctl hub device create --device-id MyGoDevice
  $ iotctl hub device create dev1 --module-id mod1 -o json | jq -r .connectionString
  $ iotctl hub device create cam1 --auth x509-thumbprint --primary-thumbprint 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B
  $ iotctl hub device create cam2 --auth x509-thumbprint --cert cam2.pem
  $ iotctl hub device create cam3 --generate-cert ./certs
  $ iotctl device send --connection-string "$(iotctl hub device create cam4 --generate-cert . -o json | jq -r .connectionString)" \
      --cert cam4.pem --key cam4-key.pem --data hello`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, opts.DeviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			if opts.GenerateCertDir != "" && !cmd.Flags().Changed("auth") {
				opts.Auth = "x509-thumbprint"
			}
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return deviceCreateRun(cmd.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&opts.DeviceID, "device-id", "d", "", "device id")
	fl.StringVarP(&opts.ModuleID, "module-id", "m", "", "create a module of the device instead")
	fl.StringVar(&opts.Auth, "auth", "sas", "authentication: sas, x509-thumbprint or x509-ca")
	fl.StringVar(&opts.PrimaryKey, "primary-key", "", "primary key (base64; default: made by the hub)")
	fl.StringVar(&opts.SecondaryKey, "secondary-key", "", "secondary key (base64; default: made by the hub)")
	fl.StringVar(&opts.PrimaryThumbprint, "primary-thumbprint", "", "primary certificate thumbprint (x509-thumbprint)")
	fl.StringVar(&opts.SecondaryThumbprint, "secondary-thumbprint", "", "secondary certificate thumbprint (x509-thumbprint)")
	fl.StringVar(&opts.CertFile, "cert", "", "register the SHA-256 thumbprint of this certificate (PEM) as primary (x509-thumbprint)")
	fl.StringVar(&opts.GenerateCertDir, "generate-cert", "", "make a self-signed test certificate and key in this directory and register it (x509-thumbprint)")
	fl.StringVar(&opts.Status, "status", "enabled", "enabled or disabled")
	fl.BoolVar(&opts.Edge, "edge", false, "mark the device as an IoT Edge device")
	return c
}

// check refuses credential flags that do not fit --auth, an unknown
// --auth and an unknown --status, without echoing keys.
func (o *deviceCreateOptions) check() error {
	if err := checkCreateFlags(o.Auth, o.PrimaryKey, o.SecondaryKey, o.PrimaryThumbprint, o.SecondaryThumbprint, o.CertFile, o.GenerateCertDir); err != nil {
		return err
	}
	switch o.Auth {
	case "sas", "x509-thumbprint", "x509-ca":
	default:
		return cmdutil.Usagef("--auth %q: use sas, x509-thumbprint or x509-ca", o.Auth)
	}
	if o.Status != "enabled" && o.Status != "disabled" {
		return cmdutil.Usagef("--status %q: use enabled or disabled", o.Status)
	}
	return nil
}

// authentication is the identity's authentication from checked flags;
// with --generate-cert it makes the certificate (written later, by the
// caller).
func (o *deviceCreateOptions) authentication() (*service.Authentication, *generatedCert, error) {
	a := &service.Authentication{}
	switch o.Auth {
	case "sas":
		a.Type = "sas"
		a.SymmetricKey = &service.SymmetricKey{PrimaryKey: o.PrimaryKey, SecondaryKey: o.SecondaryKey}
		return a, nil, nil
	case "x509-ca":
		a.Type = "certificateAuthority"
		return a, nil, nil
	}
	var gen *generatedCert
	pt := o.PrimaryThumbprint
	switch {
	case o.CertFile != "":
		var err error
		if pt, err = certThumbprint(o.CertFile); err != nil {
			return nil, nil, err
		}
	case o.GenerateCertDir != "":
		var err error
		if gen, err = newGeneratedCert(o.GenerateCertDir, o.DeviceID, o.ModuleID, o.f.Now()); err != nil {
			return nil, nil, err
		}
		pt = gen.thumbprint
	}
	a.Type = "selfSigned"
	a.X509Thumbprint = thumbprints(pt, o.SecondaryThumbprint)
	return a, gen, nil
}

func deviceCreateRun(ctx context.Context, opts *deviceCreateOptions) (err error) {
	p, err := opts.f.Printer()
	if err != nil {
		return err
	}
	a, gen, err := opts.authentication()
	if err != nil {
		return err
	}
	client, err := opts.f.ServiceClient(ctx, nil)
	if err != nil {
		return err
	}
	if gen != nil {
		// Write the files first; take them back if the hub refuses the
		// identity.
		if err := gen.write(); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				gen.remove()
			}
		}()
	}
	id := opts.DeviceID
	var out identity
	if opts.ModuleID != "" {
		m, err := client.CreateModule(ctx, &service.Module{DeviceID: id, ModuleID: opts.ModuleID, Authentication: a})
		if err != nil {
			return err
		}
		out = moduleIdentity(m, false, client.HostName())
		if k := m.Authentication.Keys(); k != nil {
			out.ConnectionString = identityConnectionString(client.HostName(), id, opts.ModuleID, k.PrimaryKey)
		}
	} else {
		d := &service.Device{DeviceID: id, Status: opts.Status, Authentication: a}
		if opts.Edge {
			d.Capabilities = &service.Capabilities{IotEdge: true}
		}
		created, err := client.CreateDevice(ctx, d)
		if err != nil {
			return err
		}
		out = deviceIdentity(created, false, client.HostName())
		if k := created.Authentication.Keys(); k != nil {
			out.ConnectionString = identityConnectionString(client.HostName(), id, "", k.PrimaryKey)
		}
	}
	if gen != nil {
		out.CertFile, out.KeyFile = gen.certFile, gen.keyFile
	}
	return printIdentity(p, out)
}

// deviceShowOptions are the inputs of `hub device show`.
type deviceShowOptions struct {
	f                    *cmdutil.Factory
	DeviceID             string
	ModuleID             string
	ShowSecrets          bool
	ShowConnectionString bool
}

// newCmdDeviceShow returns `hub device show`; runF replaces
// deviceShowRun in tests of flag parsing (nil: deviceShowRun).
func newCmdDeviceShow(f *cmdutil.Factory, runF func(*deviceShowOptions) error) *cobra.Command {
	opts := &deviceShowOptions{f: f}
	c := &cobra.Command{
		Use:   "show [DEVICE_ID]",
		Short: "Show a device or module identity",
		Long: `Show a device or module identity. Keys are redacted unless --show-secrets is given;
--show-connection-string prints only the identity's connection string (with its key).`,
		Example: `  $ iotctl hub device show MyGoDevice
  $ export IOTCTL_DEVICE_CONNECTION_STRING="$(iotctl hub device show MyGoDevice --show-connection-string)"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, opts.DeviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			if runF != nil {
				return runF(opts)
			}
			return deviceShowRun(cmd.Context(), opts)
		},
	}
	c.Flags().StringVarP(&opts.DeviceID, "device-id", "d", "", "device id")
	c.Flags().StringVarP(&opts.ModuleID, "module-id", "m", "", "show a module of the device")
	c.Flags().BoolVar(&opts.ShowSecrets, "show-secrets", false, "print keys and the connection string")
	c.Flags().BoolVar(&opts.ShowConnectionString, "show-connection-string", false, "print only the identity's connection string (with its key)")
	return c
}

func deviceShowRun(ctx context.Context, opts *deviceShowOptions) error {
	p, client, err := printerClient(ctx, opts.f)
	if err != nil {
		return err
	}
	id, secrets := opts.DeviceID, opts.ShowSecrets || opts.ShowConnectionString
	var out identity
	if opts.ModuleID != "" {
		m, err := client.GetModule(ctx, id, opts.ModuleID)
		if err != nil {
			return err
		}
		out = moduleIdentity(m, secrets, client.HostName())
	} else {
		d, err := client.GetDevice(ctx, id)
		if err != nil {
			return err
		}
		out = deviceIdentity(d, secrets, client.HostName())
	}
	if opts.ShowConnectionString {
		if out.ConnectionString == "" {
			return fmt.Errorf("%s authenticates with %s, not a key: it has no key connection string", id, out.Auth)
		}
		_, err := fmt.Fprintln(opts.f.IO.Out, out.ConnectionString)
		return err
	}
	return printIdentity(p, out)
}

// deviceListOptions are the inputs of `hub device list`.
type deviceListOptions struct {
	f         *cmdutil.Factory
	Top       int
	ModulesOf string
}

// newCmdDeviceList returns `hub device list`; runF replaces
// deviceListRun in tests of flag parsing (nil: deviceListRun).
func newCmdDeviceList(f *cmdutil.Factory, runF func(*deviceListOptions) error) *cobra.Command {
	opts := &deviceListOptions{f: f}
	c := &cobra.Command{
		Use:     "list",
		Short:   "List devices (or a device's modules)",
		Example: "  $ iotctl hub device list\n  $ iotctl hub device list --modules-of dev1 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return deviceListRun(cmd.Context(), opts)
		},
	}
	c.Flags().IntVar(&opts.Top, "top", 0, "list at most this many devices (0: all of them, page after page)")
	c.Flags().StringVar(&opts.ModulesOf, "modules-of", "", "list the modules of this device instead")
	return c
}

func deviceListRun(ctx context.Context, opts *deviceListOptions) error {
	p, client, err := printerClient(ctx, opts.f)
	if err != nil {
		return err
	}
	var ids []identity
	if opts.ModulesOf != "" {
		ms, err := client.ListModules(ctx, opts.ModulesOf)
		if err != nil {
			return err
		}
		for i := range ms {
			ids = append(ids, moduleIdentity(&ms[i], false, ""))
		}
	} else {
		// The query API pages through every device; GET /devices stops
		// at 1,000 without saying so.
		err := client.QueryPages(ctx, "SELECT * FROM devices", opts.Top, func(page []json.RawMessage) error {
			for _, raw := range page {
				var tw service.Twin
				if err := json.Unmarshal(raw, &tw); err != nil {
					return fmt.Errorf("decoding a device twin from the query answer: %w", err)
				}
				ids = append(ids, twinIdentity(&tw))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if ids == nil {
		ids = []identity{}
	}
	return p.Print(ids, func(t *output.Table) {
		t.Header("DEVICE", "MODULE", "STATUS", "CONNECTION", "AUTH", "C2D", "LAST ACTIVITY")
		for _, id := range ids {
			t.Row(id.DeviceID, dash(id.ModuleID), dash(id.Status), id.ConnectionState, id.Auth, id.C2DCount, id.LastActivity)
		}
	})
}

// deviceDeleteOptions are the inputs of `hub device delete`.
type deviceDeleteOptions struct {
	f        *cmdutil.Factory
	DeviceID string
	ModuleID string
	Etag     string
}

// newCmdDeviceDelete returns `hub device delete`; runF replaces
// deviceDeleteRun in tests of flag parsing (nil: deviceDeleteRun).
func newCmdDeviceDelete(f *cmdutil.Factory, runF func(*deviceDeleteOptions) error) *cobra.Command {
	opts := &deviceDeleteOptions{f: f}
	c := &cobra.Command{
		Use:     "delete [DEVICE_ID]",
		Short:   "Delete a device (with its modules) or a module",
		Example: "  $ iotctl hub device delete MyGoDevice\n  $ iotctl hub device delete dev1 --module-id mod1",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, opts.DeviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			if runF != nil {
				return runF(opts)
			}
			return deviceDeleteRun(cmd.Context(), opts)
		},
	}
	c.Flags().StringVarP(&opts.DeviceID, "device-id", "d", "", "device id")
	c.Flags().StringVarP(&opts.ModuleID, "module-id", "m", "", "delete a module of the device")
	c.Flags().StringVar(&opts.Etag, "etag", "", "delete only if the etag matches (default: unconditionally)")
	return c
}

func deviceDeleteRun(ctx context.Context, opts *deviceDeleteOptions) error {
	client, err := opts.f.ServiceClient(ctx, nil)
	if err != nil {
		return err
	}
	if opts.ModuleID != "" {
		return client.DeleteModule(ctx, opts.DeviceID, opts.ModuleID, opts.Etag)
	}
	return client.DeleteDevice(ctx, opts.DeviceID, opts.Etag)
}

func thumbprints(primary, secondary string) *service.X509Thumbprint {
	t := &service.X509Thumbprint{PrimaryThumbprint: &primary}
	if secondary != "" {
		t.SecondaryThumbprint = &secondary
	}
	return t
}

// checkCreateFlags checks that the credential flags of `device create`
// fit --auth, without echoing keys.
func checkCreateFlags(authType, pk, sk, pt, st, certFile, genDir string) error {
	x509Flags := pt != "" || st != "" || certFile != "" || genDir != ""
	switch authType {
	case "sas":
		if x509Flags {
			return cmdutil.Usagef("--primary-thumbprint, --secondary-thumbprint, --cert and --generate-cert need --auth x509-thumbprint")
		}
	case "x509-thumbprint", "x509-ca":
		if pk != "" || sk != "" {
			return cmdutil.Usagef("--primary-key and --secondary-key need --auth sas")
		}
	}
	switch authType {
	case "x509-ca":
		if x509Flags {
			return cmdutil.Usagef("--auth x509-ca registers no thumbprints: the certificate is checked against the hub's device CAs")
		}
	case "x509-thumbprint":
		if n := btoi(pt != "") + btoi(certFile != "") + btoi(genDir != ""); n != 1 {
			return cmdutil.Usagef("--auth x509-thumbprint needs one of --primary-thumbprint, --cert or --generate-cert")
		}
		for flag, v := range map[string]string{"--primary-thumbprint": pt, "--secondary-thumbprint": st} {
			if v != "" && !isThumbprint(v) {
				return cmdutil.Usagef("%s %q is not a thumbprint: give 40 (SHA-1) or 64 (SHA-256) hex digits", flag, v)
			}
		}
	}
	for flag, k := range map[string]string{"--primary-key": pk, "--secondary-key": sk} {
		if k == "" {
			continue
		}
		b, err := sas.DecodeKey(k)
		if err != nil {
			return cmdutil.Usagef("%s is not a key: it must be base64", flag)
		}
		if len(b) < 16 || len(b) > 64 {
			return cmdutil.Usagef("%s is not a key: IoT Hub keys are base64 of 16 to 64 bytes", flag)
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// isThumbprint reports whether s is 40 or 64 hex digits.
func isThumbprint(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
