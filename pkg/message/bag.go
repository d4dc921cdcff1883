package message

import (
	"slices"
	"strings"
	"time"
)

// Property bag keys of the system properties that Message has fields for,
// decoded. The encoder writes them in this order, "$" as "%24".
const (
	keyMessageID       = "$.mid"
	keyCorrelationID   = "$.cid"
	keyUserID          = "$.uid"
	keyContentType     = "$.ct"
	keyContentEncoding = "$.ce"
	keyTo              = "$.to"
	keyExpiryTime      = "$.exp"
	keyCreationTime    = "$.ctime"
	keyOutputName      = "$.on"
	keyInterfaceID     = "$.ifid"
	keyComponentName   = "$.sub"
	keyAck             = "iothub-ack"
)

// reserved reports whether name is the bag key of a system property that
// has a field in Message.
func reserved(name string) bool {
	switch name {
	case keyMessageID, keyCorrelationID, keyUserID, keyContentType,
		keyContentEncoding, keyTo, keyExpiryTime, keyCreationTime,
		keyOutputName, keyInterfaceID, keyComponentName, keyAck:
		return true
	}
	return false
}

// EncodeBag returns m's properties as an IoT Hub MQTT property bag:
// "name=value" pairs joined by "&", with no leading "?".
//
// The set system properties come first, in the order $.mid, $.cid, $.uid,
// $.ct, $.ce, $.to, $.exp, $.ctime, $.on, $.ifid, $.sub, iothub-ack, then
// the application properties sorted by name, so the output is
// deterministic. Names and values are percent-encoded like Python's
// urllib.parse.quote(s, safe=""): every byte outside A-Z a-z 0-9 - _ . ~
// becomes %XX with upper-case hex, so a space is "%20" (never "+") and
// "$." is written "%24.". Times are written in UTC as RFC 3339 with as
// many fractional digits as needed, e.g. "2021-04-21T11:30:16Z". A null
// application property (see Message) is written as its bare name.
// Application properties with an empty name or the name of a system
// property field are skipped. A nil m gives "".
//
// For example {ContentType: "application/json", ContentEncoding: "utf-8",
// Properties: {"temperatureAlert": "false"}} encodes as
// "%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false".
func EncodeBag(m *Message) string {
	// A bag that fits is built on the stack: one allocation, the string.
	var buf [256]byte
	return string(AppendBag(buf[:0], m))
}

// AppendBag appends EncodeBag(m) to b and returns the extended slice.
func AppendBag(b []byte, m *Message) []byte {
	if m == nil {
		return b
	}
	start := len(b)
	pair := func(escapedKey, value string) {
		if value == "" {
			return
		}
		if len(b) > start {
			b = append(b, '&')
		}
		b = append(b, escapedKey...)
		b = append(b, '=')
		b = appendEscaped(b, value)
	}
	pair("%24.mid", m.MessageID)
	pair("%24.cid", m.CorrelationID)
	pair("%24.uid", m.UserID)
	pair("%24.ct", m.ContentType)
	pair("%24.ce", m.ContentEncoding)
	pair("%24.to", m.To)
	if !m.ExpiryTime.IsZero() {
		pair("%24.exp", formatTime(m.ExpiryTime))
	}
	if !m.CreationTime.IsZero() {
		pair("%24.ctime", formatTime(m.CreationTime))
	}
	pair("%24.on", m.OutputName)
	pair("%24.ifid", m.InterfaceID)
	pair("%24.sub", m.ComponentName)
	pair(keyAck, m.Ack)

	if len(m.Properties) == 0 {
		return b
	}
	names := make([]string, 0, len(m.Properties))
	for name := range m.Properties {
		if name != "" && !reserved(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if len(b) > start {
			b = append(b, '&')
		}
		b = appendEscaped(b, name)
		v := m.Properties[name]
		if v == "" && m.NullProperties[name] {
			continue
		}
		b = append(b, '=')
		b = appendEscaped(b, v)
	}
	return b
}

// DecodeBag decodes an IoT Hub MQTT property bag, the part of a
// telemetry or C2D topic after the last fixed level, into a new Message
// with a nil Body. The bag must not start with "?"; the topic parsers
// strip one.
//
// The rules, chosen to read what every SDK and IoT Hub itself write:
//   - Pairs are separated by "&"; empty pairs ("a=1&&b=2", a trailing
//     "&") are skipped, and an empty bag gives a Message with no
//     properties.
//   - A pair is split at its first "=": "name" alone is a null value,
//     "name=" an empty one, and "name=a=b" has the value "a=b".
//   - Names and values are percent-decoded: "%XX" (either case of hex)
//     is the byte 0xXX, and every other byte, "+" included, stands for
//     itself. IoT Hub "does not do URL decoding on most values", and
//     every SDK writes a space as "%20", so "+" is a literal plus, never
//     a space. A '%' not followed by two hex digits is an error.
//   - System properties are recognised after decoding, so "$.mid" and
//     "%24.mid" are the same key. The keys with Message fields set those
//     fields; a null or empty value leaves the field unset. $.exp and
//     $.ctime must be RFC 3339 times ("2021-04-21T11:30:16Z", with
//     optional fractional seconds; a time without an offset is taken as
//     UTC) and are returned in UTC. Other "$." keys, such as $.diagid,
//     are kept in Properties under their decoded name.
//   - When a name appears more than once the last pair wins, as in
//     PYDEV's dict; a later "name=v" clears an earlier null and a later
//     bare "name" makes the value null.
//
// Properties and NullProperties are nil when the bag has no application
// properties or no null ones. Errors are *PropertyError wrapping
// ErrEscape, ErrEmptyName or ErrTime.
func DecodeBag(bag string) (*Message, error) {
	m := &Message{}
	for bag != "" {
		var pair string
		pair, bag, _ = strings.Cut(bag, "&")
		if pair == "" {
			continue
		}
		rawName, rawValue, hasValue := strings.Cut(pair, "=")
		name, bad, ok := unescape(rawName)
		if !ok {
			return nil, &PropertyError{Pair: pair, Detail: bad, Err: ErrEscape}
		}
		if name == "" {
			return nil, &PropertyError{Pair: pair, Err: ErrEmptyName}
		}
		value, bad, ok := unescape(rawValue)
		if !ok {
			return nil, &PropertyError{Pair: pair, Detail: bad, Err: ErrEscape}
		}
		if err := m.set(name, value, !hasValue); err != nil {
			return nil, &PropertyError{Pair: pair, Detail: value, Err: err}
		}
	}
	return m, nil
}

// set stores one decoded bag pair in m. It returns ErrTime for a
// malformed time.
func (m *Message) set(name, value string, null bool) error {
	switch name {
	case keyMessageID:
		m.MessageID = value
	case keyCorrelationID:
		m.CorrelationID = value
	case keyUserID:
		m.UserID = value
	case keyContentType:
		m.ContentType = value
	case keyContentEncoding:
		m.ContentEncoding = value
	case keyTo:
		m.To = value
	case keyExpiryTime, keyCreationTime:
		var t time.Time
		if value != "" {
			var err error
			if t, err = parseTime(value); err != nil {
				return err
			}
		}
		if name == keyExpiryTime {
			m.ExpiryTime = t
		} else {
			m.CreationTime = t
		}
	case keyOutputName:
		m.OutputName = value
	case keyInterfaceID:
		m.InterfaceID = value
	case keyComponentName:
		m.ComponentName = value
	case keyAck:
		m.Ack = value
	default:
		if m.Properties == nil {
			m.Properties = make(map[string]string)
		}
		m.Properties[name] = value
		if null {
			if m.NullProperties == nil {
				m.NullProperties = make(map[string]bool)
			}
			m.NullProperties[name] = true
		} else if m.NullProperties != nil {
			delete(m.NullProperties, name)
			if len(m.NullProperties) == 0 {
				m.NullProperties = nil
			}
		}
	}
	return nil
}

// formatTime writes t the way the encoder does.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTime reads $.exp and $.ctime values: RFC 3339, or the same without
// an offset (taken as UTC, as .NET's round-trip format writes unspecified
// times). The result is in UTC and in the years 0000 to 9999, so that
// formatTime can write it back.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04:05.999999999", s)
		if err != nil {
			return time.Time{}, ErrTime
		}
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, ErrTime
	}
	return t, nil
}

const upperHex = "0123456789ABCDEF"

// unreserved marks the bytes the bag encoder writes as they are:
// A-Z a-z 0-9 - _ . ~ (RFC 3986 unreserved).
var unreserved = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
		t[c+'a'-'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'], t['~'] = true, true, true, true
	return t
}()

// appendEscaped appends s to b with every byte outside the unreserved
// set written as %XX.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xF])
		}
	}
	return b
}

// unhex returns the value of the hex digit c, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unescape decodes the %XX escapes in s and leaves every other byte,
// '+' included, as it is. When an escape is malformed it returns
// ok == false and the bad escape text ("%", "%4" or "%4G").
func unescape(s string) (out, bad string, ok bool) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, "", true
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", s[i:], false
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", s[i : i+3], false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), "", true
}

// unescapeLenient decodes the well-formed %XX escapes in s and keeps
// everything else, malformed escapes included, as it is, like Python's
// urllib.parse.unquote.
func unescapeLenient(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			if hi, lo := unhex(s[i+1]), unhex(s[i+2]); hi >= 0 && lo >= 0 {
				b = append(b, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		b = append(b, c)
	}
	return string(b)
}
