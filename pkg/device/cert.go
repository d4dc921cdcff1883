package device

import (
	"crypto/tls"
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
		if strings.Contains(err.Error(), "does not match") {
			reason = "does not match the certificate in " + certFile
		}
		return nil, &FileError{What: "private key", Path: keyFile, Reason: reason, Err: err}
	}
	return &cert, nil
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
