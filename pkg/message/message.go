package message

import "time"

// Size limits IoT Hub enforces, in bytes, as counted by Message.Size
// (telemetry and C2D) or over the JSON payload (methods).
const (
	// MaxTelemetrySize is the largest device-to-cloud message: 256 KiB.
	MaxTelemetrySize = 256 * 1024
	// MaxC2DSize is the largest cloud-to-device message: 64 KiB.
	MaxC2DSize = 64 * 1024
	// MaxMethodPayload is the largest direct-method request or response
	// payload: 128 KiB.
	MaxMethodPayload = 128 * 1024
)

// Values of Message.Ack, the iothub-ack property with which a C2D sender
// asks for delivery feedback. IoT Hub spells them in lower case, but the
// C SDK's tests use "Full", so compare with strings.EqualFold.
const (
	// AckNone asks for no feedback (the default when Ack is empty).
	AckNone = "none"
	// AckPositive asks for feedback when the message is completed.
	AckPositive = "positive"
	// AckNegative asks for feedback when the message expires or is
	// dead-lettered.
	AckNegative = "negative"
	// AckFull asks for both positive and negative feedback.
	AckFull = "full"
)

// Message is an IoT Hub message: a body, the system properties IoT Hub
// knows about and the application properties the sender chose.
//
// An empty string or a zero time means the system property is unset;
// the codec does not write unset properties and reads a system property
// that arrived null ("%24.cid") or empty ("%24.cid=") as unset.
//
// Application properties keep the difference between null and empty:
// a property that arrived as a bare name ("prop") has the value "" in
// Properties and true in NullProperties; one that arrived as "prop=" has
// the value "" in Properties and no entry in NullProperties. So code
// that only looks at Properties sees every name, and code that cares
// about null asks IsNull.
//
// A Message is a plain value with no locking: it is safe for concurrent
// reads, and the functions in this package only read it.
type Message struct {
	// Body is the payload. The codec never sets it: MQTT carries it as
	// the PUBLISH payload, not in the topic.
	Body []byte

	// MessageID is $.mid.
	MessageID string
	// CorrelationID is $.cid.
	CorrelationID string
	// UserID is $.uid.
	UserID string
	// ContentType is $.ct, e.g. "application/json". IoT Hub routing
	// queries on the body need it together with ContentEncoding.
	ContentType string
	// ContentEncoding is $.ce, e.g. "utf-8".
	ContentEncoding string
	// To is $.to. On C2D messages IoT Hub sets it to
	// "/devices/{deviceId}/messages/devicebound" (it has been seen
	// writing "deviceBound" too, so compare it case-insensitively).
	To string
	// OutputName is $.on, the output a module sends on.
	OutputName string
	// InputName is the input a module message arrived on. It is not in
	// the property bag: it is a level of the module input topic
	// devices/{id}/modules/{mid}/inputs/{inputName}/.
	InputName string
	// InterfaceID is $.ifid, the IoT Plug and Play interface.
	InterfaceID string
	// ComponentName is $.sub, the IoT Plug and Play component.
	ComponentName string

	// ExpiryTime is $.exp, the absolute expiry time. Zero means unset.
	ExpiryTime time.Time
	// CreationTime is $.ctime, when the device made the message. Zero
	// means unset.
	CreationTime time.Time

	// Ack is iothub-ack, the feedback a C2D sender asks for: AckNone,
	// AckPositive, AckNegative or AckFull. Empty means unset. The codec
	// keeps the value as it arrived, without changing its case.
	Ack string

	// Properties holds the application properties by name. A nil map is
	// the same as an empty one. Names must not be empty; names of the
	// system properties this type has fields for ($.mid, $.cid, $.uid,
	// $.ct, $.ce, $.to, $.exp, $.ctime, $.on, $.ifid, $.sub and
	// iothub-ack) are not written by the encoder: set the field. System
	// properties the codec has no field for (such as $.diagid) are kept
	// here under their decoded name, "$." prefix included.
	Properties map[string]string

	// NullProperties marks the application properties whose value is
	// null (a bare name in the bag). A name marked here is written bare
	// when its value in Properties is "" and with its value when that is
	// not empty; a name absent from Properties is not written at all.
	// A nil map means no property is null.
	NullProperties map[string]bool
}

// IsNull reports whether the application property name is present and
// null. It is false for a nil Message.
func (m *Message) IsNull(name string) bool {
	if m == nil {
		return false
	}
	v, ok := m.Properties[name]
	return ok && v == "" && m.NullProperties[name]
}

// SetNull sets the application property name to null, allocating the
// maps as needed. m must not be nil.
func (m *Message) SetNull(name string) {
	if m.Properties == nil {
		m.Properties = make(map[string]string)
	}
	if m.NullProperties == nil {
		m.NullProperties = make(map[string]bool)
	}
	m.Properties[name] = ""
	m.NullProperties[name] = true
}

// Size returns the message size as IoT Hub counts it against
// MaxTelemetrySize and MaxC2DSize: the body, plus the values of the
// system properties (times as the codec writes them), plus the names and
// values of the application properties, all in bytes. It is 0 for a nil
// Message.
func (m *Message) Size() int {
	if m == nil {
		return 0
	}
	n := len(m.Body) +
		len(m.MessageID) + len(m.CorrelationID) + len(m.UserID) +
		len(m.ContentType) + len(m.ContentEncoding) + len(m.To) +
		len(m.OutputName) + len(m.InputName) + len(m.InterfaceID) +
		len(m.ComponentName) + len(m.Ack)
	if !m.ExpiryTime.IsZero() {
		n += len(formatTime(m.ExpiryTime))
	}
	if !m.CreationTime.IsZero() {
		n += len(formatTime(m.CreationTime))
	}
	for k, v := range m.Properties {
		n += len(k) + len(v)
	}
	return n
}
