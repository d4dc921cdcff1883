package interop

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// newEnvWith is newEnv with extra hub options (device CAs).
func newEnvWith(t *testing.T, opts hub.Options) *env {
	t.Helper()
	requireNode(t)
	return startHub(t, opts)
}

// startHub starts an in-memory hub with opts on a loopback address of
// its own, on the standard ports, and closes it when the test ends.
func startHub(t *testing.T, opts hub.Options) *env {
	t.Helper()
	return startHubOn(t, loopbackIP(), opts)
}

// startHubOn starts the hub of startHub on ip.
func startHubOn(t *testing.T, ip string, opts hub.Options) *env {
	t.Helper()
	opts.Addr, opts.StandardPorts, opts.InMemory, opts.SANs = ip+":8883", true, true, []string{ip}
	h := hub.New(&opts)
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("starting the hub on %s with the standard ports (needs root or CAP_NET_BIND_SERVICE): %v", ip, err)
	}
	t.Cleanup(func() { h.Close() })
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, hub: h, ip: ip, cs: cs}
}

// runConnectivity runs js/connectivity.js and returns its events and
// whether it exited 0.
func (e *env) runConnectivity(cs, transport string, n int, certFile, keyFile string) ([]map[string]any, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{cs, transport, fmt.Sprint(n)}
	if certFile != "" {
		args = append(args, certFile, keyFile)
	}
	out, err := e.nodeCmd(ctx, "connectivity.js", args...).Output()
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			evs = append(evs, m)
		}
	}
	if err != nil && len(evs) == 0 {
		e.t.Fatalf("node connectivity.js %s: %v\nstdout: %s\nstderr: %s", transport, err, out, stderrOf(err))
	}
	return evs, err == nil
}

// messages returns the telemetry the hub logged for id.
func (e *env) messages(id string) []string {
	log := e.hub.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 1000)
	var ids []string
	for _, ev := range evs {
		if ev.DeviceID == id {
			ids = append(ids, ev.Message.MessageID+"/"+ev.AuthMethod)
		}
	}
	return ids
}

// deviceCertFiles makes a device certificate (self-signed when issuer
// is nil), writes it and its key, and returns the files and its SHA-1
// thumbprint.
func deviceCertFiles(t *testing.T, cn string, issuer *tls.Certificate) (certFile, keyFile, thumbprint string) {
	t.Helper()
	certPEM, keyPEM, err := devicecert.New(cn, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), issuer)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	thumbprint, _ = hub.Thumbprints(pair.Leaf)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, thumbprint
}

func (e *env) createX509Device(id string, a *iothub.Authentication) string {
	e.t.Helper()
	if _, err := e.hub.Registry().CreateDevice(&iothub.Device{DeviceID: id, Authentication: a}); err != nil {
		e.t.Fatalf("creating %s: %v", id, err)
	}
	return "HostName=" + e.hub.HostName() + ";DeviceId=" + id + ";x509=true"
}

func wantSent(t *testing.T, what string, evs []map[string]any, ok bool, n int) {
	t.Helper()
	if !ok || len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" || evs[len(evs)-1]["count"] != float64(n) {
		t.Fatalf("%s: the Node device reported %v; want %d sent", what, evs, n)
	}
}

// The official Node device's MqttWs transport (always
// wss://HOST:443/$iothub/websocket) sends telemetry through the hub.
func TestNodeDeviceMqttWs(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("node-ws")
	evs, ok := e.runConnectivity(cs, "mqttws", 5, "", "")
	wantSent(t, "MqttWs", evs, ok, 5)
	want := []string{"mqttws-0/sas", "mqttws-1/sas", "mqttws-2/sas", "mqttws-3/sas", "mqttws-4/sas"}
	if got := e.messages("node-ws"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hub side: messages %q; want %q", got, want)
	}
}

// The official Node device with an x509=true connection string and
// client.setOptions({cert, key}) connects with a self-signed
// certificate registered by thumbprint, over Mqtt, MqttWs, Amqp and
// AmqpWs; another certificate is refused with UnauthorizedError. Over
// AMQP the certificate is all the device sends (azure-iot-device-amqp
// puts no token on $cbs for an X.509 client: device/transport/amqp/src/
// amqp.ts, "If x509 authentication is NOT being utilized then
// initializeCBS shall be invoked"), and as it names no identity until a
// link does, the refusal comes at the first link (the telemetry sender
// the first send attaches), not at open.
func TestNodeDeviceX509SelfSigned(t *testing.T) {
	e := newEnv(t)
	certFile, keyFile, tp := deviceCertFiles(t, "node-x509", nil)
	cs := e.createX509Device("node-x509", &iothub.Authentication{Type: iothub.AuthSelfSigned,
		X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: &tp}})
	var want []string
	for _, transport := range []string{"mqtt", "mqttws", "amqp", "amqpws"} {
		evs, ok := e.runConnectivity(cs, transport, 2, certFile, keyFile)
		wantSent(t, transport+" with a certificate", evs, ok, 2)
		want = append(want, transport+"-0/x509", transport+"-1/x509")
	}
	if got := e.messages("node-x509"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hub side: messages %q; want %q", got, want)
	}

	otherCert, otherKey, _ := deviceCertFiles(t, "node-x509", nil)
	for _, transport := range []string{"mqtt", "amqp"} {
		evs, ok := e.runConnectivity(cs, transport, 1, otherCert, otherKey)
		if last := len(evs) - 1; ok || last < 0 || evs[last]["event"] != "error" || evs[last]["name"] != "UnauthorizedError" {
			t.Errorf("a certificate with another thumbprint over %s: the Node device reported %v; want UnauthorizedError", transport, evs)
		}
	}
}

// `iotctl device send --transport amqp [--websocket] --cert --key` (the
// built binary) with an x509=true connection string: the hub logs the
// messages as X.509-authenticated; another certificate exits 4
// (credentials refused) with a message naming the thumbprint.
func TestIotctlDeviceSendX509OverAMQP(t *testing.T) {
	e := newEnv(t)
	certFile, keyFile, tp := deviceCertFiles(t, "cli-x509-amqp", nil)
	cs := e.createX509Device("cli-x509-amqp", &iothub.Authentication{Type: iothub.AuthSelfSigned,
		X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: &tp}})
	for _, ws := range []string{"--websocket=false", "--websocket"} {
		_, stderr, code := e.iotctl("device", "send", "--transport", "amqp", ws, "--connection-string", cs,
			"--cert", certFile, "--key", keyFile, "--data", "x", "--message-id", "cli"+ws)
		if code != 0 {
			t.Fatalf("iotctl device send --transport amqp %s with a certificate: exit %d: %s", ws, code, stderr)
		}
	}
	want := []string{"cli--websocket=false/x509", "cli--websocket/x509"}
	if got := e.messages("cli-x509-amqp"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hub side: messages %q; want %q", got, want)
	}
	otherCert, otherKey, _ := deviceCertFiles(t, "cli-x509-amqp", nil)
	_, stderr, code := e.iotctl("device", "send", "--transport", "amqp", "--connection-string", cs,
		"--cert", otherCert, "--key", otherKey, "--data", "x")
	if code != 4 || !strings.Contains(stderr, "thumbprint") {
		t.Errorf("iotctl device send with another certificate: exit %d: %s; want exit 4 naming the thumbprint", code, stderr)
	}
}

// A certificate signed by a CA given to the hub as a device CA, with
// CN = the device id, connects the official Node device.
func TestNodeDeviceX509CertificateAuthority(t *testing.T) {
	caPEM, caKeyPEM, err := devicecert.NewCA("interop devices", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "device-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, hub.Options{DeviceCAFiles: []string{caFile}})
	certFile, keyFile, _ := deviceCertFiles(t, "node-ca", &ca)
	cs := e.createX509Device("node-ca", &iothub.Authentication{Type: iothub.AuthCertificateAuthority})
	evs, ok := e.runConnectivity(cs, "mqtt", 1, certFile, keyFile)
	wantSent(t, "a CA-signed certificate", evs, ok, 1)
	if got := e.messages("node-ca"); len(got) != 1 || got[0] != "mqtt-0/x509" {
		t.Errorf("hub side: messages %q", got)
	}
}
