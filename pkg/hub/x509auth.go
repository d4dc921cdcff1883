package hub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// tlsState finds the TLS connection under c (a *replay.Conn for MQTT on
// the TLS port, a *wsconn.Conn over one for MQTT over WebSocket,
// perhaps in a *replay.Conn of its own) and returns its state.
func tlsState(c net.Conn) (tls.ConnectionState, bool) {
	for range 5 {
		switch v := c.(type) {
		case *tls.Conn:
			return v.ConnectionState(), true
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return tls.ConnectionState{}, false
		}
	}
	return tls.ConnectionState{}, false
}

// x509Error is why an X.509 device was refused; it is logged, never
// sent (the device gets CONNACK 5).
type x509Error struct{ reason string }

func (e *x509Error) Error() string { return "x509: unauthorized: " + e.reason }

func refuseX509(format string, args ...any) error {
	return &x509Error{reason: fmt.Sprintf(format, args...)}
}

// authX509 authenticates a device or module that connected without a
// password by the client certificate of its TLS connection c. The
// certificate must be valid now, the identity must exist with its
// device enabled, and either its authentication is selfSigned and the
// certificate's SHA-1 or SHA-256 thumbprint is its primary or secondary
// thumbprint, or it is certificateAuthority and the certificate chains
// to one of the hub's device CAs with the subject CN equal to the
// client id.
func (h *Hub) authX509(c net.Conn, deviceID, moduleID string) error {
	st, ok := tlsState(c)
	if !ok || len(st.PeerCertificates) == 0 {
		return refuseX509("no password and no client certificate")
	}
	leaf := st.PeerCertificates[0]
	now := h.now()
	switch {
	case now.After(leaf.NotAfter):
		return refuseX509("client certificate %q expired at %s", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return refuseX509("client certificate %q is not valid before %s", leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	d, err := h.reg.Device(deviceID)
	if err != nil {
		return refuseX509("unknown device")
	}
	a := d.Authentication
	if moduleID != "" {
		m, err := h.reg.Module(deviceID, moduleID)
		if err != nil {
			return refuseX509("unknown module")
		}
		a = m.Authentication
	}
	if a == nil {
		return refuseX509("identity has no authentication")
	}
	switch a.Type {
	case iothub.AuthSelfSigned:
		if !thumbprintMatches(leaf, a.X509Thumbprint) {
			sha1Hex, sha256Hex := Thumbprints(leaf)
			return refuseX509("client certificate thumbprint (SHA-1 %s, SHA-256 %s) is not the identity's", sha1Hex, sha256Hex)
		}
	case iothub.AuthCertificateAuthority:
		if h.deviceCAs == nil {
			return refuseX509("identity uses certificateAuthority but the hub has no device CA (hub serve --device-ca)")
		}
		inter := x509.NewCertPool()
		for _, c := range st.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: h.deviceCAs, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return refuseX509("client certificate does not chain to a device CA: %v", err)
		}
		if want := (core.Identity{DeviceID: deviceID, ModuleID: moduleID}).Key(); leaf.Subject.CommonName != want {
			return refuseX509("client certificate CN %q is not %q", leaf.Subject.CommonName, want)
		}
	default:
		return refuseX509("identity authenticates with %s: it needs a SAS token as password", a.Type)
	}
	if !d.Enabled() {
		return refuseX509("device disabled")
	}
	return nil
}

// thumbprintMatches compares cert's SHA-1 and SHA-256 thumbprints with
// t's primary and secondary ones, ignoring case.
func thumbprintMatches(cert *x509.Certificate, t *iothub.X509Thumbprint) bool {
	if t == nil {
		return false
	}
	sha1Hex, sha256Hex := Thumbprints(cert)
	for _, p := range []*string{t.PrimaryThumbprint, t.SecondaryThumbprint} {
		if p == nil || *p == "" {
			continue
		}
		if strings.EqualFold(*p, sha1Hex) || strings.EqualFold(*p, sha256Hex) {
			return true
		}
	}
	return false
}

// Thumbprints returns the SHA-1 and SHA-256 thumbprints of cert (of its
// DER encoding) in upper-case hex, as IoT Hub's registry stores them.
func Thumbprints(cert *x509.Certificate) (sha1Hex, sha256Hex string) {
	return devicecert.Thumbprints(cert)
}

// DeviceCAError is a device CA file (Options.DeviceCAFiles) the hub
// cannot use: Start returns it.
type DeviceCAError struct {
	// Path is the file as given.
	Path string
	// Reason is what is wrong with it.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *DeviceCAError) Error() string { return "hub: device CA file " + e.Path + ": " + e.Reason }

// Unwrap returns Err.
func (e *DeviceCAError) Unwrap() error { return e.Err }

// loadDeviceCAs reads the device CA files into one pool (nil for none).
func loadDeviceCAs(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			reason := err.Error()
			var pe *os.PathError
			if errors.As(err, &pe) {
				reason = pe.Err.Error()
			}
			return nil, &DeviceCAError{Path: f, Reason: reason, Err: err}
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, &DeviceCAError{Path: f, Reason: "holds no PEM certificate"}
		}
	}
	return pool, nil
}
