package service

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leafCert makes a server certificate for 127.0.0.1 and localhost
// signed by ca (a new self-signed CA when ca is nil), valid until
// notAfter. It returns the certificate and the CA's PEM.
func leafCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, notAfter time.Time) (tls.Certificate, []byte) {
	t.Helper()
	now := time.Now()
	if ca == nil {
		caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "another CA"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ = x509.ParseCertificate(der)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-2 * time.Hour), NotAfter: notAfter, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
}

// tlsServer accepts TLS connections with cert and completes their
// handshakes; it returns its address.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Read(make([]byte, 1))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		c.Close()
	}
	return err
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrustForHost(t *testing.T) {
	p := getPKI(t)
	good := tlsServer(t, p.server)
	expiredCert, _ := leafCert(t, p.ca, p.caKey, time.Now().Add(-time.Hour))
	expired := tlsServer(t, expiredCert)
	otherCert, otherCA := leafCert(t, nil, nil, time.Now().Add(time.Hour))
	other := tlsServer(t, otherCert)
	ca := caFile(t)

	type want int
	const (
		ok want = iota
		badName
		badCert
		unknownCA
	)
	tests := []struct {
		name   string
		caFile string
		roots  *x509.CertPool
		addr   string
		host   string
		want   want
	}{
		{"CA file, IP", ca, nil, good, "127.0.0.1", ok},
		{"CA file, name", ca, nil, good, "localhost", ok},
		{"CA file, another IP", ca, nil, good, "127.0.0.2", badName},
		{"CA file, another name", ca, nil, good, "wrong.test", badName},
		{"CA file, expired certificate", ca, nil, expired, "127.0.0.1", badCert},
		{"CA file, certificate of another CA", ca, nil, other, "127.0.0.1", unknownCA},
		{"CA file and RootCAs", ca, x509.NewCertPool(), good, "localhost", ok},
		{"RootCAs", "", p.pool, good, "127.0.0.1", ok},
		{"RootCAs, another IP", "", p.pool, good, "127.0.0.3", badName},
		{"RootCAs, another CA", "", p.pool, other, "127.0.0.1", unknownCA},
		{"system pool only", "", nil, good, "127.0.0.1", unknownCA},
		{"the other CA's file", writeFile(t, otherCA), nil, other, "localhost", ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := newTrust(tt.caFile, tt.roots)
			if err != nil {
				t.Fatal(err)
			}
			err = dial(tt.addr, tr.forHost(tt.host))
			var hn x509.HostnameError
			var ci x509.CertificateInvalidError
			var ua x509.UnknownAuthorityError
			var cve *tls.CertificateVerificationError
			got := map[bool]want{true: ok}[err == nil]
			switch {
			case err == nil:
			case errors.As(err, &hn):
				got = badName
			case errors.As(err, &ci):
				got = badCert
			case errors.As(err, &ua):
				got = unknownCA
			default:
				t.Fatalf("dial = %v (%T); want a certificate error", err, err)
			}
			if got != tt.want {
				t.Errorf("dial %s as %s = %v; want outcome %d, got %d", tt.addr, tt.host, err, tt.want, got)
			}
			if err != nil && !errors.As(err, &cve) {
				t.Errorf("dial = %v; want a *tls.CertificateVerificationError", err)
			}
			if err != nil && !permanent(err) {
				t.Errorf("permanent(%v) = false", err)
			}
		})
	}
}

func TestTrustConfigIsForOneHost(t *testing.T) {
	addr := tlsServer(t, getPKI(t).server)
	tr, err := newTrust(caFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tr.forHost("localhost").Clone()
	cfg.ServerName = "myhub.test" // covered by the certificate, but not the configuration's host
	if err := dial(addr, cfg); err == nil || !strings.Contains(err.Error(), "configuration for localhost used for myhub.test") {
		t.Errorf("dial = %v; want a refusal", err)
	}
}

func TestTLSConfig(t *testing.T) {
	addr := tlsServer(t, getPKI(t).server)
	cfg, err := TLSConfig(caFile(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, wantOK := range map[string]bool{"127.0.0.1": true, "localhost": true, "127.0.0.9": false, "wrong.test": false} {
		c := cfg.Clone()
		c.ServerName = host
		if err := dial(addr, c); (err == nil) != wantOK {
			t.Errorf("TLSConfig(CA file) as %s: dial = %v; want ok %v", host, err, wantOK)
		}
	}
	if cfg.InsecureSkipVerify || cfg.RootCAs == nil {
		t.Errorf("TLSConfig(CA file) = %+v; want crypto/tls's verification with a pool", cfg)
	}
	if cfg, _ := TLSConfig("", nil); cfg.RootCAs != nil {
		t.Error(`TLSConfig("", nil) loaded a pool; want nil (the system pool, on first use)`)
	}
	if cfg, _ := TLSConfig("", getPKI(t).pool); cfg.RootCAs != getPKI(t).pool {
		t.Error(`TLSConfig("", pool) does not use pool`)
	}
	if _, err := TLSConfig("/nonexistent/ca.pem", nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TLSConfig(missing file) = %v", err)
	}

	l := &lazyTLS{trust: &trust{extra: getPKI(t).pool}}
	a, b := l.Clone(), l.Clone()
	a.ServerName = "x"
	if a == b || b.ServerName != "" || b.RootCAs != getPKI(t).pool {
		t.Errorf("lazyTLS.Clone copies share state: %p %p %q", a, b, b.ServerName)
	}
}

// With a CA file that does not cover the server, the system pool is
// still trusted. The system pool comes from SSL_CERT_FILE, read once
// per process, so this runs in a child process.
func TestTrustFallsBackToSystemPool(t *testing.T) {
	if os.Getenv("IOTCTL_TEST_TRUST_CHILD") == "1" {
		tr, err := newTrust(os.Getenv("IOTCTL_TEST_CA"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dial(os.Getenv("IOTCTL_TEST_ADDR"), tr.forHost("localhost")); err != nil {
			t.Fatalf("dial = %v; want the system pool (SSL_CERT_FILE) to vouch for the server", err)
		}
		t.Log("trust child ok")
		return
	}
	addr := tlsServer(t, getPKI(t).server)
	_, otherCA := leafCert(t, nil, nil, time.Now().Add(time.Hour))
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrustFallsBackToSystemPool$", "-test.v")
	cmd.Env = append(os.Environ(), "IOTCTL_TEST_TRUST_CHILD=1", "IOTCTL_TEST_ADDR="+addr, "IOTCTL_TEST_CA="+writeFile(t, otherCA),
		"SSL_CERT_FILE="+caFile(t), "SSL_CERT_DIR="+t.TempDir(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "trust child ok") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
