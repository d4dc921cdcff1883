// Package entratest stands in for Microsoft Entra ID and Azure Resource
// Manager in tests: an issuer that signs tokens with its own RSA key,
// and an HTTPS server with the OpenID Connect discovery document and
// token endpoint MSAL (under azidentity) asks for, and the IoT Hub
// resource provider's routes armiothub calls.
package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/iotctl/iotctl/pkg/hub/auth"
)

// Issuer signs JWTs with an RSA key.
type Issuer struct {
	// Name is the iss of its tokens.
	Name   string
	key    *rsa.PrivateKey
	kid    string
	signer jose.Signer
}

// NewIssuer returns an issuer named name with a fresh 2048-bit key whose
// kid is "test-key".
func NewIssuer(t testing.TB, name string) *Issuer {
	t.Helper()
	return NewIssuerKeyID(t, name, "test-key")
}

// NewIssuerKeyID returns an issuer named name with a fresh 2048-bit key
// whose kid is kid, as a key Entra ID rotates in.
func NewIssuerKeyID(t testing.TB, name, kid string) *Issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{Name: name, key: k, kid: kid, signer: s}
}

// JWKS is the issuer's public key set.
func (is *Issuer) JWKS() []byte {
	return KeySet(is)
}

// KeySet is the JSON Web Key Set of the issuers' public keys.
func KeySet(issuers ...*Issuer) []byte {
	var ks jose.JSONWebKeySet
	for _, is := range issuers {
		ks.Keys = append(ks.Keys, jose.JSONWebKey{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig"})
	}
	b, _ := json.Marshal(ks)
	return b
}

// WriteJWKS writes the key set to a file in dir and returns its path.
func (is *Issuer) WriteJWKS(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, is.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// HubAuth returns the local hub's check of the issuer's tokens, with
// roles (principal → built-in role names) assigned.
func (is *Issuer) HubAuth(t testing.TB, roles map[string][]string) *auth.Entra {
	t.Helper()
	e, err := auth.NewEntra(auth.EntraOptions{JWKS: is.WriteJWKS(t, t.TempDir()), Issuer: is.Name, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Mint signs a token for oid and audience, valid for ttl.
func (is *Issuer) Mint(t testing.TB, oid, audience string, ttl time.Duration) string {
	t.Helper()
	tok, err := is.mint(oid, audience, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (is *Issuer) mint(oid, audience string, ttl time.Duration) (string, error) {
	now := time.Now()
	return is.mintUntil(oid, audience, now, now.Add(ttl))
}

// mintUntil signs a token issued at now that expires at exp (whole
// seconds: a JWT's exp has no fraction).
func (is *Issuer) mintUntil(oid, audience string, now, exp time.Time) (string, error) {
	return jwt.Signed(is.signer).Claims(jwt.Claims{
		Issuer: is.Name, Subject: oid, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(exp),
	}).Claims(map[string]any{"oid": oid}).Serialize()
}

// Hub is an IoT hub the Resource Manager stand-in knows.
type Hub struct {
	Subscription, ResourceGroup, Name, HostName string
	// Keys are the shared access policies: name → primary key.
	Keys map[string]string
	// EventHubEndpoint and EventHubPath are the built-in Event
	// Hub-compatible endpoint ("sb://host/") and name, described as
	// properties.eventHubEndpoints.events when set.
	EventHubEndpoint, EventHubPath string
}

// Cloud is an HTTPS server that is an Entra ID authority for the tenant
// Tenant (discovery and token endpoint for client-secret sign-in) and
// an Azure Resource Manager endpoint for Hubs.
type Cloud struct {
	*httptest.Server
	Issuer *Issuer
	Tenant string
	// Clients are the client ids and secrets it signs in; the token's
	// oid is the client id.
	Clients map[string]string
	Hubs    []Hub
	// Forbidden are client ids ARM answers 403 AuthorizationFailed.
	Forbidden map[string]bool
	// Readers are client ids that may read hubs but not list their
	// keys (403 AuthorizationFailed on listkeys), as with the Reader
	// role.
	Readers map[string]bool
	// TokenTTL is the life of the tokens it issues (a few seconds make
	// clients renew them within a test). Default: 1 hour.
	TokenTTL time.Duration
	// OnToken, when set before the first request, is called with the
	// expiry of each token issued.
	OnToken func(expiry time.Time)

	mu       sync.Mutex
	requests []string
}

// NewCloud starts a Cloud; it stops at the end of the test.
func NewCloud(t testing.TB) *Cloud {
	t.Helper()
	c := &Cloud{Tenant: "00000000-0000-0000-0000-00000000beef", Clients: map[string]string{}, Forbidden: map[string]bool{}, Readers: map[string]bool{}}
	c.Server = httptest.NewTLSServer(http.HandlerFunc(c.serve))
	c.Issuer = NewIssuer(t, c.URL+"/"+c.Tenant+"/v2.0")
	t.Cleanup(c.Close)
	return c
}

// CAFile writes the server's certificate (PEM) to dir and returns the
// path, for clients to trust.
func (c *Cloud) CAFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "cloud-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Requests are the method and path of every request served so far.
func (c *Cloud) Requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.requests...)
}

func (c *Cloud) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests = append(c.requests, r.Method+" "+r.URL.Path)
	c.mu.Unlock()
	authority := c.URL + "/" + c.Tenant
	switch {
	case r.URL.Path == "/"+c.Tenant+"/v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                 c.Issuer.Name,
			"authorization_endpoint": authority + "/oauth2/v2.0/authorize",
			"token_endpoint":         authority + "/oauth2/v2.0/token",
			"jwks_uri":               authority + "/discovery/v2.0/keys",
		})
	case r.URL.Path == "/"+c.Tenant+"/discovery/v2.0/keys":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(c.Issuer.JWKS())
	case r.URL.Path == "/"+c.Tenant+"/oauth2/v2.0/token" && r.Method == http.MethodPost:
		c.token(w, r)
	case strings.HasPrefix(r.URL.Path, "/subscriptions/"):
		c.arm(w, r)
	default:
		http.NotFound(w, r)
	}
}

// token serves the client-credentials grant.
func (c *Cloud) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if want, ok := c.Clients[id]; !ok || want != secret || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
		return
	}
	scope := r.PostForm.Get("scope")
	aud := strings.TrimSuffix(strings.Fields(scope + " ")[0], "/.default")
	ttl := c.TokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	// The token's exp is in whole seconds and expires_in counts whole
	// seconds down from now, so that a client never thinks a token
	// lives longer than it does, even a token of a few seconds.
	now := time.Now()
	exp := now.Add(ttl).Truncate(time.Second)
	tok, err := c.Issuer.mintUntil(id, aud, now, exp)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error"})
		return
	}
	in := int(exp.Sub(now) / time.Second)
	if c.OnToken != nil {
		c.OnToken(exp)
	}
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": in, "ext_expires_in": in, "access_token": tok})
}

// arm serves, for tokens whose audience is the server's URL (the
// audience of a custom Resource Manager endpoint), the IoT Hub resource provider: list by subscription or
// resource group, get, and listkeys of one policy or all.
func (c *Cloud) arm(w http.ResponseWriter, r *http.Request) {
	oid, ok := c.caller(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, armError("InvalidAuthenticationToken", "The access token is invalid."))
		return
	}
	if c.Forbidden[oid] {
		writeJSON(w, http.StatusForbidden, armError("AuthorizationFailed", fmt.Sprintf("The client '%s' does not have authorization to perform action 'Microsoft.Devices/IotHubs/read'.", oid)))
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	lower := strings.Split(strings.ToLower(strings.Trim(r.URL.Path, "/")), "/")
	// subscriptions/{s}[/resourceGroups/{rg}]/providers/Microsoft.Devices/IotHubs[/{name}[/IotHubKeys/{key}]/listkeys]
	sub, rg := segs[1], ""
	rest := lower[2:]
	if len(rest) >= 2 && rest[0] == "resourcegroups" {
		rg = segs[3]
		rest = rest[2:]
	}
	if len(rest) < 3 || rest[0] != "providers" || rest[1] != "microsoft.devices" || rest[2] != "iothubs" {
		writeJSON(w, http.StatusNotFound, armError("NotFound", "no such resource"))
		return
	}
	rest = rest[3:]
	name := ""
	if len(rest) > 0 {
		name = segs[len(segs)-len(rest)]
	}
	var found []Hub
	for _, h := range c.Hubs {
		if h.Subscription == sub && (rg == "" || strings.EqualFold(h.ResourceGroup, rg)) && (name == "" || strings.EqualFold(h.Name, name)) {
			found = append(found, h)
		}
	}
	if name != "" && len(found) == 0 {
		writeJSON(w, http.StatusNotFound, armError("ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.Devices/IotHubs/%s' under resource group '%s' was not found.", name, rg)))
		return
	}
	if r.Method == http.MethodPost && c.Readers[oid] {
		writeJSON(w, http.StatusForbidden, armError("AuthorizationFailed", fmt.Sprintf("The client '%s' does not have authorization to perform action 'Microsoft.Devices/IotHubs/listkeys/action'.", oid)))
		return
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		var items []any
		for _, h := range found {
			items = append(items, description(h))
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": items})
	case len(rest) == 1 && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, description(found[0]))
	case len(rest) == 4 && rest[1] == "iothubkeys" && rest[3] == "listkeys" && r.Method == http.MethodPost:
		key := segs[len(segs)-2]
		pk, ok := found[0].Keys[key]
		if !ok {
			writeJSON(w, http.StatusNotFound, armError("KeyNameNotFound", "no policy "+key))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"keyName": key, "primaryKey": pk, "secondaryKey": pk, "rights": "RegistryWrite, ServiceConnect, DeviceConnect"})
	case len(rest) == 2 && rest[1] == "listkeys" && r.Method == http.MethodPost:
		var items []any
		for k, pk := range found[0].Keys {
			items = append(items, map[string]any{"keyName": k, "primaryKey": pk, "secondaryKey": pk, "rights": "RegistryWrite, ServiceConnect, DeviceConnect"})
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": items})
	default:
		writeJSON(w, http.StatusNotFound, armError("NotFound", "no such resource"))
	}
}

// caller verifies the bearer token of an ARM request and returns its
// oid.
func (c *Cloud) caller(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		return "", false
	}
	tok, err := jwt.ParseSigned(h[len("Bearer "):], []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", false
	}
	var cl jwt.Claims
	if err := tok.Claims(&c.Issuer.key.PublicKey, &cl); err != nil {
		return "", false
	}
	if cl.Validate(jwt.Expected{Issuer: c.Issuer.Name, AnyAudience: jwt.Audience{c.URL, c.URL + "/"}, Time: time.Now()}) != nil {
		return "", false
	}
	return cl.Subject, true
}

func description(h Hub) map[string]any {
	props := map[string]any{"hostName": h.HostName}
	if h.EventHubEndpoint != "" {
		props["eventHubEndpoints"] = map[string]any{"events": map[string]any{
			"endpoint": h.EventHubEndpoint, "path": h.EventHubPath, "partitionCount": 4, "retentionTimeInDays": 1}}
	}
	return map[string]any{
		"id":         "/subscriptions/" + h.Subscription + "/resourceGroups/" + h.ResourceGroup + "/providers/Microsoft.Devices/IotHubs/" + h.Name,
		"name":       h.Name,
		"type":       "Microsoft.Devices/IotHubs",
		"location":   "westeurope",
		"sku":        map[string]any{"name": "S1", "capacity": 1},
		"properties": props,
	}
}

func armError(code, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
