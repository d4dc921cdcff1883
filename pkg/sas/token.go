package sas

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Prefix is the literal word every IoT Hub SAS token starts with.
const Prefix = "SharedAccessSignature"

// Errors returned by Parse and Verify. Use errors.Is to test for them.
var (
	// ErrMalformed means the text is not a SAS token: wrong prefix, a
	// missing or duplicated field, or an expiry that is not a number.
	ErrMalformed = errors.New("sas: malformed token")
	// ErrExpired means the token's expiry (se) has passed.
	ErrExpired = errors.New("sas: token expired")
	// ErrSignature means the signature does not match the key.
	ErrSignature = errors.New("sas: signature mismatch")
	// ErrScope means the token's resource (sr) does not cover the
	// resource being accessed.
	ErrScope = errors.New("sas: token does not cover the resource")
	// ErrKey means a key is not valid standard base64.
	ErrKey = errors.New("sas: key is not valid base64")
)

// Token is a parsed or freshly signed SAS token. It keeps the literal
// text of sr, sig and se as they appear on the wire, because the
// signature is computed over that text and IoT Hub clients disagree on
// how to percent-encode it: azure-iot-sdk-python
// azure-iot-device/azure/iot/device/common/auth/sastoken.py writes "/" as
// %2F, azure-iot-sdk-node device/core/src/shared_access_signature.ts also
// escapes !'()* in lowercase hex (common/core/src/authorization.ts), and
// the C SDK's azure-c-shared-utility src/sastoken.c writes sr as given,
// with a raw "/".
//
// String and LogValue redact the signature; Encode returns the whole
// token. The zero Token is not valid.
type Token struct {
	// Resource is the sr field exactly as it appears in the token
	// (percent-encoded or raw, as the signer wrote it).
	Resource string
	// Signature is the sig field exactly as it appears in the token
	// (normally URL-encoded base64).
	Signature string
	// ExpiryText is the se field exactly as it appears in the token.
	ExpiryText string
	// KeyName is the skn field (the shared access policy), or "" for a
	// token signed with a device's or module's own key. An empty skn
	// is read as no policy.
	KeyName string

	expiry int64
	// keyNameText is skn as it appeared in a parsed token.
	keyNameText string
	// order keeps the field order of a parsed token so that Encode
	// reproduces it; nil means sr, sig, se, skn.
	order []string
}

// Expiry is the time the token stops being valid (se).
func (t *Token) Expiry() time.Time { return time.Unix(t.expiry, 0).UTC() }

// ExpiryUnix is se as seconds since the Unix epoch.
func (t *Token) ExpiryUnix() int64 { return t.expiry }

// Expired reports whether the token has expired at now: IoT Hub
// treats a token as invalid once now is past se.
func (t *Token) Expired(now time.Time) bool { return now.Unix() > t.expiry }

// Scope returns the resource URI the token covers, percent-decoded
// (for example "myhub.azure-devices.net/devices/dev1"). When sr is not
// valid percent-encoding it is returned as is.
func (t *Token) Scope() string {
	if s, err := url.PathUnescape(t.Resource); err == nil {
		return s
	}
	return t.Resource
}

// Encode returns the whole token text, signature included, in the
// field order it was parsed with (sr, sig, se, skn for a new token).
func (t *Token) Encode() string {
	return t.encode(t.Signature)
}

// String returns the token with its signature redacted, safe for logs
// and error messages. Use Encode for the real token.
func (t *Token) String() string {
	return t.encode("REDACTED")
}

// LogValue implements slog.LogValuer with the signature redacted.
func (t *Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sr", t.Resource),
		slog.String("se", t.ExpiryText),
		slog.String("skn", t.KeyName),
	)
}

func (t *Token) encode(sig string) string {
	order := t.order
	if order == nil {
		order = []string{"sr", "sig", "se", "skn"}
	}
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteByte(' ')
	first := true
	for _, k := range order {
		var v string
		switch k {
		case "sr":
			v = t.Resource
		case "sig":
			v = sig
		case "se":
			v = t.ExpiryText
		case "skn":
			if t.KeyName == "" {
				continue
			}
			v = t.keyNameText
			if v == "" {
				v = EncodeResource(t.KeyName)
			}
		}
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// Parse reads a SAS token tolerantly, as IoT Hub does: the fields may
// come in any order, sr may be raw or percent-encoded in any case, an
// empty skn means no policy, and surrounding white space is ignored.
// sr, sig and se are required and may each appear once; se must be a
// positive decimal number. Unknown fields are ignored. Errors wrap
// ErrMalformed and name the problem; they never contain the signature.
func Parse(s string) (*Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", ErrMalformed, Prefix)
	}
	if rest == "" {
		return nil, fmt.Errorf("%w: no fields", ErrMalformed)
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return nil, fmt.Errorf("%w: expected a space after %q", ErrMalformed, Prefix)
	}
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" {
		return nil, fmt.Errorf("%w: no fields", ErrMalformed)
	}
	t := &Token{}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, "&") {
		if part == "" {
			continue
		}
		k, v, found := strings.Cut(part, "=")
		if !found {
			return nil, fmt.Errorf("%w: field %q has no '='", ErrMalformed, k)
		}
		switch k {
		case "sr", "sig", "se", "skn":
		default:
			continue
		}
		if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
			return nil, fmt.Errorf("%w: field %s contains white space", ErrMalformed, k)
		}
		if seen[k] {
			return nil, fmt.Errorf("%w: field %s appears twice", ErrMalformed, k)
		}
		seen[k] = true
		t.order = append(t.order, k)
		switch k {
		case "sr":
			t.Resource = v
		case "sig":
			t.Signature = v
		case "se":
			t.ExpiryText = v
		case "skn":
			name, err := url.QueryUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("%w: skn is not valid percent-encoding", ErrMalformed)
			}
			t.KeyName = name
			t.keyNameText = v
		}
	}
	for _, k := range []string{"sr", "sig", "se"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w: missing field %s", ErrMalformed, k)
		}
	}
	if t.Resource == "" {
		return nil, fmt.Errorf("%w: empty sr", ErrMalformed)
	}
	if t.Signature == "" {
		return nil, fmt.Errorf("%w: empty sig", ErrMalformed)
	}
	se, err := strconv.ParseInt(t.ExpiryText, 10, 64)
	if err != nil || se <= 0 || t.ExpiryText[0] == '+' {
		return nil, fmt.Errorf("%w: se %q is not a positive decimal number", ErrMalformed, t.ExpiryText)
	}
	t.expiry = se
	return t, nil
}
