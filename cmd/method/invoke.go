package method

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// InvokeOptions are the flags and dependencies of `method invoke`.
type InvokeOptions struct {
	F               *cmdutil.Factory
	DeviceID        string
	ModuleID        string
	Name            string
	Payload         string
	PayloadFile     string
	PayloadString   string
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
	CAFile          string
	// Proxy is the HTTP proxy to tunnel through (--proxy, then
	// IOTCTL_PROXY or the config file); "" for HTTPS_PROXY.
	Proxy string
	// PayloadJSON is the checked JSON payload, made from the payload
	// flags before Run (or runF) is called.
	PayloadJSON json.RawMessage

	payloadSet, payloadFileSet, payloadStringSet bool
}

// NewCmdInvoke returns `method invoke`; runF replaces the run function
// in tests of flag parsing.
func NewCmdInvoke(f *cmdutil.Factory, runF func(*InvokeOptions) error) *cobra.Command {
	o := &InvokeOptions{F: f}
	c := &cobra.Command{
		Use:   "invoke",
		Short: "Invoke a direct method and print the device's answer",
		Long: `Invoke a direct method on a device or module through the hub's REST API and print
the status and payload the device answers with.

The device id comes from --device-id, then IOTCTL_DEVICE_ID, then the config file's
device-id, then the DeviceId of the configured device connection string.

The payload is JSON: --payload 10 sends the number 10, --payload '"10"' the string
"10", --payload '{"a":1}' an object. Text that is not JSON is refused (exit 3); send
it as a JSON string with --payload-string. --payload-file reads the JSON from a file
("-" for standard input). No payload sends null.

Output: the quickstart's back-end lines on a terminal; -o json prints
{"status":...,"payload":...} and nothing else.

The call is HTTPS on port 443 (or the port in HostName). It goes through the
proxy in HTTPS_PROXY unless NO_PROXY names the hub (localhost and loopback
addresses are never proxied); --proxy URL (IOTCTL_PROXY) tunnels it through that
HTTP proxy with CONNECT whatever the host (http://[user:password@]host:port). A
proxy that cannot be reached or refuses the tunnel exits 1 naming it.

Exit codes: 0 when the device answered with a status below 400, 8 when it
answered 400 or more, 6 when the device is offline or not listening for methods,
7 on timeout, 5 when the device or module does not exist, 4 when the hub refuses
the credentials, 3 for usage errors.`,
		Example: `  $ iotctl method invoke --name SetTelemetryInterval --payload 10
  $ iotctl method invoke -d MyGoDevice --name SetTelemetryInterval --payload '"10"' -o json | jq .status
  $ iotctl method invoke -d dev1 -m mod1 --name reboot --payload '{"delay":5}' --response-timeout 60s
  $ iotctl method invoke -d dev1 --name echo --payload-string 'hello world'
  $ iotctl method invoke -d MyGoDevice --name SetTelemetryInterval --payload '"oops"'   # exits 8: the device answers 400`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			o.payloadSet, o.payloadFileSet, o.payloadStringSet = fl.Changed("payload"), fl.Changed("payload-file"), fl.Changed("payload-string")
			if o.DeviceID == "" {
				o.DeviceID = deviceIDFromConfig(f)
			}
			if o.CAFile == "" {
				o.CAFile = f.V.GetString(cmdutil.KeyCAFile)
			}
			if o.Proxy == "" {
				o.Proxy = f.V.GetString(cmdutil.KeyProxy)
			}
			if err := o.validate(); err != nil {
				return err
			}
			payload, err := o.payload()
			if err != nil {
				return err
			}
			o.PayloadJSON = payload
			if runF != nil {
				return runF(o)
			}
			return o.Run(cmd)
		},
	}
	fl := c.Flags()
	fl.String(cmdutil.KeyConnectionString, "", "service connection string (default: IOTCTL_CONNECTION_STRING or the config file)")
	cmdutil.AddServiceAuth(c, cmdutil.LoginNeeds(auth.ActionMethodsInvoke))
	fl.StringVarP(&o.DeviceID, "device-id", "d", "", "device to call (default: IOTCTL_DEVICE_ID, config, or the device connection string's DeviceId)")
	fl.StringVarP(&o.ModuleID, "module-id", "m", "", "module of the device to call")
	fl.StringVar(&o.Name, "name", "", "method name (alias --method-name)")
	fl.StringVar(&o.Payload, "payload", "", "payload as JSON (alias --method-payload)")
	fl.StringVar(&o.PayloadFile, "payload-file", "", "read the JSON payload from a file, - for standard input")
	fl.StringVar(&o.PayloadString, "payload-string", "", "send this text as a JSON string")
	fl.DurationVar(&o.ResponseTimeout, "response-timeout", 30*time.Second, "how long the hub waits for the device's answer (5s to 300s)")
	fl.DurationVar(&o.ConnectTimeout, "connect-timeout", 0, "how long the hub waits for the device to connect (0 to 300s)")
	fl.StringVar(&o.CAFile, cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	fl.StringVar(&o.Proxy, cmdutil.KeyProxy, "", "HTTP proxy URL to tunnel the HTTPS request through with CONNECT (default: HTTPS_PROXY)")
	fl.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		switch name {
		case "method-name":
			name = "name"
		case "method-payload":
			name = "payload"
		case "timeout":
			name = "response-timeout"
		}
		return pflag.NormalizedName(name)
	})
	return c
}

// deviceIDFromConfig applies the documented fallbacks for the device id.
func deviceIDFromConfig(f *cmdutil.Factory) string {
	if id := f.V.GetString(cmdutil.KeyDeviceID); id != "" {
		return id
	}
	if s := f.V.GetString(cmdutil.KeyDeviceConnectionString); s != "" {
		if cs, err := connstr.Parse(s); err == nil {
			return cs.DeviceID
		}
	}
	return ""
}

// payload returns the JSON to send, checked.
func (o *InvokeOptions) payload() (json.RawMessage, error) {
	n := 0
	for _, set := range []bool{o.payloadSet, o.payloadFileSet, o.payloadStringSet} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, cmdutil.Usagef("use only one of --payload, --payload-file and --payload-string")
	}
	var raw []byte
	var from string
	switch {
	case o.payloadStringSet:
		b, _ := json.Marshal(o.PayloadString)
		if len(b) > message.MaxMethodPayload {
			return nil, cmdutil.Usagef("--payload-string is %d bytes as JSON; IoT Hub takes method payloads up to %d bytes", len(b), message.MaxMethodPayload)
		}
		return b, nil
	case o.payloadFileSet:
		var err error
		if o.PayloadFile == "-" {
			raw, err = io.ReadAll(io.LimitReader(o.F.IO.In, 1<<20))
		} else {
			raw, err = os.ReadFile(o.PayloadFile)
		}
		if err != nil {
			return nil, cmdutil.Usagef("--payload-file: %v", err)
		}
		from = "--payload-file " + o.PayloadFile
	case o.payloadSet:
		raw = []byte(o.Payload)
		from = "--payload"
	default:
		return json.RawMessage("null"), nil
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, cmdutil.Usagef("%s is not valid JSON: %s; to send text, use --payload-string %s", from, short(raw), output.ShellQuote(string(raw)))
	}
	if len(raw) > message.MaxMethodPayload {
		return nil, cmdutil.Usagef("%s is %d bytes; IoT Hub takes method payloads up to %d bytes", from, len(raw), message.MaxMethodPayload)
	}
	return raw, nil
}

func short(b []byte) string {
	s := string(b)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func (o *InvokeOptions) validate() error {
	if o.DeviceID == "" {
		return cmdutil.Usagef("no device id: pass --device-id, set IOTCTL_DEVICE_ID, or configure device-id")
	}
	if o.Name == "" {
		return cmdutil.Usagef("no method name: pass --name")
	}
	if o.ResponseTimeout < 5*time.Second || o.ResponseTimeout > 300*time.Second {
		return cmdutil.Usagef("--response-timeout %s: IoT Hub takes 5s to 300s", o.ResponseTimeout)
	}
	if o.ConnectTimeout < 0 || o.ConnectTimeout > 300*time.Second {
		return cmdutil.Usagef("--connect-timeout %s: IoT Hub takes 0 to 300s", o.ConnectTimeout)
	}
	if o.Proxy != "" {
		if _, err := proxy.ParseURL(o.Proxy); err != nil {
			return cmdutil.Usagef("--proxy: %v", err)
		}
	}
	return nil
}

// Run invokes the method with the checked options and prints the
// answer.
func (o *InvokeOptions) Run(cmd *cobra.Command) error {
	p, err := o.F.Printer()
	if err != nil {
		return err
	}
	payload := o.PayloadJSON
	log, err := o.F.Logger()
	if err != nil {
		return err
	}
	client, err := o.F.ServiceClient(cmd.Context(), &service.Options{CAFile: o.CAFile, Proxy: o.Proxy, Logger: log, UserAgent: cmdutil.UserAgent()})
	if err != nil {
		return err
	}
	res, err := client.InvokeMethod(cmd.Context(), service.Target{DeviceID: o.DeviceID, ModuleID: o.ModuleID},
		service.MethodCall{Name: o.Name, Payload: payload, ResponseTimeout: o.ResponseTimeout, ConnectTimeout: o.ConnectTimeout})
	if err != nil {
		return err
	}
	if p.Format == output.FormatTable {
		err = PrintQuickstart(o.F.IO.Out, o.Name, payload, res)
	} else {
		err = p.Print(res, nil)
	}
	if err != nil {
		return err
	}
	if res.Status >= 400 {
		return &cmdutil.ExitError{Code: cmdutil.ExitDeviceError}
	}
	return nil
}

// PrintQuickstart prints a method call and its answer the way the
// quickstart's back-end application does.
func PrintQuickstart(w interface{ Write([]byte) (int, error) }, name string, payload json.RawMessage, res *service.MethodResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Device Method called\n")
	fmt.Fprintf(&b, "Device Method name       : %s\n", name)
	fmt.Fprintf(&b, "Device Method payload    : %s\n\n", compact(payload))
	fmt.Fprintf(&b, "Response status          : %d\n", res.Status)
	fmt.Fprintf(&b, "Response payload         : %s\n", compact(res.Payload))
	_, err := w.Write([]byte(b.String()))
	return err
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
