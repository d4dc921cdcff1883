package devicecert

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestIssueChainsToItsCA(t *testing.T) {
	now := time.Now()
	caPEM, caKeyPEM, err := NewCA("fleet CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Issue("sim-00001", now.Add(-time.Minute), now.Add(time.Hour), &ca)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.Leaf.Subject.CommonName != "sim-00001" || len(c.Certificate) != 2 {
		t.Fatalf("Issue = leaf %v, chain of %d", c.Leaf, len(c.Certificate))
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the issued certificate does not verify against its CA for client auth: %v", err)
	}
	if _, err := Issue("x", now, now.Add(time.Hour), nil); err == nil {
		t.Error("Issue without an issuer = nil error")
	}
}

func TestNewSelfSignedPairLoads(t *testing.T) {
	certPEM, keyPEM, err := New("cam1", time.Now(), time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("New's PEM does not load: %v", err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if leaf.Subject.CommonName != "cam1" || leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) != nil || leaf.IsCA {
		t.Errorf("leaf %v: want CN cam1, self-signed, not a CA", leaf.Subject)
	}
}
