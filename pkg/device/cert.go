package device

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/sas"
)

// FileError is a certificate, key or CA file the client cannot use:
// unreadable, without the PEM block it should hold, or a key that does
// not match its certificate. The message names the file and the reason
// and never contains key material.
type FileError struct {
	// What is "client certificate", "private key" or "CA".
	What string
	// Path is the file's path as given.
	Path string
	// Reason says what is wrong ("no such file or directory", "holds
	// no PEM certificate", "does not match the certificate in c.pem").
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *FileError) Error() string {
	return "device: " + e.What + " file " + e.Path + ": " + e.Reason
}

// Unwrap returns the underlying error (nil when there is none).
func (e *FileError) Unwrap() error { return e.Err }

// fileError makes a *FileError of a read error, keeping just the
// operating system's reason (the path is already in the message).
func fileError(what, path string, err error) *FileError {
	reason := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	return &FileError{What: what, Path: path, Reason: reason, Err: err}
}

// LoadKeyPair reads an X.509 client certificate and its private key
// from PEM files and checks that they match. keyFile "" means the key
// is in certFile too. The certificate's Leaf is set. Errors are
// *FileError values naming the file at fault. An expired certificate
// is not an error here (the hub refuses it; see ConnectError).
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	if keyFile == "" {
		keyFile = certFile
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fileError("client certificate", certFile, err)
	}
	keyPEM := certPEM
	if keyFile != certFile {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return nil, fileError("private key", keyFile, err)
		}
	}
	if !hasBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return nil, &FileError{What: "client certificate", Path: certFile, Reason: "holds no PEM certificate"}
	}
	if !hasBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return nil, &FileError{What: "private key", Path: keyFile, Reason: "holds no PEM private key"}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		reason := "cannot be used with the certificate in " + certFile + ": " + err.Error()
		if keyMismatch(certPEM, keyPEM) {
			reason = "does not match the certificate in " + certFile
		}
		return nil, &FileError{What: "private key", Path: keyFile, Reason: reason, Err: err}
	}
	return &cert, nil
}

// keyMismatch reports whether the first certificate of certPEM and the
// first private key of keyPEM both parse and the key is not the
// certificate's: a fact found by comparing the keys, not by reading
// crypto/tls's error message.
func keyMismatch(certPEM, keyPEM []byte) bool {
	var cert *x509.Certificate
	var priv crypto.PrivateKey
	for rest := certPEM; cert == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return false
			}
			cert = c
		}
	}
	for rest := keyPEM; priv == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			k, err := parsePrivateKey(b.Bytes)
			if err != nil {
				return false
			}
			priv = k
		}
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return false
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && !pub.Equal(cert.PublicKey)
}

// parsePrivateKey parses a DER private key in PKCS #8, PKCS #1 (RSA) or
// SEC 1 (EC) form, as crypto/tls accepts them.
func parsePrivateKey(der []byte) (crypto.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return x509.ParseECPrivateKey(der)
}

// hasBlock reports whether data holds a PEM block whose type passes ok.
func hasBlock(data []byte, ok func(string) bool) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if ok(b.Type) {
			return true
		}
	}
}

// certProblem says why the client's credentials are not valid at now:
// a fixed SAS token that has expired, or a client certificate that has
// ("expired at ..."); "" when they are.
func (c *config) certProblem(now time.Time) string {
	if c.key == nil && c.token != "" {
		if tok, err := sas.Parse(c.token); err == nil && !now.Before(tok.Expiry()) {
			return "the SAS token of the connection string expired at " + tok.Expiry().Format(time.RFC3339) +
				" (" + now.Sub(tok.Expiry()).Round(time.Second).String() + " ago)"
		}
	}
	if c.cert == nil || c.cert.Leaf == nil {
		return ""
	}
	name := "the client certificate"
	if c.certFile != "" {
		name += " " + c.certFile
	}
	switch l := c.cert.Leaf; {
	case now.After(l.NotAfter):
		return name + " expired at " + l.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(l.NotBefore):
		return name + " is not valid before " + l.NotBefore.UTC().Format(time.RFC3339)
	}
	return ""
}
