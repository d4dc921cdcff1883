package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestInvokeMethod(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	e.do("PUT", "/devices/d/modules/m", `{}`)

	// Node SDK body, explicit timeouts.
	r := e.do("POST", "/twins/d/methods?api-version=2021-04-12", `{"methodName":"SetTelemetryInterval","payload":{"interval":5},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":0}`)
	if r.code != 200 || r.body != `{"status":200,"payload":{"interval":5}}` {
		t.Fatalf("invoke = %d %s", r.code, r.body)
	}
	if c := e.methods.last(); c.name != "SetTelemetryInterval" || c.response != 10*time.Second || c.connect != 0 || c.deviceID != "d" || c.moduleID != "" {
		t.Errorf("call = %+v", c)
	}
	// Python SDK body: no timeouts, string payload.
	r = e.do("POST", "/twins/d/methods", `{"methodName": "SetTelemetryInterval", "payload": "10"}`)
	if r.code != 200 || r.body != `{"status":200,"payload":"10"}` {
		t.Fatalf("invoke = %d %s", r.code, r.body)
	}
	if c := e.methods.last(); c.response != 30*time.Second || c.connect != 0 {
		t.Errorf("defaults = %+v", c)
	}
	// Module, no payload.
	r = e.do("POST", "/twins/d/modules/m/methods", `{"methodName":"x","responseTimeoutInSeconds":2,"connectTimeoutInSeconds":300}`)
	if r.code != 200 || r.body != `{"status":200,"payload":null}` {
		t.Fatalf("module invoke = %d %s", r.code, r.body)
	}
	if c := e.methods.last(); c.moduleID != "m" || c.response != 5*time.Second || c.connect != 300*time.Second || c.payload != "null" {
		t.Errorf("module call = %+v", c)
	}
}

func TestInvokeMethodErrors(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	e.do("PUT", "/devices/d/modules/m", `{}`)
	tests := []struct {
		name   string
		path   string
		body   string
		fn     func(string, string, string, json.RawMessage) (int, json.RawMessage, error)
		status int
		code   int
		ecode  string
	}{
		{"offline", "/twins/d/methods", `{"methodName":"x"}`, func(string, string, string, json.RawMessage) (int, json.RawMessage, error) {
			return 0, nil, fmt.Errorf("hub: %w", ErrDeviceNotOnline)
		}, 404, 404103, "DeviceNotOnline"},
		{"timeout", "/twins/d/methods", `{"methodName":"x"}`, func(string, string, string, json.RawMessage) (int, json.RawMessage, error) {
			return 0, nil, ErrTimeout
		}, 504, 504101, "GatewayTimeout"},
		{"internal", "/twins/d/methods", `{"methodName":"x"}`, func(string, string, string, json.RawMessage) (int, json.RawMessage, error) {
			return 0, nil, errors.New("boom")
		}, 500, 500001, "ServerError"},
		{"unknown device", "/twins/ghost/methods", `{"methodName":"x"}`, nil, 404, 404001, "DeviceNotFound"},
		{"unknown module", "/twins/d/modules/ghost/methods", `{"methodName":"x"}`, nil, 404, 404010, "ModuleNotFound"},
		{"no method name", "/twins/d/methods", `{"payload":1}`, nil, 400, 400004, "ArgumentInvalid"},
		{"method name with space", "/twins/d/methods", `{"methodName":"a b"}`, nil, 400, 400004, "ArgumentInvalid"},
		{"not JSON", "/twins/d/methods", `{"methodName":`, nil, 400, 400004, "ArgumentInvalid"},
		{"timeout too long", "/twins/d/methods", `{"methodName":"x","responseTimeoutInSeconds":301}`, nil, 400, 400004, "ArgumentInvalid"},
		{"negative timeout", "/twins/d/methods", `{"methodName":"x","responseTimeoutInSeconds":-1}`, nil, 400, 400004, "ArgumentInvalid"},
		{"fractional timeout", "/twins/d/methods", `{"methodName":"x","responseTimeoutInSeconds":1.5}`, nil, 400, 400004, "ArgumentInvalid"},
		{"connect timeout too long", "/twins/d/methods", `{"methodName":"x","connectTimeoutInSeconds":301}`, nil, 400, 400004, "ArgumentInvalid"},
		{"payload over 128 KB", "/twins/d/methods", `{"methodName":"x","payload":"` + strings.Repeat("p", 128*1024) + `"}`, nil, 413, 413001, "MessageTooLarge"},
		{"body over limit", "/twins/d/methods", `{"methodName":"x","payload":"` + strings.Repeat("p", 300*1024) + `"}`, nil, 413, 413001, "MessageTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.methods.mu.Lock()
			e.methods.fn = tt.fn
			e.methods.mu.Unlock()
			wantError(t, e.do("POST", tt.path, tt.body), tt.status, tt.code, tt.ecode)
		})
	}
}

func TestInvokeDeviceResults(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	tests := []struct {
		result json.RawMessage
		status int
		want   string
	}{
		{json.RawMessage(`{"Response":"Executed direct method SetTelemetryInterval"}`), 200, `{"status":200,"payload":{"Response":"Executed direct method SetTelemetryInterval"}}`},
		{json.RawMessage(`{"Response":"Invalid parameter"}`), 400, `{"status":400,"payload":{"Response":"Invalid parameter"}}`},
		{nil, 204, `{"status":204,"payload":null}`},
		{json.RawMessage(`not json`), 200, `{"status":200,"payload":"not json"}`},
	}
	for _, tt := range tests {
		e.methods.mu.Lock()
		e.methods.fn = func(string, string, string, json.RawMessage) (int, json.RawMessage, error) {
			return tt.status, tt.result, nil
		}
		e.methods.mu.Unlock()
		r := e.do("POST", "/twins/d/methods", `{"methodName":"x"}`)
		if r.code != 200 || r.body != tt.want {
			t.Errorf("result %s = %d %s; want %s", tt.result, r.code, r.body, tt.want)
		}
	}
}

func TestInvokeWithoutMethods(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	e.h.methods = nil
	wantError(t, e.do("POST", "/twins/d/methods", `{"methodName":"x"}`), 404, 404103, "DeviceNotOnline")
}

func TestInvokeClientGone(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	e.methods.fn = func(string, string, string, json.RawMessage) (int, json.RawMessage, error) {
		cancel()
		return 0, nil, context.Canceled
	}
	r := httptest.NewRequest("POST", "/twins/d/methods", strings.NewReader(`{"methodName":"x"}`)).WithContext(ctx)
	r.Header.Set("Authorization", e.as("service"))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Body.Len() != 0 {
		t.Errorf("wrote %q to a client that went away", w.Body.String())
	}
}

// BenchmarkMethodRoundTrip measures one direct-method call through the
// handler (routing, SAS check, store lookup, JSON in and out) with a
// Methods that answers at once.
func BenchmarkMethodRoundTrip(b *testing.B) {
	e := newEnv(b)
	e.do("PUT", "/devices/d", `{}`)
	e.methods.fn = func(_, _, _ string, p json.RawMessage) (int, json.RawMessage, error) {
		return 200, json.RawMessage(`{"Response":"Executed direct method SetTelemetryInterval"}`), nil
	}
	body := `{"methodName":"SetTelemetryInterval","payload":"10","responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`
	tok := e.as("service")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest("POST", "/twins/d/methods?api-version=2021-04-12", strings.NewReader(body))
		r.Header.Set("Authorization", tok)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d %s", w.Code, w.Body)
		}
	}
}
