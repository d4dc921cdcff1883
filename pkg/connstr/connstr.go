package connstr

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/iotctl/iotctl/pkg/sas"
)

// Kind says what a connection string is for.
type Kind int

// The kinds of connection string.
const (
	// KindUnknown is the zero Kind; Parse never returns it.
	KindUnknown Kind = iota
	// KindService is a hub-level shared access policy: registry,
	// twins, direct methods, cloud-to-device messages.
	KindService
	// KindDevice is a device identity.
	KindDevice
	// KindModule is a module identity of a device.
	KindModule
	// KindEventHub is the Event Hub-compatible endpoint for reading
	// telemetry.
	KindEventHub
)

// String returns "service", "device", "module", "eventhub" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindService:
		return "service"
	case KindDevice:
		return "device"
	case KindModule:
		return "module"
	case KindEventHub:
		return "eventhub"
	}
	return "unknown"
}

// Auth says how a connection string authenticates.
type Auth int

// The authentication methods.
const (
	AuthNone Auth = iota
	// AuthKey is a shared access key (device, module or policy key).
	AuthKey
	// AuthToken is a ready-made SAS token (SharedAccessSignature).
	AuthToken
	// AuthX509 is a client certificate (x509=true).
	AuthX509
)

// String returns "sas-key", "sas-token", "x509" or "none".
func (a Auth) String() string {
	switch a {
	case AuthKey:
		return "sas-key"
	case AuthToken:
		return "sas-token"
	case AuthX509:
		return "x509"
	}
	return "none"
}

// The keys a connection string may hold, spelled as Azure spells them.
const (
	KeyHostName               = "HostName"
	KeyDeviceID               = "DeviceId"
	KeyModuleID               = "ModuleId"
	KeySharedAccessKeyName    = "SharedAccessKeyName"
	KeySharedAccessKey        = "SharedAccessKey"
	KeySharedAccessSignature  = "SharedAccessSignature"
	KeyGatewayHostName        = "GatewayHostName"
	KeyX509                   = "x509"
	KeyEndpoint               = "Endpoint"
	KeyEntityPath             = "EntityPath"
	KeyUseDevelopmentEmulator = "UseDevelopmentEmulator"
)

var iotHubKeys = []string{KeyHostName, KeyDeviceID, KeyModuleID, KeySharedAccessKeyName, KeySharedAccessKey,
	KeySharedAccessSignature, KeyGatewayHostName, KeyX509}

// Errors for conditions; a *ParseError wraps one of them where it fits,
// so errors.Is works on what Parse returns.
var (
	ErrEmpty         = errors.New("connstr: empty connection string")
	ErrMissingKey    = errors.New("connstr: missing key")
	ErrDuplicateKey  = errors.New("connstr: duplicate key")
	ErrUnknownKey    = errors.New("connstr: unknown key")
	ErrEmptyElement  = errors.New("connstr: empty element")
	ErrInvalidValue  = errors.New("connstr: invalid value")
	ErrMixedAuth     = errors.New("connstr: more than one authentication method")
	ErrWrongKind     = errors.New("connstr: wrong kind of connection string")
	ErrNotBase64Key  = errors.New("connstr: shared access key is not valid base64")
	ErrNoCredentials = errors.New("connstr: no credentials")
)

// ParseError says which key of a connection string is wrong and why.
// Its message never contains a key or signature.
type ParseError struct {
	// Key is the connection-string key at fault ("" when the problem
	// is not about one key).
	Key string
	// Reason says what is wrong, in words a user can act on.
	Reason string
	// Err is the condition (one of the Err* sentinels).
	Err error
}

func (e *ParseError) Error() string {
	if e.Key == "" {
		return "connstr: " + e.Reason
	}
	return "connstr: " + e.Key + ": " + e.Reason
}

func (e *ParseError) Unwrap() error { return e.Err }

func perr(err error, key, format string, args ...any) *ParseError {
	return &ParseError{Key: key, Reason: fmt.Sprintf(format, args...), Err: err}
}

// ConnectionString is a parsed, validated connection string. The zero
// value is not valid; make one with Parse. String and LogValue redact
// SharedAccessKey and SharedAccessSignature; Format returns the whole
// text.
type ConnectionString struct {
	// Kind is what the string is for.
	Kind Kind
	// HostName is the IoT Hub host, possibly with a port
	// ("myhub.azure-devices.net", "localhost:8443"). For KindEventHub
	// it is the host of Endpoint.
	HostName string
	// DeviceID and ModuleID name the identity (device and module kinds).
	DeviceID, ModuleID string
	// SharedAccessKeyName is the policy name (service and eventhub
	// kinds, or a device string that uses a policy with DeviceConnect).
	SharedAccessKeyName string
	// SharedAccessKey is the base64 key as written in the string.
	SharedAccessKey string
	// SharedAccessSignature is a ready-made token, as written.
	SharedAccessSignature string
	// GatewayHostName is the IoT Edge gateway to connect to instead of
	// HostName (HostName stays in the MQTT username and the token).
	GatewayHostName string
	// X509 is true for x509=true: the identity uses a client certificate.
	X509 bool
	// Endpoint is the Event Hub-compatible endpoint ("sb://host/").
	Endpoint string
	// EntityPath is the Event Hub-compatible name.
	EntityPath string
	// UseDevelopmentEmulator selects plain AMQP without TLS (eventhub).
	UseDevelopmentEmulator bool
	// Extra holds keys an Event Hub connection string carried that
	// iotctl does not use, in order; IoT Hub strings never have any.
	Extra [][2]string
}

// Auth reports how the string authenticates.
func (c *ConnectionString) Auth() Auth {
	switch {
	case c.X509:
		return AuthX509
	case c.SharedAccessSignature != "":
		return AuthToken
	case c.SharedAccessKey != "":
		return AuthKey
	}
	return AuthNone
}

// Host returns HostName without its port.
func (c *ConnectionString) Host() string {
	h, _ := splitPort(c.HostName)
	return h
}

// Port returns the port HostName names, or 0 when it names none.
func (c *ConnectionString) Port() int {
	_, p := splitPort(c.HostName)
	return p
}

// azureSuffixes are the host name suffixes of Azure IoT Hub in the
// global, China and US Government clouds.
var azureSuffixes = []string{".azure-devices.net", ".azure-devices.cn", ".azure-devices.us"}

// IsAzureHost reports whether host ("myhub.azure-devices.net", with or
// without a port) is an Azure IoT Hub, as opposed to a local hub or
// another endpoint, where Azure's limits and throttles do not apply.
func IsAzureHost(host string) bool {
	h, _ := splitPort(host)
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	for _, s := range azureSuffixes {
		if strings.HasSuffix(h, s) && len(h) > len(s) {
			return true
		}
	}
	return false
}

// Key decodes SharedAccessKey. Parse has already checked it, so the
// error is only for a ConnectionString built by hand.
func (c *ConnectionString) Key() ([]byte, error) {
	k, err := sas.DecodeKey(c.SharedAccessKey)
	if err != nil {
		return nil, ErrNotBase64Key
	}
	return k, nil
}

// Token parses SharedAccessSignature.
func (c *ConnectionString) Token() (*sas.Token, error) {
	return sas.Parse(c.SharedAccessSignature)
}

// Format returns the connection string as text, secrets included, with
// the keys in Azure's usual order.
func (c *ConnectionString) Format() string { return c.format(false) }

// String returns the connection string with SharedAccessKey and the
// signature of SharedAccessSignature redacted.
func (c *ConnectionString) String() string { return c.format(true) }

// LogValue implements slog.LogValuer; secrets are redacted.
func (c *ConnectionString) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", c.Kind.String()),
		slog.String("host", c.HostName),
		slog.String("device", c.DeviceID),
		slog.String("module", c.ModuleID),
		slog.String("policy", c.SharedAccessKeyName),
		slog.String("auth", c.Auth().String()),
	)
}

// Redacted is what String writes in place of a secret.
const Redacted = "REDACTED"

func (c *ConnectionString) format(redact bool) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	key, sig := c.SharedAccessKey, c.SharedAccessSignature
	if redact {
		if key != "" {
			key = Redacted
		}
		if sig != "" {
			if t, err := sas.Parse(sig); err == nil {
				sig = t.String()
			} else {
				sig = Redacted
			}
		}
	}
	if c.Kind == KindEventHub {
		add(KeyEndpoint, c.Endpoint)
		add(KeySharedAccessKeyName, c.SharedAccessKeyName)
		add(KeySharedAccessKey, key)
		add(KeySharedAccessSignature, sig)
		add(KeyEntityPath, c.EntityPath)
		if c.UseDevelopmentEmulator {
			add(KeyUseDevelopmentEmulator, "true")
		}
		for _, kv := range c.Extra {
			add(kv[0], kv[1])
		}
		return strings.Join(parts, ";")
	}
	add(KeyHostName, c.HostName)
	add(KeyDeviceID, c.DeviceID)
	add(KeyModuleID, c.ModuleID)
	add(KeySharedAccessKeyName, c.SharedAccessKeyName)
	add(KeySharedAccessKey, key)
	add(KeySharedAccessSignature, sig)
	if c.X509 {
		add(KeyX509, "true")
	}
	add(KeyGatewayHostName, c.GatewayHostName)
	return strings.Join(parts, ";")
}

// Require returns an error wrapping ErrWrongKind unless c is one of
// kinds. The message says what was given and what is needed.
func (c *ConnectionString) Require(kinds ...Kind) error {
	for _, k := range kinds {
		if c.Kind == k {
			return nil
		}
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.String()
	}
	return &ParseError{
		Reason: fmt.Sprintf("this is a %s connection string; a %s connection string is needed", c.Kind, strings.Join(names, " or ")),
		Err:    ErrWrongKind,
	}
}

func splitPort(hostport string) (string, int) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return hostport, 0
	}
	return h, n
}

// validHost checks "host" or "host:port" (port 1–65535); it rejects a
// scheme, a path and white space.
func validHost(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if strings.Contains(s, "://") {
		return errors.New("must be a host name without a scheme such as https://")
	}
	if strings.ContainsAny(s, "/ \t?#@;") {
		return errors.New("must be a host name, optionally with :port, and nothing else")
	}
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("has port %q, which is not a number from 1 to 65535", p)
		}
		host = h
	} else if strings.Count(s, ":") == 1 {
		return errors.New("has an empty or malformed port")
	} else if strings.Contains(s, ":") && net.ParseIP(s) == nil {
		// Only a bare IPv6 address has colons and no port.
		return errors.New("has more than one ':'; write host:port, or [IPv6]:port")
	}
	if host == "" {
		return errors.New("has no host before the port")
	}
	return nil
}

func parseEndpoint(s string) (host string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", errors.New("must be a URL such as sb://myhub.servicebus.windows.net/")
	}
	if u.Scheme != "sb" && u.Scheme != "amqps" && u.Scheme != "amqp" {
		return "", fmt.Errorf("has scheme %q; want sb://", u.Scheme)
	}
	return u.Host, nil
}
