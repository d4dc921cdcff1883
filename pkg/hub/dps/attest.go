package dps

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/sas"
)

// DeviceKeyName is the skn of a device's registration token: "For the
// Device API, this policy is always registration" (Azure docs,
// articles/iot-dps/how-to-control-access.md). The Python SDK sends no
// skn; both are accepted.
const DeviceKeyName = "registration"

// DeriveKey returns the device key an enrollment group's devices sign
// with: base64(HMAC-SHA256(key = base64decode(groupKey), message =
// registrationID)) (Azure docs, articles/iot-dps/iot-dps-https-sym-key-support.md,
// "Derive a device key"). A group key that is not base64 is an error
// matching ErrBadRequest.
func DeriveKey(groupKey, registrationID string) (string, error) {
	k, err := sas.DecodeKey(groupKey)
	if err != nil {
		return "", errf(ErrBadRequest, "the group key is not base64: copy the enrollment group's primary or secondary key whole")
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// RegistrationResource is the resource a device's registration token
// is signed for: "{idScope}/registrations/{registrationID}".
func RegistrationResource(idScope, registrationID string) string {
	return idScope + "/registrations/" + registrationID
}

// verifyToken checks tok's signature against each key (base64) and its
// expiry. It returns nil, or why not as an *Error matching
// ErrUnauthorized.
func verifyToken(tok *sas.Token, now time.Time, keys ...string) error {
	expired := false
	for _, k := range keys {
		key, err := sas.DecodeKey(k)
		if err != nil {
			continue
		}
		switch err := sas.Verify(tok, key, now); {
		case err == nil:
			return nil
		case errors.Is(err, sas.ErrExpired):
			expired = true
		case errors.Is(err, sas.ErrMalformed):
			return errf(ErrUnauthorized, "the SAS token is malformed: %v", err)
		}
	}
	if expired {
		return errf(ErrUnauthorized, "the SAS token expired at %s; sign a new one", tok.Expiry().Format(time.RFC3339))
	}
	return errf(ErrUnauthorized, "the SAS token's signature does not match the key")
}

// deviceToken parses a device's Authorization header and checks its
// scope and key name; the signature is checked later against the
// enrollment's keys.
func (s *Service) deviceToken(header, registrationID string) (*sas.Token, error) {
	tok, err := sas.Parse(header)
	if err != nil {
		return nil, errf(ErrUnauthorized, "the Authorization header is not a SharedAccessSignature token: %v", err)
	}
	if tok.KeyName != "" && !strings.EqualFold(tok.KeyName, DeviceKeyName) {
		return nil, errf(ErrUnauthorized, "a device's token has skn=%s or none; this one has skn=%q", DeviceKeyName, tok.KeyName)
	}
	if !strings.EqualFold(strings.TrimSuffix(tok.Scope(), "/"), RegistrationResource(s.idScope, registrationID)) {
		return nil, errf(ErrUnauthorized, "the token is signed for %q, not %q", tok.Scope(), RegistrationResource(s.idScope, registrationID))
	}
	return tok, nil
}

// checkClientCert checks a device certificate against an individual
// X.509 enrollment: its thumbprint must be the enrollment's primary or
// secondary certificate's.
func checkClientCert(leaf *x509.Certificate, cs *X509Certificates) bool {
	if cs == nil {
		return false
	}
	s1, s256 := devicecert.Thumbprints(leaf)
	for _, c := range []*X509CertificateWithInfo{cs.Primary, cs.Secondary} {
		if c == nil || c.Info == nil {
			continue
		}
		if strings.EqualFold(c.Info.SHA1Thumbprint, s1) || strings.EqualFold(c.Info.SHA256Thumbprint, s256) {
			return true
		}
	}
	return false
}

// chainsTo reports whether leaf (with the intermediates the client
// sent) chains to the group's primary or secondary signing certificate
// for client authentication at now.
func chainsTo(leaf *x509.Certificate, inter []*x509.Certificate, cs *X509Certificates, now time.Time) bool {
	if cs == nil {
		return false
	}
	ip := x509.NewCertPool()
	for _, c := range inter {
		ip.AddCert(c)
	}
	for _, c := range []*X509CertificateWithInfo{cs.Primary, cs.Secondary} {
		if c == nil || c.Certificate == "" {
			continue
		}
		ca, err := ParseCertificate(c.Certificate)
		if err != nil {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: ip, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			return true
		}
	}
	return false
}
