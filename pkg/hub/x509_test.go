package hub

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// testCA is a device CA written to a file, with its loaded pair.
type testCA struct {
	file string
	pair *tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	certPEM, keyPEM, err := devicecert.NewCA("test device CA", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "device-ca.pem")
	if err := os.WriteFile(file, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return testCA{file: file, pair: &pair}
}

// deviceCert makes a device certificate valid from nb to na, signed by
// issuer (self-signed when nil).
func deviceCert(t *testing.T, cn string, nb, na time.Time, issuer *tls.Certificate) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := devicecert.New(cn, nb, na, issuer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func validCert(t *testing.T, cn string, issuer *tls.Certificate) tls.Certificate {
	return deviceCert(t, cn, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), issuer)
}

// dialX509 connects clientID with a client certificate and no
// password, over MQTT on TLS or, with ws, over WebSocket.
func dialX509(t *testing.T, h *Hub, clientID string, cert *tls.Certificate, ws bool) error {
	t.Helper()
	tc := tlsFor(t, h)
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	broker := "tls://" + h.Addrs()[0]
	if ws {
		broker = "wss://" + h.Addrs()[0] + WebSocketPath
	}
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(clientID).
		SetUsername(h.HostName() + "/" + clientID + "/?api-version=2021-04-12").
		SetTLSConfig(tc).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect timed out")
	}
	if tok.Error() != nil {
		return tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(0) })
	dev, mod, _ := strings.Cut(clientID, "/")
	topic := "devices/" + dev + "/messages/events/"
	if mod != "" {
		topic = "devices/" + dev + "/modules/" + mod + "/messages/events/"
	}
	if pt := c.Publish(topic, 1, false, "x509"); !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
		t.Fatalf("publish: %v", pt.Error())
	}
	return nil
}

func createX509Device(t *testing.T, h *Hub, id string, a *iothub.Authentication) {
	t.Helper()
	if _, err := h.reg.CreateDevice(&iothub.Device{DeviceID: id, Authentication: a}); err != nil {
		t.Fatalf("CreateDevice(%s): %v", id, err)
	}
}

func selfSignedAuth(primary, secondary string) *iothub.Authentication {
	t := &iothub.X509Thumbprint{PrimaryThumbprint: &primary}
	if secondary != "" {
		t.SecondaryThumbprint = &secondary
	}
	return &iothub.Authentication{Type: iothub.AuthSelfSigned, X509Thumbprint: t}
}

// logBuffer collects a hub's log for checking refusal reasons.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// since returns what was logged after mark and the new mark.
func (l *logBuffer) since(mark int) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	return s[mark:], len(s)
}

func startLoggedHub(t *testing.T, opts *Options) (*Hub, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	o := Options{Addr: "127.0.0.1:0", InMemory: true}
	if opts != nil {
		o = *opts
	}
	o.Logger = slog.New(slog.NewTextHandler(lb, nil))
	h := New(&o)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, lb
}

func TestX509SelfSignedDevices(t *testing.T) {
	h, logs := startLoggedHub(t, nil)
	good := validCert(t, "dev1", nil)
	sha1Hex, sha256Hex := Thumbprints(good.Leaf)
	other := validCert(t, "dev1", nil)
	otherSHA1, _ := Thumbprints(other.Leaf)
	createX509Device(t, h, "by-sha1", selfSignedAuth(sha1Hex, ""))
	createX509Device(t, h, "by-sha256-secondary", selfSignedAuth(otherSHA1, strings.ToLower(sha256Hex)))
	expired := deviceCert(t, "dev1", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), nil)
	expSHA1, _ := Thumbprints(expired.Leaf)
	createX509Device(t, h, "expired", selfSignedAuth(expSHA1, ""))
	createDevice(t, h, "sas-dev")

	runX509Cases(t, h, logs, []x509Case{
		{"SHA-1 primary thumbprint", "by-sha1", &good, false, ""},
		{"SHA-256 secondary thumbprint in lower case", "by-sha256-secondary", &good, false, ""},
		{"over WebSocket", "by-sha1", &good, true, ""},
		{"a certificate with another thumbprint", "by-sha1", &other, false, "is not the identity's"},
		{"the same over WebSocket", "by-sha1", &other, true, "is not the identity's"},
		{"expired certificate with a matching thumbprint", "expired", &expired, false, "expired at"},
		{"no certificate and no password", "by-sha1", nil, false, "no password and no client certificate"},
		{"a SAS device without a password", "sas-dev", &good, false, "authenticates with sas"},
		{"unknown device", "ghost", &good, false, "unknown device"},
	})
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf("by-sha1"), 0, 10)
	if len(evs) == 0 || evs[0].AuthMethod != "x509" {
		t.Errorf("telemetry of an X.509 device: %+v; want auth method x509", evs)
	}
}

func TestX509CertificateAuthorityDevices(t *testing.T) {
	ca := newTestCA(t)
	stranger := newTestCA(t)
	h, logs := startLoggedHub(t, &Options{Addr: "127.0.0.1:0", InMemory: true, DeviceCAFiles: []string{ca.file}})
	caAuth := &iothub.Authentication{Type: iothub.AuthCertificateAuthority}
	createX509Device(t, h, "cam1", caAuth)
	createX509Device(t, h, "cam2", caAuth)
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: "cam1", ModuleID: "m1", Authentication: caAuth}); err != nil {
		t.Fatal(err)
	}
	createX509Device(t, h, "off", &iothub.Authentication{Type: iothub.AuthCertificateAuthority})
	if _, err := h.reg.UpdateDevice(&iothub.Device{DeviceID: "off", Status: iothub.StatusDisabled}, "*"); err != nil {
		t.Fatal(err)
	}

	signed := validCert(t, "cam1", ca.pair)
	wrongCN := validCert(t, "cam2-not", ca.pair)
	byStranger := validCert(t, "cam1", stranger.pair)
	selfSigned := validCert(t, "cam1", nil)
	expired := deviceCert(t, "cam1", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour), ca.pair)
	module := validCert(t, "cam1/m1", ca.pair)
	off := validCert(t, "off", ca.pair)
	runX509Cases(t, h, logs, []x509Case{
		{"signed by the device CA with CN = id", "cam1", &signed, false, ""},
		{"the same over WebSocket", "cam1", &signed, true, ""},
		{"a module with CN = device/module", "cam1/m1", &module, false, ""},
		{"CN is not the id", "cam2", &wrongCN, false, "cam2-not"},
		{"signed by another CA", "cam1", &byStranger, false, "does not chain to a device CA"},
		{"self-signed", "cam1", &selfSigned, false, "does not chain to a device CA"},
		{"expired", "cam1", &expired, false, "expired at"},
		{"disabled device", "off", &off, false, "device disabled"},
	})

	// Without --device-ca such devices are refused.
	bare := startHub(t)
	createX509Device(t, bare, "cam1", caAuth)
	if err := dialX509(t, bare, "cam1", &signed, false); err == nil {
		t.Error("a hub without device CAs accepted a CA-signed device")
	}
}

// x509Case is one connection attempt; refused says the reason the hub
// must log, "" for a connection that must succeed.
type x509Case struct {
	name, id string
	cert     *tls.Certificate
	ws       bool
	refused  string
}

func runX509Cases(t *testing.T, h *Hub, logs *logBuffer, cases []x509Case) {
	t.Helper()
	_, mark := logs.since(0)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := dialX509(t, h, tt.id, tt.cert, tt.ws)
			var logged string
			logged, mark = logs.since(mark)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("connect: %v\nhub log:\n%s", err, logged)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "not Authorized") {
				t.Fatalf("connect error %v; want not authorized (CONNACK 5)", err)
			}
			if !strings.Contains(logged, tt.refused) {
				t.Errorf("hub log %q does not give the reason %q", logged, tt.refused)
			}
		})
	}
}

func TestDeviceCAFileErrors(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for file, want := range map[string]string{"/nonexistent/ca.pem": "device CA file /nonexistent/ca.pem: no such file", notPEM: "holds no PEM certificate"} {
		h := New(&Options{Addr: "127.0.0.1:0", InMemory: true, DeviceCAFiles: []string{file}})
		err := h.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Start with device CA %s = %v; want %q", file, err, want)
		}
	}
}
