package device

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/iotctl/iotctl/internal/proxy"
)

// Errors for conditions. Use errors.Is: the typed errors below wrap them.
var (
	// ErrUnauthorized means the hub refused the credentials: CONNACK
	// return code 4 (bad user name or password) or 5 (not authorized).
	// A refused connection is never retried.
	ErrUnauthorized = errors.New("device: not authorized")
	// ErrClosed is returned by calls made after Close, and by calls
	// that were waiting when Close was called.
	ErrClosed = errors.New("device: client closed")
	// ErrNotConnected is returned by calls made before the first
	// successful Connect.
	ErrNotConnected = errors.New("device: not connected")
	// ErrTooLarge is returned by SendEvent for a message over
	// message.MaxTelemetrySize.
	ErrTooLarge = errors.New("device: message too large")
	// ErrLockLost is wrapped by the *StatusError of a cloud-to-device
	// settlement whose lock expired or is unknown (HTTPS 412, IoT Hub's
	// DeviceMessageLockLost): receive the message again.
	ErrLockLost = errors.New("device: C2D message lock lost")
	// ErrNotSupported is returned for what the transport cannot do:
	// twin and direct methods over HTTPS.
	ErrNotSupported = errors.New("device: not supported by this transport")
	// ErrNoCertificate is returned by New for an x509=true connection
	// string given without a client certificate.
	ErrNoCertificate = errors.New("device: the connection string says x509=true: an X.509 client certificate and its key are needed (CertFile and KeyFile)")
)

// NetError is a failure to reach the hub or to hear from it, with the
// host, the phase (TCP connect, TLS handshake, WebSocket upgrade,
// waiting for the CONNACK) and the time limit that ran out. It is the
// same type as service.NetError.
type NetError = proxy.NetError

// ConnectError is a CONNECT the hub answered with a refusal (a CONNACK
// return code other than 0). Codes 4 and 5 wrap ErrUnauthorized. A
// ConnectError is permanent: the client does not retry it.
type ConnectError struct {
	// Code is the MQTT 3.1.1 CONNACK return code (1–5).
	Code byte
	// Host is the host:port the client connected to.
	Host string
	// Detail is what the client knows that may explain the refusal
	// ("the client certificate c.pem expired at ..."), or "".
	Detail string
}

func (e *ConnectError) Error() string {
	s := "device: " + e.Host + " refused the connection: " + connackText(e.Code) + " (CONNACK return code " + strconv.Itoa(int(e.Code)) + ")"
	if e.Detail != "" {
		s += "; " + e.Detail
	}
	return s
}

// Unwrap returns ErrUnauthorized for return codes 4 and 5, else nil.
func (e *ConnectError) Unwrap() error {
	if e.Code == 4 || e.Code == 5 {
		return ErrUnauthorized
	}
	return nil
}

func connackText(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "client identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return "unknown refusal"
}

// StatusError is a request the hub answered with a status of 300 or
// more: a twin request (for example 400 for a malformed patch, 429 when
// throttled), or an HTTPS request. It wraps ErrUnauthorized for 401,
// ErrTooLarge for 413 and ErrLockLost for 412.
type StatusError struct {
	// Op is "get twin", "update reported properties", "send event",
	// "receive", "complete C2D message", ...
	Op string
	// Status is the status from the response topic or HTTP response.
	Status int
	// Code is IoT Hub's six-digit error code of an HTTPS answer
	// (401002, 412002, ...), 0 when it gave none.
	Code int
	// Message is the hub's description from an HTTPS answer's body.
	Message string
	// Body is the response body of a twin request, often empty.
	Body []byte
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("device: %s: hub answered status %d", e.Op, e.Status)
	if e.Code != 0 {
		s += " (" + strconv.Itoa(e.Code) + ")"
	}
	switch {
	case e.Message != "":
		s += ": " + e.Message
	case len(e.Body) > 0 && len(e.Body) <= 256:
		s += ": " + string(e.Body)
	}
	return s
}

// Unwrap returns ErrUnauthorized for 401, ErrTooLarge for 413,
// ErrLockLost for 412, else nil.
func (e *StatusError) Unwrap() error {
	switch e.Status {
	case 401:
		return ErrUnauthorized
	case 412:
		return ErrLockLost
	case 413:
		return ErrTooLarge
	}
	return nil
}

// permanent reports whether err from a connection attempt must not be
// retried: every CONNACK refusal except "server unavailable", and a
// proxy's 4xx answer to CONNECT except 408 and 429.
func permanent(err error) bool {
	var ce *ConnectError
	if errors.As(err, &ce) {
		return ce.Code != 3
	}
	var pe *ProxyError
	if errors.As(err, &pe) {
		return pe.Permanent()
	}
	// A token the hub refused over AMQP.
	var ae *AMQPError
	return errors.As(err, &ae) && errors.Is(err, ErrUnauthorized)
}
