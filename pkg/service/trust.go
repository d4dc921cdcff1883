package service

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// trust is the set of certificate authorities a Client accepts: extra
// CAs (the CA file, Options.RootCAs) and, unless RootCAs replaced it,
// the system pool.
//
// Loading the system pool parses every certificate in it (about 8 ms
// on a typical Linux, more than a whole method call to the local hub
// takes), so a connection to one known host checks the extra CAs first
// and loads the system pool only when the server's certificate does not
// chain to them.
type trust struct {
	extra  *x509.CertPool // nil: no extra CAs
	pem    []byte         // the CA file, to add to the system pool
	system bool           // the system pool is trusted too
}

// newTrust reads caFile (PEM; "" for none). roots, when not nil,
// replaces the system pool.
func newTrust(caFile string, roots *x509.CertPool) (*trust, error) {
	t := &trust{extra: roots, system: roots == nil}
	if caFile == "" {
		return t, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("service: CA file: %w", err)
	}
	if t.extra == nil {
		t.extra = x509.NewCertPool()
	} else {
		t.extra = t.extra.Clone()
	}
	if !t.extra.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("service: CA file %s holds no PEM certificate", caFile)
	}
	t.pem = pem
	return t, nil
}

// generic returns a configuration for connections to any host: the
// caller sets ServerName. It loads the system pool at once when there
// are extra CAs too.
func (t *trust) generic() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case !t.system:
		c.RootCAs = t.extra
	case t.extra != nil:
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(t.pem)
		c.RootCAs = pool
	}
	// Neither: RootCAs nil is the system pool, loaded on first use.
	return c
}

// forHost returns a configuration for connections to host (a name or
// an IP address, without port) and no other: it verifies the server's
// certificate for host as crypto/tls does, against the extra CAs
// first and the system pool only when those do not do.
func (t *trust) forHost(host string) *tls.Config {
	c := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if !t.system || t.extra == nil {
		c.RootCAs = t.extra // nil: the system pool, loaded on first use
		return c
	}
	// crypto/tls verifies against one pool; VerifyConnection makes the
	// same checks against two, in order.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error { return t.verify(host, cs) }
	return c
}

func (t *trust) verify(host string, cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("service: tls: the server sent no certificate")
	}
	// SNI carries host names (not IP addresses): a configuration made
	// for one host must not verify another.
	if cs.ServerName != "" && !strings.EqualFold(strings.TrimSuffix(cs.ServerName, "."), strings.TrimSuffix(host, ".")) {
		return fmt.Errorf("service: tls: configuration for %s used for %s", host, cs.ServerName)
	}
	opts := x509.VerifyOptions{DNSName: host, Roots: t.extra, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(opts)
	var unknown x509.UnknownAuthorityError
	if err != nil && errors.As(err, &unknown) {
		opts.Roots = nil // the system pool
		_, err = certs[0].Verify(opts)
	}
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	return nil
}

// TLSConfig returns a TLS configuration for connections to any host
// (set ServerName) that trusts roots, or the system pool when roots is
// nil, plus the certificates in caFile (PEM; "" for none).
func TLSConfig(caFile string, roots *x509.CertPool) (*tls.Config, error) {
	t, err := newTrust(caFile, roots)
	if err != nil {
		return nil, err
	}
	return t.generic(), nil
}

// lazyTLS is the generic configuration of a Client (its AMQP side),
// made on first use, as it may load the system pool.
type lazyTLS struct {
	trust *trust
	once  sync.Once
	cfg   *tls.Config
}

// Clone returns a copy of the configuration for the caller to change.
func (l *lazyTLS) Clone() *tls.Config {
	l.once.Do(func() { l.cfg = l.trust.generic() })
	return l.cfg.Clone()
}
