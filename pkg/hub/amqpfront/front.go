package amqpfront

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/sas"
)

// maxSessions is how many sessions one AMQP connection may have open.
const maxSessions = 1024

// DefaultRedirectPort is the port amqp:link:redirect names when
// Options.RedirectPort is 0: IoT Hub's AMQPS port.
const DefaultRedirectPort = 5671

// Options configure a Front. A nil *Options means the defaults.
type Options struct {
	// HostNames are the names the hub answers to ("localhost:8443",
	// "127.0.0.1", "myhub.local"); a token's scope must be one of them
	// or a resource under one (see auth.Options). The first is the
	// hub's host name: the Event Hub name and the redirect host come
	// from it. Default: nil, which accepts tokens for any host and names
	// the Event Hub "iothub".
	HostNames []string
	// EventHubName is the name of the Event Hub-compatible endpoint
	// (the EntityPath of its connection string), compared
	// case-insensitively in link addresses and management requests.
	// Default: EventHubName(HostNames[0]).
	EventHubName string
	// RedirectHost is the host named in the hostname and network-host
	// of the amqp:link:redirect answer to receivers at
	// /messages/events. Default: HostNames[0] without its port, or
	// "localhost".
	RedirectHost string
	// RedirectPort is the port named in the redirect. Default:
	// DefaultRedirectPort (5671).
	RedirectPort int
	// ConsumerGroups are the consumer groups of the Event
	// Hub-compatible endpoint besides DefaultConsumerGroup, as
	// `az iot hub consumer-group create` adds them on Azure (names are
	// compared case-insensitively; see ValidConsumerGroup). Each group
	// reads every event on its own, and epochs hold per group.
	// Default: none.
	ConsumerGroups []string
	// C2DEnqueued is called after a cloud-to-device message has been
	// queued for a device (moduleID "") or module, so that the hub can
	// deliver it at once to a connected device. It must not block for
	// long. Default: nil.
	C2DEnqueued func(deviceID, moduleID string)
	// CreatedAt is the Event Hub's created_at in management replies.
	// Default: the time New was called.
	CreatedAt time.Time
	// DPS serves the Device Provisioning Service's device API (SASL
	// PLAIN "{idScope}/registrations/{registrationId}", links on that
	// address; see dps.go). Default: nil, no DPS.
	DPS Provisioner
	// Core is the hub's device core: devices and modules attach links
	// under /devices/{id} (telemetry, C2D, methods, twin) with the
	// tokens they put on $cbs, and the Front serves them as adapters
	// over core sessions (device.go). Default: nil, device links are
	// refused with amqp:not-implemented.
	Core *core.Core
	// X509 authenticates a device or module (moduleID "") by the client
	// certificate of the connection nc (the TLS connection, or a
	// WebSocket connection over one), for links the connection's tokens
	// do not cover: X.509 devices open AMQP with no SASL (or ANONYMOUS)
	// and put no token on $cbs, so the TLS handshake is their only
	// credential. It returns nil when the certificate is the identity's
	// (its thumbprint, or signed by a device CA with the identity as
	// CN), ErrNoClientCertificate when nc carries none, or an error
	// whose text says why the certificate is refused (it reaches the
	// client in the refused attach). Default: nil, devices need tokens.
	X509 func(nc net.Conn, deviceID, moduleID string) error
	// Logger receives debug logs about connections and links. Default:
	// nil, which discards them.
	Logger *slog.Logger
	// Now is the clock for token expiry and management replies.
	// Default: time.Now.
	Now func() time.Time
	// Entra checks Microsoft Entra ID tokens put on $cbs (see
	// auth.Options.Entra). Default: nil, they are refused.
	Entra *auth.Entra
	// DisableLocalAuth refuses shared access policy tokens for the
	// hub's service nodes (see auth.Options.DisableLocalAuth); the
	// Event Hub-compatible endpoint keeps them. Default: false.
	DisableLocalAuth bool
	// AfterFunc calls f in its own goroutine after d has passed on the
	// clock Now reads, and returns a Timer that cancels the call: it
	// ends the links of a token when it expires. Tests give a fake
	// together with Now. Default: time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) Timer
}

// Timer is a pending call made with Options.AfterFunc. Stop cancels it
// and reports whether it was still pending.
type Timer interface {
	Stop() bool
}

func afterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Front is the AMQP 1.0 endpoint of the local IoT Hub: CBS, C2D send,
// feedback, the Event Hub-compatible telemetry endpoint and the
// redirect to it. Make one per hub with New and call Serve for each
// AMQP connection. A Front is safe for concurrent use; it has no
// goroutines of its own and needs no Close.
type Front struct {
	reg    *registry.Store
	tel    *telemetry.Log
	auth   *auth.Authorizer
	opts   Options
	ehName string
	log    *slog.Logger
	now    func() time.Time
	epochs *epochTable
	groups map[string]string // lower-cased name → name as configured
}

// New returns the front of a hub whose state is reg and whose telemetry
// is tel. Both must be non-nil; opts may be nil.
func New(reg *registry.Store, tel *telemetry.Log, opts *Options) *Front {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AfterFunc == nil {
		o.AfterFunc = afterFunc
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	first := ""
	if len(o.HostNames) > 0 {
		first = o.HostNames[0]
	}
	if o.EventHubName == "" {
		o.EventHubName = EventHubName(first)
	}
	if o.RedirectHost == "" {
		o.RedirectHost = first
		if h, _, err := net.SplitHostPort(first); err == nil {
			o.RedirectHost = h
		}
		if o.RedirectHost == "" {
			o.RedirectHost = "localhost"
		}
	}
	if o.RedirectPort <= 0 {
		o.RedirectPort = DefaultRedirectPort
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = o.Now()
	}
	return &Front{
		reg:    reg,
		tel:    tel,
		auth:   auth.New(reg, &auth.Options{HostNames: o.HostNames, Now: o.Now, Entra: o.Entra, DisableLocalAuth: o.DisableLocalAuth}),
		opts:   o,
		ehName: o.EventHubName,
		log:    o.Logger,
		now:    o.Now,
		epochs: newEpochTable(),
		groups: consumerGroups(o.ConsumerGroups),
	}
}

// EventHubName is the name of the hub's Event Hub-compatible endpoint.
func (f *Front) EventHubName() string { return f.ehName }

// Serve serves one AMQP connection until it ends, and closes nc. The
// peer may start with SASL (ANONYMOUS, PLAIN or MSSBCBS) or without it,
// as the official Node service SDK does. Cancelling ctx closes the
// connection with amqp:connection:forced. It returns nil after a clean
// close and otherwise the *amqp1.ConnError that ended it (see
// amqp1.Serve); refused SASL credentials wrap amqp1.ErrAuth. nc may
// already have been read from only if it replays what was read.
func (f *Front) Serve(ctx context.Context, nc net.Conn) error {
	return amqp1.Serve(ctx, nc, &amqp1.ConnOptions{
		SASL: &amqp1.SASLOptions{
			Mechanisms:   []string{amqp1.SASLAnonymous, amqp1.SASLPlain, amqp1.SASLMSSBCBS},
			Authenticate: func(ctx context.Context, r *amqp1.SASLRequest) error { return f.authenticateSASL(ctx, nc, r) },
		},
		AllowNoSASL: true,
		// One session per device on a pooled connection: the C# device
		// SDK puts up to 995 devices on one (MaxDevicesPerConnection in
		// AmqpConnectionPoolSettings.cs), besides its $cbs session.
		ChannelMax: maxSessions - 1,
		NewHandler: func(c *amqp1.Conn) amqp1.Handler { return f.newConn(c, nc) },
		Logger:     f.log,
	})
}

// authenticateSASL accepts ANONYMOUS and MSSBCBS (the peer then
// authorizes its links with CBS) and checks PLAIN credentials.
func (f *Front) authenticateSASL(_ context.Context, nc net.Conn, r *amqp1.SASLRequest) error {
	if r.Mechanism != amqp1.SASLPlain {
		return nil
	}
	if _, ok, err := f.authenticateDPS(nc, r); ok {
		if err != nil {
			f.log.Info("amqp dps sasl plain refused", "user", r.Identity, "err", err)
		}
		return err
	}
	_, err := f.plainGrant(r)
	if err != nil {
		f.log.Debug("amqp sasl plain refused", "sasl", r, "err", err)
	}
	return err
}

// errPlainIdentity refuses SASL PLAIN user names this hub does not
// serve (devices authenticate over MQTT).
var errPlainIdentity = errors.New("amqpfront: SASL PLAIN user name must be {policy}@sas.root.{hub}, {deviceId}@sas.{hub} or a policy name")

// plainGrant checks SASL PLAIN credentials and returns what they
// authorize. Two forms are accepted:
//
//   - "{policy}@sas.root.{hub}" with a SAS token as the password (IoT
//     Hub's form; the token must name that policy). It authorizes the
//     token's scope until the token expires.
//   - "{policy}" with the policy's shared access key as the password
//     (Service Bus' form, used by Event Hubs clients such as
//     amenzhinsky/iothub). It authorizes the whole hub for the life of
//     the connection.
func (f *Front) plainGrant(r *amqp1.SASLRequest) (*grant, error) {
	user := r.Identity
	if policy, _, ok := strings.Cut(user, "@sas.root."); ok {
		name, err := f.auth.Service(r.Password, 0)
		if err != nil {
			return nil, err
		}
		if name != policy {
			return nil, fmt.Errorf("amqpfront: the token names policy %q, the user name %q", name, policy)
		}
		tok, err := sas.Parse(r.Password)
		if err != nil {
			return nil, err
		}
		return f.newGrant(name, audiencePath(tok.Scope()), tok.Expiry())
	}
	if id, _, ok := strings.Cut(user, "@sas."); ok {
		return f.plainDeviceGrant(id, r.Password)
	}
	if user == "" || strings.Contains(user, "@") {
		return nil, errPlainIdentity
	}
	p, err := f.reg.Policy(user)
	if err != nil {
		return nil, &auth.Error{Reason: auth.ReasonUnknownPolicy, Detail: user}
	}
	for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
		if k != "" && subtle.ConstantTimeCompare([]byte(k), []byte(r.Password)) == 1 {
			return f.newGrant(p.KeyName, "", time.Time{})
		}
	}
	return nil, &auth.Error{Reason: auth.ReasonSignature, Detail: user}
}

// plainDeviceGrant checks SASL PLAIN credentials of a device, the
// form the older device SDKs used before CBS: the user name
// "{deviceId}@sas.{hubName}" and the device's SAS token as the
// password (azure-iot-sdk-java's AmqpsDeviceAuthenticationSAS.java,
// USERNAME_AT_PREFIX "@sas."). The token must be the device's own,
// for that device.
func (f *Front) plainDeviceGrant(deviceID, token string) (*grant, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return nil, &auth.Error{Reason: auth.ReasonMalformed}
	}
	g, err := f.identityGrant(token, tok, "")
	if err != nil {
		return nil, err
	}
	if want := segments("devices/" + deviceID); !slices.Equal(g.path, want) {
		return nil, fmt.Errorf("amqpfront: the SASL PLAIN user names device %q but the token is for %s", deviceID, strings.Join(g.path, "/"))
	}
	return g, nil
}

// newGrant makes the grant of a verified credential of policy for the
// resource path, valid until expiry (zero: for the connection's life).
func (f *Front) newGrant(policy, path string, expiry time.Time) (*grant, error) {
	p, err := f.reg.Policy(policy)
	if err != nil {
		return nil, &auth.Error{Reason: auth.ReasonUnknownPolicy, Detail: policy}
	}
	segs := segments(path)
	return &grant{key: strings.Join(segs, "/"), path: segs, policy: policy, rights: p.Rights, expiry: expiry}, nil
}
