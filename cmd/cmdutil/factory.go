// Package cmdutil holds what every iotctl command shares: streams,
// configuration, output and the exit-code table.
package cmdutil

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// IOStreams are the process's standard streams, injected so tests can
// capture them.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY is true when Out is a terminal.
	OutTTY bool
	// ErrTTY is true when ErrOut is a terminal.
	ErrTTY bool

	diag diag
}

// Configuration keys (flag names, config-file keys; env IOTCTL_ + upper
// case with '-' as '_').
const (
	KeyConfig                 = "config"
	KeyOutput                 = "output"
	KeyLogLevel               = "log-level"
	KeyLogFormat              = "log-format"
	KeyConnectionString       = "connection-string"
	KeyDeviceConnectionString = "device-connection-string"
	KeyDeviceID               = "device-id"
	KeyCAFile                 = "ca-file"
	// KeyWebSocket (IOTCTL_WEBSOCKET) makes MQTT (device commands) and
	// AMQP (hub c2d send, feedback, monitor) go over WebSocket.
	KeyWebSocket = "websocket"
	// KeyProxy (IOTCTL_PROXY) is the HTTP proxy every connection is
	// tunnelled through.
	KeyProxy = "proxy"
)

// Factory lends commands their dependencies: the streams, the
// configuration, and through its methods the printer (Printer), the
// service client (ServiceClient, in serviceauth.go), the device client
// (DeviceClient), the logger and the clock (Now). A command's options hold the Factory; its
// run function asks it for what it needs, so tests of flag parsing
// (through a command's runF) need none of them.
type Factory struct {
	IO *IOStreams
	// V is the one viper instance; see Load.
	V *viper.Viper
	// Now is the clock of the commands (certificate validity, expiry
	// checks, message times). Default: time.Now.
	Now func() time.Time
	// Getenv reads the environment variables of the configuration
	// (IOTCTL_*, see Load) and AZURE_AUTHORITY_HOST and
	// AZURE_SUBSCRIPTION_ID. Default: os.Getenv.
	Getenv func(string) string
	// NewCredential makes the Microsoft Entra ID credential from the
	// options iotctl sets (its HTTP client: --ca-file, --proxy).
	// Default: azidentity.NewDefaultAzureCredential, which reads the
	// rest of AZURE_* from the process's environment.
	NewCredential func(*azidentity.DefaultAzureCredentialOptions) (azcore.TokenCredential, error)

	logger *slog.Logger
	// cred is the Microsoft Entra ID credential, made on first use.
	cred azcore.TokenCredential
	// ctx is the context of the command Load configured.
	ctx context.Context
}

// Context is the context of the command being run (see Load), or
// context.Background before Load.
func (f *Factory) Context() context.Context {
	if f.ctx == nil {
		return context.Background()
	}
	return f.ctx
}

// NewFactory returns a Factory with a fresh viper instance, the wall
// clock and the process's environment.
func NewFactory(io *IOStreams) *Factory {
	v := viper.New()
	v.SetDefault(KeyOutput, "table")
	v.SetDefault(KeyLogLevel, "warn")
	v.SetDefault(KeyLogFormat, "text")
	return &Factory{IO: io, V: v, Now: time.Now, Getenv: os.Getenv, NewCredential: defaultCredential}
}

// defaultCredential is azidentity.NewDefaultAzureCredential as a
// NewCredential.
func defaultCredential(o *azidentity.DefaultAzureCredentialOptions) (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(o)
}

// getenv is f.Getenv, else os.Getenv.
func (f *Factory) getenv(key string) string {
	if f.Getenv == nil {
		return os.Getenv(key)
	}
	return f.Getenv(key)
}

// DefaultConfigFile is <user config dir>/iotctl/config.yaml.
func DefaultConfigFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "iotctl", "config.yaml")
}

// Load configures cmd, the command about to run: it reads the config
// file (--config, else IOTCTL_CONFIG, else the default one; a missing
// default file is fine, a missing named one is an error), sets every
// flag the command line did not set from its environment variable or
// the file (see the comment at the top of config.go), reports on
// stderr the keys of the file that no command reads, and binds every
// flag to f.V under its key. A value a flag cannot take is a
// *UsageError naming where it came from.
func (f *Factory) Load(cmd *cobra.Command) error {
	f.ctx = cmd.Context()
	getenv := f.getenv
	named := getenv(EnvName("", KeyConfig))
	if fl := cmd.Flags().Lookup(KeyConfig); fl != nil && fl.Changed {
		named = fl.Value.String()
	}
	cfg, err := readConfig(named)
	if err != nil {
		return err
	}
	keys, err := bindFlags(cmd, cfg, getenv)
	if err != nil {
		return err
	}
	checkKeys(f.IO.ErrOut, cmd.Root(), cfg)
	var bindErr error
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if err := f.V.BindPFlag(ConfigKey(fl), fl); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return bindErr
	}
	path := CommandPath(cmd)
	for _, k := range extraKeys {
		if keys[k] {
			continue
		}
		if raw, src, ok := lookup(getenv, cfg, path, k); ok {
			s, err := scalar(raw)
			if err != nil {
				return Usagef("%s: %v", src, err)
			}
			f.V.Set(k, s)
		}
	}
	return nil
}

// Output returns the chosen output format, checked against allowed.
func (f *Factory) Output(allowed ...output.Format) (output.Format, error) {
	fm, err := output.ParseFormat(f.V.GetString(KeyOutput), allowed...)
	if err != nil {
		return "", &UsageError{Err: err}
	}
	return fm, nil
}

// Printer returns a printer on stdout in the chosen format.
func (f *Factory) Printer(allowed ...output.Format) (*output.Printer, error) {
	fm, err := f.Output(allowed...)
	if err != nil {
		return nil, err
	}
	return output.New(f.IO.Out, fm, f.IO.OutTTY), nil
}

// Logger returns the slog logger configured by --log-level and
// --log-format, writing to stderr.
func (f *Factory) Logger() (*slog.Logger, error) {
	if f.logger != nil {
		return f.logger, nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.V.GetString(KeyLogLevel))); err != nil {
		return nil, Usagef("--log-level %q: use debug, info, warn or error", f.V.GetString(KeyLogLevel))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch lf := f.V.GetString(KeyLogFormat); lf {
	case "text":
		f.logger = slog.New(slog.NewTextHandler(f.IO.Diag(), opts))
	case "json":
		f.logger = slog.New(slog.NewJSONHandler(f.IO.Diag(), opts))
	default:
		return nil, Usagef("--log-format %q: use text or json", lf)
	}
	return f.logger, nil
}

// ServiceConnectionString returns the configured service connection
// string (--connection-string, IOTCTL_CONNECTION_STRING, config file),
// parsed and required to be a service policy string.
func (f *Factory) ServiceConnectionString() (*connstr.ConnectionString, error) {
	s := f.V.GetString(KeyConnectionString)
	if s == "" {
		return nil, Usagef("no service connection string: pass --connection-string, set IOTCTL_CONNECTION_STRING, or put connection-string in %s (for the local hub, `iotctl hub serve` prints one)", DefaultConfigFile())
	}
	cs, err := connstr.Parse(s)
	if err != nil {
		return nil, err
	}
	if err := cs.Require(connstr.KindService); err != nil {
		return nil, fmt.Errorf("%w (the iothubowner or service policy's string, from the portal or `iotctl hub serve`)", err)
	}
	return cs, nil
}

// DeviceConnectionString returns the configured device or module
// connection string (--connection-string, then
// IOTCTL_DEVICE_CONNECTION_STRING / device-connection-string).
func (f *Factory) DeviceConnectionString(flagValue string) (*connstr.ConnectionString, error) {
	s := flagValue
	if s == "" {
		s = f.V.GetString(KeyDeviceConnectionString)
	}
	if s == "" {
		return nil, Usagef("no device connection string: pass --connection-string, set IOTCTL_DEVICE_CONNECTION_STRING, or put device-connection-string in %s (`iotctl hub device create` prints one)", DefaultConfigFile())
	}
	cs, err := connstr.Parse(s)
	if err != nil {
		return nil, err
	}
	if err := cs.Require(connstr.KindDevice, connstr.KindModule); err != nil {
		return nil, err
	}
	return cs, nil
}

// DeviceClient returns a device client for o (the connection and
// transport options a command resolved from its flags, o.Transport
// among them), logging through Logger. It does not connect.
func (f *Factory) DeviceClient(o *device.Options) (device.Conn, error) {
	logger, err := f.Logger()
	if err != nil {
		return nil, err
	}
	o.Logger = logger
	return device.Open(o)
}

// UserAgent is what iotctl's clients send as User-Agent.
func UserAgent() string { return "iotctl/" + Version() }

// ServiceOptions are the service client options of the configuration:
// CA file, WebSocket, proxy (a bad URL is a *UsageError), logger and
// user agent.
func (f *Factory) ServiceOptions() (*service.Options, error) {
	log, err := f.Logger()
	if err != nil {
		return nil, err
	}
	o := &service.Options{
		CAFile:    f.V.GetString(KeyCAFile),
		WebSocket: f.V.GetBool(KeyWebSocket),
		Logger:    log,
		UserAgent: UserAgent(),
	}
	if p := f.V.GetString(KeyProxy); p != "" {
		if _, err := proxy.ParseURL(p); err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--proxy: %w", err)}
		}
		o.Proxy = p
	}
	return o, nil
}
