package rest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

func TestNewRequiresStoreAndAuth(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New(nil) = nil error")
	}
	if _, err := New(&Options{}); err == nil {
		t.Error("New(empty) = nil error")
	}
}

func TestDeviceLifecycle(t *testing.T) {
	e := newEnv(t)
	// Node SDK create: no If-Match, empty keys.
	r := e.do("PUT", "/devices/dev1?api-version=2021-04-12", `{"deviceId":"dev1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`)
	if r.code != 200 {
		t.Fatalf("create = %d %s", r.code, r.body)
	}
	d := decode(t, r.body)
	etag, _ := d["etag"].(string)
	if etag == "" || r.header.Get("ETag") != `"`+etag+`"` {
		t.Errorf("etag %q header %q", etag, r.header.Get("ETag"))
	}
	keys := d["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	if keys["primaryKey"] == "" {
		t.Errorf("keys not generated: %v", keys)
	}
	if d["connectionState"] != "Disconnected" || d["lastActivityTime"] != "0001-01-01T00:00:00Z" {
		t.Errorf("presence fields: %v %v", d["connectionState"], d["lastActivityTime"])
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}

	wantError(t, e.do("PUT", "/devices/dev1", `{"deviceId":"dev1"}`), 409, 409001, "DeviceAlreadyExists")
	wantError(t, e.do("PUT", "/devices/dev1", `{"deviceId":"dev1","status":"disabled"}`, "If-Match", `"nope"`), 412, 412001, "PreconditionFailed")
	r = e.do("PUT", "/devices/dev1", `{"deviceId":"dev1","status":"disabled"}`, "If-Match", `"`+etag+`"`)
	if r.code != 200 || decode(t, r.body)["status"] != "disabled" {
		t.Fatalf("update = %d %s", r.code, r.body)
	}
	r = e.do("PUT", "/devices/dev1", `{"deviceId":"dev1","status":"enabled"}`, "If-Match", "*")
	if r.code != 200 {
		t.Fatalf("update * = %d", r.code)
	}
	wantError(t, e.do("PUT", "/devices/ghost", `{}`, "If-Match", "*"), 404, 404001, "DeviceNotFound")

	r = e.do("GET", "/devices/dev1", "")
	if r.code != 200 || decode(t, r.body)["deviceId"] != "dev1" {
		t.Fatalf("get = %d %s", r.code, r.body)
	}
	wantError(t, e.do("GET", "/devices/ghost", ""), 404, 404001, "DeviceNotFound")
	wantError(t, e.do("DELETE", "/devices/dev1", "", "If-Match", `"stale"`), 412, 412001, "PreconditionFailed")
	r = e.do("DELETE", "/devices/dev1", "", "If-Match", "*")
	if r.code != 204 || r.body != "" {
		t.Fatalf("delete = %d %q", r.code, r.body)
	}
	wantError(t, e.do("DELETE", "/devices/dev1", ""), 404, 404001, "DeviceNotFound")
}

func TestDeviceBodies(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		code   int
		ecode  string
	}{
		{"no body", "/devices/a", "", 400, 400004, "ArgumentInvalid"},
		{"not JSON", "/devices/a", `{"deviceId":`, 400, 400004, "ArgumentInvalid"},
		{"wrong type", "/devices/a", `{"status":5}`, 400, 400004, "ArgumentInvalid"},
		{"id mismatch", "/devices/a", `{"deviceId":"b"}`, 400, 400004, "ArgumentInvalid"},
		{"bad id", "/devices/a%20b", `{}`, 400, 400004, "ArgumentInvalid"},
		{"bad key", "/devices/a", `{"authentication":{"symmetricKey":{"primaryKey":"!!"}}}`, 400, 400004, "ArgumentInvalid"},
		{"too large", "/devices/a", `{"deviceId":"a","x":"` + strings.Repeat("x", 70*1024) + `"}`, 413, 413001, "MessageTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.do("PUT", tt.path, tt.body), tt.status, tt.code, tt.ecode)
		})
	}
}

func TestEncodedIDs(t *testing.T) {
	e := newEnv(t)
	id := "d#1?x=(y)*'!%:@$+,"
	path := "/devices/" + url.QueryEscape(id) // encodes like encodeURIComponent here
	r := e.do("PUT", path, `{}`)
	if r.code != 200 || decode(t, r.body)["deviceId"] != id {
		t.Fatalf("create %q via %s = %d %s", id, path, r.code, r.body)
	}
	if r := e.do("GET", path, ""); r.code != 200 {
		t.Fatalf("get = %d", r.code)
	}
	if r := e.do("PUT", path+"/modules/"+url.QueryEscape("m$1"), `{}`); r.code != 200 || decode(t, r.body)["moduleId"] != "m$1" {
		t.Fatalf("module create = %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/twins/"+url.QueryEscape(id)+"/modules/m%241", ""); r.code != 200 {
		t.Fatalf("module twin = %d %s", r.code, r.body)
	}
}

func TestListDevicesAndStats(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		st := "enabled"
		if i == 2 {
			st = "disabled"
		}
		e.do("PUT", fmt.Sprintf("/devices/d%d", i), `{"status":"`+st+`"}`)
	}
	e.do("PUT", "/devices/online", `{}`)
	r := e.do("GET", "/devices", "")
	var list []map[string]any
	json.Unmarshal([]byte(r.body), &list)
	if r.code != 200 || len(list) != 4 {
		t.Fatalf("list = %d %s", r.code, r.body)
	}
	for _, d := range list {
		if d["deviceId"] == "online" && (d["connectionState"] != "Connected" || d["connectionStateUpdatedTime"] != "2024-05-01T09:00:00.000Z" || d["lastActivityTime"] != "2024-05-01T09:01:00.000Z") {
			t.Errorf("presence not applied: %v", d)
		}
	}
	r = e.do("GET", "/devices?top=2", "")
	json.Unmarshal([]byte(r.body), &list)
	if len(list) != 2 {
		t.Errorf("top=2 gave %d", len(list))
	}
	wantError(t, e.do("GET", "/devices?top=x", ""), 400, 400004, "ArgumentInvalid")
	r = e.do("GET", "/statistics/devices", "")
	if r.body != `{"totalDeviceCount":4,"enabledDeviceCount":3,"disabledDeviceCount":1}` {
		t.Errorf("stats = %s", r.body)
	}
	r = e.do("GET", "/statistics/service", "")
	if r.body != `{"connectedDeviceCount":1}` {
		t.Errorf("service stats = %s", r.body)
	}
}

func TestModuleRoutes(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.do("PUT", "/devices/d/modules/m", `{}`), 404, 404001, "DeviceNotFound")
	e.do("PUT", "/devices/d", `{}`)
	r := e.do("PUT", "/devices/d/modules/m", `{"managedBy":"x"}`)
	if r.code != 200 {
		t.Fatalf("create module = %d %s", r.code, r.body)
	}
	etag := decode(t, r.body)["etag"].(string)
	wantError(t, e.do("PUT", "/devices/d/modules/m", `{}`), 409, 409301, "ModuleAlreadyExistsOnDevice")
	wantError(t, e.do("PUT", "/devices/d/modules/m", `{"moduleId":"other"}`), 400, 400004, "ArgumentInvalid")
	wantError(t, e.do("PUT", "/devices/d/modules/m", `{}`, "If-Match", `"x"`), 412, 412001, "PreconditionFailed")
	if r := e.do("PUT", "/devices/d/modules/m", `{"managedBy":"y"}`, "If-Match", `"`+etag+`"`); r.code != 200 || decode(t, r.body)["managedBy"] != "y" {
		t.Fatalf("update module = %d %s", r.code, r.body)
	}
	r = e.do("GET", "/devices/d/modules", "")
	if r.code != 200 || !strings.Contains(r.body, `"moduleId":"m"`) {
		t.Fatalf("list modules = %d %s", r.code, r.body)
	}
	wantError(t, e.do("GET", "/devices/d/modules/zz", ""), 404, 404010, "ModuleNotFound")
	wantError(t, e.do("GET", "/devices/zz/modules", ""), 404, 404001, "DeviceNotFound")
	if r := e.do("GET", "/devices/d/modules/m", ""); r.code != 200 {
		t.Fatalf("get module = %d", r.code)
	}
	if r := e.do("DELETE", "/devices/d/modules/m", "", "If-Match", "*"); r.code != 204 {
		t.Fatalf("delete module = %d", r.code)
	}
	wantError(t, e.do("DELETE", "/devices/d/modules/m", ""), 404, 404010, "ModuleNotFound")
}

func TestTwinRoutes(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	e.do("PUT", "/devices/d/modules/m", `{}`)
	r := e.do("GET", "/twins/d", "")
	if r.code != 200 || r.header.Get("ETag") != `"AAAAAAAAAAE="` {
		t.Fatalf("get twin = %d %s %v", r.code, r.body, r.header)
	}
	r = e.do("PATCH", "/twins/d", `{"tags":{"site":"a"},"properties":{"desired":{"interval":10}}}`, "If-Match", `"AAAAAAAAAAE="`)
	if r.code != 200 {
		t.Fatalf("patch = %d %s", r.code, r.body)
	}
	tw := decode(t, r.body)
	if tw["version"] != 2.0 || tw["tags"].(map[string]any)["site"] != "a" {
		t.Errorf("patched twin = %v", tw)
	}
	wantError(t, e.do("PATCH", "/twins/d", `{"tags":{"x":1}}`, "If-Match", `"AAAAAAAAAAE="`), 412, 412001, "PreconditionFailed")
	wantError(t, e.do("PATCH", "/twins/d", `{"properties":{"desired":{"a.b":1}}}`), 400, 400004, "ArgumentInvalid")
	wantError(t, e.do("PATCH", "/twins/d", `[]`), 400, 400004, "ArgumentInvalid")
	wantError(t, e.do("PATCH", "/twins/d", `{"tags":"`+strings.Repeat("x", 130*1024)+`"}`), 413, 413001, "MessageTooLarge")
	wantError(t, e.do("GET", "/twins/ghost", ""), 404, 404001, "DeviceNotFound")
	wantError(t, e.do("GET", "/twins/d/modules/ghost", ""), 404, 404010, "ModuleNotFound")

	r = e.do("PUT", "/twins/d/modules/m", `{"properties":{"desired":{"k":"v"}}}`)
	if r.code != 200 || decode(t, r.body)["moduleId"] != "m" {
		t.Fatalf("replace module twin = %d %s", r.code, r.body)
	}
	e.twins.mu.Lock()
	calls := append([]string(nil), e.twins.calls...)
	e.twins.mu.Unlock()
	want := []string{`d/ {"$version":2,"interval":10}`, `d/m {"$version":2,"k":"v"}`}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("DesiredChanged calls = %q; want %q", calls, want)
	}
	r = e.do("PATCH", "/twins/d", `{"tags":{"only":"tags"}}`)
	e.twins.mu.Lock()
	n := len(e.twins.calls)
	e.twins.mu.Unlock()
	if r.code != 200 || n != 2 {
		t.Errorf("tags-only patch notified the device (%d calls)", n)
	}
}

func TestQueryRoute(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/a", `{}`)
	e.do("PUT", "/devices/online", `{}`)
	r := e.do("POST", "/devices/query?api-version=2021-04-12", `{"query":"SELECT * FROM devices"}`)
	var twins []map[string]any
	if err := json.Unmarshal([]byte(r.body), &twins); err != nil || r.code != 200 || len(twins) != 2 {
		t.Fatalf("query = %d %s", r.code, r.body)
	}
	if twins[1]["connectionState"] != "Connected" || r.header.Get("x-ms-item-type") == "" || r.header.Get("x-ms-continuation") != "" {
		t.Errorf("query twin %v headers %v", twins[1], r.header)
	}
	r = e.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "x-ms-max-item-count", "1")
	json.Unmarshal([]byte(r.body), &twins)
	next := r.header.Get("x-ms-continuation")
	if len(twins) != 1 || twins[0]["deviceId"] != "a" || next == "" {
		t.Fatalf("max-item-count 1 gave %d twins, continuation %q", len(twins), next)
	}
	r = e.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "x-ms-max-item-count", "1", "x-ms-continuation", next)
	json.Unmarshal([]byte(r.body), &twins)
	if len(twins) != 1 || twins[0]["deviceId"] != "online" || r.header.Get("x-ms-continuation") != "" {
		t.Errorf("second page gave %v, continuation %q", twins, r.header.Get("x-ms-continuation"))
	}
	wantError(t, e.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "x-ms-continuation", "%%%"), 400, 400004, "ArgumentInvalid")
	wantError(t, e.do("POST", "/devices/query", `{"query":"DROP TABLE"}`), 400, 400004, "ArgumentInvalid")
	// A device named "query" is still a device for GET.
	e.do("PUT", "/devices/query", `{}`)
	if r := e.do("GET", "/devices/query", ""); r.code != 200 {
		t.Errorf("GET /devices/query = %d", r.code)
	}
}

func TestPurgeCommands(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	e.st.Enqueue("d", "", &registry.C2DMessage{})
	e.st.Enqueue("d", "", &registry.C2DMessage{})
	r := e.do("DELETE", "/devices/d/commands", "")
	if r.code != 200 || r.body != `{"deviceId":"d","moduleId":null,"totalMessagesPurged":2}` {
		t.Fatalf("purge = %d %s", r.code, r.body)
	}
	wantError(t, e.do("DELETE", "/devices/ghost/commands", ""), 404, 404001, "DeviceNotFound")
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", 404, ""},
		{"GET", "/nothing", 404, ""},
		{"GET", "/devices/a/b", 404, ""},
		{"GET", "/devices//modules", 404, ""},
		{"POST", "/devices/a", 405, "GET, PUT, DELETE"},
		{"GET", "/twins/a/methods", 405, "POST"},
		{"DELETE", "/twins/a", 405, "GET, PUT, PATCH"},
		{"PUT", "/statistics/devices", 405, "GET"},
	}
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, "")
		if r.code != tt.status || r.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d Allow %q; want %d %q", tt.method, tt.path, r.code, r.header.Get("Allow"), tt.status, tt.allow)
		}
		if n, _ := nodeParse(r.body); n == "" {
			t.Errorf("%s %s: body %s not parseable", tt.method, tt.path, r.body)
		}
	}
	// Trailing slash and case of fixed segments are tolerated.
	e.do("PUT", "/devices/a", `{}`)
	if r := e.do("GET", "/Devices/a/", ""); r.code != 200 {
		t.Errorf("GET /Devices/a/ = %d", r.code)
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/devices/d", `{}`)
	other := strings.Replace(e.as("service"), "skn=service", "skn=registryRead", 1)
	tests := []struct {
		name, method, path, body, token string
		ok                              bool
	}{
		{"no header", "GET", "/devices/d", "", "", false},
		{"garbage", "GET", "/devices/d", "", "Bearer abc", false},
		{"signature for another policy", "GET", "/devices/d", "", other, false},
		{"registryRead reads devices", "GET", "/devices/d", "", e.as("registryRead"), true},
		{"registryRead cannot create", "PUT", "/devices/x", `{}`, e.as("registryRead"), false},
		{"registryReadWrite creates", "PUT", "/devices/x", `{}`, e.as("registryReadWrite"), true},
		{"service cannot read registry", "GET", "/devices", "", e.as("service"), false},
		{"service reads twins", "GET", "/twins/d", "", e.as("service"), true},
		{"service patches twins", "PATCH", "/twins/d", `{"tags":{"a":1}}`, e.as("service"), true},
		{"registryRead reads twins", "GET", "/twins/d", "", e.as("registryRead"), true},
		{"registryRead cannot patch twins", "PATCH", "/twins/d", `{}`, e.as("registryRead"), false},
		{"service invokes methods", "POST", "/twins/d/methods", `{"methodName":"m"}`, e.as("service"), true},
		{"registryReadWrite cannot invoke", "POST", "/twins/d/methods", `{"methodName":"m"}`, e.as("registryReadWrite"), false},
		{"service purges", "DELETE", "/devices/d/commands", "", e.as("service"), true},
		{"registryReadWrite cannot purge", "DELETE", "/devices/d/commands", "", e.as("registryReadWrite"), false},
		{"device policy gets nothing", "GET", "/twins/d", "", e.as("device"), false},
		{"registryRead reads statistics", "GET", "/statistics/devices", "", e.as("registryRead"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, "Authorization", tt.token)
			if tt.ok {
				if r.code >= 300 {
					t.Fatalf("= %d %s; want success", r.code, r.body)
				}
				return
			}
			wantError(t, r, http.StatusUnauthorized, 401002, "IotHubUnauthorizedAccess")
			for _, tok := range e.tokens {
				sig := tok[strings.Index(tok, "sig=")+4:]
				sig = sig[:strings.Index(sig, "&")]
				if strings.Contains(r.body, sig) {
					t.Fatalf("error body leaks a signature")
				}
			}
		})
	}
}
