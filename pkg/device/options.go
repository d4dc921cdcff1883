package device

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
)

// Defaults of Options.
const (
	// DefaultPort is the MQTT over TLS port IoT Hub listens on.
	DefaultPort = 8883
	// DefaultWebSocketPort is the port of MQTT and AMQP over WebSocket
	// (wss), and of HTTPS.
	DefaultWebSocketPort = 443
	// DefaultAMQPPort is the AMQP over TLS port IoT Hub listens on.
	DefaultAMQPPort = 5671
	// DefaultPollInterval is how often an HTTPS client asks for
	// cloud-to-device messages.
	DefaultPollInterval = 5 * time.Second
	// WebSocketPath is where IoT Hub serves MQTT over WebSocket.
	WebSocketPath = "/$iothub/websocket"
	// DefaultKeepAlive is the MQTT keep-alive (the Python SDK's).
	DefaultKeepAlive = 60 * time.Second
	// DefaultTokenTTL is the lifetime of each SAS token the client signs.
	DefaultTokenTTL = time.Hour
	// DefaultConnectTimeout bounds one connection attempt (TCP, TLS,
	// CONNECT/CONNACK and SUBSCRIBE/SUBACK).
	DefaultConnectTimeout = 30 * time.Second
	// DefaultMinRetryDelay is the first reconnect back-off.
	DefaultMinRetryDelay = time.Second
	// DefaultMaxRetryDelay caps the reconnect back-off.
	DefaultMaxRetryDelay = 30 * time.Second
	// APIVersion is the api-version the client puts in its user name.
	APIVersion = "2021-04-12"
)

// renewFraction is the part of a token's lifetime after which the
// client reconnects with a fresh token (the C SDK's 0.8).
const renewFraction = 0.8

// Options configure a Client. A nil *Options is not valid: the client
// needs an identity, given either as ConnectionString or as HostName
// and DeviceID, and credentials: SharedAccessKey, SharedAccessSignature
// or a client certificate (CertFile and KeyFile, or Certificate).
type Options struct {
	// ConnectionString is a device or module connection string
	// ("HostName=...;DeviceId=...;SharedAccessKey=..."). When it is
	// set, the identity fields below must be empty. An x509=true
	// string needs a client certificate (CertFile or Certificate).
	ConnectionString string

	// HostName is the hub host, with an optional port
	// ("myhub.azure-devices.net", "localhost:8443"). It goes into the
	// MQTT user name and the token's resource as written.
	HostName string
	// DeviceID is the device identity. Required.
	DeviceID string
	// ModuleID makes the client a module of DeviceID. Default: none.
	ModuleID string
	// SharedAccessKey is the identity's base64 key. The client signs a
	// fresh token with it on every connect.
	SharedAccessKey string
	// SharedAccessSignature is a ready-made token used as is, instead
	// of a key. It cannot be renewed: when it expires the hub drops the
	// connection and the reconnect is refused with ErrUnauthorized.
	SharedAccessSignature string
	// GatewayHostName, when set, is the host (and port) the client
	// connects to (an IoT Edge gateway); HostName stays in the user
	// name and the token.
	GatewayHostName string

	// CertFile and KeyFile are the PEM files of an X.509 client
	// certificate (the first certificate in CertFile is the device's;
	// more certificates after it are sent as its chain) and its
	// private key. With a certificate the client sends no password:
	// the hub authenticates the device by the certificate (registry
	// authentication selfSigned or certificateAuthority). KeyFile
	// defaults to CertFile (one PEM file holding both). Errors reading
	// or matching them are *FileError values. Default: none.
	CertFile, KeyFile string
	// Certificate is a client certificate already loaded (see
	// LoadKeyPair), used instead of CertFile and KeyFile. Default: none.
	Certificate *tls.Certificate

	// Transport is the protocol: TransportMQTT (the zero value),
	// TransportAMQP or TransportHTTPS. It sets the default port: 8883,
	// 5671 and 443.
	Transport Transport
	// C2DSettle is what happens to a cloud-to-device message when the
	// handler returns: complete (the zero value), reject or abandon.
	// Over MQTT IoT Hub completes every message the client
	// acknowledges, so only SettleComplete is valid there.
	C2DSettle Settle
	// PollInterval is how often an HTTPS client asks for
	// cloud-to-device messages while a C2D handler is set; a message
	// found makes it ask again at once. Other transports ignore it.
	// Default: DefaultPollInterval (5 s).
	PollInterval time.Duration

	// WebSocket makes the client speak MQTT (or AMQP, subprotocol
	// AMQPWSB10) over a secure WebSocket,
	// wss://{host}:{port}/$iothub/websocket with subprotocol "mqtt",
	// instead of MQTT over TLS. The port is the one in HostName (or
	// GatewayHostName), DefaultWebSocketPort (443) when it names none.
	// Default: false. HTTPS has no WebSocket: it is an error there.
	WebSocket bool
	// Proxy is the URL of an HTTP proxy to tunnel through with HTTP
	// CONNECT ("http://[user:password@]host:port"; "https://" for TLS
	// to the proxy; no scheme means http). When set it is used for
	// every connection, MQTT over TLS or WebSocket, whatever the
	// target. When empty, a WebSocket or HTTPS connection uses the proxy of the
	// environment (HTTPS_PROXY or https_proxy, skipped for the hosts in
	// NO_PROXY and for localhost and loopback addresses, as curl and Go
	// do), read when New is called; MQTT over TLS connects directly.
	// A proxy that cannot be reached or refuses the tunnel is a
	// *ProxyError. Default: none.
	Proxy string
	// SourceAddr, when valid, is the local IP address the client's
	// connections come from (to the hub, gateway or proxy), as curl's
	// --interface: one source address gives about 28,000 connections
	// to one hub address (Linux's ephemeral ports), so a fleet larger
	// than that spreads its devices over several. The address must be
	// one of this machine's (any 127.x.y.z on Linux). Default: the
	// system's choice.
	SourceAddr netip.Addr

	// CAFile is a PEM file of CA certificates to trust instead of the
	// system pool (for example the local hub's CA). Default: none.
	CAFile string
	// RootCAs is the pool of CAs to trust. Default: the system pool.
	// With CAFile too, the file's certificates are added to a copy.
	RootCAs *x509.CertPool

	// KeepAlive is the MQTT keep-alive. Default: DefaultKeepAlive (60 s).
	// IoT Hub's useful maximum is 1177 s.
	KeepAlive time.Duration
	// QoS is the QoS of telemetry: 0 or 1. Default: 1 (SendEvent waits
	// for the PUBACK). Set QoS0 for QoS 0; the zero value means 1.
	QoS QoS
	// TokenTTL is the lifetime of each token signed with
	// SharedAccessKey. The client reconnects with a fresh token after
	// 80% of it. Default: DefaultTokenTTL (1 h).
	TokenTTL time.Duration
	// ConnectTimeout bounds one connection attempt. Default:
	// DefaultConnectTimeout (30 s).
	ConnectTimeout time.Duration
	// MinRetryDelay is the back-off before the first reconnect attempt;
	// it doubles per attempt, with jitter, up to MaxRetryDelay.
	// Default: DefaultMinRetryDelay (1 s).
	MinRetryDelay time.Duration
	// MaxRetryDelay caps the back-off. Default: DefaultMaxRetryDelay (30 s).
	MaxRetryDelay time.Duration
	// RetryConnect makes Connect itself retry failed attempts (network
	// errors, server unavailable) with back-off until ctx is done,
	// instead of returning the first error. Refusals are never retried.
	// Default: false.
	RetryConnect bool
	// ProductInfo is the DeviceClientType in the user name.
	// Default: "iotctl/{version}".
	ProductInfo string

	// OnState, if set, is called on every connection-state change, one
	// call at a time and in order, from the client's goroutines. It must
	// return quickly and must not call Close. Default: none.
	OnState func(Event)
	// Logger receives debug and warning logs. Default: discard.
	Logger *slog.Logger
}

// QoS is the MQTT quality of service of telemetry.
type QoS int

// The QoS values. The zero value is the default, QoS1.
const (
	QoSDefault QoS = iota
	// QoS0 is at most once: SendEvent returns when the PUBLISH is
	// written to the connection.
	QoS0
	// QoS1 is at least once: SendEvent returns when the hub sent the
	// PUBACK. A message may be sent again after a reconnect.
	QoS1
)

// ParseQoS accepts "0" and "1".
func ParseQoS(s string) (QoS, error) {
	switch s {
	case "0":
		return QoS0, nil
	case "1":
		return QoS1, nil
	}
	return 0, fmt.Errorf("device: QoS %q: use 0 or 1 (IoT Hub does not support QoS 2)", s)
}

// config is Options resolved and checked.
type config struct {
	hostName    string // for user name and token
	address     string // host:port to dial
	serverName  string // TLS server name
	wsURL       string // wss://... when MQTT goes over WebSocket
	proxy       func(target string) (*url.URL, error)
	cert        *tls.Certificate // X.509 client certificate, if any
	certFile    string           // where cert came from, for messages
	deviceID    string
	moduleID    string
	clientID    string
	key         []byte
	token       string
	tls         *tls.Config
	keepAlive   time.Duration
	qos         byte
	ttl         time.Duration
	connTimeout time.Duration
	minDelay    time.Duration
	maxDelay    time.Duration
	retry       bool
	username    string
	transport   Transport
	settle      Settle
	poll        time.Duration
	sourceAddr  netip.Addr
	onState     func(Event)
	emu         sync.Mutex // serializes onState calls
	log         *slog.Logger
	// onPutToken, when set (by tests), is called after the hub accepted
	// a token put on $cbs, with the token's expiry.
	onPutToken func(expiry time.Time)
}

func resolve(o *Options) (*config, error) {
	if o == nil {
		return nil, errors.New("device: no options: a connection string or a host, device id and key are needed")
	}
	host, dev, mod, key, sig, gw := o.HostName, o.DeviceID, o.ModuleID, o.SharedAccessKey, o.SharedAccessSignature, o.GatewayHostName
	x509String := false
	if o.ConnectionString != "" {
		if host != "" || dev != "" || mod != "" || key != "" || sig != "" || gw != "" {
			return nil, errors.New("device: give either ConnectionString or the identity fields, not both")
		}
		cs, err := connstr.Parse(o.ConnectionString)
		if err != nil {
			return nil, err
		}
		if err := cs.Require(connstr.KindDevice, connstr.KindModule); err != nil {
			return nil, err
		}
		x509String = cs.X509
		host, dev, mod, key, sig, gw = cs.HostName, cs.DeviceID, cs.ModuleID, cs.SharedAccessKey, cs.SharedAccessSignature, cs.GatewayHostName
	}
	if host == "" {
		return nil, errors.New("device: no host name")
	}
	if dev == "" {
		return nil, errors.New("device: no device id")
	}
	c := &config{hostName: host, deviceID: dev, moduleID: mod, clientID: dev}
	if mod != "" {
		c.clientID = dev + "/" + mod
	}
	hasCert := o.Certificate != nil || o.CertFile != "" || o.KeyFile != ""
	switch {
	case key != "" && sig != "":
		return nil, errors.New("device: give either a shared access key or a signature, not both")
	case hasCert && (key != "" || sig != ""):
		return nil, errors.New("device: give either a shared access key or signature, or a client certificate, not both")
	case hasCert:
		c.cert, c.certFile = o.Certificate, o.CertFile
		if c.cert == nil {
			if o.CertFile == "" {
				return nil, errors.New("device: a KeyFile without a CertFile: give the client certificate too")
			}
			cert, err := LoadKeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, err
			}
			c.cert = cert
		}
		if c.cert.Leaf == nil && len(c.cert.Certificate) > 0 {
			leaf, err := x509.ParseCertificate(c.cert.Certificate[0])
			if err != nil {
				return nil, fmt.Errorf("device: client certificate: %w", err)
			}
			c.cert.Leaf = leaf
		}
	case x509String:
		return nil, ErrNoCertificate
	case key != "":
		k, err := sas.DecodeKey(key)
		if err != nil {
			return nil, err
		}
		c.key = k
	case sig != "":
		if _, err := sas.Parse(sig); err != nil {
			return nil, err
		}
		c.token = sig
	default:
		return nil, errors.New("device: no credentials: a shared access key, a signature or a client certificate is needed")
	}
	if err := c.resolveTransport(o); err != nil {
		return nil, err
	}
	dial := host
	if gw != "" {
		dial = gw
	}
	defPort := DefaultPort
	switch {
	case o.WebSocket, o.Transport == TransportHTTPS:
		defPort = DefaultWebSocketPort
	case o.Transport == TransportAMQP:
		defPort = DefaultAMQPPort
	}
	h, port, err := splitHostPort(dial, defPort)
	if err != nil {
		return nil, err
	}
	c.serverName, c.address = h, net.JoinHostPort(h, strconv.Itoa(port))
	if o.WebSocket {
		u := url.URL{Scheme: "wss", Host: c.address, Path: WebSocketPath}
		if port == DefaultWebSocketPort {
			// The default port goes without saying, as in the SDKs' URL.
			u.Host = strings.TrimSuffix(c.address, ":"+strconv.Itoa(port))
		}
		c.wsURL = u.String()
	}
	c.sourceAddr = o.SourceAddr
	if err := c.resolveProxy(o); err != nil {
		return nil, err
	}

	pool := o.RootCAs
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fileError("CA", o.CAFile, err)
		}
		if pool == nil {
			pool = x509.NewCertPool()
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &FileError{What: "CA", Path: o.CAFile, Reason: "holds no PEM certificate"}
		}
	}
	c.tls = &tls.Config{ServerName: c.serverName, RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.cert != nil {
		// Always present the certificate, whatever CAs the server says
		// it accepts: a self-signed device certificate is issued by
		// none of them.
		cert := c.cert
		c.tls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}

	c.keepAlive = orDefault(o.KeepAlive, DefaultKeepAlive)
	c.ttl = orDefault(o.TokenTTL, DefaultTokenTTL)
	c.connTimeout = orDefault(o.ConnectTimeout, DefaultConnectTimeout)
	c.minDelay = orDefault(o.MinRetryDelay, DefaultMinRetryDelay)
	c.maxDelay = orDefault(o.MaxRetryDelay, DefaultMaxRetryDelay)
	if c.maxDelay < c.minDelay {
		c.maxDelay = c.minDelay
	}
	switch o.QoS {
	case QoSDefault, QoS1:
		c.qos = 1
	case QoS0:
		c.qos = 0
	default:
		return nil, fmt.Errorf("device: QoS %d: use QoS0 or QoS1", o.QoS)
	}
	c.retry = o.RetryConnect
	pi := o.ProductInfo
	if pi == "" {
		pi = "iotctl/" + version()
	}
	if c.transport == TransportMQTT {
		// Only MQTT sends it; an AMQP fleet of 100,000 keeps none.
		c.username = host + "/" + c.clientID + "/?api-version=" + APIVersion + "&DeviceClientType=" + sas.EncodeResource(pi)
	}
	c.onState = o.OnState
	c.log = o.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// resolveTransport checks the transport and what it allows.
func (c *config) resolveTransport(o *Options) error {
	if o.Transport < TransportMQTT || o.Transport > TransportHTTPS {
		return fmt.Errorf("device: transport %d: use TransportMQTT, TransportAMQP or TransportHTTPS", o.Transport)
	}
	if o.C2DSettle < SettleComplete || o.C2DSettle > SettleAbandon {
		return fmt.Errorf("device: C2D settlement %d: use SettleComplete, SettleReject or SettleAbandon", o.C2DSettle)
	}
	switch {
	case o.Transport == TransportMQTT && o.C2DSettle != SettleComplete:
		// "IoT Hub doesn't support ... reject or abandon a
		// cloud-to-device message" over MQTT
		// (https://learn.microsoft.com/azure/iot-hub/iot-hub-mqtt-support).
		return fmt.Errorf("device: C2D settlement %s is not possible over MQTT, where IoT Hub completes every message the device acknowledges: use the AMQP or HTTPS transport", o.C2DSettle)
	case o.Transport == TransportHTTPS && o.WebSocket:
		return errors.New("device: HTTPS has no WebSocket variant: drop WebSocket, or use the MQTT or AMQP transport")
	}
	c.transport, c.settle = o.Transport, o.C2DSettle
	c.poll = orDefault(o.PollInterval, DefaultPollInterval)
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// splitHostPort splits "host[:port]" with def when no port is given.
func splitHostPort(s string, def int) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or an IPv6 address without brackets).
		return s, def, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("device: host %q has a bad port", s)
	}
	return h, n, nil
}

// version is the module version of the running binary, or "devel".
// It is read once: debug.ReadBuildInfo parses the build information
// again at every call, and every AMQP link of every device of a fleet
// names the version.
var version = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
})

// target names what the client connects to, for messages.
func (c *config) target() string {
	if c.wsURL != "" {
		return c.wsURL
	}
	return c.address
}

// resource is the token resource the identity's key signs.
func (c *config) resource() string {
	if c.moduleID != "" {
		return sas.ModuleResource(c.hostName, c.deviceID, c.moduleID)
	}
	return sas.DeviceResource(c.hostName, c.deviceID)
}

// password returns the SAS token for the next connect and when the
// client should reconnect to renew it (zero for a fixed token, and an
// empty password for a client certificate).
func (c *config) password(now time.Time) (string, time.Duration, error) {
	if c.key == nil {
		return c.token, 0, nil
	}
	tok, err := sas.Sign(c.resource(), c.key, &sas.SignOptions{Expiry: now.Add(c.ttl)})
	if err != nil {
		return "", 0, err
	}
	// se is whole seconds (the fraction is dropped), so the token may
	// live up to a second less than ttl: renew at the fraction of what
	// it really has, or a short-lived token expires before its renewal.
	return tok.Encode(), time.Duration(float64(tok.Expiry().Sub(now)) * renewFraction), nil
}

// emit calls OnState, one call at a time.
func (c *config) emit(e Event) {
	if c.onState == nil {
		return
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	c.onState(e)
}
