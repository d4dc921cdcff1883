package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Audience is the resource of IoT Hub's data plane: Entra ID tokens for
// the service API carry it as aud, with or without a trailing slash
// (clients ask for the scope Audience + "/.default"; the Node service
// SDK's client.ts and the C# SDK's CommonConstants.IotHubAadTokenScopes).
const Audience = "https://iothubs.azure.net"

// bearerPrefix starts an Authorization value (HTTPS) or a put-token
// body (AMQP CBS) that carries an Entra ID token.
const bearerPrefix = "Bearer "

// IsBearer reports whether an Authorization value or put-token body
// carries a bearer token ("Bearer eyJ...") rather than a SAS token.
func IsBearer(s string) bool {
	return len(s) > len(bearerPrefix) && strings.EqualFold(s[:len(bearerPrefix)], bearerPrefix)
}

// The reasons for refusing an Entra ID token, besides ReasonMalformed,
// ReasonExpired and ReasonSignature.
const (
	ReasonIssuer            Reason = "token from another issuer"
	ReasonAudience          Reason = "token for another audience"
	ReasonRole              Reason = "no role assignment allows the action"
	ReasonEntraOff          Reason = "this hub does not accept Microsoft Entra ID tokens"
	ReasonLocalAuthOff      Reason = "local (shared access key) authentication is disabled on this hub"
	ReasonNoPrincipal       Reason = "token names no principal (oid, appid, azp or sub)"
	ReasonUnknownSigningKey Reason = "token signed by an unknown key"
)

// signatureAlgorithms are the JWS algorithms accepted: Entra ID signs
// with RS256; the others are there for keys of other kinds.
var signatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512}

// EntraOptions configure an Entra verifier.
type EntraOptions struct {
	// JWKS is where the signing keys are: a JSON Web Key Set file, or
	// an https:// (or http://) URL that serves one (Entra ID's is
	// https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys).
	// A URL is read when NewEntra is called and again, at most once a
	// minute, when a token names a key it does not have. Required.
	JWKS string
	// Issuer is the iss every token must carry
	// ("https://sts.windows.net/{tenant}/"). Required.
	Issuer string
	// Roles assigns built-in roles (see Roles) to principals: the key
	// is a principal id as tokens carry it (oid, else appid, azp or
	// sub), the values role names or ids. Default: none, every token
	// is refused with ReasonRole.
	Roles map[string][]string
	// HTTPClient fetches a JWKS URL. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock for exp and nbf. Default: time.Now.
	Now func() time.Time
}

// Entra checks Microsoft Entra ID bearer tokens for the IoT Hub data
// plane, and the principal's role assignments. It is safe for
// concurrent use.
type Entra struct {
	source string
	issuer string
	roles  map[string][]*Role
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
}

// NewEntra returns a verifier. It reads the key set, and fails when it
// cannot, when Issuer is empty or when a role is unknown.
func NewEntra(opts EntraOptions) (*Entra, error) {
	if opts.JWKS == "" {
		return nil, errors.New("auth: entra: no key set (JWKS file or URL)")
	}
	if opts.Issuer == "" {
		return nil, errors.New("auth: entra: no issuer: every token's iss is checked against it")
	}
	e := &Entra{source: opts.JWKS, issuer: opts.Issuer, roles: map[string][]*Role{}, client: opts.HTTPClient, now: opts.Now}
	if e.client == nil {
		e.client = http.DefaultClient
	}
	if e.now == nil {
		e.now = time.Now
	}
	for p, names := range opts.Roles {
		for _, n := range names {
			r, err := LookupRole(n)
			if err != nil {
				return nil, fmt.Errorf("auth: entra: role of %s: %w", p, err)
			}
			e.roles[p] = append(e.roles[p], r)
		}
	}
	ks, err := e.load()
	if err != nil {
		return nil, err
	}
	e.keys, e.fetched = ks, e.now()
	return e, nil
}

// isURL reports whether the key set comes from the network.
func (e *Entra) isURL() bool {
	return strings.HasPrefix(e.source, "https://") || strings.HasPrefix(e.source, "http://")
}

// load reads the key set from its file or URL.
func (e *Entra) load() (*jose.JSONWebKeySet, error) {
	var data []byte
	if e.isURL() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.source, nil)
		if err != nil {
			return nil, fmt.Errorf("auth: entra: key set URL: %w", err)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("auth: entra: fetching the key set: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("auth: entra: fetching the key set %s: %s", e.source, resp.Status)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
			return nil, fmt.Errorf("auth: entra: fetching the key set: %w", err)
		}
	} else {
		var err error
		if data, err = os.ReadFile(e.source); err != nil {
			return nil, fmt.Errorf("auth: entra: key set: %w", err)
		}
	}
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(data, &ks); err != nil {
		return nil, fmt.Errorf("auth: entra: key set %s is not a JSON Web Key Set: %w", e.source, err)
	}
	for _, k := range ks.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("auth: entra: key set %s holds a private key (kid %q): give only the public keys", e.source, k.KeyID)
		}
	}
	if len(ks.Keys) == 0 {
		return nil, fmt.Errorf("auth: entra: key set %s has no keys", e.source)
	}
	return &ks, nil
}

// keySet returns the keys, fetching a URL's again when kid is not
// among them and the last fetch is more than a minute old.
func (e *Entra) keySet(kid string) *jose.JSONWebKeySet {
	e.mu.Lock()
	defer e.mu.Unlock()
	if kid != "" && len(e.keys.Key(kid)) == 0 && e.isURL() && e.now().Sub(e.fetched) > time.Minute {
		e.fetched = e.now()
		if ks, err := e.load(); err == nil {
			e.keys = ks
		}
	}
	return e.keys
}

// Principal is the identity a verified token names, with its roles.
type Principal struct {
	// ID is the token's oid, else appid, azp or sub.
	ID string
	// Roles are the roles assigned to ID.
	Roles []*Role
	// Expiry is the token's exp.
	Expiry time.Time
}

// Allows reports whether one of the principal's roles grants action.
func (p *Principal) Allows(action Action) bool {
	for _, r := range p.Roles {
		if r.Allows(action) {
			return true
		}
	}
	return false
}

// Refusal is the *Error for a principal that lacks action: it names the
// roles that would grant it.
func (p *Principal) Refusal(action Action) error {
	return refuse(ReasonRole, fmt.Sprintf("principal %s may not %s: assign it %s", p.ID, action, strings.Join(quoteAll(RolesAllowing(action)), " or ")))
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "\"" + s + "\""
	}
	return out
}

type entraClaims struct {
	OID   string `json:"oid"`
	AppID string `json:"appid"`
	AZP   string `json:"azp"`
}

// Verify checks a bearer token ("Bearer eyJ..." or the JWT alone): its
// signature by a key of the set, its issuer, an audience of Audience
// (with or without a trailing slash), exp and nbf (a minute of
// leeway). It returns the principal, or an *Error wrapping
// ErrUnauthorized whose text never contains the token.
func (e *Entra) Verify(token string) (*Principal, error) {
	if IsBearer(token) {
		token = token[len(bearerPrefix):]
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(token), signatureAlgorithms)
	if err != nil {
		return nil, refuse(ReasonMalformed, "not a signed JWT")
	}
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	var std jwt.Claims
	var extra entraClaims
	if err := tok.Claims(e.keySet(kid), &std, &extra); err != nil {
		if errors.Is(err, jose.ErrJWKSKidNotFound) {
			return nil, refuse(ReasonUnknownSigningKey, "kid "+kid)
		}
		return nil, refuse(ReasonSignature, "")
	}
	if std.Issuer != e.issuer {
		return nil, refuse(ReasonIssuer, "iss "+std.Issuer+", this hub trusts "+e.issuer)
	}
	if !std.Audience.Contains(Audience) && !std.Audience.Contains(Audience+"/") {
		return nil, refuse(ReasonAudience, "aud "+strings.Join(std.Audience, ",")+", want "+Audience+" (ask for the scope "+Audience+"/.default)")
	}
	if std.Expiry == nil {
		return nil, refuse(ReasonMalformed, "no exp")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: e.now()}, time.Minute); err != nil {
		if errors.Is(err, jwt.ErrExpired) {
			return nil, refuse(ReasonExpired, "")
		}
		return nil, refuse(ReasonMalformed, err.Error())
	}
	p := &Principal{Expiry: std.Expiry.Time()}
	for _, id := range []string{extra.OID, extra.AppID, extra.AZP, std.Subject} {
		if id != "" {
			p.ID = id
			break
		}
	}
	if p.ID == "" {
		return nil, refuse(ReasonNoPrincipal, "")
	}
	for _, id := range []string{extra.OID, extra.AppID, extra.AZP, std.Subject} {
		if id != "" {
			p.Roles = append(p.Roles, e.roles[id]...)
		}
	}
	return p, nil
}

// Authorize verifies token and checks that the principal may do
// action; a principal without such a role gets an *Error with
// ReasonRole naming the roles that would do.
func (e *Entra) Authorize(token string, action Action) (*Principal, error) {
	p, err := e.Verify(token)
	if err != nil {
		return nil, err
	}
	if !p.Allows(action) {
		return p, p.Refusal(action)
	}
	return p, nil
}

// ParseRoleAssignments parses PRINCIPAL=ROLE values (the role by name
// or id) into EntraOptions.Roles.
func ParseRoleAssignments(values []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		p, r, ok := strings.Cut(v, "=")
		p, r = strings.TrimSpace(p), strings.TrimSpace(r)
		if !ok || p == "" || r == "" {
			return nil, fmt.Errorf("auth: role assignment %q: want PRINCIPAL=ROLE, e.g. 11111111-2222-3333-4444-555555555555=\"IoT Hub Data Contributor\"", v)
		}
		if _, err := LookupRole(r); err != nil {
			return nil, err
		}
		out[p] = append(out[p], r)
	}
	for p := range out {
		sort.Strings(out[p])
	}
	return out, nil
}
