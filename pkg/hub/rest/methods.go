package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// Direct-method timeouts
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods;
// the bounds as the C# SDK documents them in
// https://learn.microsoft.com/dotnet/api/microsoft.azure.devices.client.methodrequest.responsetimeout
// and .../methodrequest.connectiontimeout).
const (
	DefaultResponseTimeout = 30 * time.Second
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	MaxConnectTimeout      = 300 * time.Second
)

// methodRequest is IoT Hub's CloudToDeviceMethod.
type methodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int64          `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int64          `json:"connectTimeoutInSeconds"`
}

// methodResult is IoT Hub's CloudToDeviceMethodResult.
type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// parseMethodRequest decodes and checks a method call body. Timeouts:
// responseTimeoutInSeconds absent or 0 means 30 s, 1 to 4 are raised
// to 5, above 300 or negative is an error; connectTimeoutInSeconds
// absent means 0, and must lie in [0, 300]. An absent payload is null.
func parseMethodRequest(body []byte) (*methodRequest, time.Duration, time.Duration, *registry.Error) {
	var m methodRequest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, 0, 0, newError(registry.ErrArgumentInvalid, "the body is not a valid method call: "+err.Error())
	}
	if m.MethodName == "" {
		return nil, 0, 0, newError(registry.ErrArgumentInvalid, "methodName is required")
	}
	for i := 0; i < len(m.MethodName); i++ {
		if c := m.MethodName[i]; c < 0x21 || c > 0x7e {
			return nil, 0, 0, newError(registry.ErrArgumentInvalid, "methodName must be printable ASCII without spaces")
		}
	}
	if len(m.Payload) == 0 {
		m.Payload = json.RawMessage("null")
	}
	if len(m.Payload) > MaxMethodPayload {
		return nil, 0, 0, newError(registry.ErrMessageTooLarge, "the method payload is larger than 128 KB")
	}
	resp := DefaultResponseTimeout
	if p := m.ResponseTimeoutInSeconds; p != nil && *p != 0 {
		if *p < 0 || *p > int64(MaxResponseTimeout/time.Second) {
			return nil, 0, 0, newError(registry.ErrArgumentInvalid, "responseTimeoutInSeconds must be between 5 and 300")
		}
		resp = max(time.Duration(*p)*time.Second, MinResponseTimeout)
	}
	var conn time.Duration
	if p := m.ConnectTimeoutInSeconds; p != nil {
		if *p < 0 || *p > int64(MaxConnectTimeout/time.Second) {
			return nil, 0, 0, newError(registry.ErrArgumentInvalid, "connectTimeoutInSeconds must be between 0 and 300")
		}
		conn = time.Duration(*p) * time.Second
	}
	return &m, conn, resp, nil
}

// invoke runs POST /twins/{id}[/modules/{mid}]/methods.
func (h *Handler) invoke(q *request) {
	body, ok := h.readBody(q, maxMethodBody)
	if !ok {
		return
	}
	m, conn, resp, perr := parseMethodRequest(body)
	if perr != nil {
		h.writeError(q.w, perr)
		return
	}
	var err error
	if q.moduleID == "" {
		_, err = h.store.Device(q.deviceID)
	} else {
		_, err = h.store.Module(q.deviceID, q.moduleID)
	}
	if err != nil {
		h.fail(q.w, err)
		return
	}
	if h.methods == nil {
		h.writeError(q.w, newError(registry.ErrDeviceNotOnline, "the device is not online"))
		return
	}
	status, result, err := h.methods.Invoke(q.r.Context(), q.deviceID, q.moduleID, m.MethodName, m.Payload, conn, resp)
	switch {
	case err == nil:
	case errors.Is(err, ErrDeviceNotOnline):
		h.writeError(q.w, newError(registry.ErrDeviceNotOnline, "the device is not online or not listening for direct methods"))
		return
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		h.writeError(q.w, newError(registry.ErrGatewayTimeout, "timed out waiting for the response from the device"))
		return
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		h.fail(q.w, err)
		return
	}
	result = bytes.TrimSpace(result)
	if len(result) == 0 {
		result = json.RawMessage("null")
	} else if !json.Valid(result) {
		// IoT Hub expects JSON from devices; carry anything else as a string.
		result, _ = json.Marshal(string(result))
	}
	h.writeJSON(q.w, http.StatusOK, methodResult{Status: status, Payload: result}, "")
}
