package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/entratest"
	"github.com/iotctl/iotctl/pkg/hub/auth"
)

func TestEntraVerify(t *testing.T) {
	is := entratest.NewIssuer(t, "https://issuer.test/tenant/v2.0")
	other := entratest.NewIssuer(t, is.Name)
	stranger := entratest.NewIssuer(t, "https://elsewhere.test/")
	e, err := auth.NewEntra(auth.EntraOptions{JWKS: is.WriteJWKS(t, t.TempDir()), Issuer: is.Name,
		Roles: map[string][]string{"reader": {"IoT Hub Data Reader"}, "owner": {"4fc6c259-987e-4a07-842e-c321cc9d413f"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		action auth.Action
		reason auth.Reason // "" = accepted
	}{
		{"reader reads", "Bearer " + is.Mint(t, "reader", auth.Audience, time.Hour), auth.ActionDevicesRead, ""},
		{"audience with a trailing slash", "Bearer " + is.Mint(t, "reader", auth.Audience+"/", time.Hour), auth.ActionTwinsRead, ""},
		{"owner by role id invokes", "Bearer " + is.Mint(t, "owner", auth.Audience, time.Hour), auth.ActionMethodsInvoke, ""},
		{"reader may not write", "Bearer " + is.Mint(t, "reader", auth.Audience, time.Hour), auth.ActionDevicesWrite, auth.ReasonRole},
		{"unknown principal", "Bearer " + is.Mint(t, "nobody", auth.Audience, time.Hour), auth.ActionDevicesRead, auth.ReasonRole},
		{"expired", "Bearer " + is.Mint(t, "reader", auth.Audience, -time.Hour), auth.ActionDevicesRead, auth.ReasonExpired},
		{"another audience", "Bearer " + is.Mint(t, "reader", "https://management.azure.com", time.Hour), auth.ActionDevicesRead, auth.ReasonAudience},
		{"another issuer's key", "Bearer " + stranger.Mint(t, "reader", auth.Audience, time.Hour), auth.ActionDevicesRead, auth.ReasonSignature},
		{"same kid, another key", "Bearer " + other.Mint(t, "reader", auth.Audience, time.Hour), auth.ActionDevicesRead, auth.ReasonSignature},
		{"not a JWT", "Bearer abc.def", auth.ActionDevicesRead, auth.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Authorize(tt.token, tt.action)
			var ae *auth.Error
			switch {
			case tt.reason == "" && err != nil:
				t.Fatalf("Authorize = %v; want accepted", err)
			case tt.reason != "" && (!errors.As(err, &ae) || ae.Reason != tt.reason || !errors.Is(err, auth.ErrUnauthorized)):
				t.Fatalf("Authorize = %v; want reason %q", err, tt.reason)
			case err != nil && strings.Contains(err.Error(), tt.token[len("Bearer "):]):
				t.Fatalf("the refusal %q holds the token", err)
			}
		})
	}
	strict, err := auth.NewEntra(auth.EntraOptions{JWKS: is.WriteJWKS(t, t.TempDir()), Issuer: "https://sts.windows.net/another/"})
	if err != nil {
		t.Fatal(err)
	}
	var ae *auth.Error
	if _, err := strict.Verify(is.Mint(t, "reader", auth.Audience, time.Hour)); !errors.As(err, &ae) || ae.Reason != auth.ReasonIssuer {
		t.Errorf("Verify(token of another issuer) = %v; want %q", err, auth.ReasonIssuer)
	}
	_, err = e.Authorize("Bearer "+is.Mint(t, "reader", auth.Audience, time.Hour), auth.ActionC2DSend)
	if err == nil || !strings.Contains(err.Error(), `"IoT Hub Data Contributor"`) || !strings.Contains(err.Error(), "reader") {
		t.Errorf("refusal %v; want it to name the principal and IoT Hub Data Contributor", err)
	}
}

func TestRoleActions(t *testing.T) {
	tests := []struct {
		role   string
		action auth.Action
		want   bool
	}{
		{"IoT Hub Data Reader", auth.ActionTwinsRead, true},
		{"IoT Hub Data Reader", auth.ActionFileNotifications, true},
		{"IoT Hub Data Reader", auth.ActionC2DFeedback, false},
		{"IoT Hub Registry Contributor", auth.ActionDevicesDelete, true},
		{"IoT Hub Registry Contributor", auth.ActionTwinsWrite, false},
		{"IoT Hub Twin Contributor", auth.ActionTwinsWrite, true},
		{"iothubtwincontributor", auth.ActionDevicesRead, false},
		{"IoT Hub Data Contributor", auth.ActionC2DPurge, true},
	}
	for _, tt := range tests {
		r, err := auth.LookupRole(tt.role)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Allows(tt.action); got != tt.want {
			t.Errorf("%s.Allows(%s) = %v; want %v", tt.role, tt.action, got, tt.want)
		}
	}
	if _, err := auth.LookupRole("IoT Hub Owner"); err == nil || !strings.Contains(err.Error(), "IoT Hub Data Contributor") {
		t.Errorf("LookupRole(unknown) = %v; want an error listing the roles", err)
	}
	if _, err := auth.ParseRoleAssignments([]string{"no-equals"}); err == nil || !strings.Contains(err.Error(), "PRINCIPAL=ROLE") {
		t.Errorf("ParseRoleAssignments(no-equals) = %v; want PRINCIPAL=ROLE", err)
	}
}

// A key set from a URL, as Entra ID publishes it: read at the start,
// and read again when a token names a key it does not hold (a rotated
// key), at most once a minute; a URL that does not answer with a key
// set is refused at the start.
func TestEntraKeySetFromURL(t *testing.T) {
	t.Parallel()
	old := entratest.NewIssuerKeyID(t, "https://issuer.test/tenant/v2.0", "key-1")
	rotated := entratest.NewIssuerKeyID(t, old.Name, "key-2")
	var mu sync.Mutex
	keys, fetches := entratest.KeySet(old), 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		if r.URL.Path != "/keys" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(keys)
	}))
	t.Cleanup(srv.Close)
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	fetched := func() int { mu.Lock(); defer mu.Unlock(); return fetches }

	e, err := auth.NewEntra(auth.EntraOptions{JWKS: srv.URL + "/keys", Issuer: old.Name, HTTPClient: srv.Client(), Now: now,
		Roles: map[string][]string{"reader": {"IoT Hub Data Reader"}}})
	if err != nil {
		t.Fatalf("NewEntra(key set URL) = %v", err)
	}
	if _, err := e.Authorize("Bearer "+old.Mint(t, "reader", auth.Audience, time.Hour), auth.ActionDevicesRead); err != nil {
		t.Fatalf("Authorize(token of the URL's key) = %v; want accepted", err)
	}
	mu.Lock()
	keys = entratest.KeySet(old, rotated)
	mu.Unlock()
	var ae *auth.Error
	tok := "Bearer " + rotated.Mint(t, "reader", auth.Audience, time.Hour)
	if _, err := e.Authorize(tok, auth.ActionDevicesRead); !errors.As(err, &ae) || ae.Reason != auth.ReasonUnknownSigningKey {
		t.Fatalf("Authorize(rotated key, within a minute of the last read) = %v; want %q", err, auth.ReasonUnknownSigningKey)
	}
	if n := fetched(); n != 1 {
		t.Errorf("the key set was read %d times within its first minute; want once", n)
	}
	advance(2 * time.Minute)
	if _, err := e.Authorize(tok, auth.ActionDevicesRead); err != nil {
		t.Fatalf("Authorize(rotated key, a read later) = %v; want accepted", err)
	}
	if n := fetched(); n != 2 {
		t.Errorf("the key set was read %d times; want twice", n)
	}

	_, err = auth.NewEntra(auth.EntraOptions{JWKS: srv.URL + "/nothing", Issuer: old.Name, HTTPClient: srv.Client()})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("NewEntra(a URL answering 404) = %v; want an error with the status", err)
	}
}
