package service

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestInvokeMethodRequest(t *testing.T) {
	tests := []struct {
		name     string
		target   Target
		call     MethodCall
		wantPath string
		wantBody string
	}{
		{"defaults: null payload, 30s, 0s", Target{DeviceID: "dev1"}, MethodCall{Name: "reboot"},
			"/twins/dev1/methods", `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
		{"number", Target{DeviceID: "dev1"}, MethodCall{Name: "SetTelemetryInterval", Payload: json.RawMessage(`10`)},
			"/twins/dev1/methods", `{"methodName":"SetTelemetryInterval","payload":10,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
		{"string", Target{DeviceID: "dev1"}, MethodCall{Name: "SetTelemetryInterval", Payload: json.RawMessage(`"10"`)},
			"/twins/dev1/methods", `{"methodName":"SetTelemetryInterval","payload":"10","responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
		{"object and timeouts", Target{DeviceID: "dev1"}, MethodCall{Name: "m", Payload: json.RawMessage(`{"a":[1,true]}`), ResponseTimeout: 5 * time.Second, ConnectTimeout: 300 * time.Second},
			"/twins/dev1/methods", `{"methodName":"m","payload":{"a":[1,true]},"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":300}`},
		{"module", Target{DeviceID: "dev1", ModuleID: "mod1"}, MethodCall{Name: "m", ResponseTimeout: 60 * time.Second},
			"/twins/dev1/modules/mod1/methods", `{"methodName":"m","payload":null,"responseTimeoutInSeconds":60,"connectTimeoutInSeconds":0}`},
		{"ids are path-escaped", Target{DeviceID: "dev 1/ä?", ModuleID: "m#1"}, MethodCall{Name: "m"},
			"/twins/dev%201%2F%C3%A4%3F/modules/m%231/methods", `{"methodName":"m","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				answer(w, 200, "", `{"status":201,"payload":{"echo":true}}`)
			})
			res, err := s.client(t, nil).InvokeMethod(ctxT(t), tt.target, tt.call)
			if err != nil {
				t.Fatal(err)
			}
			r := s.last(t)
			if r.Method != "POST" || r.Path != tt.wantPath || string(r.Body) != tt.wantBody {
				t.Errorf("request %s %s %s; want POST %s %s", r.Method, r.Path, r.Body, tt.wantPath, tt.wantBody)
			}
			if res.Status != 201 || string(res.Payload) != `{"echo":true}` {
				t.Errorf("result %d %s; want 201 {\"echo\":true}", res.Status, res.Payload)
			}
		})
	}
}

func TestInvokeMethodResult(t *testing.T) {
	tests := []struct {
		body        string
		wantStatus  int
		wantPayload string
	}{
		{`{"status":200,"payload":{"Response":"ok"}}`, 200, `{"Response":"ok"}`},
		{`{"status":404}`, 404, `null`},
		{`{"status":200,"payload":null}`, 200, `null`},
		{`{"status":500,"payload":"text"}`, 500, `"text"`},
		{`{"status":200,"payload":[1,2]}`, 200, `[1,2]`},
	}
	for _, tt := range tests {
		s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) { answer(w, 200, "", tt.body) })
		res, err := s.client(t, nil).InvokeMethod(ctxT(t), Target{DeviceID: "d"}, MethodCall{Name: "m"})
		if err != nil || res.Status != tt.wantStatus || string(res.Payload) != tt.wantPayload {
			t.Errorf("answer %s: InvokeMethod = %+v, %v; want %d %s", tt.body, res, err, tt.wantStatus, tt.wantPayload)
		}
	}
}

func TestInvokeMethodRefusesBadInput(t *testing.T) {
	s := newHubServer(t, nil)
	c := s.client(t, nil)
	if _, err := c.InvokeMethod(ctxT(t), Target{}, MethodCall{Name: "m"}); err == nil {
		t.Error("InvokeMethod without a device id succeeded")
	}
	if _, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "d"}, MethodCall{}); err == nil {
		t.Error("InvokeMethod without a method name succeeded")
	}
	if _, err := c.CreateDevice(ctxT(t), &Device{}); err == nil {
		t.Error("CreateDevice without a device id succeeded")
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("%d requests sent for bad input", n)
	}
}
