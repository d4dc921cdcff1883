package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTTL is the lifetime of a token when SignOptions gives neither
// a TTL nor an expiry: one hour, as the official SDKs use.
const DefaultTTL = time.Hour

// SignOptions says how Sign makes a token. A nil *SignOptions means
// the defaults.
type SignOptions struct {
	// KeyName is the shared access policy name written as skn.
	// Default: "" (no skn; a device or module key).
	KeyName string
	// TTL is how long the token is valid from Now. Default: DefaultTTL.
	// Ignored when Expiry is set.
	TTL time.Duration
	// Expiry is the absolute expiry time; it wins over TTL.
	// Default: zero (use TTL).
	Expiry time.Time
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// DecodeKey decodes a shared access key from standard, padded base64,
// as every IoT Hub connection string carries it. The error wraps ErrKey
// and never contains the key.
func DecodeKey(key string) ([]byte, error) {
	// The standard decoder skips '\r' and '\n'; a key never has them.
	if strings.ContainsAny(key, "\r\n") {
		return nil, ErrKey
	}
	b, err := base64.StdEncoding.Strict().DecodeString(key)
	if err != nil {
		return nil, ErrKey
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrKey)
	}
	return b, nil
}

// Sign makes a token for resource (an unencoded URI such as
// "myhub.azure-devices.net/devices/dev1"; see DeviceResource and
// ModuleResource) with the decoded key. sr is the resource encoded
// with EncodeResource, sig the URL-encoded base64 HMAC-SHA256 of
// sr + "\n" + se. An empty resource or key, or an expiry before
// 1970-01-01T00:00:01Z, is an error wrapping ErrMalformed or ErrKey.
func Sign(resource string, key []byte, opts *SignOptions) (*Token, error) {
	if opts == nil {
		opts = &SignOptions{}
	}
	if resource == "" {
		return nil, fmt.Errorf("%w: empty resource", ErrMalformed)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrKey)
	}
	expiry := opts.Expiry
	if expiry.IsZero() {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		ttl := opts.TTL
		if ttl <= 0 {
			ttl = DefaultTTL
		}
		expiry = now().Add(ttl)
	}
	se := expiry.Unix()
	if se <= 0 {
		return nil, fmt.Errorf("%w: expiry %s is not after the Unix epoch", ErrMalformed, expiry.UTC().Format(time.RFC3339))
	}
	t := &Token{
		Resource:   EncodeResource(resource),
		ExpiryText: strconv.FormatInt(se, 10),
		KeyName:    opts.KeyName,
		expiry:     se,
	}
	t.Signature = EncodeResource(Signature(key, t.Resource, t.ExpiryText))
	return t, nil
}

// Signature returns the standard base64 HMAC-SHA256 of
// sr + "\n" + se under key, before URL encoding.
func Signature(key []byte, sr, se string) string {
	return Sum(key, StringToSign(sr, se))
}

// StringToSign is the text a SAS signature covers: sr + "\n" + se.
func StringToSign(sr, se string) string { return sr + "\n" + se }

// Sum returns the standard base64 HMAC-SHA256 of data under key.
func Sum(key []byte, data string) string {
	return base64.StdEncoding.EncodeToString(mac(key, data))
}

func mac(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// EncodeResource percent-encodes s the way the Python and Node SDKs do:
// every byte outside A-Z a-z 0-9 - _ . ~ becomes %XX with upper-case
// hex, so "/" is "%2F" and a space is "%20".
func EncodeResource(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// DeviceResource is the resource URI a device's own key signs:
// "{host}/devices/{deviceID}".
func DeviceResource(host, deviceID string) string {
	return host + "/devices/" + deviceID
}

// ModuleResource is the resource URI a module's own key signs:
// "{host}/devices/{deviceID}/modules/{moduleID}".
func ModuleResource(host, deviceID, moduleID string) string {
	return DeviceResource(host, deviceID) + "/modules/" + moduleID
}
