// Package devicecert makes X.509 device certificates and the CAs that
// sign them, for tests and simulations: a self-signed certificate for a
// device registered with selfSigned authentication, or one signed by a
// CA (CN = the device id) for certificateAuthority authentication.
// Keys are ECDSA P-256.
package devicecert

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
	"time"
)

// New makes an X.509 device certificate (subject CN commonName,
// client-authentication use, valid from notBefore to notAfter) and
// returns it and its private key (PKCS #8) as PEM. With issuer nil it
// is self-signed: register its thumbprint with selfSigned
// authentication. Else issuer, a CA certificate with its key (see
// NewCA), signs it: for certificateAuthority authentication, with CN
// the device id.
func New(commonName string, notBefore, notAfter time.Time, issuer *tls.Certificate) (certPEM, keyPEM []byte, err error) {
	der, key, err := makeCert(deviceTemplate(commonName, notBefore, notAfter), issuer)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// Issue is New for use in memory: it returns the certificate, signed by
// issuer, as a tls.Certificate whose chain ends with issuer's own
// chain, with its Leaf set, ready for a TLS client.
func Issue(commonName string, notBefore, notAfter time.Time, issuer *tls.Certificate) (*tls.Certificate, error) {
	if issuer == nil {
		return nil, errors.New("devicecert: Issue needs an issuer")
	}
	der, key, err := makeCert(deviceTemplate(commonName, notBefore, notAfter), issuer)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	chain := append([][]byte{der}, issuer.Certificate...)
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

func deviceTemplate(commonName string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// NewCA makes a CA certificate for signing device certificates
// (subject CN commonName, valid from notBefore to notAfter) and returns
// it and its key as PEM; load them with tls.X509KeyPair to give as the
// issuer of New or Issue, and give the certificate file to the hub
// (hub serve --device-ca, hub.Options.DeviceCAFiles).
func NewCA(commonName string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"iotctl"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, key, err := makeCert(tmpl, nil)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

// makeCert signs tmpl with issuer (itself when nil) over a new key.
func makeCert(tmpl *x509.Certificate, issuer *tls.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	parent, signer := tmpl, any(key)
	if issuer != nil {
		if parent = issuer.Leaf; parent == nil {
			if len(issuer.Certificate) == 0 {
				return nil, nil, errors.New("devicecert: issuer has no certificate")
			}
			if parent, err = x509.ParseCertificate(issuer.Certificate[0]); err != nil {
				return nil, nil, err
			}
		}
		signer = issuer.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// encode returns a certificate and its key (PKCS #8) as PEM.
func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}

// serial is a random 120-bit serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
