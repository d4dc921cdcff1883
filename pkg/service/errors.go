package service

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// Conditions a *StatusError matches with errors.Is.
var (
	// ErrNotFound: the device or module does not exist (404001, 404010).
	ErrNotFound = errors.New("service: not found")
	// ErrDeviceNotOnline: the device is not connected or not listening
	// for methods (404103).
	ErrDeviceNotOnline = errors.New("service: device not online")
	// ErrTimeout: the hub timed out waiting for the device (504101).
	ErrTimeout = errors.New("service: gateway timeout")
	// ErrUnauthorized: the hub refused the credentials (401, or a 403
	// without an IoT Hub error code, as a gateway may answer; IoT
	// Hub's own 403s are quota and queue limits, not credentials).
	ErrUnauthorized = errors.New("service: unauthorized")
	// ErrThrottled: too many requests (429).
	ErrThrottled = errors.New("service: throttled")
	// ErrConflict: the device or module already exists (409).
	ErrConflict = errors.New("service: already exists")
	// ErrPreconditionFailed: the etag did not match (412).
	ErrPreconditionFailed = errors.New("service: etag mismatch")
	// ErrBadRequest: the hub refused the request as malformed (400).
	ErrBadRequest = errors.New("service: bad request")
)

// StatusError is an error answer from the hub.
type StatusError struct {
	// HTTPStatus is the HTTP status code.
	HTTPStatus int
	// Code is IoT Hub's six-digit error code (e.g. 404103), or 0 when
	// the answer had none.
	Code int
	// Name is IoT Hub's error name (e.g. "DeviceNotOnline"), from the
	// iothub-errorcode header or the body.
	Name string
	// Message is the hub's description.
	Message string
	// TrackingID is the hub's tracking id, when given.
	TrackingID string
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "service: %d %s", e.HTTPStatus, http.StatusText(e.HTTPStatus))
	if e.Name != "" || e.Code != 0 {
		b.WriteString(" (")
		b.WriteString(e.Name)
		if e.Code != 0 {
			if e.Name != "" {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(e.Code))
		}
		b.WriteByte(')')
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches the Err* conditions.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrDeviceNotOnline:
		return e.Code == 404103 || e.Name == "DeviceNotOnline"
	case ErrNotFound:
		return e.HTTPStatus == http.StatusNotFound && e.Code != 404103 && e.Name != "DeviceNotOnline"
	case ErrTimeout:
		return e.HTTPStatus == http.StatusGatewayTimeout || e.Code == 504101
	case ErrUnauthorized:
		return e.HTTPStatus == http.StatusUnauthorized || e.Code/1000 == 401 ||
			e.HTTPStatus == http.StatusForbidden && e.Code == 0 && e.Name == ""
	case ErrThrottled:
		return e.HTTPStatus == http.StatusTooManyRequests
	case ErrConflict:
		return e.HTTPStatus == http.StatusConflict
	case ErrPreconditionFailed:
		return e.HTTPStatus == http.StatusPreconditionFailed
	case ErrBadRequest:
		return e.HTTPStatus == http.StatusBadRequest
	}
	return false
}

// ParseError reads an IoT Hub error answer (status, headers and body)
// into a *StatusError, for clients of the hub's other HTTPS APIs (the
// device side's) that report errors as this package does.
func ParseError(status int, header http.Header, body []byte) *StatusError {
	return parseError(status, header, body)
}

// parseError reads an error answer (see iothub.ParseError).
func parseError(status int, header http.Header, body []byte) *StatusError {
	a := iothub.ParseError(header, body)
	return &StatusError{HTTPStatus: status, Code: a.Code, Name: a.Name, Message: a.Message, TrackingID: a.TrackingID}
}
