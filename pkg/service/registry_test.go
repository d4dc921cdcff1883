package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestRegistryRequests(t *testing.T) {
	tests := []struct {
		name        string
		call        func(*Client) error
		wantMethod  string
		wantPath    string
		wantIfMatch string
		wantBody    string // compared as JSON; "" means no body
		wantQuery   string
	}{
		{"create device", func(c *Client) error {
			_, err := c.CreateDevice(ctxT(t), &Device{DeviceID: "dev1", Status: "enabled", Authentication: &Authentication{Type: "sas", SymmetricKey: &SymmetricKey{}}})
			return err
		}, "PUT", "/devices/dev1", "", `{"deviceId":"dev1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`, ""},
		{"update device unconditionally", func(c *Client) error { _, err := c.UpdateDevice(ctxT(t), &Device{DeviceID: "dev1"}, ""); return err },
			"PUT", "/devices/dev1", "*", `{"deviceId":"dev1"}`, ""},
		{"update device with an etag", func(c *Client) error {
			_, err := c.UpdateDevice(ctxT(t), &Device{DeviceID: "dev1"}, "AAAA")
			return err
		},
			"PUT", "/devices/dev1", `"AAAA"`, `{"deviceId":"dev1"}`, ""},
		{"get device", func(c *Client) error { _, err := c.GetDevice(ctxT(t), "dev/1"); return err }, "GET", "/devices/dev%2F1", "", "", ""},
		{"list devices", func(c *Client) error { _, err := c.ListDevices(ctxT(t), 0); return err }, "GET", "/devices", "", "", ""},
		{"list top devices", func(c *Client) error { _, err := c.ListDevices(ctxT(t), 5); return err }, "GET", "/devices", "", "", "5"},
		{"delete device", func(c *Client) error { return c.DeleteDevice(ctxT(t), "dev1", "") }, "DELETE", "/devices/dev1", "*", "", ""},
		{"delete device with an etag", func(c *Client) error { return c.DeleteDevice(ctxT(t), "dev1", "MQ==") }, "DELETE", "/devices/dev1", `"MQ=="`, "", ""},
		{"delete device with a quoted etag", func(c *Client) error { return c.DeleteDevice(ctxT(t), "dev1", `"MQ=="`) }, "DELETE", "/devices/dev1", `"MQ=="`, "", ""},
		{"create module", func(c *Client) error {
			_, err := c.CreateModule(ctxT(t), &Module{DeviceID: "dev1", ModuleID: "mod1"})
			return err
		}, "PUT", "/devices/dev1/modules/mod1", "", `{"deviceId":"dev1","moduleId":"mod1"}`, ""},
		{"get module", func(c *Client) error { _, err := c.GetModule(ctxT(t), "dev1", "mod1"); return err }, "GET", "/devices/dev1/modules/mod1", "", "", ""},
		{"list modules", func(c *Client) error { _, err := c.ListModules(ctxT(t), "dev1"); return err }, "GET", "/devices/dev1/modules", "", "", ""},
		{"delete module", func(c *Client) error { return c.DeleteModule(ctxT(t), "dev1", "mod1", "") }, "DELETE", "/devices/dev1/modules/mod1", "*", "", ""},
		{"get twin", func(c *Client) error { _, err := c.GetTwin(ctxT(t), Target{DeviceID: "dev1"}); return err }, "GET", "/twins/dev1", "", "", ""},
		{"get module twin", func(c *Client) error {
			_, err := c.GetTwin(ctxT(t), Target{DeviceID: "dev1", ModuleID: "mod1"})
			return err
		}, "GET", "/twins/dev1/modules/mod1", "", "", ""},
		{"patch twin", func(c *Client) error {
			_, err := c.UpdateTwin(ctxT(t), Target{DeviceID: "dev1"}, NewTwinPatch(json.RawMessage(`{"site":"lab"}`), json.RawMessage(`{"interval":5,"old":null}`)), "")
			return err
		}, "PATCH", "/twins/dev1", "", `{"tags":{"site":"lab"},"properties":{"desired":{"interval":5,"old":null}}}`, ""},
		{"patch module twin with an etag", func(c *Client) error {
			_, err := c.UpdateTwin(ctxT(t), Target{DeviceID: "dev1", ModuleID: "mod1"}, NewTwinPatch(nil, json.RawMessage(`{"x":1}`)), "AAAAAAAAAAE=")
			return err
		}, "PATCH", "/twins/dev1/modules/mod1", `"AAAAAAAAAAE="`, `{"properties":{"desired":{"x":1}}}`, ""},
		{"device statistics", func(c *Client) error { _, err := c.DeviceStatistics(ctxT(t)); return err }, "GET", "/statistics/devices", "", "", ""},
		{"service statistics", func(c *Client) error { _, err := c.ServiceStatistics(ctxT(t)); return err }, "GET", "/statistics/service", "", "", ""},
		{"query", func(c *Client) error { _, err := c.Query(ctxT(t), "SELECT * FROM devices", 0); return err }, "POST", "/devices/query", "", `{"query":"SELECT * FROM devices"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHubServer(t, nil)
			if err := tt.call(s.client(t, nil)); err != nil {
				t.Fatal(err)
			}
			r := s.last(t)
			if r.Method != tt.wantMethod || r.Path != tt.wantPath || r.Header.Get("If-Match") != tt.wantIfMatch {
				t.Errorf("request %s %s If-Match %q; want %s %s If-Match %q", r.Method, r.Path, r.Header.Get("If-Match"), tt.wantMethod, tt.wantPath, tt.wantIfMatch)
			}
			if got := r.Query["top"]; (tt.wantQuery == "") != (len(got) == 0) || (len(got) > 0 && got[0] != tt.wantQuery) {
				t.Errorf("top = %v; want %q", got, tt.wantQuery)
			}
			if tt.wantBody == "" {
				if len(r.Body) != 0 {
					t.Errorf("body %s; want none", r.Body)
				}
				return
			}
			if !sameJSONFields(t, r.Body, tt.wantBody) {
				t.Errorf("body %s; want (at least) %s", r.Body, tt.wantBody)
			}
		})
	}
}

// sameJSONFields reports whether every member of want is in got with
// the same value (got may have more members, such as zero fields).
func sameJSONFields(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	return contains(g, w)
}

func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if gv, ok := g[k]; !ok || !contains(gv, v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	return string(gb) == string(wb)
}

func TestRegistryAnswersDecoded(t *testing.T) {
	s := newHubServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch r.URL.Path {
		case "/devices":
			answer(w, 200, "", `[{"deviceId":"a","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cGs=","secondaryKey":"c2s="}}},{"deviceId":"b","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB"}}}]`)
		case "/twins/a":
			answer(w, 200, "", `{"deviceId":"a","etag":"AAAAAAAAAAE=","version":3,"tags":{"site":"lab"},"properties":{"desired":{"x":1,"$version":2},"reported":{"$version":1}}}`)
		case "/statistics/devices":
			answer(w, 200, "", `{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}`)
		case "/statistics/service":
			answer(w, 200, "", `{"connectedDeviceCount":7}`)
		case "/devices/query":
			answer(w, 200, "", `[{"deviceId":"a"},{"deviceId":"b"}]`)
		default:
			answer(w, 404, "", "")
		}
	})
	c := s.client(t, nil)
	ds, err := c.ListDevices(ctxT(t), 0)
	if err != nil || len(ds) != 2 || ds[0].Authentication.Keys().PrimaryKey != "cGs=" || ds[1].Authentication.Keys() != nil ||
		*ds[1].Authentication.X509Thumbprint.PrimaryThumbprint != "AB" {
		t.Errorf("ListDevices = %+v, %v", ds, err)
	}
	tw, err := c.GetTwin(ctxT(t), Target{DeviceID: "a"})
	if err != nil || tw.Etag != "AAAAAAAAAAE=" || tw.Version != 3 || string(tw.Tags) != `{"site":"lab"}` || string(tw.Properties.Desired) != `{"x":1,"$version":2}` {
		t.Errorf("GetTwin = %+v, %v", tw, err)
	}
	st, err := c.DeviceStatistics(ctxT(t))
	if err != nil || *st != (DeviceStats{3, 2, 1}) {
		t.Errorf("DeviceStatistics = %+v, %v", st, err)
	}
	ss, err := c.ServiceStatistics(ctxT(t))
	if err != nil || ss.Connected != 7 {
		t.Errorf("ServiceStatistics = %+v, %v", ss, err)
	}
	q, err := c.Query(ctxT(t), "SELECT * FROM devices", 0)
	if err != nil || len(q) != 2 || string(q[1]) != `{"deviceId":"b"}` {
		t.Errorf("Query = %s, %v", q, err)
	}
}

// TestQueryFollowsContinuation pages through a hub that answers at most
// two items a page, as IoT Hub pages with x-ms-continuation.
func TestQueryFollowsContinuation(t *testing.T) {
	const total = 5
	var asked []string
	s := newHubServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		start := 0
		if c := r.Header.Get("x-ms-continuation"); c != "" {
			start, _ = strconv.Atoi(c)
		}
		asked = append(asked, r.Header.Get("x-ms-max-item-count")+"@"+strconv.Itoa(start))
		size, _ := strconv.Atoi(r.Header.Get("x-ms-max-item-count"))
		size = min(size, 2)
		var items []string
		for i := start; i < min(start+size, total); i++ {
			items = append(items, fmt.Sprintf(`{"deviceId":"d%d"}`, i))
		}
		if start+size < total {
			w.Header().Set("x-ms-continuation", strconv.Itoa(start+size))
		}
		answer(w, 200, "", "["+strings.Join(items, ",")+"]")
	})
	c := s.client(t, nil)
	for _, tt := range []struct {
		top      int
		want     int
		requests string
	}{
		{0, 5, "[1000@0 1000@2 1000@4]"},
		{3, 3, "[3@0 1@2]"},
		{2, 2, "[2@0]"},
	} {
		asked = nil
		items, err := c.Query(ctxT(t), "SELECT * FROM devices", tt.top)
		if err != nil || len(items) != tt.want {
			t.Errorf("Query(top %d) = %d items, %v; want %d", tt.top, len(items), err, tt.want)
		}
		for i, it := range items {
			if want := fmt.Sprintf(`{"deviceId":"d%d"}`, i); string(it) != want {
				t.Errorf("Query(top %d) item %d = %s; want %s", tt.top, i, it, want)
			}
		}
		if fmt.Sprint(asked) != tt.requests {
			t.Errorf("Query(top %d) asked %v; want %s", tt.top, asked, tt.requests)
		}
	}
}
