package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Target names a device, or a module of a device.
type Target struct {
	DeviceID string
	ModuleID string
}

func (t Target) String() string {
	if t.ModuleID == "" {
		return t.DeviceID
	}
	return t.DeviceID + "/" + t.ModuleID
}

// MethodCall is a direct-method invocation.
type MethodCall struct {
	// Name is the method name.
	Name string
	// Payload is any JSON document; nil is sent as null.
	Payload json.RawMessage
	// ResponseTimeout is how long the hub waits for the device's
	// answer (5 s to 300 s). Default: 30 s.
	ResponseTimeout time.Duration
	// ConnectTimeout is how long the hub waits for the device to
	// connect (0 to 300 s). Default: 0 (it must be connected).
	ConnectTimeout time.Duration
}

// MethodResult is the device's answer.
type MethodResult struct {
	// Status is the status the device set.
	Status int `json:"status"`
	// Payload is the JSON the device answered with.
	Payload json.RawMessage `json:"payload"`
}

// InvokeMethod calls a direct method and returns the device's answer.
// Hub-side failures are *StatusError values (errors.Is with
// ErrDeviceNotOnline, ErrNotFound, ErrTimeout, ErrUnauthorized). The
// HTTP request itself is bounded by the two timeouts plus 10 s. The
// call is retried only when it failed before it was sent.
func (c *Client) InvokeMethod(ctx context.Context, t Target, call MethodCall) (*MethodResult, error) {
	if t.DeviceID == "" {
		return nil, errNoTarget
	}
	if call.Name == "" {
		return nil, fmt.Errorf("service: a method name is needed")
	}
	resp := call.ResponseTimeout
	if resp == 0 {
		resp = 30 * time.Second
	}
	payload := call.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	body := struct {
		MethodName      string          `json:"methodName"`
		Payload         json.RawMessage `json:"payload"`
		ResponseTimeout int             `json:"responseTimeoutInSeconds"`
		ConnectTimeout  int             `json:"connectTimeoutInSeconds"`
	}{call.Name, payload, int(resp.Round(time.Second) / time.Second), int(call.ConnectTimeout.Round(time.Second) / time.Second)}
	ctx, cancel := context.WithTimeout(ctx, resp+call.ConnectTimeout+10*time.Second)
	defer cancel()
	path := pathOf("twins", t.DeviceID, "methods")
	if t.ModuleID != "" {
		path = pathOf("twins", t.DeviceID, "modules", t.ModuleID, "methods")
	}
	var res MethodResult
	if _, err := c.do(ctx, request{method: "POST", path: path, body: body}, &res); err != nil {
		return nil, err
	}
	if len(res.Payload) == 0 {
		res.Payload = json.RawMessage("null")
	}
	return &res, nil
}
