package connstr

import (
	"errors"
	"strings"
	"testing"
)

const key = "c2VjcmV0" // base64("secret")

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind Kind
		auth Auth
		host string
		port int
		dev  string
		mod  string
		gw   string
	}{
		{"device key (portal form)", "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + key, KindDevice, AuthKey, "myhub.azure-devices.net", 0, "dev1", "", ""},
		{"device x509 (node form)", "HostName=h.net;DeviceId=d;x509=true", KindDevice, AuthX509, "h.net", 0, "d", "", ""},
		{"device x509 True (python tests)", "HostName=h.net;DeviceId=d;x509=True", KindDevice, AuthX509, "h.net", 0, "d", "", ""},
		{"device sas token (node accepts)", "HostName=h.net;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h.net%2Fdevices%2Fd&sig=abc%3D&se=12345", KindDevice, AuthToken, "h.net", 0, "d", "", ""},
		{"module with gateway (python valid string)", "HostName=h.net;DeviceId=my-device;ModuleId=my-module;SharedAccessKey=Zm9vYmFy;GatewayHostName=mygateway", KindModule, AuthKey, "h.net", 0, "my-device", "my-module", "mygateway"},
		{"service policy", "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key, KindService, AuthKey, "h.azure-devices.net", 0, "", "", ""},
		{"port in HostName", "HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key, KindService, AuthKey, "localhost", 8443, "", "", ""},
		{"IPv6 with port", "HostName=[::1]:8443;DeviceId=d;SharedAccessKey=" + key, KindDevice, AuthKey, "::1", 8443, "d", "", ""},
		{"bare IPv6", "HostName=fe80::1;DeviceId=d;SharedAccessKey=" + key, KindDevice, AuthKey, "fe80::1", 0, "d", "", ""},
		{"device via device policy", "HostName=h.net;DeviceId=d;SharedAccessKeyName=device;SharedAccessKey=" + key, KindDevice, AuthKey, "h.net", 0, "d", "", ""},
		{"one trailing semicolon", "HostName=h.net;DeviceId=d;SharedAccessKey=" + key + ";", KindDevice, AuthKey, "h.net", 0, "d", "", ""},
		{"surrounding white space", "  HostName=h.net;DeviceId=d;SharedAccessKey=" + key + "\n", KindDevice, AuthKey, "h.net", 0, "d", "", ""},
		{"white space around a value (found by fuzzing)", "HostName=h.net;DeviceId=d;SharedAccessKey=" + key + "\r;", KindDevice, AuthKey, "h.net", 0, "d", "", ""},
		{"value containing =", "HostName=h.net;DeviceId=a=b;SharedAccessKey=" + key, KindDevice, AuthKey, "h.net", 0, "a=b", "", ""},
		{"event hub (sample form)", "Endpoint=sb://ihsuprodbyres.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=" + key + ";EntityPath=myhub", KindEventHub, AuthKey, "ihsuprodbyres.servicebus.windows.net", 0, "", "", ""},
		{"event hub development emulator", "Endpoint=sb://localhost:5672;SharedAccessKeyName=service;SharedAccessKey=" + key + ";EntityPath=hub;UseDevelopmentEmulator=true", KindEventHub, AuthKey, "localhost:5672", 0, "", "", ""},
		{"event hub unknown key kept (lenient)", "Endpoint=sb://e.net/;SharedAccessKeyName=s;SharedAccessKey=" + key + ";TransportType=AmqpWebSockets", KindEventHub, AuthKey, "e.net", 0, "", "", ""},
		{"event hub sas", "Endpoint=sb://e.net/;SharedAccessSignature=SharedAccessSignature sr=e.net&sig=a&se=1&skn=s;EntityPath=x", KindEventHub, AuthToken, "e.net", 0, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) = %v; want success", tt.in, err)
			}
			if c.Kind != tt.kind || c.Auth() != tt.auth || c.DeviceID != tt.dev || c.ModuleID != tt.mod || c.GatewayHostName != tt.gw {
				t.Errorf("Parse(%q) = kind %v auth %v device %q module %q gateway %q; want %v %v %q %q %q",
					tt.in, c.Kind, c.Auth(), c.DeviceID, c.ModuleID, c.GatewayHostName, tt.kind, tt.auth, tt.dev, tt.mod, tt.gw)
			}
			if c.Kind != KindEventHub && (c.Host() != tt.host || c.Port() != tt.port) {
				t.Errorf("Host(), Port() = %q, %d; want %q, %d", c.Host(), c.Port(), tt.host, tt.port)
			}
			if c.Kind == KindEventHub && c.HostName != tt.host {
				t.Errorf("HostName = %q; want %q", c.HostName, tt.host)
			}
			again, err := Parse(c.Format())
			if err != nil {
				t.Fatalf("Parse(Format()) = %v", err)
			}
			if again.Format() != c.Format() {
				t.Errorf("Format() not stable: %q then %q", c.Format(), again.Format())
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		err     error
		key     string
		mention string
	}{
		{"empty", "", ErrEmpty, "", "empty"},
		{"only white space", "   ", ErrEmpty, "", "empty"},
		{"element without =", "HostName=h.net;DeviceId;SharedAccessKey=" + key, ErrInvalidValue, "", "no '='"},
		{"two semicolons (empty element)", "HostName=h.net;;DeviceId=d;SharedAccessKey=" + key, ErrEmptyElement, "", "empty"},
		{"duplicate key", "HostName=h.net;DeviceId=d;DeviceId=e;SharedAccessKey=" + key, ErrDuplicateKey, KeyDeviceID, "more than once"},
		{"unknown key (strict for IoT Hub)", "HostName=h.net;DeviceId=d;SharedAccessKey=" + key + ";Foo=bar", ErrUnknownKey, "Foo", "not an IoT Hub"},
		{"key in the wrong case", "Hostname=h.net;DeviceId=d;SharedAccessKey=" + key, ErrUnknownKey, "Hostname", "did you mean HostName"},
		{"empty value", "HostName=h.net;DeviceId=;SharedAccessKey=" + key, ErrInvalidValue, KeyDeviceID, "empty value"},
		{"missing HostName", "DeviceId=d;SharedAccessKey=" + key, ErrMissingKey, KeyHostName, "missing"},
		{"key and x509 together (python: mixed)", "HostName=h.net;DeviceId=d;SharedAccessKey=" + key + ";x509=true", ErrMixedAuth, "", "only one"},
		{"key and token together", "HostName=h.net;DeviceId=d;SharedAccessKey=" + key + ";SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1", ErrMixedAuth, "", "only one"},
		{"device without credentials (node)", "HostName=h.net;DeviceId=d", ErrNoCredentials, "", "SharedAccessKey, SharedAccessSignature or x509=true"},
		{"key not base64", "HostName=x.azure-devices.net;DeviceId=d;SharedAccessKey=not*base64", ErrNotBase64Key, KeySharedAccessKey, "not valid base64"},
		{"key without padding", "HostName=h.net;DeviceId=d;SharedAccessKey=c2VjcmV", ErrNotBase64Key, KeySharedAccessKey, "base64"},
		{"x509 false", "HostName=h.net;DeviceId=d;x509=false", ErrInvalidValue, KeyX509, "must be true"},
		{"bad token", "HostName=h.net;DeviceId=d;SharedAccessSignature=sig", ErrInvalidValue, KeySharedAccessSignature, "not a SAS token"},
		{"module without device", "HostName=h.net;ModuleId=m;SharedAccessKey=" + key, ErrMissingKey, KeyDeviceID, "names its device"},
		{"service without policy name", "HostName=h.net;SharedAccessKey=" + key, ErrMissingKey, KeySharedAccessKeyName, "policy"},
		{"service without key", "HostName=h.net;SharedAccessKeyName=iothubowner", ErrMissingKey, KeySharedAccessKey, "missing"},
		{"hub string without credentials", "HostName=h.net", ErrNoCredentials, "", "needs"},
		{"x509 without device", "HostName=h.net;x509=true", ErrMissingKey, KeyDeviceID, "x509"},
		{"scheme in HostName", "HostName=https://h.net;DeviceId=d;SharedAccessKey=" + key, ErrInvalidValue, KeyHostName, "without a scheme"},
		{"path in HostName", "HostName=h.net/x;DeviceId=d;SharedAccessKey=" + key, ErrInvalidValue, KeyHostName, "nothing else"},
		{"bad port", "HostName=h.net:99999;DeviceId=d;SharedAccessKey=" + key, ErrInvalidValue, KeyHostName, "port"},
		{"empty port", "HostName=h.net:;DeviceId=d;SharedAccessKey=" + key, ErrInvalidValue, KeyHostName, "port"},
		{"port twice", "HostName=127.0.0.1:1:2;DeviceId=d;SharedAccessKey=" + key, ErrInvalidValue, KeyHostName, "more than one ':'"},
		{"event hub without key name", "Endpoint=sb://e.net/;SharedAccessKey=" + key, ErrMissingKey, KeySharedAccessKeyName, "go together"},
		{"event hub key and signature", "Endpoint=sb://e.net/;SharedAccessKeyName=s;SharedAccessKey=" + key + ";SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1", ErrMixedAuth, "", "not both"},
		{"event hub without credentials", "Endpoint=sb://e.net/;EntityPath=x", ErrNoCredentials, "", "needs"},
		{"event hub endpoint not a URL", "Endpoint=e.net;SharedAccessKeyName=s;SharedAccessKey=" + key, ErrInvalidValue, KeyEndpoint, "URL"},
		{"event hub endpoint https", "Endpoint=https://e.net/;SharedAccessKeyName=s;SharedAccessKey=" + key, ErrInvalidValue, KeyEndpoint, "scheme"},
		{"event hub with DeviceId", "Endpoint=sb://e.net/;SharedAccessKeyName=s;SharedAccessKey=" + key + ";DeviceId=d", ErrUnknownKey, KeyDeviceID, "does not belong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v; want an error", tt.in, c)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T is not a *ParseError", tt.in, err)
			}
			if !errors.Is(err, tt.err) || pe.Key != tt.key || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("Parse(%q) = %v (key %q); want %v on key %q mentioning %q", tt.in, err, pe.Key, tt.err, tt.key, tt.mention)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	c := MustParse("HostName=h.net;DeviceId=d;SharedAccessKey=" + key)
	for _, s := range []string{c.String(), c.LogValue().String()} {
		if strings.Contains(s, key) {
			t.Errorf("%q contains the key", s)
		}
	}
	if want := "HostName=h.net;DeviceId=d;SharedAccessKey=REDACTED"; c.String() != want {
		t.Errorf("String() = %q; want %q", c.String(), want)
	}
	if !strings.Contains(c.Format(), key) {
		t.Errorf("Format() = %q; want the key", c.Format())
	}
	tok := MustParse("HostName=h.net;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=SECRETSIG&se=12345")
	if strings.Contains(tok.String(), "SECRETSIG") {
		t.Errorf("String() = %q contains the signature", tok.String())
	}
}

func TestRequire(t *testing.T) {
	c := MustParse("HostName=h.net;DeviceId=d;SharedAccessKey=" + key)
	if err := c.Require(KindDevice, KindModule); err != nil {
		t.Errorf("Require(device, module) = %v", err)
	}
	err := c.Require(KindService)
	if !errors.Is(err, ErrWrongKind) || !strings.Contains(err.Error(), "device connection string; a service connection string is needed") {
		t.Errorf("Require(service) = %v", err)
	}
}

func TestIsAzureHost(t *testing.T) {
	for host, want := range map[string]bool{
		"myhub.azure-devices.net":      true,
		"MyHub.Azure-Devices.NET:8883": true,
		"hub.azure-devices.cn":         true,
		"hub.azure-devices.us.":        true,
		"azure-devices.net":            false,
		".azure-devices.net":           false,
		"localhost:8443":               false,
		"127.0.0.1":                    false,
		"hub.azure-devices.net.evil":   false,
		"edge.local":                   false,
	} {
		if got := IsAzureHost(host); got != want {
			t.Errorf("IsAzureHost(%q) = %v; want %v", host, got, want)
		}
	}
}
