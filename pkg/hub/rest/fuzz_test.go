package rest

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzRoutes are the request-body decoding paths the fuzz target drives.
var fuzzRoutes = []struct{ method, path, ifMatch string }{
	{"PUT", "/devices/fz", "*"},
	{"PUT", "/devices/fz/modules/m", "*"},
	{"PATCH", "/twins/fz", ""},
	{"PUT", "/twins/fz/modules/m", ""},
	{"POST", "/twins/fz/methods", ""},
	{"POST", "/devices/query", ""},
}

// FuzzRequestBody sends arbitrary bodies to the routes that decode
// JSON (device, module, twin patch and replace, method call, query):
// the handler must never fail with a 5xx or write anything but JSON.
func FuzzRequestBody(f *testing.F) {
	f.Add(byte(0), []byte(`{"deviceId":"fz","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`))
	f.Add(byte(2), []byte(`{"tags":{"a":{"b":null}},"properties":{"desired":{"x":[1,{"y":2}]}}}`))
	f.Add(byte(4), []byte(`{"methodName":"SetTelemetryInterval","payload":"10"}`))
	f.Add(byte(5), []byte(`{"query":"SELECT * FROM devices WHERE tags.a = 'b'"}`))
	e := newEnv(f)
	e.do("PUT", "/devices/fz", `{}`)
	e.do("PUT", "/devices/fz/modules/m", `{}`)
	tok := e.as("iothubowner")
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		rt := fuzzRoutes[int(kind)%len(fuzzRoutes)]
		r := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		r.Header.Set("Authorization", tok)
		if rt.ifMatch != "" {
			r.Header.Set("If-Match", rt.ifMatch)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q = %d %s", rt.method, rt.path, body, w.Code, w.Body)
		}
		if w.Code == 204 {
			return
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s with %q: response is not JSON: %q", rt.method, rt.path, body, w.Body)
		}
		if w.Code >= 400 && w.Header().Get("iothub-errorcode") == "" {
			t.Fatalf("%s %s with %q: %d without iothub-errorcode", rt.method, rt.path, body, w.Code)
		}
	})
}

// FuzzParseMethodRequest checks the method-call decoder alone: it
// returns either a request with a name and timeouts in range, or an
// IoT Hub error.
func FuzzParseMethodRequest(f *testing.F) {
	f.Add([]byte(`{"methodName":"m","payload":{"a":1},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":5}`))
	f.Add([]byte(`{"methodName":"m","responseTimeoutInSeconds":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, conn, resp, err := parseMethodRequest(body)
		if err != nil {
			if err.Code/1000 != 400 && err.Code/1000 != 413 {
				t.Fatalf("error code %d", err.Code)
			}
			return
		}
		if m.MethodName == "" || !json.Valid(m.Payload) {
			t.Fatalf("accepted %q with name %q payload %q", body, m.MethodName, m.Payload)
		}
		if resp < MinResponseTimeout || resp > MaxResponseTimeout || conn < 0 || conn > MaxConnectTimeout {
			t.Fatalf("accepted %q with timeouts %v %v", body, conn, resp)
		}
	})
}
