package device

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxytest"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
)

// proxiedHost is a hub host name that is neither localhost nor a
// loopback address, so that the environment's proxy applies to it; the
// test proxy maps it to 127.0.0.1.
const proxiedHost = "iothub.proxy.test"

// startHub starts an in-memory hub on 127.0.0.1:0 whose certificate
// also covers proxiedHost.
func startHub(t *testing.T, opts *hub.Options) *hub.Hub {
	t.Helper()
	o := hub.Options{}
	if opts != nil {
		o = *opts
	}
	o.Addr, o.InMemory, o.SANs = "127.0.0.1:0", true, append(o.SANs, proxiedHost)
	h := hub.New(&o)
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("starting the hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// hubDevice registers a SAS device and returns its connection string.
func hubDevice(t *testing.T, h *hub.Hub, id string) *connstr.ConnectionString {
	t.Helper()
	if err := h.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	s, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	return connstr.MustParse(s)
}

// hubPort is the port of the hub's one TLS listener.
func hubPort(h *hub.Hub) string {
	_, p, _ := net.SplitHostPort(h.Addrs()[0])
	return p
}

// sendOne connects with opts, sends one message and closes.
func sendOne(t *testing.T, opts *Options, body string) error {
	t.Helper()
	c, err := Open(opts)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if err := c.Connect(testCtx(t)); err != nil {
		return err
	}
	return c.SendEvent(testCtx(t), &message.Message{Body: []byte(body)})
}

// lastTelemetry returns the last message the hub logged for id.
func lastTelemetry(t *testing.T, h *hub.Hub, id string) (body, authMethod string) {
	t.Helper()
	log := h.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 1000)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].DeviceID == id {
			return string(evs[i].Message.Body), evs[i].AuthMethod
		}
	}
	t.Fatalf("the hub logged no telemetry of %s", id)
	return "", ""
}

// clearProxyEnv sets the proxy variables for the test: HTTPS_PROXY to
// proxy ("" for none) and no NO_PROXY.
func setProxyEnv(t *testing.T, proxy string) {
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"} {
		t.Setenv(k, "")
	}
	t.Setenv("HTTPS_PROXY", proxy)
}

func TestWebSocketToHub(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "ws1")
	p := proxytest.New(t)
	setProxyEnv(t, p.URL())
	// HostName 127.0.0.1:port: loopback never goes through the
	// environment's proxy.
	if err := sendOne(t, &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), WebSocket: true}, "over wss"); err != nil {
		t.Fatalf("send over WebSocket: %v", err)
	}
	if body, _ := lastTelemetry(t, h, "ws1"); body != "over wss" {
		t.Errorf("hub got %q", body)
	}
	if n := p.Tunnels(); n != 0 {
		t.Errorf("a loopback hub was reached through HTTPS_PROXY (%d tunnels); want direct", n)
	}
}

func TestWebSocketThroughEnvironmentProxy(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "ws2")
	p := proxytest.New(t)
	p.Map(proxiedHost, "127.0.0.1")
	setProxyEnv(t, p.URL())
	cs.HostName = proxiedHost + ":" + hubPort(h)
	if err := sendOne(t, &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), WebSocket: true}, "via proxy"); err != nil {
		t.Fatalf("send over WebSocket through the proxy: %v", err)
	}
	if body, _ := lastTelemetry(t, h, "ws2"); body != "via proxy" {
		t.Errorf("hub got %q", body)
	}
	if n, tg := p.Tunnels(), p.Targets(); n != 1 || len(tg) != 1 || tg[0] != cs.HostName {
		t.Errorf("proxy tunnels %d to %q; want 1 to %s", n, tg, cs.HostName)
	}

	// MQTT over TLS does not use the environment's proxy: it dials
	// iothub.proxy.test itself, which does not resolve.
	err := sendOne(t, &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), ConnectTimeout: 5 * time.Second}, "x")
	var pe *ProxyError
	if err == nil || errors.As(err, &pe) || p.Tunnels() != 1 {
		t.Errorf("MQTT over TLS with HTTPS_PROXY set: %v, %d tunnels; want a direct attempt", err, p.Tunnels())
	}
}

func TestMQTTThroughExplicitProxy(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "tls1")
	p := proxytest.New(t)
	setProxyEnv(t, "")
	// An explicit proxy is used for every target, loopback included.
	if err := sendOne(t, &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Proxy: p.Addr()}, "tunnelled"); err != nil {
		t.Fatalf("send through the proxy: %v", err)
	}
	if body, _ := lastTelemetry(t, h, "tls1"); body != "tunnelled" || p.Tunnels() != 1 {
		t.Errorf("hub got %q, proxy opened %d tunnels; want the message through 1 tunnel", body, p.Tunnels())
	}
}

func TestProxyFailures(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "dev1")
	p := proxytest.New(t)
	p.Refuse(403)
	setProxyEnv(t, "")
	proxyURL := "http://alice:s3cret@" + p.Addr()
	opts := &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Proxy: proxyURL, WebSocket: true,
		RetryConnect: true, MinRetryDelay: time.Millisecond}
	err := sendOne(t, opts, "x")
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.StatusCode != 403 {
		t.Fatalf("through a refusing proxy: %v; want a *ProxyError with status 403, not retried", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, p.Addr()) || !strings.Contains(msg, "403 Forbidden") || !strings.Contains(msg, "127.0.0.1:"+hubPort(h)) || strings.Contains(msg, "s3cret") {
		t.Errorf("error %q: want the proxy, the target and the status, without the password", msg)
	}
	if len(p.Targets()) != 1 {
		t.Errorf("a 403 was retried: targets %q", p.Targets())
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	opts = &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Proxy: "http://" + dead}
	err = sendOne(t, opts, "x")
	if !errors.As(err, &pe) || pe.StatusCode != 0 || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("through an unreachable proxy: %v; want a *ProxyError naming it", err)
	}

	for _, bad := range []string{"socks5://127.0.0.1:1080", "http://", "http://a b"} {
		if _, err := New(&Options{ConnectionString: cs.Format(), Proxy: bad}); err == nil || !strings.Contains(err.Error(), "proxy") {
			t.Errorf("New with proxy %q = %v; want a proxy error", bad, err)
		}
	}
}

func TestEnvironmentProxySelection(t *testing.T) {
	tests := []struct {
		name, noProxy, host string
		ws                  bool
		explicit            string
		want                string
	}{
		{"websocket to a public name", "", "hub.azure-devices.net", true, "", "http://proxy.example:3128"},
		{"websocket to localhost", "", "localhost:8443", true, "", ""},
		{"websocket to a loopback address", "", "127.0.0.5", true, "", ""},
		{"websocket to a NO_PROXY host", "azure-devices.net", "hub.azure-devices.net", true, "", ""},
		{"MQTT over TLS ignores the environment", "", "hub.azure-devices.net", false, "", ""},
		{"an explicit proxy for loopback too", "", "localhost:8443", false, "http://127.0.0.1:9", "http://127.0.0.1:9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setProxyEnv(t, "http://proxy.example:3128")
			t.Setenv("NO_PROXY", tt.noProxy)
			c, err := resolve(&Options{HostName: tt.host, DeviceID: "d", SharedAccessKey: testKey, WebSocket: tt.ws, Proxy: tt.explicit})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if c.proxy != nil {
				u, err := c.proxy(c.address)
				if err != nil {
					t.Fatal(err)
				}
				if u != nil {
					got = u.String()
				}
			}
			if got != tt.want {
				t.Errorf("proxy for %s = %q; want %q", c.address, got, tt.want)
			}
		})
	}
}

func TestWebSocketAddresses(t *testing.T) {
	tests := []struct {
		opts         Options
		url, address string
	}{
		{Options{HostName: "hub.azure-devices.net"}, "wss://hub.azure-devices.net/$iothub/websocket", "hub.azure-devices.net:443"},
		{Options{HostName: "localhost:8443"}, "wss://localhost:8443/$iothub/websocket", "localhost:8443"},
		{Options{HostName: "hub.net", GatewayHostName: "edge.local"}, "wss://edge.local/$iothub/websocket", "edge.local:443"},
		{Options{HostName: "hub.net", GatewayHostName: "edge.local:443"}, "wss://edge.local/$iothub/websocket", "edge.local:443"},
		{Options{HostName: "[::1]:8443"}, "wss://[::1]:8443/$iothub/websocket", "[::1]:8443"},
		{Options{HostName: "[::1]:443"}, "wss://[::1]/$iothub/websocket", "[::1]:443"},
	}
	for _, tt := range tests {
		o := tt.opts
		o.DeviceID, o.SharedAccessKey, o.WebSocket = "d", testKey, true
		c, err := resolve(&o)
		if err != nil {
			t.Fatal(err)
		}
		if c.wsURL != tt.url || c.address != tt.address || !strings.HasPrefix(c.username, o.HostName+"/d/") {
			t.Errorf("resolve(%+v) = %q %q %q; want %q %q", tt.opts, c.wsURL, c.address, c.username, tt.url, tt.address)
		}
	}
}

// The gateway is dialled (its name must be in the server certificate)
// while HostName stays in the user name and the token: the hub knows
// itself as 127.0.0.1:port and not as localhost.
func TestGatewayHostNameToHub(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "gw1")
	cs.GatewayHostName = "localhost:" + hubPort(h)
	for _, ws := range []bool{false, true} {
		if err := sendOne(t, &Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), WebSocket: ws}, "via gateway"); err != nil {
			t.Fatalf("send through GatewayHostName (websocket %v): %v", ws, err)
		}
	}
	wrong := *cs
	wrong.HostName, wrong.GatewayHostName = cs.GatewayHostName, ""
	err := sendOne(t, &Options{ConnectionString: wrong.Format(), CAFile: h.CAFile()}, "x")
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("with the gateway's name as HostName: %v; want a refusal (the hub checks the user name)", err)
	}
}

// certFiles writes a certificate and key (PEM) and returns their paths.
func certFiles(t *testing.T, certPEM, keyPEM []byte) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "dev.pem"), filepath.Join(dir, "dev-key.pem")
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

// x509Device makes a device certificate for id (signed by issuer, or
// self-signed) valid until notAfter, writes it, and registers id with
// authType (selfSigned gets the certificate's SHA-1 thumbprint).
func x509Device(t *testing.T, h *hub.Hub, id, authType string, notAfter time.Time, issuer *tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := devicecert.New(id, time.Now().Add(-48*time.Hour), notAfter, issuer)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = certFiles(t, certPEM, keyPEM)
	a := &iothub.Authentication{Type: authType}
	if authType == iothub.AuthSelfSigned {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		tp, _ := hub.Thumbprints(pair.Leaf)
		a.X509Thumbprint = &iothub.X509Thumbprint{PrimaryThumbprint: &tp}
	}
	if _, err := h.Registry().CreateDevice(&iothub.Device{DeviceID: id, Authentication: a}); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestX509SelfSignedToHub(t *testing.T) {
	h := startHub(t, nil)
	cf, kf := x509Device(t, h, "x1", iothub.AuthSelfSigned, time.Now().Add(time.Hour), nil)
	cs := "HostName=" + h.HostName() + ";DeviceId=x1;x509=true"
	if err := sendOne(t, &Options{ConnectionString: cs, CertFile: cf, KeyFile: kf, CAFile: h.CAFile()}, "cert"); err != nil {
		t.Fatalf("X.509 device: %v", err)
	}
	if body, method := lastTelemetry(t, h, "x1"); body != "cert" || method != "x509" {
		t.Errorf("hub got %q with auth %q; want cert, x509", body, method)
	}
	// Identity fields instead of a connection string, over WebSocket.
	if err := sendOne(t, &Options{HostName: h.HostName(), DeviceID: "x1", CertFile: cf, KeyFile: kf, CAFile: h.CAFile(), WebSocket: true}, "cert ws"); err != nil {
		t.Fatalf("X.509 device over WebSocket: %v", err)
	}

	// Another certificate for the same id: refused, not retried.
	otherCert, otherKey, _ := devicecert.New("x1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil)
	ocf, okf := certFiles(t, otherCert, otherKey)
	err := sendOne(t, &Options{ConnectionString: cs, CertFile: ocf, KeyFile: okf, CAFile: h.CAFile(), RetryConnect: true}, "x")
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Code != 5 || !errors.Is(err, ErrUnauthorized) || ce.Detail != "" {
		t.Errorf("a certificate with another thumbprint: %v; want CONNACK 5 without detail", err)
	}

	// An expired certificate with the registered thumbprint.
	ecf, ekf := x509Device(t, h, "x2", iothub.AuthSelfSigned, time.Now().Add(-time.Hour), nil)
	err = sendOne(t, &Options{HostName: h.HostName(), DeviceID: "x2", CertFile: ecf, KeyFile: ekf, CAFile: h.CAFile()}, "x")
	if !errors.As(err, &ce) || ce.Code != 5 || !strings.Contains(err.Error(), ecf+" expired at") {
		t.Errorf("an expired certificate: %v; want CONNACK 5 naming the file and its expiry", err)
	}
}

// An X.509 device over AMQP and AMQP over WebSocket: its certificate
// authenticates its links, with no token; another certificate is
// refused with an *AMQPError wrapping ErrUnauthorized, not retried.
func TestX509OverAMQPToHub(t *testing.T) {
	h := startHub(t, nil)
	cf, kf := x509Device(t, h, "xa1", iothub.AuthSelfSigned, time.Now().Add(time.Hour), nil)
	cs := "HostName=" + h.HostName() + ";DeviceId=xa1;x509=true"
	for _, ws := range []bool{false, true} {
		body := map[bool]string{false: "amqp cert", true: "amqp ws cert"}[ws]
		if err := sendOne(t, &Options{ConnectionString: cs, CertFile: cf, KeyFile: kf, CAFile: h.CAFile(), Transport: TransportAMQP, WebSocket: ws}, body); err != nil {
			t.Fatalf("X.509 device over AMQP (websocket %v): %v", ws, err)
		}
		if got, method := lastTelemetry(t, h, "xa1"); got != body || method != "x509" {
			t.Errorf("hub got %q with auth %q; want %q, x509", got, method, body)
		}
	}
	otherCert, otherKey, _ := devicecert.New("xa1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil)
	ocf, okf := certFiles(t, otherCert, otherKey)
	err := sendOne(t, &Options{ConnectionString: cs, CertFile: ocf, KeyFile: okf, CAFile: h.CAFile(), Transport: TransportAMQP, RetryConnect: true}, "x")
	var ae *AMQPError
	if !errors.As(err, &ae) || ae.Condition != "amqp:unauthorized-access" || !errors.Is(err, ErrUnauthorized) || !strings.Contains(ae.Description, "thumbprint") {
		t.Errorf("a certificate with another thumbprint over AMQP: %v; want amqp:unauthorized-access naming the thumbprint", err)
	}
}

func TestX509CertificateAuthorityToHub(t *testing.T) {
	caPEM, caKeyPEM, err := devicecert.NewCA("devices", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	caFile, _ := certFiles(t, caPEM, caKeyPEM)
	ca, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, &hub.Options{DeviceCAFiles: []string{caFile}})
	cf, kf := x509Device(t, h, "cam1", iothub.AuthCertificateAuthority, time.Now().Add(time.Hour), &ca)
	cs := "HostName=" + h.HostName() + ";DeviceId=cam1;x509=true"
	if err := sendOne(t, &Options{ConnectionString: cs, CertFile: cf, KeyFile: kf, CAFile: h.CAFile()}, "signed"); err != nil {
		t.Fatalf("CA-signed device: %v", err)
	}
	if err := sendOne(t, &Options{ConnectionString: cs, CertFile: cf, KeyFile: kf, CAFile: h.CAFile(), Transport: TransportAMQP}, "signed amqp"); err != nil {
		t.Fatalf("CA-signed device over AMQP: %v", err)
	}
	if body, method := lastTelemetry(t, h, "cam1"); body != "signed amqp" || method != "x509" {
		t.Errorf("hub got %q with auth %q; want signed amqp, x509", body, method)
	}
	// The certificate of cam1 does not make anyone else cam1.
	if _, err := h.Registry().CreateDevice(&iothub.Device{DeviceID: "cam2", Authentication: &iothub.Authentication{Type: iothub.AuthCertificateAuthority}}); err != nil {
		t.Fatal(err)
	}
	err = sendOne(t, &Options{HostName: h.HostName(), DeviceID: "cam2", CertFile: cf, KeyFile: kf, CAFile: h.CAFile()}, "x")
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("cam1's certificate as cam2: %v; want refused", err)
	}
	err = sendOne(t, &Options{HostName: h.HostName(), DeviceID: "cam2", CertFile: cf, KeyFile: kf, CAFile: h.CAFile(), Transport: TransportAMQP}, "x")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), `CN "cam1" is not "cam2"`) {
		t.Errorf("cam1's certificate as cam2 over AMQP: %v; want refused naming the CN", err)
	}
}

func TestCertificateFileErrors(t *testing.T) {
	certPEM, keyPEM, err := devicecert.New("d", time.Now(), time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := devicecert.New("d", time.Now(), time.Now().Add(time.Hour), nil)
	cf, kf := certFiles(t, certPEM, keyPEM)
	_, wrongKey := certFiles(t, certPEM, otherKey)
	notPEM, _ := certFiles(t, []byte("not a certificate"), nil)
	both, _ := certFiles(t, append(append([]byte{}, certPEM...), keyPEM...), nil)
	unreadable := filepath.Join(t.TempDir(), "missing.pem")

	if _, err := LoadKeyPair(both, ""); err != nil {
		t.Errorf("LoadKeyPair(one file with both) = %v", err)
	}
	tests := []struct {
		name, cert, key string
		want            []string
	}{
		{"missing certificate", unreadable, kf, []string{"client certificate file " + unreadable, "no such file"}},
		{"missing key", cf, unreadable, []string{"private key file " + unreadable, "no such file"}},
		{"certificate not PEM", notPEM, kf, []string{"client certificate file " + notPEM, "no PEM certificate"}},
		{"key file holds only a certificate", cf, cf, []string{"private key file " + cf, "no PEM private key"}},
		{"key of another certificate", cf, wrongKey, []string{"private key file " + wrongKey, "does not match the certificate in " + cf}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(&Options{HostName: "h.net", DeviceID: "d", CertFile: tt.cert, KeyFile: tt.key})
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("New = %v; want a *FileError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error %q shows key material", err)
			}
		})
	}

	if _, err := New(&Options{ConnectionString: "HostName=h.net;DeviceId=d;x509=true"}); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("x509=true without a certificate: %v; want ErrNoCertificate", err)
	}
	if _, err := New(&Options{HostName: "h.net", DeviceID: "d", SharedAccessKey: testKey, CertFile: cf, KeyFile: kf}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("a key and a certificate: %v; want an error", err)
	}
	if _, err := New(&Options{HostName: "h.net", DeviceID: "d", KeyFile: kf}); err == nil {
		t.Error("a key file without a certificate file: no error")
	}
}
