package hub_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/devicecert"
)

// hub device-ca create writes a CA certificate and a private key that
// sign device certificates, and never replaces them.
func TestDeviceCACreate(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	dir := t.TempDir()
	r := runEnv(t, nil, "hub", "device-ca", "create", dir, "--name", "lab CA", "--days", "30", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	var out struct {
		CertFile, KeyFile, Subject string
		NotAfter                   time.Time
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("output %q: %v", r.stdout, err)
	}
	certFile, keyFile := filepath.Join(dir, "device-ca.pem"), filepath.Join(dir, "device-ca-key.pem")
	if out.CertFile != certFile || out.KeyFile != keyFile || out.Subject != "CN=lab CA" ||
		out.NotAfter.Before(time.Now().Add(29*24*time.Hour)) || out.NotAfter.After(time.Now().Add(31*24*time.Hour)) {
		t.Errorf("output %+v", out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v, %v; want mode 0600", fi, err)
	}
	ca, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := devicecert.Issue("cam1", time.Now(), time.Now().Add(time.Hour), &ca)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("a certificate signed with the CA does not verify against it: %v", err)
	}

	r = runEnv(t, nil, "hub", "device-ca", "create", dir)
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "exists") {
		t.Errorf("second create: exit %d stderr %q; want 3 and exists", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(certFile); string(after) != string(pem) {
		t.Error("the second create replaced the certificate")
	}
	// A directory that does not exist yet is made; a file is no directory.
	if r = runEnv(t, nil, "hub", "device-ca", "create", filepath.Join(dir, "new", "dir")); r.code != 0 {
		t.Errorf("missing directory: exit %d stderr %q; want 0", r.code, r.stderr)
	} else if _, err := os.Stat(filepath.Join(dir, "new", "dir", "device-ca.pem")); err != nil {
		t.Errorf("missing directory: %v", err)
	}
	if r = runEnv(t, nil, "hub", "device-ca", "create", certFile); r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("a file as directory: exit %d stderr %q; want 3", r.code, r.stderr)
	}
}
