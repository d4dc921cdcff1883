package device

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
)

// Configuration keys of the connection flags read through viper (flag,
// IOTCTL_WEBSOCKET / IOTCTL_PROXY / IOTCTL_SAS_TTL, config file).
const (
	keyWebSocket = cmdutil.KeyWebSocket
	keyProxy     = cmdutil.KeyProxy
	keySASTTL    = "sas-ttl"
	keyTransport = "transport"
)

// connectFlags are how a device command reaches the hub and proves who
// it is, besides the connection string and --ca-file.
type connectFlags struct {
	certFile, keyFile string
	host, deviceID    string
	transportName     string
	fs                *pflag.FlagSet

	// Set by transport, for exitError's hints.
	websocket bool
	proxy     string
	kind      device.Transport
}

// connectHelp is the part of the device commands' help that explains
// these flags.
const connectHelp = transportHelp + "\n\n" + identityHelp

// transportHelp explains --transport, --websocket and --proxy.
const transportHelp = `Transport: --transport mqtt (the default) is MQTT over TLS on port 8883,
amqp is AMQP 1.0 over TLS on port 5671, https is IoT Hub's device REST API on
port 443 (or the port in HostName for each). Over HTTPS there are no direct
methods and no twin, as in IoT Hub, and C2D messages are polled (every 5 s, at
once again after a message). --websocket uses MQTT or AMQP over a secure
WebSocket instead, wss://HOST/$iothub/websocket on port 443 (or the port in
HostName), for networks that only let HTTPS out; WebSocket and HTTPS go through
the proxy in HTTPS_PROXY unless NO_PROXY names the host (localhost and loopback
addresses are never proxied). --proxy URL tunnels every connection, whatever
the transport and the host, through that HTTP proxy with CONNECT
(http://[user:password@]host:port). A proxy that cannot be reached or refuses
the tunnel exits 1 with a message naming it and its answer.`

// identityHelp explains the device's credentials: X.509, SAS tokens and
// an IoT Edge gateway.
const identityHelp = `X.509: for an identity registered with a certificate (selfSigned thumbprint or
certificateAuthority), give --cert and --key (PEM) with an x509=true connection
string (HostName=...;DeviceId=...;x509=true) or with --host and --device-id
instead of a connection string. Unreadable or mismatched files exit 3; a
certificate the hub refuses (wrong thumbprint, untrusted CA, expired) exits 4.

SAS tokens: with a SharedAccessKey in the connection string the device signs a
token valid for --sas-ttl (default 1h, at least 10s), and renews it at 80% of
that lifetime (MQTT by reconnecting, AMQP with a new put-token on the live
connection, HTTPS with the next request), before the hub ends the
connection at its expiry: 'device simulate --sas-ttl 20s' prints "Reconnecting
to renew the SAS token" every 16 s (a "reconnecting" event with -o json). A
connection string with a SharedAccessSignature keeps its token, which cannot be
renewed: the hub disconnects the device when it expires.

IoT Edge: a GatewayHostName in the connection string is dialled (trust its CA
with --ca-file) while HostName stays in the MQTT user name and the token.`

func (c *connectFlags) add(fl *pflag.FlagSet) {
	c.fs = fl
	fl.StringVar(&c.transportName, keyTransport, "mqtt", "protocol to the hub: mqtt (port 8883), amqp (5671) or https (443; no methods or twin)")
	fl.Bool(keyWebSocket, false, "MQTT or AMQP over WebSocket (wss, port 443 or the port in HostName); uses HTTPS_PROXY")
	fl.String(keyProxy, "", "HTTP proxy URL to tunnel every connection through with CONNECT (default: HTTPS_PROXY, for --websocket and https only)")
	fl.StringVar(&c.certFile, "cert", "", "X.509 client certificate (PEM) for an x509=true connection string or --host/--device-id")
	fl.StringVar(&c.keyFile, "key", "", "private key (PEM) of --cert (default: in the --cert file)")
	fl.StringVar(&c.host, "host", "", "hub host name[:port], with --device-id and --cert instead of a connection string; for a fleet, the hub's host")
	fl.StringVar(&c.deviceID, cmdutil.KeyDeviceID, "", "device id, with --host and --cert instead of a connection string")
	fl.Duration(keySASTTL, device.DefaultTokenTTL, "lifetime of each SAS token signed with the connection string's key; renewed at 80% of it (MQTT reconnects, AMQP puts a new token; at least 10s)")
}

// minSASTTL is the shortest --sas-ttl: the device reconnects with a new
// token at 80% of its lifetime, which leaves 2 s to do so; a token's
// expiry is in whole seconds, so anything shorter is mostly rounding.
const minSASTTL = 10 * time.Second

// source says where the value of a connection flag came from.
func (c *connectFlags) source(name string) string {
	if c.fs == nil {
		return "the command line"
	}
	return cmdutil.ValueSource(c.fs, name)
}

// options fills the transport and identity of d from the flags and the
// device connection string (connStr, or the environment's). It loads
// the certificate, so that a bad file is a usage error before any
// network I/O.
func (c *connectFlags) options(f *cmdutil.Factory, connStr string, d *device.Options) error {
	if err := c.transport(f, d); err != nil {
		return err
	}
	if c.keyFile != "" && c.certFile == "" {
		return cmdutil.Usagef("--key needs --cert")
	}
	if c.host != "" || c.deviceID != "" {
		if connStr != "" && c.fs != nil && !cmdutil.FromCommandLine(c.fs, cmdutil.KeyConnectionString) &&
			(cmdutil.FromCommandLine(c.fs, "host") || cmdutil.FromCommandLine(c.fs, cmdutil.KeyDeviceID)) {
			// --host/--device-id on the command line win over a
			// connection string from the environment or config file.
			connStr = ""
		}
		switch {
		case connStr != "":
			return cmdutil.Usagef("give --connection-string or --host/--device-id, not both (the connection string comes from %s)",
				c.source(cmdutil.KeyConnectionString))
		case c.host == "" || c.deviceID == "":
			return cmdutil.Usagef("--host and --device-id go together")
		case c.certFile == "":
			return cmdutil.Usagef("--host/--device-id identify an X.509 device: give its --cert and --key too")
		}
		d.HostName, d.DeviceID = c.host, c.deviceID
	} else {
		cs, err := f.DeviceConnectionString(connStr)
		if err != nil {
			return err
		}
		switch {
		case cs.X509 && c.certFile == "":
			return cmdutil.Usagef("the connection string says x509=true: give the device's --cert and --key")
		case !cs.X509 && c.certFile != "":
			return cmdutil.Usagef("--cert is for an x509=true connection string (or --host/--device-id); this one has a key or signature")
		}
		d.ConnectionString = cs.Format()
	}
	if c.certFile != "" {
		cert, err := device.LoadKeyPair(c.certFile, c.keyFile)
		if err != nil {
			return &cmdutil.UsageError{Err: err}
		}
		d.Certificate, d.CertFile, d.KeyFile = cert, c.certFile, c.keyFile
	}
	return nil
}

// transport fills the transport of d: WebSocket, proxy, CA and the
// lifetime of its SAS tokens.
func (c *connectFlags) transport(f *cmdutil.Factory, d *device.Options) error {
	ttl := f.V.GetDuration(keySASTTL)
	if ttl < minSASTTL {
		return cmdutil.Usagef("--sas-ttl %s is too short: the device renews its token at 80%% of its lifetime and needs at least %s (e.g. --sas-ttl 20s)", ttl, minSASTTL)
	}
	d.TokenTTL = ttl
	tr, err := device.ParseTransport(c.transportName)
	if err != nil {
		return cmdutil.Usagef("--transport %q: use mqtt, amqp or https", c.transportName)
	}
	d.Transport = tr
	d.WebSocket = f.V.GetBool(keyWebSocket)
	if d.WebSocket && tr == device.TransportHTTPS {
		return cmdutil.Usagef("--websocket is for --transport mqtt or amqp: HTTPS has no WebSocket variant (it already uses port 443)")
	}
	if p := f.V.GetString(keyProxy); p != "" {
		if _, err := device.ParseProxyURL(p); err != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--proxy: %w", err)}
		}
		d.Proxy = p
	}
	d.CAFile = f.V.GetString(cmdutil.KeyCAFile)
	c.websocket, c.proxy, c.kind = d.WebSocket, d.Proxy, tr
	return nil
}

// x509 reports whether the device authenticates with a certificate.
func (c *connectFlags) x509() bool { return c.certFile != "" }

// authHint explains a refused CONNECT for the kind of credentials used.
func authHint(x509 bool) string {
	if x509 {
		return "check that the device exists and is enabled, and that its registered thumbprint is the certificate's (selfSigned) or that the certificate chains to a CA the hub trusts with CN = the device id (certificateAuthority), and has not expired"
	}
	return "check the connection string's key, or that the device exists and is enabled"
}

// exitError is the package's exitError with hints that depend on how
// the device connected: a refusal explained for a certificate, and a
// network failure of MQTT on 8883 (or AMQP on 5671) while HTTPS_PROXY
// is set.
func (c *connectFlags) exitError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, device.ErrUnauthorized) {
		return &cmdutil.ExitError{Code: cmdutil.ExitAuth, Err: fmt.Errorf("%w (%s)", err, authHint(c.x509()))}
	}
	var pe *device.ProxyError
	var ne net.Error
	if !c.websocket && c.kind != device.TransportHTTPS && c.proxy == "" && !errors.As(err, &pe) && errors.As(err, &ne) && envProxy() != "" {
		port, name := "8883", "MQTT"
		if c.kind == device.TransportAMQP {
			port, name = "5671", "AMQP"
		}
		err = fmt.Errorf("%w (HTTPS_PROXY is set, but %s on port %s does not use it: use --websocket, or --proxy to tunnel %s through a proxy)", err, name, port, name)
	}
	return exitError(err)
}

// envProxy returns the environment's HTTPS proxy setting, if any.
func envProxy() string {
	if p := os.Getenv("HTTPS_PROXY"); p != "" {
		return p
	}
	return os.Getenv("https_proxy")
}
