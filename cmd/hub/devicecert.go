package hub

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
)

// generatedCertValidity is how long --generate-cert certificates last.
const generatedCertValidity = 365 * 24 * time.Hour

// certThumbprint reads a PEM certificate and returns its SHA-256
// thumbprint. A file that cannot be read or holds no certificate is a
// usage error naming it.
func certThumbprint(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", cmdutil.Usagef("--cert %s: %v", path, err)
	}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return "", cmdutil.Usagef("--cert %s holds no PEM certificate", path)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", cmdutil.Usagef("--cert %s: %v", path, err)
		}
		_, sha256Hex := hub.Thumbprints(c)
		return sha256Hex, nil
	}
}

// generatedCert is a self-signed device certificate made by
// --generate-cert, not yet written.
type generatedCert struct {
	certFile, keyFile string
	certPEM, keyPEM   []byte
	thumbprint        string // SHA-256
}

// newGeneratedCert makes a certificate for deviceID (or its module)
// to be written to dir/ID.pem and dir/ID-key.pem (ID is
// DEVICE-MODULE for a module). Existing files are not overwritten.
func newGeneratedCert(dir, deviceID, moduleID string, now time.Time) (*generatedCert, error) {
	cn, base := deviceID, deviceID
	if moduleID != "" {
		cn, base = deviceID+"/"+moduleID, deviceID+"-"+moduleID
	}
	g := &generatedCert{certFile: filepath.Join(dir, base+".pem"), keyFile: filepath.Join(dir, base+"-key.pem")}
	if err := checkNewPair(dir, g.certFile, g.keyFile); err != nil {
		return nil, cmdutil.Usagef("--generate-cert: %v", err)
	}
	var err error
	g.certPEM, g.keyPEM, err = devicecert.New(cn, now.Add(-time.Hour), now.Add(generatedCertValidity), nil)
	if err != nil {
		return nil, fmt.Errorf("generating a certificate: %w", err)
	}
	blk, _ := pem.Decode(g.certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	_, g.thumbprint = hub.Thumbprints(c)
	return g, nil
}

// write writes the certificate (0644) and the key (0600), never
// replacing a file.
func (g *generatedCert) write() error {
	if err := writePair(g.certFile, g.certPEM, g.keyFile, g.keyPEM); err != nil {
		return fmt.Errorf("--generate-cert: %w", err)
	}
	return nil
}

// remove deletes the written files.
func (g *generatedCert) remove() {
	os.Remove(g.certFile)
	os.Remove(g.keyFile)
}

// checkNewPair checks that dir is a directory in which none of files
// exists yet, before a certificate and its key are made for it.
func checkNewPair(dir string, files ...string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// A directory that does not exist yet is made, as mkdir -p would.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("making directory %s: %w", dir, err)
		}
		return nil
	}
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s exists; remove it or choose another directory", f)
		}
	}
	return nil
}

// writePair writes a certificate (0644) and its key (0600) to new
// files, never replacing one; on failure nothing is left behind.
func writePair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) error {
	if err := writeNew(certFile, certPEM, 0o644); err != nil {
		return err
	}
	if err := writeNew(keyFile, keyPEM, 0o600); err != nil {
		os.Remove(certFile)
		return err
	}
	return nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
