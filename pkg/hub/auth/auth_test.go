package auth

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

var now = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// token builds a token over the literal sr text, as any SDK might.
func token(t *testing.T, sr, key, skn string, expiry time.Time) string {
	t.Helper()
	k, err := sas.DecodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	se := strconv.FormatInt(expiry.Unix(), 10)
	tok := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sas.Signature(k, sr, se))
	if skn != "" {
		// Node's order: sr, sig, skn, se.
		tok += "&skn=" + url.QueryEscape(skn)
	}
	return tok + "&se=" + se
}

type fixture struct {
	st       *registry.Store
	a        *Authorizer
	owner    *registry.Policy
	service  *registry.Policy
	devPol   *registry.Policy
	regRead  *registry.Policy
	dev      *iothub.Device
	mod      *iothub.Module
	disabled *iothub.Device
}

func newFixture(t *testing.T, hosts ...string) *fixture {
	t.Helper()
	st, err := registry.OpenMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st}
	f.owner, _ = st.Policy("iothubowner")
	f.service, _ = st.Policy("service")
	f.devPol, _ = st.Policy("device")
	f.regRead, _ = st.Policy("registryRead")
	if f.dev, err = st.CreateDevice(&iothub.Device{DeviceID: "dev(1)*"}); err != nil {
		t.Fatal(err)
	}
	if f.mod, err = st.CreateModule(&iothub.Module{DeviceID: "dev(1)*", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}
	if f.disabled, err = st.CreateDevice(&iothub.Device{DeviceID: "off", Status: "disabled"}); err != nil {
		t.Fatal(err)
	}
	thumb := strings.Repeat("AB", 20)
	if _, err = st.CreateDevice(&iothub.Device{DeviceID: "x509", Authentication: &iothub.Authentication{Type: "selfSigned", X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: &thumb}}}); err != nil {
		t.Fatal(err)
	}
	f.a = New(st, &Options{HostNames: hosts, Now: func() time.Time { return now }})
	return f
}

// nodeStrict is Node's encodeURIComponentStrict: encodeURIComponent
// (upper-case hex) plus !'()* in lower-case hex.
func nodeStrict(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	r := strings.NewReplacer("!", "%21", "'", "%27", "(", "%28", ")", "%29", "*", "%2a", "%21", "%21")
	return r.Replace(e)
}

func TestService(t *testing.T) {
	f := newFixture(t, "localhost:8443", "127.0.0.1")
	hour := now.Add(time.Hour)
	tests := []struct {
		name   string
		token  string
		need   Rights
		want   string
		reason Reason
	}{
		{"owner, host with port", token(t, "localhost%3A8443", f.owner.PrimaryKey, "iothubowner", hour), registry.RegistryRead | registry.RegistryWrite, "iothubowner", ""},
		{"node service: raw host without port", token(t, "localhost", f.owner.PrimaryKey, "iothubowner", hour), registry.ServiceConnect, "iothubowner", ""},
		{"secondary key", token(t, "localhost", f.service.SecondaryKey, "service", hour), registry.ServiceConnect, "service", ""},
		{"ip host", token(t, "127.0.0.1", f.service.PrimaryKey, "service", hour), registry.ServiceConnect, "service", ""},
		{"host case", token(t, "LOCALHOST", f.service.PrimaryKey, "service", hour), registry.ServiceConnect, "service", ""},
		{"resource under host", token(t, "localhost%2Fmessages%2Fevents", f.service.PrimaryKey, "service", hour), registry.ServiceConnect, "service", ""},
		{"wrong port", token(t, "localhost:9999", f.owner.PrimaryKey, "iothubowner", hour), 0, "", ReasonScope},
		{"other host", token(t, "myhub.azure-devices.net", f.owner.PrimaryKey, "iothubowner", hour), 0, "", ReasonScope},
		{"expired", token(t, "localhost", f.owner.PrimaryKey, "iothubowner", now.Add(-time.Second)), 0, "", ReasonExpired},
		{"other policy's key", token(t, "localhost", f.service.PrimaryKey, "iothubowner", hour), 0, "", ReasonSignature},
		{"unknown policy", token(t, "localhost", f.owner.PrimaryKey, "nobody", hour), 0, "", ReasonUnknownPolicy},
		{"no skn", token(t, "localhost", f.owner.PrimaryKey, "", hour), 0, "", ReasonNoPolicy},
		{"missing permission", token(t, "localhost", f.regRead.PrimaryKey, "registryRead", hour), registry.RegistryWrite, "", ReasonPermission},
		{"service lacks registry read", token(t, "localhost", f.service.PrimaryKey, "service", hour), registry.RegistryRead, "", ReasonPermission},
		{"malformed", "Bearer xyz", 0, "", ReasonMalformed},
		{"empty", "", 0, "", ReasonMalformed},
		{"tampered se", strings.Replace(token(t, "localhost", f.owner.PrimaryKey, "iothubowner", hour), "&se=", "&se=1", 1), 0, "", ReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.a.Service(tt.token, tt.need)
			if tt.reason == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Service() = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var e *Error
			if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) || e.Reason != tt.reason {
				t.Fatalf("Service() = %q, %v; want reason %q", got, err, tt.reason)
			}
			for _, secret := range []string{f.owner.PrimaryKey, f.service.PrimaryKey, tt.token} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q leaks a secret", err)
				}
			}
		})
	}
}

func TestDevice(t *testing.T) {
	f := newFixture(t, "localhost:8443", "127.0.0.1")
	hour := now.Add(time.Hour)
	dk := f.dev.Authentication.SymmetricKey
	mk := f.mod.Authentication.SymmetricKey
	id := f.dev.DeviceID // "dev(1)*": exercises !'()* encoding
	tests := []struct {
		name     string
		token    string
		device   string
		module   string
		reason   Reason
		noHostOK bool
	}{
		{"node device: strict encoding with port", token(t, nodeStrict("localhost:8443/devices/"+id), dk.PrimaryKey, "", hour), id, "", "", true},
		{"python: %2F upper-case", token(t, url.PathEscape("localhost/devices/")+"dev%281%29%2A", dk.PrimaryKey, "", hour), id, "", "", true},
		{"csdk: raw slashes", token(t, "localhost/devices/"+id, dk.SecondaryKey, "", hour), id, "", "", true},
		{"docs: lower-case %2f", token(t, "localhost%2fdevices%2f"+strings.ToLower(url.QueryEscape(id)), dk.PrimaryKey, "", hour), id, "", "", true},
		{"golib: scope just the host", token(t, "localhost", dk.PrimaryKey, "", hour), id, "", "", true},
		{"gateway: host/devices", token(t, "127.0.0.1/devices", f.devPol.PrimaryKey, "device", hour), id, "", "", true},
		{"device policy", token(t, nodeStrict("localhost/devices/"+id), f.devPol.SecondaryKey, "device", hour), id, "", "", true},
		{"owner policy has DeviceConnect", token(t, "localhost", f.owner.PrimaryKey, "iothubowner", hour), id, "", "", true},
		{"module key", token(t, nodeStrict("localhost/devices/"+id+"/modules/mod1"), mk.PrimaryKey, "", hour), id, "mod1", "", true},
		{"device-scoped token covers its module (policy)", token(t, nodeStrict("localhost/devices/"+id), f.devPol.PrimaryKey, "device", hour), id, "mod1", "", true},
		{"device key for a module", token(t, nodeStrict("localhost/devices/"+id+"/modules/mod1"), dk.PrimaryKey, "", hour), id, "mod1", ReasonSignature, false},
		{"module scope for the device", token(t, nodeStrict("localhost/devices/"+id+"/modules/mod1"), dk.PrimaryKey, "", hour), id, "", ReasonScope, false},
		{"other device's scope", token(t, "localhost/devices/dev", dk.PrimaryKey, "", hour), id, "", ReasonScope, false},
		{"segment prefix is not enough", token(t, "localhost/devices/dev(1)", dk.PrimaryKey, "", hour), id, "", ReasonScope, false},
		{"wrong host", token(t, "elsewhere/devices/"+id, dk.PrimaryKey, "", hour), id, "", ReasonScope, true},
		{"expired", token(t, "localhost/devices/"+id, dk.PrimaryKey, "", now.Add(-time.Minute)), id, "", ReasonExpired, false},
		{"wrong key", token(t, "localhost/devices/"+id, f.owner.PrimaryKey, "", hour), id, "", ReasonSignature, false},
		{"service policy lacks DeviceConnect", token(t, "localhost", f.service.PrimaryKey, "service", hour), id, "", ReasonPermission, false},
		{"unknown policy", token(t, "localhost", f.service.PrimaryKey, "ghost", hour), id, "", ReasonUnknownPolicy, false},
		{"unknown device", token(t, "localhost/devices/ghost", dk.PrimaryKey, "", hour), "ghost", "", ReasonUnknownDevice, false},
		{"unknown module", token(t, "localhost", dk.PrimaryKey, "", hour), id, "ghost", ReasonUnknownDevice, false},
		{"disabled device", token(t, "localhost", f.disabled.Authentication.SymmetricKey.PrimaryKey, "", hour), "off", "", ReasonDeviceDisabled, false},
		{"x509 device has no keys", token(t, "localhost", dk.PrimaryKey, "", hour), "x509", "", ReasonNoKeys, false},
		{"malformed", "SharedAccessSignature sr=x", id, "", ReasonMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.a.Device(tt.token, tt.device, tt.module)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Device() = %v; want nil", err)
				}
				return
			}
			var e *Error
			if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) || e.Reason != tt.reason {
				t.Fatalf("Device() = %v; want reason %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), dk.PrimaryKey) || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("error %q leaks a secret", err)
			}
		})
	}
	// Without HostNames, any host is accepted but the path still counts.
	any := New(f.st, &Options{Now: func() time.Time { return now }})
	for _, tt := range tests {
		if !tt.noHostOK {
			continue
		}
		if err := any.Device(tt.token, tt.device, tt.module); err != nil {
			t.Errorf("no HostNames: Device(%s) = %v", tt.name, err)
		}
	}
	if err := any.Device(token(t, "h/devices/other", dk.PrimaryKey, "", hour), id, ""); err == nil {
		t.Errorf("no HostNames: a token for another device was accepted")
	}
}

// TestNodeServiceVector checks that the Node SDK's published service
// token verifies through the same sas calls Service uses
// (azure-iot-sdk-node service/test/_shared_access_signature_test.js, in
// the releases that still had the service package).
func TestNodeServiceVector(t *testing.T) {
	// Node service create('host','policy','key',12345); the key "key"
	// is lenient base64 for the bytes 0x91 0xEC.
	tok, err := sas.Parse("SharedAccessSignature sr=host&sig=88JmrIsVYOGmRSjCO1x1LLbv0K001Gikh1rjfJqbQXA%3D&skn=policy&se=12345")
	if err != nil {
		t.Fatal(err)
	}
	if err := sas.Verify(tok, []byte{0x91, 0xEC}, time.Unix(12000, 0)); err != nil {
		t.Fatalf("Verify = %v", err)
	}
}

// Event Hubs clients sign with the key's text; only ServiceKeyText
// takes that form, and Service only the decoded key.
func TestServiceKeyText(t *testing.T) {
	f := newFixture(t, "hub.example.net")
	sign := func(key []byte) string {
		tok, err := sas.Sign("sb://hub.example.net/hub", key, &sas.SignOptions{KeyName: "service", Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Encode()
	}
	decoded, _ := sas.DecodeKey(f.service.PrimaryKey)
	text := sign([]byte(f.service.SecondaryKey))
	if p, err := f.a.ServiceKeyText(text, registry.ServiceConnect); err != nil || p != "service" {
		t.Errorf("ServiceKeyText(signed with the key text) = %q, %v; want service", p, err)
	}
	if _, err := f.a.Service(text, 0); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Service(signed with the key text) = %v; want ErrUnauthorized", err)
	}
	if _, err := f.a.ServiceKeyText(sign(decoded), 0); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ServiceKeyText(signed with the decoded key) = %v; want ErrUnauthorized", err)
	}
}
