package device

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// keyMismatch tells a key of another certificate by comparing the keys;
// anything it cannot parse is not called a mismatch.
func TestKeyMismatch(t *testing.T) {
	newKey := func() (*ecdsa.PrivateKey, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	key, keyPEM := newKey()
	_, otherPEM := newKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dev1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      bool
	}{
		{"its own key", certPEM, keyPEM, false},
		{"another key", certPEM, otherPEM, true},
		{"key first in a combined file", certPEM, append(append([]byte{}, otherPEM...), certPEM...), true},
		{"no key", certPEM, []byte("nothing"), false},
		{"broken certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), otherPEM, false},
	} {
		if got := keyMismatch(tc.cert, tc.key); got != tc.want {
			t.Errorf("%s: keyMismatch = %v; want %v", tc.name, got, tc.want)
		}
	}
}
