package hub_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/devicecert"
	hubsrv "github.com/iotctl/iotctl/pkg/hub"
)

// certRun runs iotctl in process against h with its service string and
// CA in its environment (runEnv: not the process's).
func certRun(t *testing.T, h *hubsrv.Hub, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{}
	if h != nil {
		cs, err := h.ServiceConnectionString("iothubowner")
		if err != nil {
			t.Fatal(err)
		}
		env["IOTCTL_CONNECTION_STRING"] = cs
		env["IOTCTL_CA_FILE"] = h.CAFile()
	}
	r := runEnv(t, env, args...)
	return r.code, r.stdout, r.stderr
}

func certHub(t *testing.T) *hubsrv.Hub {
	t.Helper()
	h := hubsrv.New(&hubsrv.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// sha256Of returns the SHA-256 thumbprint of the first certificate in
// a PEM file.
func sha256Of(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", file)
	}
	sum := sha256.Sum256(blk.Bytes)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

type createdIdentity struct {
	DeviceID         string `json:"deviceId"`
	ConnectionString string `json:"connectionString"`
	Auth             string `json:"authType"`
	Thumbprint       string `json:"primaryThumbprint"`
	CertFile         string `json:"certFile"`
	KeyFile          string `json:"keyFile"`
}

// hub device create --generate-cert writes a working self-signed
// certificate and registers it; iotctl device send connects with it.
func TestDeviceCreateGenerateCert(t *testing.T) {
	t.Parallel() // no t.Setenv: see certRun
	h := certHub(t)
	// A directory that does not exist yet is made.
	dir := filepath.Join(t.TempDir(), "certs", "new")
	code, stdout, stderr := certRun(t, h, "hub", "device", "create", "cam1", "--generate-cert", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("create --generate-cert: code %d stderr %q", code, stderr)
	}
	var id createdIdentity
	if err := json.Unmarshal([]byte(stdout), &id); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	certFile, keyFile := filepath.Join(dir, "cam1.pem"), filepath.Join(dir, "cam1-key.pem")
	if id.Auth != "selfSigned" || id.CertFile != certFile || id.KeyFile != keyFile || id.Thumbprint != sha256Of(t, certFile) {
		t.Errorf("created %+v; want selfSigned with the SHA-256 thumbprint of %s", id, certFile)
	}
	b, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || c.Subject.CommonName != "cam1" || c.NotAfter.Before(time.Now().Add(300*24*time.Hour)) {
		t.Errorf("certificate CN %q until %v (%v); want CN cam1 for a year", c.Subject.CommonName, c.NotAfter, err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v); want 0600", fi.Mode(), err)
	}

	// The printed x509=true connection string and the files work, as
	// the help's example uses them.
	if want := "HostName=" + h.HostName() + ";DeviceId=cam1;x509=true"; id.ConnectionString != want {
		t.Errorf("printed connection string %q; want %q", id.ConnectionString, want)
	}
	code, _, stderr = certRun(t, h, "device", "send", "--connection-string", id.ConnectionString, "--cert", certFile, "--key", keyFile, "--data", "hello")
	if code != 0 {
		t.Fatalf("device send with the printed connection string and the generated certificate: code %d stderr %q", code, stderr)
	}
	code, _, stderr = certRun(t, h, "device", "send", "--host", h.HostName(), "--device-id", "cam1", "--cert", certFile, "--key", keyFile, "--data", "hello")
	if code != 0 {
		t.Fatalf("device send with the generated certificate: code %d stderr %q", code, stderr)
	}
	if code, out, _ := certRun(t, h, "hub", "device", "show", "cam1", "--show-connection-string"); code != 0 || out != id.ConnectionString+"\n" {
		t.Errorf("show --show-connection-string of an x509 device: code %d, %q; want %q", code, out, id.ConnectionString)
	}
	log := h.Telemetry()
	if evs, _ := log.Read(log.PartitionOf("cam1"), 0, 10); len(evs) != 2 || evs[0].AuthMethod != "x509" {
		t.Errorf("hub telemetry %+v; want one message from an x509 device", evs)
	}

	// A module gets DEVICE/MODULE as CN and DEVICE-MODULE as file name.
	code, stdout, stderr = certRun(t, h, "hub", "device", "create", "cam1", "--module-id", "m1", "--generate-cert", dir, "-o", "json")
	if code != 0 || !strings.Contains(stdout, filepath.Join(dir, "cam1-m1.pem")) {
		t.Fatalf("module --generate-cert: code %d stdout %q stderr %q", code, stdout, stderr)
	}

	// Existing files are not overwritten; nothing is registered.
	code, _, stderr = certRun(t, h, "hub", "device", "create", "cam1", "--generate-cert", dir)
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, certFile+" exists") {
		t.Errorf("--generate-cert over existing files: code %d stderr %q; want 3 naming the file", code, stderr)
	}
	// A refused identity takes its files back.
	other := t.TempDir()
	code, _, _ = certRun(t, h, "hub", "device", "create", "ghost", "--module-id", "m1", "--generate-cert", other)
	if entries, _ := os.ReadDir(other); code != cmdutil.ExitNotFound || len(entries) != 0 {
		t.Errorf("--generate-cert for a module of a missing device: code %d, files %v left; want 5 and none", code, entries)
	}
}

func TestDeviceCreateThumbprintFromCert(t *testing.T) {
	t.Parallel() // no t.Setenv: see certRun
	h := certHub(t)
	certPEM, _, err := devicecert.New("cam2", time.Now(), time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "cam2.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	code, stdout, stderr := certRun(t, h, "hub", "device", "create", "cam2", "--auth", "x509-thumbprint", "--cert", certFile, "-o", "json")
	var id createdIdentity
	if code != 0 || json.Unmarshal([]byte(stdout), &id) != nil || id.Thumbprint != sha256Of(t, certFile) {
		t.Fatalf("create --cert: code %d stdout %q stderr %q", code, stdout, stderr)
	}

	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth", "x509-thumbprint", "--cert", missing}, missing + ": no such file"},
		{[]string{"--auth", "x509-thumbprint", "--cert", notPEM}, notPEM + " holds no PEM certificate"},
		{[]string{"--auth", "x509-thumbprint", "--cert", certFile, "--primary-thumbprint", strings.Repeat("A", 40)}, "one of"},
		{[]string{"--auth", "sas", "--generate-cert", t.TempDir()}, "x509-thumbprint"},
		{[]string{"--auth", "x509-ca", "--cert", certFile}, "x509-ca"},
		{[]string{"--generate-cert", notPEM}, "not a directory"},
	} {
		args := append([]string{"hub", "device", "create", "cam3"}, tt.args...)
		code, _, stderr := certRun(t, h, args...)
		if code != cmdutil.ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("iotctl %q: code %d stderr %q; want 3 and %q", args, code, stderr, tt.want)
		}
	}
}

func TestServeDeviceCAErrorsExit3(t *testing.T) {
	t.Parallel() // no t.Setenv: see certRun
	missing := filepath.Join(t.TempDir(), "ca.pem")
	code, _, stderr := certRun(t, nil, "hub", "serve", "--addr", "127.0.0.1:0", "--in-memory", "--device-ca", missing)
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "--device-ca") || !strings.Contains(stderr, missing+": no such file") {
		t.Errorf("hub serve --device-ca MISSING: code %d stderr %q; want 3 naming the file", code, stderr)
	}
}
