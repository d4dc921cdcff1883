package sas

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Verify checks t against the decoded key at time now, the way IoT Hub
// does: the HMAC-SHA256 is computed over the literal sr and se text of
// the token (no re-encoding, so raw "/", "%2F" and "%2f" all verify),
// compared in constant time with the decoded sig, and then the expiry
// is checked. It returns nil, or an error wrapping ErrSignature,
// ErrExpired or ErrMalformed. Verify does not check the scope: see
// Covers.
func Verify(t *Token, key []byte, now time.Time) error {
	if t == nil {
		return fmt.Errorf("%w: nil token", ErrMalformed)
	}
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrKey)
	}
	got, err := decodeSignature(t.Signature)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, mac(key, StringToSign(t.Resource, t.ExpiryText))) {
		return ErrSignature
	}
	if t.expiry <= 0 {
		return fmt.Errorf("%w: se is not a positive number", ErrMalformed)
	}
	if t.Expired(now) {
		return fmt.Errorf("%w at %s", ErrExpired, t.Expiry().Format(time.RFC3339))
	}
	return nil
}

// decodeSignature URL-decodes sig (keeping a literal '+', which some
// signers leave unencoded) and decodes the base64 inside.
func decodeSignature(sig string) ([]byte, error) {
	s, err := url.PathUnescape(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: sig is not valid percent-encoding", ErrMalformed)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: sig is not base64", ErrMalformed)
	}
	return b, nil
}

// Covers reports whether a token whose decoded scope is scope (see
// Token.Scope) grants access to resource. Both are URIs of the form
// "host[:port][/path...]". The host is compared case-insensitively,
// and when only one side names a port the ports are not compared.
// The path is compared by whole segments, case-insensitively, as IoT
// Hub does: "h/devices/a" covers "h/devices/a/modules/m" but not
// "h/devices/ab". A scheme such as "amqps://" or "sb://" and trailing
// slashes are ignored on both sides.
func Covers(scope, resource string) bool {
	sh, sp := splitResource(scope)
	rh, rp := splitResource(resource)
	if !HostsMatch(sh, rh) {
		return false
	}
	if len(sp) > len(rp) {
		return false
	}
	for i := range sp {
		if !strings.EqualFold(sp[i], rp[i]) {
			return false
		}
	}
	return true
}

// HostsMatch compares two host[:port] names case-insensitively; when
// only one of them has a port, the ports are not compared.
func HostsMatch(a, b string) bool {
	ah, ap := splitHostPort(a)
	bh, bp := splitHostPort(b)
	if !strings.EqualFold(ah, bh) {
		return false
	}
	return ap == "" || bp == "" || ap == bp
}

func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.Trim(s, "[]"), ""
}

func splitResource(s string) (host string, path []string) {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	host, rest, _ := strings.Cut(s, "/")
	for _, seg := range strings.Split(rest, "/") {
		if seg != "" {
			path = append(path, seg)
		}
	}
	return host, path
}
