package dps

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// MaxIDLength is the longest registration or enrollment group id.
const MaxIDLength = 128

// ValidateID checks a registration id or enrollment group id: 1 to 128
// characters, letters, digits and - . _ :, the last one a letter, a
// digit or - (Azure docs, articles/iot-dps/iot-dps-https-sym-key-support.md).
// what names the id in the message ("registration id").
func ValidateID(what, id string) error {
	if id == "" {
		return errf(ErrBadRequest, "the %s is empty", what)
	}
	if len(id) > MaxIDLength {
		return errf(ErrBadRequest, "the %s has %d characters; at most %d are allowed", what, len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && !strings.ContainsRune("-._:", rune(c)) {
			return errf(ErrBadRequest, "the %s %q has the character %q; only letters, digits and - . _ : are allowed", what, id, c)
		}
		if i == len(id)-1 && !alnum && c != '-' {
			return errf(ErrBadRequest, "the %s %q ends with %q; it must end with a letter, a digit or -", what, id, c)
		}
	}
	return nil
}

// checkKeys fills empty symmetric keys and checks given ones.
func checkKeys(k *SymmetricKeyAttestation) error {
	if k.PrimaryKey == "" {
		k.PrimaryKey = newKey64()
	}
	if k.SecondaryKey == "" {
		k.SecondaryKey = newKey64()
	}
	for _, key := range []string{k.PrimaryKey, k.SecondaryKey} {
		b, err := base64.StdEncoding.DecodeString(key)
		if err != nil || len(b) < 16 || len(b) > 64 {
			return errf(ErrBadRequest, "a symmetric key must be base64 of 16 to 64 bytes; leave it empty to have one generated")
		}
	}
	return nil
}

// newKey64 returns a random 64-byte key in base64, as DPS generates
// enrollment keys (Azure docs, articles/iot-dps/iot-dps-https-sym-key-support.md).
func newKey64() string {
	var b [64]byte
	mustRandom(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// ParseCertificate reads a certificate as the service API carries it:
// PEM, or base64 of the DER encoding.
func ParseCertificate(s string) (*x509.Certificate, error) {
	data := []byte(strings.TrimSpace(s))
	if blk, _ := pem.Decode(data); blk != nil {
		data = blk.Bytes
	} else if der, err := base64.StdEncoding.DecodeString(string(data)); err == nil {
		data = der
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, errf(ErrBadRequest, "the certificate is neither PEM nor base64 DER of an X.509 certificate: %v", err)
	}
	return c, nil
}

// certInfo describes a certificate as DPS reports it.
func certInfo(c *x509.Certificate) *X509CertificateInfo {
	s1, s256 := devicecert.Thumbprints(c)
	return &X509CertificateInfo{
		SubjectName:      c.Subject.String(),
		SHA1Thumbprint:   s1,
		SHA256Thumbprint: s256,
		IssuerName:       c.Issuer.String(),
		NotBeforeUTC:     c.NotBefore.UTC().Format("2006-01-02T15:04:05Z"),
		NotAfterUTC:      c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"),
		SerialNumber:     strings.ToUpper(c.SerialNumber.Text(16)),
		Version:          c.Version,
	}
}

// checkCerts parses and describes a primary (required) and secondary
// certificate.
func checkCerts(what string, cs *X509Certificates) error {
	if cs == nil || cs.Primary == nil || cs.Primary.Certificate == "" {
		return errf(ErrBadRequest, "an X.509 %s needs a primary certificate", what)
	}
	for _, c := range []*X509CertificateWithInfo{cs.Primary, cs.Secondary} {
		if c == nil || c.Certificate == "" {
			continue
		}
		cert, err := ParseCertificate(c.Certificate)
		if err != nil {
			return err
		}
		c.Info = certInfo(cert)
	}
	return nil
}

// checkAttestation validates an enrollment's attestation; group says
// whether it is an enrollment group's.
func checkAttestation(a *Attestation, group bool) error {
	if a == nil {
		return errf(ErrBadRequest, "the enrollment has no attestation; give one of type symmetricKey or x509")
	}
	switch a.Type {
	case AttestationSymmetricKey:
		if a.SymmetricKey == nil {
			a.SymmetricKey = &SymmetricKeyAttestation{}
		}
		a.TPM, a.X509 = nil, nil
		return checkKeys(a.SymmetricKey)
	case AttestationX509:
		if a.X509 == nil {
			return errf(ErrBadRequest, "an x509 attestation needs its x509 certificates")
		}
		a.TPM, a.SymmetricKey = nil, nil
		if group {
			if a.X509.CAReferences != nil && a.X509.SigningCertificates == nil {
				return errf(ErrBadRequest, "caReferences name CA certificates uploaded to DPS, and the local DPS has none; give the CA certificate itself in x509.signingCertificates")
			}
			return checkCerts("enrollment group (signingCertificates)", a.X509.SigningCertificates)
		}
		return checkCerts("individual enrollment (clientCertificates)", a.X509.ClientCertificates)
	case AttestationTPM:
		return errf(ErrBadRequest, "TPM attestation is not supported by the local DPS; use symmetricKey or x509")
	case "":
		return errf(ErrBadRequest, "the attestation has no type; give symmetricKey or x509")
	default:
		return errf(ErrBadRequest, "unknown attestation type %q; give symmetricKey or x509", a.Type)
	}
}

// checkCommon validates and defaults the fields individual enrollments
// and groups share.
func checkCommon(status *string, alloc string, rp **ReprovisionPolicy, twin *InitialTwin) error {
	switch strings.ToLower(*status) {
	case "", StatusEnabled:
		*status = StatusEnabled
	case StatusDisabled:
		*status = StatusDisabled
	default:
		return errf(ErrBadRequest, "provisioningStatus %q is not enabled or disabled", *status)
	}
	if alloc != "" && !slices.Contains(allocationPolicies, alloc) {
		return errf(ErrBadRequest, "unknown allocation policy %q; use one of %s", alloc, strings.Join(allocationPolicies, ", "))
	}
	if *rp == nil {
		*rp = &ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	}
	if twin != nil {
		if err := checkObject("initialTwin.tags", twin.Tags); err != nil {
			return err
		}
		if twin.Properties != nil {
			if err := checkObject("initialTwin.properties.desired", twin.Properties.Desired); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkObject accepts an absent or null value or a JSON object.
func checkObject(what string, raw json.RawMessage) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(t, &m); err != nil {
		return errf(ErrBadRequest, "%s must be a JSON object", what)
	}
	return nil
}

// checkDeviceID checks the device id an enrollment names.
func checkDeviceID(id string) error {
	if id != "" && !registry.ValidID(id) {
		return errf(ErrBadRequest, "deviceId %q is not a valid IoT Hub device id", id)
	}
	return nil
}

// errIDMismatch is the error for a body whose id is not the path's.
func errIDMismatch(what, body, path string) error {
	return errf(ErrBadRequest, "the %s in the body (%q) is not the one in the path (%q)", what, body, path)
}
