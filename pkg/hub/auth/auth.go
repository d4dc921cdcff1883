package auth

import (
	"errors"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// Rights are shared access policy permissions (registry.Rights).
type Rights = registry.Rights

// ErrUnauthorized is wrapped by every refusal.
var ErrUnauthorized = errors.New("auth: unauthorized")

// Reason says why a token was refused.
type Reason string

// The reasons for a refusal.
const (
	ReasonMalformed      Reason = "malformed token"
	ReasonExpired        Reason = "token expired"
	ReasonSignature      Reason = "bad signature"
	ReasonScope          Reason = "token scope does not cover the resource"
	ReasonUnknownPolicy  Reason = "unknown shared access policy"
	ReasonNoPolicy       Reason = "token names no shared access policy"
	ReasonPermission     Reason = "missing permission"
	ReasonDeviceDisabled Reason = "device disabled"
	ReasonUnknownDevice  Reason = "unknown device or module"
	ReasonNoKeys         Reason = "identity has no symmetric keys"
)

// Error is a refusal. It wraps ErrUnauthorized.
type Error struct {
	Reason Reason
	// Detail adds safe context (a policy name, a permission, an id).
	Detail string
}

// Error implements error; the text never contains secrets.
func (e *Error) Error() string {
	s := "auth: unauthorized: " + string(e.Reason)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Unwrap returns ErrUnauthorized.
func (e *Error) Unwrap() error { return ErrUnauthorized }

func refuse(r Reason, detail string) error { return &Error{Reason: r, Detail: detail} }

// Store is what the Authorizer reads; *registry.Store implements it.
type Store interface {
	Policy(name string) (*registry.Policy, error)
	Device(deviceID string) (*iothub.Device, error)
	Module(deviceID, moduleID string) (*iothub.Module, error)
}

// Options configure an Authorizer. A nil *Options means the defaults.
type Options struct {
	// HostNames are the names the hub answers to ("localhost:8443",
	// "127.0.0.1", "myhub.local"). A token's scope must start with one
	// of them; ports are compared only when both sides have one.
	// Default: nil, which accepts any host (only the path is checked).
	HostNames []string
	// Now is the clock for expiry. Default: time.Now.
	Now func() time.Time
	// Entra checks Microsoft Entra ID bearer tokens on the service
	// side. Default: nil, bearer tokens are refused (ReasonEntraOff).
	Entra *Entra
	// DisableLocalAuth refuses shared access policy tokens on the
	// service side, as an IoT hub with disableLocalAuth does; devices
	// and modules keep their SAS tokens and certificates, and the Event
	// Hub-compatible endpoint its shared keys (see EventHub). Default:
	// false.
	DisableLocalAuth bool
}

// Authorizer checks SAS tokens. It is safe for concurrent use and
// reads the store on every call, so key and status changes apply at
// once.
type Authorizer struct {
	store    Store
	hosts    []string
	now      func() time.Time
	entra    *Entra
	localOff bool
}

// New returns an Authorizer over store.
func New(store Store, opts *Options) *Authorizer {
	a := &Authorizer{store: store, now: time.Now}
	if opts != nil {
		a.hosts = append([]string(nil), opts.HostNames...)
		if opts.Now != nil {
			a.now = opts.Now
		}
		a.entra = opts.Entra
		a.localOff = opts.DisableLocalAuth
	}
	return a
}

// Bearer checks a Microsoft Entra ID token (an Authorization value
// "Bearer eyJ...", or an AMQP put-token body) and that its principal
// has a role allowing action (see Entra.Authorize). Errors are *Error
// values wrapping ErrUnauthorized.
func (a *Authorizer) Bearer(token string, action Action) (*Principal, error) {
	if a.entra == nil {
		return nil, refuse(ReasonEntraOff, "it takes a shared access policy's SAS token; start the local hub with --entra-jwks and --entra-issuer to accept them")
	}
	return a.entra.Authorize(token, action)
}

// BearerPrincipal verifies a Microsoft Entra ID token and returns its
// principal without checking any role (AMQP checks the role of each
// link as it attaches).
func (a *Authorizer) BearerPrincipal(token string) (*Principal, error) {
	if a.entra == nil {
		return nil, refuse(ReasonEntraOff, "it takes a shared access policy's SAS token; start the local hub with --entra-jwks and --entra-issuer to accept them")
	}
	return a.entra.Verify(token)
}

// errLocalAuthOff is the refusal of a policy token when local
// authentication is disabled.
func errLocalAuthOff() error {
	return refuse(ReasonLocalAuthOff, "sign in with Microsoft Entra ID instead: iotctl --auth-type login")
}

// Service checks a service token (an Authorization header value):
// it must name a shared access policy (skn), be signed with that
// policy's primary or secondary key, be unexpired, have a scope that
// is one of the hub's host names or a resource under one, and the
// policy must have every right in need. It returns the policy name,
// or an *Error wrapping ErrUnauthorized.
//
// With DisableLocalAuth every such token is refused with
// ReasonLocalAuthOff.
func (a *Authorizer) Service(token string, need Rights) (string, error) {
	if a.localOff {
		return "", errLocalAuthOff()
	}
	return a.service(token, need, sas.DecodeKey)
}

// EventHub is Service for the Event Hub-compatible endpoint, which
// keeps its shared access keys when local authentication is disabled
// (as Azure's built-in endpoint does: articles/iot-hub/
// authenticate-authorize-azure-ad.md). keyText selects tokens signed
// with the key's text rather than the decoded key (see
// ServiceKeyText).
func (a *Authorizer) EventHub(token string, need Rights, keyText bool) (string, error) {
	if keyText {
		return a.service(token, need, func(k string) ([]byte, error) { return []byte(k), nil })
	}
	return a.service(token, need, sas.DecodeKey)
}

// ServiceKeyText is Service for tokens signed with the text of the
// policy's key as it is (its UTF-8 bytes) rather than the decoded key:
// Event Hubs and Service Bus clients sign that way.
func (a *Authorizer) ServiceKeyText(token string, need Rights) (string, error) {
	if a.localOff {
		return "", errLocalAuthOff()
	}
	return a.EventHub(token, need, true)
}

// keyBytes turns a key as stored into the bytes a token is signed with.
type keyBytes func(string) ([]byte, error)

func (a *Authorizer) service(token string, need Rights, kb keyBytes) (string, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return "", refuse(ReasonMalformed, "")
	}
	if tok.KeyName == "" {
		return "", refuse(ReasonNoPolicy, "")
	}
	p, err := a.store.Policy(tok.KeyName)
	if err != nil {
		return "", refuse(ReasonUnknownPolicy, tok.KeyName)
	}
	if err := a.verify(tok, kb, p.PrimaryKey, p.SecondaryKey); err != nil {
		return "", err
	}
	if !a.underHost(tok.Scope()) {
		return "", refuse(ReasonScope, "")
	}
	if !p.Rights.Has(need) {
		return "", refuse(ReasonPermission, p.KeyName+" lacks "+(need&^p.Rights).String())
	}
	return p.KeyName, nil
}

// Device checks the token a device (moduleID "") or module connects
// with. Either it has no skn and is signed with the identity's own
// primary or secondary key, or its skn names a policy with
// DeviceConnect and it is signed with that policy's key. Its scope
// must cover {host}/devices/{deviceID}[/modules/{moduleID}] for one of
// the hub's host names (a scope of just {host} covers everything), it
// must be unexpired, and the identity must exist with its device
// enabled. Errors are *Error values wrapping ErrUnauthorized.
func (a *Authorizer) Device(token, deviceID, moduleID string) error {
	tok, err := sas.Parse(token)
	if err != nil {
		return refuse(ReasonMalformed, "")
	}
	d, err := a.store.Device(deviceID)
	if err != nil {
		return refuse(ReasonUnknownDevice, "")
	}
	var keys *iothub.SymmetricKey
	if moduleID == "" {
		keys = d.Authentication.Keys()
	} else {
		m, err := a.store.Module(deviceID, moduleID)
		if err != nil {
			return refuse(ReasonUnknownDevice, "")
		}
		keys = m.Authentication.Keys()
	}
	if tok.KeyName != "" {
		p, err := a.store.Policy(tok.KeyName)
		if err != nil {
			return refuse(ReasonUnknownPolicy, tok.KeyName)
		}
		if err := a.verify(tok, sas.DecodeKey, p.PrimaryKey, p.SecondaryKey); err != nil {
			return err
		}
		if !p.Rights.Has(registry.DeviceConnect) {
			return refuse(ReasonPermission, p.KeyName+" lacks DeviceConnect")
		}
	} else {
		if keys == nil {
			return refuse(ReasonNoKeys, "")
		}
		if err := a.verify(tok, sas.DecodeKey, keys.PrimaryKey, keys.SecondaryKey); err != nil {
			return err
		}
	}
	resource := "/devices/" + deviceID
	if moduleID != "" {
		resource += "/modules/" + moduleID
	}
	if !a.covers(tok.Scope(), resource) {
		return refuse(ReasonScope, "")
	}
	if !d.Enabled() {
		return refuse(ReasonDeviceDisabled, "")
	}
	return nil
}

// verify checks the signature against either key, then the expiry.
func (a *Authorizer) verify(tok *sas.Token, kb keyBytes, keys ...string) error {
	now := a.now()
	sawExpired := false
	for _, k := range keys {
		if k == "" {
			continue
		}
		key, err := kb(k)
		if err != nil {
			continue
		}
		err = sas.Verify(tok, key, now)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, sas.ErrExpired):
			sawExpired = true
		case errors.Is(err, sas.ErrMalformed):
			return refuse(ReasonMalformed, "")
		}
	}
	if sawExpired {
		return refuse(ReasonExpired, "")
	}
	return refuse(ReasonSignature, "")
}

// underHost reports whether scope is a hub host name or a resource
// under one.
func (a *Authorizer) underHost(scope string) bool {
	if len(a.hosts) == 0 {
		return true
	}
	for _, h := range a.hosts {
		if sas.Covers(h, scope) {
			return true
		}
	}
	return false
}

// covers reports whether scope covers {host}{path} for a hub host.
func (a *Authorizer) covers(scope, path string) bool {
	if len(a.hosts) == 0 {
		host, _, _ := cutHost(scope)
		return sas.Covers(scope, host+path)
	}
	for _, h := range a.hosts {
		if sas.Covers(scope, h+path) {
			return true
		}
	}
	return false
}

// cutHost splits "scheme://host/path" into host and path.
func cutHost(s string) (host, path string, ok bool) {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == ':' && s[i+1] == '/' && s[i+2] == '/' {
			s = s[i+3:]
			break
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i:], true
		}
	}
	return s, "", false
}
