package message

import (
	"errors"
	"fmt"
	"strings"
)

// Conditions reported by DecodeBag and the topic parsers. Test for them
// with errors.Is; the errors returned are *PropertyError or *TopicError,
// which say where the problem is.
var (
	// ErrEscape means a '%' in a property bag is not followed by two hex
	// digits.
	ErrEscape = errors.New("message: malformed percent escape")
	// ErrEmptyName means a property bag has a pair with an empty name,
	// such as "=x".
	ErrEmptyName = errors.New("message: empty property name")
	// ErrTime means $.exp or $.ctime is not an RFC 3339 (ISO 8601) time
	// in the years 0000 to 9999.
	ErrTime = errors.New("message: malformed time")
	// ErrUnknownTopic means a topic is not one of the IoT Hub topics this
	// package knows (or, for ParseDeviceTopic, not one a device may
	// publish to).
	ErrUnknownTopic = errors.New("message: unknown topic")
	// ErrMalformedTopic means a topic has the shape of a known IoT Hub
	// topic but a part of it is wrong: an empty device ID, a status that
	// is not an integer, a missing $rid, a property bag that does not
	// decode, and so on.
	ErrMalformedTopic = errors.New("message: malformed topic")
)

// PropertyError is a property bag pair that could not be decoded.
type PropertyError struct {
	// Pair is the offending "name=value" pair as it appeared in the bag.
	Pair string
	// Detail is the offending part of the pair, such as the bad escape
	// "%G1" or the time text; it may be empty.
	Detail string
	// Err is ErrEscape, ErrEmptyName or ErrTime.
	Err error
}

// Error returns e.g. `message: malformed percent escape "%G1" in property "a%G1=b"`.
func (e *PropertyError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v in property %s", e.Err, quote(e.Pair))
	}
	return fmt.Sprintf("%v %s in property %s", e.Err, quote(e.Detail), quote(e.Pair))
}

// Unwrap returns Err.
func (e *PropertyError) Unwrap() error { return e.Err }

// TopicError is a topic that could not be parsed.
type TopicError struct {
	// Topic is the topic as given.
	Topic string
	// Err is ErrUnknownTopic or ErrMalformedTopic.
	Err error
	// Reason says what is wrong, e.g. `status "abc" is not an integer`;
	// it may be empty.
	Reason string
	// Cause is the underlying error, such as the *PropertyError of a bag
	// that does not decode, or nil.
	Cause error
}

// Error returns e.g. `message: malformed topic "$iothub/methods/res/x/?$rid=1": status "x" is not an integer`.
func (e *TopicError) Error() string {
	s := fmt.Sprintf("%v %s", e.Err, quote(e.Topic))
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns Err and, when set, Cause, so errors.Is and errors.As
// see both.
func (e *TopicError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

func unknownTopic(topic, reason string) error {
	return &TopicError{Topic: topic, Err: ErrUnknownTopic, Reason: reason}
}

func malformedTopic(topic, reason string) error {
	return &TopicError{Topic: topic, Err: ErrMalformedTopic, Reason: reason}
}

// bagTopicError wraps an error from DecodeBag for the topic it came from.
func bagTopicError(topic string, err error) error {
	return &TopicError{
		Topic:  topic,
		Err:    ErrMalformedTopic,
		Reason: strings.TrimPrefix(err.Error(), "message: "),
		Cause:  err,
	}
}

// maxQuoted bounds how much of a topic or pair an error message shows;
// topics can be 64 KiB long.
const maxQuoted = 200

// quote quotes s for an error message, shortening it when it is long.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...", s[:maxQuoted])
}
