package service

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// newForm is the body IoT Hub sends today: Message holds a JSON object.
func newForm(code int, msg string) string {
	inner, _ := json.Marshal(map[string]any{"errorCode": code, "trackingId": "track-1", "message": msg, "timestampUtc": "2024-05-01T00:00:00.0000000Z"})
	b, _ := json.Marshal(map[string]string{"Message": string(inner), "ExceptionMessage": ""})
	return string(b)
}

// hubForm is the local hub's body (pkg/hub/rest errorBody): Message
// holds a JSON object whose first key is the legacy text.
func hubForm(code int, name, msg string) string {
	legacy, _ := json.Marshal("ErrorCode:" + name + ";" + msg + ";")
	m, _ := json.Marshal(msg)
	inner := `{` + string(legacy) + `:"","errorCode":` + itoa(code) + `,"trackingId":"track-1","message":` + string(m) + `,"timestampUtc":"2024-05-01T00:00:00.0000000Z"}`
	b, _ := json.Marshal(map[string]string{"Message": inner, "ExceptionMessage": "Tracking ID:track1-G:0-TimeStamp:05/01/2024 00:00:00"})
	return string(b)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// legacyForm is {"Message":"ErrorCode:Name;text"}, the only form the
// Node SDK reads.
func legacyForm(name, msg string) string {
	b, _ := json.Marshal(map[string]string{"Message": "ErrorCode:" + name + ";" + msg})
	return string(b)
}

var allConditions = []error{ErrNotFound, ErrDeviceNotOnline, ErrTimeout, ErrUnauthorized, ErrThrottled, ErrConflict, ErrPreconditionFailed, ErrBadRequest}

func TestParseError(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   string // iothub-errorcode
		body     string
		is       error // the one condition it must match (nil: none)
		wantCode int
		wantName string
		wantMsg  string
	}{
		{"legacy device not found", 404, "", legacyForm("DeviceNotFound", "Device not found"), ErrNotFound, 0, "DeviceNotFound", "Device not found"},
		{"legacy device not online", 404, "", legacyForm("DeviceNotOnline", "Timed out waiting for device to connect."), ErrDeviceNotOnline, 0, "DeviceNotOnline", "Timed out waiting for device to connect."},
		{"legacy module not found", 404, "", legacyForm("ModuleNotFound", "no module"), ErrNotFound, 0, "ModuleNotFound", "no module"},
		{"legacy unauthorized", 401, "", legacyForm("IotHubUnauthorizedAccess", "Unauthorized"), ErrUnauthorized, 0, "IotHubUnauthorizedAccess", "Unauthorized"},
		{"legacy gateway timeout", 504, "", legacyForm("GatewayTimeout", "The operation failed because the requested device isn't online or hasn't registered the direct method callback."), ErrTimeout, 0, "GatewayTimeout", ""},
		{"legacy carrying the new form", 404, "", `{"Message":"ErrorCode:DeviceNotOnline;{\"errorCode\":404103,\"trackingId\":\"t\",\"message\":\"offline\"}"}`, ErrDeviceNotOnline, 404103, "DeviceNotOnline", "offline"},

		{"new device not online", 404, "DeviceNotOnline", newForm(404103, "Timed out waiting for device to connect."), ErrDeviceNotOnline, 404103, "DeviceNotOnline", "Timed out waiting for device to connect."},
		{"new device not online without header", 404, "", newForm(404103, "Timed out waiting for device to connect."), ErrDeviceNotOnline, 404103, "", ""},
		{"new device not found", 404, "DeviceNotFound", newForm(404001, "Device dev9 not registered"), ErrNotFound, 404001, "DeviceNotFound", "Device dev9 not registered"},
		{"new module not found", 404, "ModuleNotFound", newForm(404010, "Module m not registered"), ErrNotFound, 404010, "ModuleNotFound", ""},
		{"new gateway timeout", 504, "GatewayTimeout", newForm(504101, "Timed out waiting for the response from device."), ErrTimeout, 504101, "GatewayTimeout", ""},
		{"new unauthorized", 401, "IotHubUnauthorizedAccess", newForm(401002, "Unauthorized"), ErrUnauthorized, 401002, "IotHubUnauthorizedAccess", "Unauthorized"},
		{"new throttled", 429, "ThrottlingException", newForm(429001, "Throttled"), ErrThrottled, 429001, "ThrottlingException", ""},
		{"new already exists", 409, "DeviceAlreadyExists", newForm(409001, "A device with ID 'd' is already registered."), ErrConflict, 409001, "DeviceAlreadyExists", ""},
		{"new etag mismatch", 412, "PreconditionFailed", newForm(412001, "Precondition failed"), ErrPreconditionFailed, 412001, "PreconditionFailed", ""},
		{"new bad argument", 400, "ArgumentInvalid", newForm(400004, "methodName is required"), ErrBadRequest, 400004, "ArgumentInvalid", "methodName is required"},
		{"quota exceeded is not an auth failure", 403, "IotHubQuotaExceeded", newForm(403002, "Total number of messages on IotHub exceeded the allocated quota"), nil, 403002, "IotHubQuotaExceeded", ""},
		{"queue full is not an auth failure", 403, "DeviceMaximumQueueDepthExceeded", newForm(403004, "queue full"), nil, 403004, "DeviceMaximumQueueDepthExceeded", ""},
		{"server error", 500, "ServerError", newForm(500001, "internal"), nil, 500001, "ServerError", "internal"},

		{"hub device not online", 404, "DeviceNotOnline", hubForm(404103, "DeviceNotOnline", "device dev1 is not online"), ErrDeviceNotOnline, 404103, "DeviceNotOnline", "device dev1 is not online"},
		{"hub device not found", 404, "DeviceNotFound", hubForm(404001, "DeviceNotFound", "device ghost not found"), ErrNotFound, 404001, "DeviceNotFound", "device ghost not found"},
		{"hub timeout", 504, "GatewayTimeout", hubForm(504101, "GatewayTimeout", "timed out"), ErrTimeout, 504101, "GatewayTimeout", "timed out"},
		{"hub unauthorized", 401, "IotHubUnauthorizedAccess", hubForm(401002, "IotHubUnauthorizedAccess", "signature mismatch"), ErrUnauthorized, 401002, "IotHubUnauthorizedAccess", "signature mismatch"},
		{"hub etag mismatch", 412, "PreconditionFailed", hubForm(412001, "PreconditionFailed", "etag mismatch"), ErrPreconditionFailed, 412001, "PreconditionFailed", ""},

		{"header only: not online", 404, "DeviceNotOnline", "", ErrDeviceNotOnline, 0, "DeviceNotOnline", ""},
		{"header only: not found", 404, "DeviceNotFound", "", ErrNotFound, 0, "DeviceNotFound", ""},
		{"bare 404", 404, "", "", ErrNotFound, 0, "", ""},
		{"bare 504", 504, "", "", ErrTimeout, 0, "", ""},
		{"bare 401", 401, "", "", ErrUnauthorized, 0, "", ""},
		{"bare 403 from a gateway", 403, "", "Forbidden", ErrUnauthorized, 0, "", "Forbidden"},
		{"text body", 503, "", "Service Unavailable", nil, 0, "", "Service Unavailable"},
		{"top-level JSON", 404, "", `{"errorCode":404103,"message":"offline","trackingId":"t"}`, ErrDeviceNotOnline, 404103, "", "offline"},
		{"lower-case message key", 404, "", `{"message":"ErrorCode:DeviceNotFound;gone"}`, ErrNotFound, 0, "DeviceNotFound", "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("iothub-errorcode", tt.header)
			}
			e := parseError(tt.status, h, []byte(tt.body))
			if e.HTTPStatus != tt.status || e.Code != tt.wantCode || e.Name != tt.wantName || (tt.wantMsg != "" && e.Message != tt.wantMsg) {
				t.Errorf("parseError(%d, %q, %s) = %+v; want code %d name %q message %q", tt.status, tt.header, tt.body, e, tt.wantCode, tt.wantName, tt.wantMsg)
			}
			for _, cond := range allConditions {
				if got := errors.Is(e, cond); got != (cond == tt.is) {
					t.Errorf("errors.Is(%v, %v) = %v", e, cond, got)
				}
			}
			if strings.Contains(e.Error(), "{") {
				t.Errorf("Error() = %q; want no raw JSON", e.Error())
			}
		})
	}
}

func TestStatusErrorText(t *testing.T) {
	tests := []struct {
		e    StatusError
		want string
	}{
		{StatusError{HTTPStatus: 404, Code: 404103, Name: "DeviceNotOnline", Message: "device dev1 is not online"}, "service: 404 Not Found (DeviceNotOnline 404103): device dev1 is not online"},
		{StatusError{HTTPStatus: 504, Code: 504101}, "service: 504 Gateway Timeout (504101)"},
		{StatusError{HTTPStatus: 401, Name: "IotHubUnauthorizedAccess"}, "service: 401 Unauthorized (IotHubUnauthorizedAccess)"},
		{StatusError{HTTPStatus: 503}, "service: 503 Service Unavailable"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q; want %q", tt.e, got, tt.want)
		}
	}
}

// The typed errors come through the whole client, for every call.
func TestErrorsThroughClient(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header string
		body   string
		is     error
	}{
		{"offline, new form", 404, "DeviceNotOnline", newForm(404103, "offline"), ErrDeviceNotOnline},
		{"unknown device, legacy form", 404, "", legacyForm("DeviceNotFound", "Device not found"), ErrNotFound},
		{"timeout, hub form", 504, "GatewayTimeout", hubForm(504101, "GatewayTimeout", "timed out"), ErrTimeout},
		{"bad key, header only", 401, "IotHubUnauthorizedAccess", "", ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) { answer(w, tt.status, tt.header, tt.body) })
			c := s.client(t, nil)
			_, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "dev1"}, MethodCall{Name: "m"})
			var se *StatusError
			if !errors.Is(err, tt.is) || !errors.As(err, &se) || se.HTTPStatus != tt.status {
				t.Errorf("InvokeMethod = %v; want a *StatusError %d matching %v", err, tt.status, tt.is)
			}
			_, err = c.GetTwin(ctxT(t), Target{DeviceID: "dev1", ModuleID: "m"})
			if !errors.Is(err, tt.is) {
				t.Errorf("GetTwin = %v; want %v", err, tt.is)
			}
		})
	}
}

func FuzzParseError(f *testing.F) {
	f.Add(404, "DeviceNotOnline", newForm(404103, "x"))
	f.Add(404, "", legacyForm("DeviceNotFound", "y"))
	f.Add(504, "GatewayTimeout", hubForm(504101, "GatewayTimeout", "z"))
	f.Add(401, "", "")
	f.Add(400, "", `{"Message":"ErrorCode:;"}`)
	f.Add(500, "", `{"Message":{"nested":true},"info":{"errorCode":1}}`)
	f.Fuzz(func(t *testing.T, status int, header, body string) {
		h := http.Header{}
		h.Set("iothub-errorcode", header)
		e := parseError(status, h, []byte(body))
		if e.HTTPStatus != status {
			t.Fatalf("HTTPStatus = %d; want %d", e.HTTPStatus, status)
		}
		_ = e.Error()
		for _, c := range allConditions {
			_ = errors.Is(e, c)
		}
	})
}
