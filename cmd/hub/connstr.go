package hub

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/output"
)

func newCmdConnstr(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "connstr",
		Short: "Inspect connection strings offline",
	}
	c.AddCommand(newCmdConnstrParse(f, nil))
	return c
}

// connstrParseOptions are the inputs of `hub connstr parse`.
type connstrParseOptions struct {
	f           *cmdutil.Factory
	input       string
	showSecrets bool
}

// connstrInfo is what `hub connstr parse` prints; its json tags are the
// -o json/yaml contract.
type connstrInfo struct {
	Kind            string `json:"kind"`
	HostName        string `json:"hostName"`
	Host            string `json:"host"`
	Port            int    `json:"port,omitempty"`
	DeviceID        string `json:"deviceId,omitempty"`
	ModuleID        string `json:"moduleId,omitempty"`
	Policy          string `json:"policy,omitempty"`
	Auth            string `json:"auth"`
	GatewayHostName string `json:"gatewayHostName,omitempty"`
	Endpoint        string `json:"endpoint,omitempty"`
	EntityPath      string `json:"entityPath,omitempty"`
	Key             string `json:"sharedAccessKey,omitempty"`
	Signature       string `json:"sharedAccessSignature,omitempty"`
	TokenExpiry     string `json:"tokenExpiry,omitempty"`
	// TokenExpired says how long ago the token expired, when it has.
	TokenExpired string   `json:"tokenExpired,omitempty"`
	UsedFor      []string `json:"usedFor"`
}

// newCmdConnstrParse returns `hub connstr parse`; runF replaces
// connstrParseRun in tests of flag parsing (nil: connstrParseRun).
func newCmdConnstrParse(f *cmdutil.Factory, runF func(*connstrParseOptions) error) *cobra.Command {
	o := &connstrParseOptions{f: f}
	c := &cobra.Command{
		Use:   "parse [STRING | -]",
		Short: "Parse and validate a connection string; say its kind and what it is good for",
		Long: `Parse and validate a connection string and say what kind it is (service policy,
device, module, Event Hub-compatible), its host and port, identity, policy and
authentication method, and which iotctl commands it is good for.

The string comes from the argument, from standard input with "-", or from the
configured connection string (--connection-string, IOTCTL_CONNECTION_STRING, then
IOTCTL_DEVICE_CONNECTION_STRING). Keys and signatures are redacted unless
--show-secrets is given. -o env prints shell assignments for eval.

An invalid string exits 3 with a message that names the key and the problem.`,
		Example: `  $ iotctl hub connstr parse 'HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=c2VjcmV0'
  $ echo "$CS" | iotctl hub connstr parse - -o json | jq -r .kind
  $ eval "$(iotctl hub connstr parse -o env "$CS")"; echo "$IOTCTL_HOST"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.input = args[0]
			}
			if runF != nil {
				return runF(o)
			}
			return connstrParseRun(o)
		},
	}
	c.Flags().String(cmdutil.KeyConnectionString, "", "connection string to parse when no argument is given")
	c.Flags().BoolVar(&o.showSecrets, "show-secrets", false, "print keys and signatures instead of redacting them")
	return c
}

func connstrParseRun(o *connstrParseOptions) error {
	format, err := o.f.Output(output.FormatTable, output.FormatJSON, output.FormatYAML, "env")
	if err != nil {
		return err
	}
	s := o.input
	switch {
	case s == "-":
		b, err := io.ReadAll(io.LimitReader(o.f.IO.In, 64*1024))
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		s = string(b)
	case s == "":
		s = o.f.V.GetString(cmdutil.KeyConnectionString)
		if s == "" {
			s = o.f.V.GetString(cmdutil.KeyDeviceConnectionString)
		}
		if s == "" {
			return cmdutil.Usagef("no connection string: give one as the argument, '-' for standard input, or configure one")
		}
	}
	cs, err := connstr.Parse(s)
	if err != nil {
		return err
	}
	info := describe(cs, o.showSecrets, o.f.Now())
	if format == "env" {
		return writeEnv(o.f.IO.Out, info)
	}
	p := output.New(o.f.IO.Out, format, o.f.IO.OutTTY)
	return p.Print(info, func(t *output.Table) {
		t.Header("FIELD", "VALUE")
		t.Row("kind", info.Kind)
		t.Row("host", info.Host)
		if info.Port != 0 {
			t.Row("port", info.Port)
		}
		for _, kv := range [][2]string{
			{"device", info.DeviceID}, {"module", info.ModuleID}, {"policy", info.Policy},
			{"gateway", info.GatewayHostName}, {"endpoint", info.Endpoint}, {"entity path", info.EntityPath},
		} {
			if kv[1] != "" {
				t.Row(kv[0], kv[1])
			}
		}
		t.Row("auth", info.Auth)
		if info.Key != "" {
			t.Row("key", info.Key)
		}
		if info.Signature != "" {
			t.Row("token", info.Signature)
		}
		if info.TokenExpiry != "" {
			exp := info.TokenExpiry
			if info.TokenExpired != "" {
				exp += " (" + info.TokenExpired + ")"
			}
			t.Row("token expiry", exp)
		}
		t.Row("used for", strings.Join(info.UsedFor, ", "))
	})
}

func describe(cs *connstr.ConnectionString, show bool, now time.Time) connstrInfo {
	info := connstrInfo{
		Kind: cs.Kind.String(), HostName: cs.HostName, Host: cs.Host(), Port: cs.Port(),
		DeviceID: cs.DeviceID, ModuleID: cs.ModuleID, Policy: cs.SharedAccessKeyName, Auth: cs.Auth().String(),
		GatewayHostName: cs.GatewayHostName, Endpoint: cs.Endpoint, EntityPath: cs.EntityPath,
	}
	if cs.SharedAccessKey != "" {
		info.Key = connstr.Redacted
		if show {
			info.Key = cs.SharedAccessKey
		}
	}
	if cs.SharedAccessSignature != "" {
		if tok, err := cs.Token(); err == nil {
			info.Signature = tok.String()
			if show {
				info.Signature = tok.Encode()
			}
			info.TokenExpiry = tok.Expiry().Format("2006-01-02T15:04:05Z07:00")
			if !now.Before(tok.Expiry()) {
				info.TokenExpired = "expired " + now.Sub(tok.Expiry()).Round(time.Second).String() + " ago"
			}
		}
	}
	switch cs.Kind {
	case connstr.KindService:
		info.UsedFor = []string{"iotctl method invoke", "iotctl hub device ...", "iotctl hub twin ...", "iotctl hub c2d send", "iotctl hub feedback", "iotctl hub monitor", "iotctl hub sas"}
	case connstr.KindDevice, connstr.KindModule:
		info.UsedFor = []string{"iotctl device simulate", "iotctl device send", "iotctl hub sas"}
	case connstr.KindEventHub:
		info.UsedFor = []string{"iotctl hub monitor"}
	}
	return info
}

func writeEnv(w io.Writer, info connstrInfo) error {
	var b strings.Builder
	put := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s=%s\n", k, output.ShellQuote(v))
		}
	}
	put("IOTCTL_KIND", info.Kind)
	put("IOTCTL_HOST_NAME", info.HostName)
	put("IOTCTL_HOST", info.Host)
	if info.Port != 0 {
		put("IOTCTL_PORT", fmt.Sprint(info.Port))
	}
	put("IOTCTL_DEVICE_ID", info.DeviceID)
	put("IOTCTL_MODULE_ID", info.ModuleID)
	put("IOTCTL_POLICY", info.Policy)
	put("IOTCTL_AUTH", info.Auth)
	put("IOTCTL_GATEWAY_HOST_NAME", info.GatewayHostName)
	put("IOTCTL_ENDPOINT", info.Endpoint)
	put("IOTCTL_ENTITY_PATH", info.EntityPath)
	if info.Key != connstr.Redacted {
		put("IOTCTL_SHARED_ACCESS_KEY", info.Key)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
