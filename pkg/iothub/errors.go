package iothub

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ErrorAnswer is what an error answer of IoT Hub's HTTPS API says,
// the service API's and the device API's alike.
type ErrorAnswer struct {
	// Code is IoT Hub's six-digit error code (e.g. 404103), 0 if none.
	Code int
	// Name is IoT Hub's error name (e.g. "DeviceNotOnline").
	Name string
	// Message is the hub's description.
	Message string
	// TrackingID is the hub's tracking id, when given.
	TrackingID string
}

// ParseError reads an error answer's headers and body. It never fails:
// what it cannot read stays empty. IoT Hub bodies come in two forms:
// {"Message":"ErrorCode:DeviceNotFound;text"} and
// {"Message":"{\"errorCode\":404001,\"trackingId\":...,\"message\":...}"},
// sometimes with the JSON at the top level; the iothub-errorcode header
// names the error too.
func ParseError(header http.Header, body []byte) ErrorAnswer {
	e := &ErrorAnswer{Name: header.Get("iothub-errorcode")}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		if s := strings.TrimSpace(string(body)); s != "" && len(s) < 512 {
			e.Message = s
		}
		return *e
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
		return *e
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
	return *e
}

func readInner(e *ErrorAnswer, m map[string]json.RawMessage) {
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
