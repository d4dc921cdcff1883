package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// parseError reads an error answer. IoT Hub bodies come in two forms:
// {"Message":"ErrorCode:DeviceNotFound;text"} and
// {"Message":"{\"errorCode\":404001,\"trackingId\":...,\"message\":...}"},
// sometimes with the JSON at the top level; the iothub-errorcode header
// names the error too.
func parseError(status int, header http.Header, body []byte) *StatusError {
	e := &StatusError{HTTPStatus: status, Name: header.Get("iothub-errorcode")}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		if s := strings.TrimSpace(string(body)); s != "" && len(s) < 512 {
			e.Message = s
		}
		return e
	}
	readInner(e, outer)
	var msg string
	for _, k := range []string{"Message", "message"} {
		if raw, ok := outer[k]; ok {
			_ = json.Unmarshal(raw, &msg)
			break
		}
	}
	if msg == "" {
		return e
	}
	var inner map[string]json.RawMessage
	switch {
	case json.Unmarshal([]byte(msg), &inner) == nil:
		readInner(e, inner)
	case strings.HasPrefix(msg, "ErrorCode:"):
		name, text, _ := strings.Cut(strings.TrimPrefix(msg, "ErrorCode:"), ";")
		if e.Name == "" {
			e.Name = name
		}
		// The text may carry the JSON form after the name.
		if json.Unmarshal([]byte(text), &inner) == nil {
			readInner(e, inner)
		} else if e.Message == "" {
			e.Message = text
		}
	default:
		if e.Message == "" {
			e.Message = msg
		}
	}
	return e
}

func readInner(e *StatusError, m map[string]json.RawMessage) {
	if raw, ok := m["errorCode"]; ok {
		var n int
		if json.Unmarshal(raw, &n) == nil {
			e.Code = n
		}
	}
	if raw, ok := m["trackingId"]; ok {
		_ = json.Unmarshal(raw, &e.TrackingID)
	}
	if raw, ok := m["message"]; ok && e.Message == "" {
		var s string
		if json.Unmarshal(raw, &s) == nil && !strings.HasPrefix(s, "{") && !strings.HasPrefix(s, "ErrorCode:") {
			e.Message = s
		}
	}
	if raw, ok := m["info"]; ok && e.Name == "" {
		var info map[string]string
		if json.Unmarshal(raw, &info) == nil {
			e.Name = info["errorCode"]
		}
	}
}
