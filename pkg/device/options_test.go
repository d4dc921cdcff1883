package device

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
)

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts *Options
		want string
	}{
		{"nil", nil, "no options"},
		{"no host", &Options{DeviceID: "d", SharedAccessKey: testKey}, "no host"},
		{"no device", &Options{HostName: "h.net", SharedAccessKey: testKey}, "no device id"},
		{"no credentials", &Options{HostName: "h.net", DeviceID: "d"}, "no credentials"},
		{"key and signature", &Options{HostName: "h.net", DeviceID: "d", SharedAccessKey: testKey, SharedAccessSignature: "SharedAccessSignature sr=a&sig=b&se=1"}, "not both"},
		{"bad key", &Options{HostName: "h.net", DeviceID: "d", SharedAccessKey: "not*base64"}, "base64"},
		{"bad port", &Options{HostName: "h.net:99999", DeviceID: "d", SharedAccessKey: testKey}, "bad port"},
		{"string and fields", &Options{ConnectionString: "HostName=h.net;DeviceId=d;SharedAccessKey=" + testKey, DeviceID: "d"}, "not both"},
		{"service string", &Options{ConnectionString: "HostName=h.net;SharedAccessKeyName=p;SharedAccessKey=" + testKey}, "device or module"},
		{"x509 string without a certificate", &Options{ConnectionString: "HostName=h.net;DeviceId=d;x509=true"}, "X.509 client certificate"},
		{"missing CA file", &Options{HostName: "h.net", DeviceID: "d", SharedAccessKey: testKey, CAFile: "/nonexistent/ca.pem"}, "CA file"},
		{"qos 2", &Options{HostName: "h.net", DeviceID: "d", SharedAccessKey: testKey, QoS: 3}, "QoS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v; want an error mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
	var pe *connstr.ParseError
	if _, err := New(&Options{ConnectionString: "HostName=h.net;DeviceId=d"}); !errors.As(err, &pe) {
		t.Errorf("New(string without key) = %v; want a *connstr.ParseError", err)
	}
}

func TestResolveAddresses(t *testing.T) {
	tests := []struct {
		opts                  Options
		address, server, user string
	}{
		{Options{HostName: "hub.azure-devices.net", DeviceID: "d"}, "hub.azure-devices.net:8883", "hub.azure-devices.net", "hub.azure-devices.net/d/?api-version=2021-04-12&DeviceClientType=iotctl%2Fdevel"},
		{Options{HostName: "localhost:8443", DeviceID: "d", ModuleID: "m"}, "localhost:8443", "localhost", "localhost:8443/d/m/?api-version=2021-04-12&DeviceClientType=iotctl%2Fdevel"},
		{Options{HostName: "hub.net", DeviceID: "d", GatewayHostName: "edge.local"}, "edge.local:8883", "edge.local", "hub.net/d/?api-version=2021-04-12&DeviceClientType=iotctl%2Fdevel"},
	}
	for _, tt := range tests {
		o := tt.opts
		o.SharedAccessKey = testKey
		c, err := resolve(&o)
		if err != nil {
			t.Fatalf("resolve(%+v) = %v", tt.opts, err)
		}
		if c.address != tt.address || c.serverName != tt.server || c.username != tt.user {
			t.Errorf("resolve(%+v) = %q %q %q; want %q %q %q", tt.opts, c.address, c.serverName, c.username, tt.address, tt.server, tt.user)
		}
	}
}

func TestBackoffStaysInBounds(t *testing.T) {
	min, max := time.Second, 30*time.Second
	for n := 1; n <= 12; n++ {
		want := min << (n - 1)
		if want > max || n > 6 {
			want = max
		}
		for range 50 {
			if d := backoff(n, min, max); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v; want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestParseQoS(t *testing.T) {
	if q, err := ParseQoS("0"); err != nil || q != QoS0 {
		t.Errorf("ParseQoS(0) = %v, %v", q, err)
	}
	if q, err := ParseQoS("1"); err != nil || q != QoS1 {
		t.Errorf("ParseQoS(1) = %v, %v", q, err)
	}
	if _, err := ParseQoS("2"); err == nil {
		t.Error("ParseQoS(2) = nil error")
	}
}
