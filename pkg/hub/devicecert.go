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
	"time"
)

// NewDeviceCertificate makes an X.509 device certificate for testing
// (ECDSA P-256, subject CN commonName, client-authentication use,
// valid from notBefore to notAfter) and returns it and its private key
// (PKCS #8) as PEM. With issuer nil it is self-signed: register its
// thumbprint (see Thumbprints) with selfSigned authentication. Else
// issuer, a CA certificate with its key (see NewDeviceCA), signs it:
// for certificateAuthority authentication, with CN the device id.
func NewDeviceCertificate(commonName string, notBefore, notAfter time.Time, issuer *tls.Certificate) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return makeCert(tmpl, issuer)
}

// NewDeviceCA makes a CA certificate for signing device certificates
// in tests (ECDSA P-256, subject CN commonName, valid from notBefore to
// notAfter) and returns it and its key as PEM; load them with
// tls.X509KeyPair to give as NewDeviceCertificate's issuer, and give
// the certificate file to Options.DeviceCAFiles.
func NewDeviceCA(commonName string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"iotctl"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return makeCert(tmpl, nil)
}

// makeCert signs tmpl with issuer (itself when nil) over a new key.
func makeCert(tmpl *x509.Certificate, issuer *tls.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	parent, signer := tmpl, any(key)
	if issuer != nil {
		if parent = issuer.Leaf; parent == nil {
			if len(issuer.Certificate) == 0 {
				return nil, nil, errors.New("hub: issuer has no certificate")
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
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}
