package hub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names of the TLS material the hub keeps in its data directory.
const (
	CAFile        = "ca.pem"
	caKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	serverKeyFile = "server-key.pem"
)

// defaultSANs are the names every generated server certificate covers.
var defaultSANs = []string{"localhost", "127.0.0.1", "::1"}

// ensureCerts loads or creates a CA and a server certificate for sans
// in dir. An existing CA is kept; the server certificate is made again
// when it does not cover every name in sans or expires within a week.
// It returns the server certificate and the CA file's path.
func ensureCerts(dir string, sans []string, now time.Time) (tls.Certificate, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("hub: tls: %w", err)
	}
	caPath := filepath.Join(dir, CAFile)
	caCert, caKey, err := loadPair(caPath, filepath.Join(dir, caKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		caCert, caKey, err = makeCA(now)
		if err == nil {
			err = writePair(caPath, filepath.Join(dir, caKeyFile), caCert, caKey)
		}
	}
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("hub: tls: CA in %s: %w", dir, err)
	}
	srvPath, srvKeyPath := filepath.Join(dir, ServerFile), filepath.Join(dir, serverKeyFile)
	srvCert, srvKey, err := loadPair(srvPath, srvKeyPath)
	if err != nil || !covers(srvCert, sans) || srvCert.NotAfter.Before(now.Add(7*24*time.Hour)) ||
		srvCert.CheckSignatureFrom(caCert) != nil {
		srvCert, srvKey, err = makeServer(caCert, caKey, sans, now)
		if err == nil {
			err = writePair(srvPath, srvKeyPath, srvCert, srvKey)
		}
		if err != nil {
			return tls.Certificate{}, "", fmt.Errorf("hub: tls: server certificate: %w", err)
		}
	}
	// The chain is the server certificate alone: every client trusts
	// the CA itself (RFC 8446, 4.4.2: a certificate that specifies a
	// trust anchor may be omitted). Each handshake is then smaller, and
	// so are the buffers both sides keep from it for the life of the
	// connection.
	return tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey, Leaf: srvCert}, caPath, nil
}

func covers(c *x509.Certificate, sans []string) bool {
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, s) {
			return false
		}
	}
	return true
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func makeCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "iotctl local hub CA", Organization: []string{"iotctl"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func makeServer(ca *x509.Certificate, caKey *ecdsa.PrivateKey, sans []string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: sans[0], Organization: []string{"iotctl"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	c, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

func writePair(certPath, keyPath string, c *x509.Certificate, k *ecdsa.PrivateKey) error {
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644)
}
