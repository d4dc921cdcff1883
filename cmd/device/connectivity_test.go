package device

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/proxytest"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// proxiedHost is a hub name the environment's proxy applies to (it is
// not localhost or a loopback address); the test proxy maps it to
// 127.0.0.1 and the hub's certificate covers it.
const proxiedHost = "iothub.proxy.test"

func startConnHub(t *testing.T) *hub.Hub {
	t.Helper()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, SANs: []string{proxiedHost}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func hubDeviceCS(t *testing.T, h *hub.Hub, id string) string {
	t.Helper()
	if err := h.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	cs, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func telemetryCount(h *hub.Hub, id string) int {
	log := h.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 1000)
	n := 0
	for _, e := range evs {
		if e.DeviceID == id {
			n++
		}
	}
	return n
}

// writeCert makes a device certificate valid until notAfter and writes
// it and its key; it returns the files and the SHA-1 thumbprint.
func writeCert(t *testing.T, cn string, notAfter time.Time) (certFile, keyFile, thumbprint string) {
	t.Helper()
	certPEM, keyPEM, err := devicecert.New(cn, time.Now().Add(-48*time.Hour), notAfter, nil)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	thumbprint, _ = hub.Thumbprints(pair.Leaf)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	return certFile, keyFile, thumbprint
}

func registerThumbprint(t *testing.T, h *hub.Hub, id, thumbprint string) {
	t.Helper()
	a := &iothub.Authentication{Type: iothub.AuthSelfSigned, X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: &thumbprint}}
	if _, err := h.Registry().CreateDevice(&iothub.Device{DeviceID: id, Authentication: a}); err != nil {
		t.Fatal(err)
	}
}

func sendCmd(f *cmdutil.Factory) *cobra.Command     { return newCmdSend(f, nil) }
func simulateCmd(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }

func TestConnectFlags(t *testing.T) {
	certFile, keyFile, _ := writeCert(t, "cam1", time.Now().Add(time.Hour))
	x509CS := "HostName=myhub.azure-devices.net;DeviceId=cam1;x509=true"
	var sent *sendOptions
	send := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSend(f, func(o *sendOptions) error { sent = o; return nil })
	}
	var sim *simulateOptions
	simulate := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSimulate(f, func(o *simulateOptions) error { sim = o; return nil })
	}

	code, _, stderr := execute(t, "", send, "send", "--connection-string", deviceCS, "--data", "x", "--websocket", "--proxy", "http://proxy.corp:3128")
	if code != 0 || !sent.dev.WebSocket || sent.dev.Proxy != "http://proxy.corp:3128" || sent.dev.ConnectionString != deviceCS {
		t.Fatalf("send --websocket --proxy: code %d stderr %q options %+v", code, stderr, sent.dev)
	}
	t.Setenv("IOTCTL_WEBSOCKET", "true")
	if code, _, stderr := execute(t, "", send, "send", "--connection-string", deviceCS, "--data", "x"); code != 0 || !sent.dev.WebSocket {
		t.Fatalf("IOTCTL_WEBSOCKET=true: code %d stderr %q websocket %v", code, stderr, sent.dev.WebSocket)
	}
	t.Setenv("IOTCTL_WEBSOCKET", "")

	code, _, stderr = execute(t, "", send, "send", "--connection-string", x509CS, "--cert", certFile, "--key", keyFile, "--data", "x")
	if code != 0 || sent.dev.Certificate == nil || sent.dev.CertFile != certFile || sent.dev.ConnectionString != x509CS {
		t.Fatalf("send with an x509=true string: code %d stderr %q options %+v", code, stderr, sent.dev)
	}
	code, _, stderr = execute(t, "", simulate, "simulate", "--host", "localhost:8443", "--device-id", "cam1", "--cert", certFile, "--key", keyFile, "--websocket")
	if d := sim.sim.Device; code != 0 || d.HostName != "localhost:8443" || d.DeviceID != "cam1" || d.Certificate == nil || !d.WebSocket || d.ConnectionString != "" {
		t.Fatalf("simulate --host --device-id --cert: code %d stderr %q options %+v", code, stderr, sim.sim.Device)
	}
}

func TestConnectUsageErrorsExit3(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := writeCert(t, "cam1", time.Now().Add(time.Hour))
	_, otherKey, _ := writeCert(t, "other", time.Now().Add(time.Hour))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	x509CS := "HostName=myhub.azure-devices.net;DeviceId=cam1;x509=true"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"x509 string without a certificate", []string{"--connection-string", x509CS}, []string{"x509=true", "--cert"}},
		{"certificate with a key string", []string{"--connection-string", deviceCS, "--cert", certFile, "--key", keyFile}, []string{"--cert is for an x509=true"}},
		{"key without certificate", []string{"--connection-string", x509CS, "--key", keyFile}, []string{"--key needs --cert"}},
		{"host without device id", []string{"--host", "h.net", "--cert", certFile}, []string{"--host and --device-id"}},
		{"host without certificate", []string{"--host", "h.net", "--device-id", "d"}, []string{"--cert"}},
		{"host and connection string", []string{"--host", "h.net", "--device-id", "d", "--cert", certFile, "--connection-string", x509CS}, []string{"not both"}},
		{"unreadable certificate", []string{"--connection-string", x509CS, "--cert", missing, "--key", keyFile}, []string{"client certificate file " + missing, "no such file"}},
		{"unreadable key", []string{"--connection-string", x509CS, "--cert", certFile, "--key", missing}, []string{"private key file " + missing, "no such file"}},
		{"mismatched key", []string{"--connection-string", x509CS, "--cert", certFile, "--key", otherKey}, []string{"private key file " + otherKey, "does not match the certificate in " + certFile}},
		{"bad proxy", []string{"--connection-string", deviceCS, "--proxy", "socks5://127.0.0.1:1080"}, []string{"--proxy", "socks5"}},
	}
	for _, tt := range tests {
		for _, verb := range []string{"send", "simulate"} {
			t.Run(verb+" "+tt.name, func(t *testing.T) {
				args := append([]string{verb, "--data", "x"}, tt.args...)
				sub := func(f *cmdutil.Factory) *cobra.Command {
					return newCmdSend(f, func(*sendOptions) error { t.Error("ran despite a usage error"); return nil })
				}
				if verb == "simulate" {
					sub = func(f *cmdutil.Factory) *cobra.Command {
						return newCmdSimulate(f, func(*simulateOptions) error { t.Error("ran despite a usage error"); return nil })
					}
				}
				code, _, stderr := execute(t, "", sub, args...)
				if code != cmdutil.ExitUsage {
					t.Errorf("iotctl %q: code %d stderr %q; want 3", args, code, stderr)
				}
				for _, w := range tt.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q lacks %q", stderr, w)
					}
				}
			})
		}
	}
	code, _, stderr := execute(t, "", simulateCmd, "simulate", "--devices", "2", "--connection-string", deviceCS, "--cert", certFile)
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "fleet") {
		t.Errorf("a fleet with --cert: code %d stderr %q; want 3", code, stderr)
	}
}

// iotctl device simulate --websocket goes through HTTPS_PROXY to the
// in-process hub.
func TestSimulateWebSocketThroughProxy(t *testing.T) {
	h := startConnHub(t)
	cs := hubDeviceCS(t, h, "sim-ws")
	_, port, _ := net.SplitHostPort(h.Addrs()[0])
	cs = strings.Replace(cs, "HostName="+h.HostName(), "HostName="+proxiedHost+":"+port, 1)
	p := proxytest.New(t)
	p.Map(proxiedHost, "127.0.0.1")
	t.Setenv("HTTPS_PROXY", p.URL())

	code, stdout, stderr := execute(t, "", simulateCmd, "simulate", "--connection-string", cs, "--ca-file", h.CAFile(),
		"--websocket", "--count", "3", "--interval", "10ms", "-o", "json")
	if code != 0 {
		t.Fatalf("simulate --websocket: code %d stderr %q", code, stderr)
	}
	if n := telemetryCount(h, "sim-ws"); n != 3 || !strings.Contains(stdout, `"type":"sent"`) {
		t.Errorf("hub got %d messages, stdout %q; want 3 sent", n, stdout)
	}
	if p.Tunnels() != 1 || p.Targets()[0] != proxiedHost+":"+port {
		t.Errorf("proxy tunnels %d to %q; want 1 to %s:%s", p.Tunnels(), p.Targets(), proxiedHost, port)
	}
}

func TestSendX509(t *testing.T) {
	t.Parallel()
	h := startConnHub(t)
	certFile, keyFile, tp := writeCert(t, "cam1", time.Now().Add(time.Hour))
	registerThumbprint(t, h, "cam1", tp)
	cs := "HostName=" + h.HostName() + ";DeviceId=cam1;x509=true"
	for _, extra := range [][]string{nil, {"--websocket"}} {
		args := append([]string{"send", "--connection-string", cs, "--cert", certFile, "--key", keyFile, "--ca-file", h.CAFile(), "--data", "hi"}, extra...)
		if code, _, stderr := execute(t, "", sendCmd, args...); code != 0 {
			t.Fatalf("iotctl %q: code %d stderr %q", args, code, stderr)
		}
	}
	if code, _, stderr := execute(t, "", sendCmd, "send", "--host", h.HostName(), "--device-id", "cam1", "--cert", certFile, "--key", keyFile, "--ca-file", h.CAFile(), "--data", "hi"); code != 0 {
		t.Fatalf("send --host --device-id: code %d stderr %q", code, stderr)
	}
	if n := telemetryCount(h, "cam1"); n != 3 {
		t.Errorf("hub got %d messages; want 3", n)
	}

	otherCert, otherKey, _ := writeCert(t, "cam1", time.Now().Add(time.Hour))
	code, _, stderr := execute(t, "", sendCmd, "send", "--connection-string", cs, "--cert", otherCert, "--key", otherKey, "--ca-file", h.CAFile(), "--data", "hi")
	if code != cmdutil.ExitAuth || !strings.Contains(stderr, "not authorized") || !strings.Contains(stderr, "thumbprint") {
		t.Errorf("a certificate with another thumbprint: code %d stderr %q; want 4 with a hint", code, stderr)
	}

	expCert, expKey, expTP := writeCert(t, "cam2", time.Now().Add(-time.Hour))
	registerThumbprint(t, h, "cam2", expTP)
	code, _, stderr = execute(t, "", sendCmd, "send", "--host", h.HostName(), "--device-id", "cam2", "--cert", expCert, "--key", expKey, "--ca-file", h.CAFile(), "--data", "hi")
	if code != cmdutil.ExitAuth || !strings.Contains(stderr, expCert+" expired at") {
		t.Errorf("an expired certificate: code %d stderr %q; want 4 naming the file and its expiry", code, stderr)
	}
}

func TestSendProxyFailuresExit1(t *testing.T) {
	h := startConnHub(t)
	cs := hubDeviceCS(t, h, "dev1")
	p := proxytest.New(t)
	p.Refuse(403)
	code, _, stderr := execute(t, "", sendCmd, "send", "--connection-string", cs, "--ca-file", h.CAFile(), "--proxy", p.URL(), "--websocket", "--data", "x")
	if code != cmdutil.ExitFailure || !strings.Contains(stderr, "proxy "+p.URL()) || !strings.Contains(stderr, "403 Forbidden") {
		t.Errorf("a refusing proxy: code %d stderr %q; want 1 naming the proxy and its answer", code, stderr)
	}
	// MQTT on 8883 does not use HTTPS_PROXY; the error says so.
	t.Setenv("HTTPS_PROXY", p.URL())
	unresolvable := strings.Replace(cs, "HostName="+h.HostName(), "HostName="+proxiedHost, 1)
	code, _, stderr = execute(t, "", sendCmd, "send", "--connection-string", unresolvable, "--ca-file", h.CAFile(), "--data", "x")
	if code != cmdutil.ExitFailure || !strings.Contains(stderr, "HTTPS_PROXY is set, but MQTT on port 8883 does not use it") || len(p.Targets()) != 1 {
		t.Errorf("MQTT with HTTPS_PROXY set: code %d stderr %q, proxy asked %d times; want 1 with a hint, no proxy", code, stderr, len(p.Targets()))
	}
	t.Setenv("HTTPS_PROXY", "")

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	code, _, stderr = execute(t, "", sendCmd, "send", "--connection-string", cs, "--ca-file", h.CAFile(), "--proxy", dead, "--data", "x")
	if code != cmdutil.ExitFailure || !strings.Contains(stderr, "proxy http://"+dead) || !strings.Contains(stderr, "connection refused") {
		t.Errorf("an unreachable proxy: code %d stderr %q; want 1 naming the proxy", code, stderr)
	}
}

// A GatewayHostName is dialled (trusted with --ca-file) while HostName
// stays in the user name and token: the hub knows itself as
// 127.0.0.1:port, not as localhost.
func TestSendThroughGatewayHostName(t *testing.T) {
	t.Parallel()
	h := startConnHub(t)
	_, port, _ := net.SplitHostPort(h.Addrs()[0])
	cs := hubDeviceCS(t, h, "leaf1") + ";GatewayHostName=localhost:" + port
	for _, extra := range [][]string{nil, {"--websocket"}} {
		args := append([]string{"send", "--connection-string", cs, "--ca-file", h.CAFile(), "--data", "via edge"}, extra...)
		if code, _, stderr := execute(t, "", sendCmd, args...); code != 0 {
			t.Fatalf("iotctl %q: code %d stderr %q", args, code, stderr)
		}
	}
	if n := telemetryCount(h, "leaf1"); n != 2 {
		t.Errorf("hub got %d messages; want 2", n)
	}
}

// writeCA writes a device CA (certificate and key in separate files).
func writeCA(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := devicecert.NewCA("fleet CA", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestDeviceCAFleetUsageErrors(t *testing.T) {
	t.Parallel()
	caFile, caKey := writeCA(t)
	leafCert, leafKey, _ := writeCert(t, "cam1", time.Now().Add(time.Hour))
	keys := filepath.Join(t.TempDir(), "keys.txt")
	os.WriteFile(keys, []byte("a c2VjcmV0\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"without --devices", []string{"--device-ca", caFile, "--device-ca-key", caKey, "--host", "h.net"}, "--devices"},
		{"key without CA", []string{"--devices", "2", "--device-ca-key", caKey, "--host", "h.net"}, "--device-ca-key needs --device-ca"},
		{"with a keys file", []string{"--devices", "2", "--device-ca", caFile, "--device-ca-key", caKey, "--keys-file", keys, "--host", "h.net"}, "not both"},
		{"not a CA", []string{"--devices", "2", "--device-ca", leafCert, "--device-ca-key", leafKey, "--host", "h.net"}, "not a CA certificate"},
		{"key missing from the CA file", []string{"--devices", "2", "--device-ca", caFile, "--host", "h.net"}, "holds no PEM private key"},
		{"no host", []string{"--devices", "2", "--device-ca", caFile, "--device-ca-key", caKey}, "host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := func(f *cmdutil.Factory) *cobra.Command {
				return newCmdSimulate(f, func(*simulateOptions) error { t.Error("ran despite a usage error"); return nil })
			}
			code, _, stderr := execute(t, "", sub, append([]string{"simulate"}, tt.args...)...)
			if code != cmdutil.ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("code %d stderr %q; want 3 and %q", code, stderr, tt.want)
			}
		})
	}
}

// iotctl device simulate --devices 3 --device-ca signs a certificate
// for each device, creates them as certificateAuthority devices through
// the service API, and the hub that trusts the CA takes their
// telemetry.
func TestDeviceCAFleetAgainstHub(t *testing.T) {
	t.Parallel()
	caFile, caKey := writeCA(t)
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, DeviceCAFiles: []string{caFile}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	svc, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := execute(t, "", simulateCmd, "simulate", "--devices", "3", "--device-prefix", "cam-",
		"--device-ca", caFile, "--device-ca-key", caKey, "--hub-connection-string", svc, "--ca-file", h.CAFile(),
		"--count", "2", "--interval", "10ms", "-o", "json")
	if code != 0 {
		t.Fatalf("code %d stderr %q stdout %q", code, stderr, stdout)
	}
	for _, id := range []string{"cam-00001", "cam-00002", "cam-00003"} {
		d, err := h.Registry().Device(id)
		if err != nil || d.Authentication.Type != iothub.AuthCertificateAuthority {
			t.Errorf("%s: %+v, %v; want a certificateAuthority device", id, d, err)
		}
		if n := telemetryCount(h, id); n != 2 {
			t.Errorf("%s sent %d messages; want 2", id, n)
		}
	}
}
