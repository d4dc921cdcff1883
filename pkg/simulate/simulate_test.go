package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
)

func TestQuickstartBodyRangesAndAlert(t *testing.T) {
	for range 2000 {
		body, alert := QuickstartBody()
		var v struct {
			Temperature *float64 `json:"temperature"`
			Humidity    *float64 `json:"humidity"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Temperature == nil || v.Humidity == nil {
			t.Fatalf("QuickstartBody() = %s: %v", body, err)
		}
		if *v.Temperature < 20 || *v.Temperature >= 35 || *v.Humidity < 60 || *v.Humidity >= 80 {
			t.Fatalf("QuickstartBody() = %s; out of range", body)
		}
		if want := map[bool]string{true: "true", false: "false"}[*v.Temperature > 30]; alert != want {
			t.Fatalf("alert %q for %s; want %q", alert, body, want)
		}
		if !strings.HasPrefix(string(body), `{"temperature": `) || !strings.Contains(string(body), `,"humidity": `) {
			t.Fatalf("QuickstartBody() = %s; want the quickstart's shape", body)
		}
	}
}

func TestQuickstartDeviceMessagesAndMethods(t *testing.T) {
	s := newSink()
	f, conns := fakeFleet(t, &Options{Device: device.Options{DeviceID: "MyPythonDevice"}, Sink: s.put, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := f.Run(ctx); done <- err }()
	c := recv(t, conns, "device")

	m := recv(t, c.sent, "first message")
	if m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || len(m.Properties) != 1 {
		t.Errorf("message %+v; want ct application/json, ce utf-8 and one property", m)
	}
	var v struct{ Temperature float64 }
	if err := json.Unmarshal(m.Body, &v); err != nil {
		t.Fatal(err)
	}
	if (v.Temperature > 30) != (m.Properties["temperatureAlert"] == "true") {
		t.Errorf("temperatureAlert %q for %s", m.Properties["temperatureAlert"], m.Body)
	}
	if e := s.next(t, EventSent); e.DeviceID != "MyPythonDevice" || e.Seq != 1 || string(e.Body) != string(m.Body) {
		t.Errorf("sent event %+v", e)
	}

	tests := []struct {
		name, payload string
		status        int
		response      string
	}{
		{"SetTelemetryInterval", `"abc"`, 400, `{"Response": "Invalid parameter"}`},
		{"SetTelemetryInterval", `{"interval":5}`, 400, `{"Response": "Invalid parameter"}`},
		{"SetTelemetryInterval", `0`, 400, `{"Response": "Invalid parameter"}`},
		{"SetTelemetryInterval", `-3`, 400, `{"Response": "Invalid parameter"}`},
		{"SetTelemetryInterval", ``, 400, `{"Response": "Invalid parameter"}`},
		{"Reboot", `{}`, 404, `{"Response": "Direct method Reboot not defined"}`},
		{"SetTelemetryInterval", `3600`, 200, `{"Response": "Executed direct method SetTelemetryInterval"}`},
		// The quickstart back end sends the JSON string "10"; a short
		// one here, so the hour-long wait is cut short.
		{"SetTelemetryInterval", `"0.001"`, 200, `{"Response": "Executed direct method SetTelemetryInterval"}`},
	}
	for _, tt := range tests {
		res := c.call(tt.name, tt.payload)
		if res.Status != tt.status || string(res.Payload) != tt.response {
			t.Errorf("%s(%s) = %d %s; want %d %s", tt.name, tt.payload, res.Status, res.Payload, tt.status, tt.response)
		}
		if e := s.next(t, EventMethod); e.Method != tt.name || e.Status != tt.status {
			t.Errorf("method event %+v", e)
		}
	}
	// Without the wake-up the device would wait an hour.
	recv(t, c.sent, "message after SetTelemetryInterval")

	cancel()
	if err := recv(t, done, "Run"); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want context.Canceled", err)
	}
	sum := s.next(t, EventSummary)
	if sum.Stats == nil || sum.Stats.Methods != int64(len(tests)) || sum.Stats.Acked < 2 || sum.Stats.Connected != 0 {
		t.Errorf("summary %+v", sum.Stats)
	}
	select {
	case <-c.closed:
	default:
		t.Error("the device was not closed")
	}
}

func TestParseInterval(t *testing.T) {
	for in, want := range map[string]time.Duration{`10`: 10 * time.Second, `"10"`: 10 * time.Second, ` " 2.5 " `: 2500 * time.Millisecond, `1e1`: 10 * time.Second} {
		if got, ok := ParseInterval([]byte(in)); !ok || got != want {
			t.Errorf("ParseInterval(%s) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{``, `null`, `true`, `"x"`, `[1]`, `0`, `"-1"`, `1e300`, `"NaN"`} {
		if got, ok := ParseInterval([]byte(in)); ok {
			t.Errorf("ParseInterval(%s) = %v; want invalid", in, got)
		}
	}
}

func TestFixedMethodRepliesAndProperties(t *testing.T) {
	rep, err := ParseMethodReply(`reboot=202:{"ok":true}`)
	if err != nil {
		t.Fatal(err)
	}
	over, _ := ParseMethodReply(`SetTelemetryInterval=500`)
	tmpl, err := ParseTemplate(`{"n":{{counter}}}`)
	if err != nil {
		t.Fatal(err)
	}
	f, conns := fakeFleet(t, &Options{Device: device.Options{DeviceID: "d"}, Methods: []MethodReply{rep, over},
		Template: tmpl, Properties: map[string]string{"site": "lab"}, ContentType: "text/plain", ContentEncoding: "-", Count: 3})
	done := make(chan Stats, 1)
	go func() { s, _ := f.Run(context.Background()); done <- s }()
	c := recv(t, conns, "device")
	for i := 1; i <= 3; i++ {
		m := recv(t, c.sent, "message")
		if want := `{"n":` + string(rune('0'+i)) + `}`; string(m.Body) != want || m.Properties["site"] != "lab" || len(m.Properties) != 1 ||
			m.ContentType != "text/plain" || m.ContentEncoding != "" {
			t.Errorf("message %d = %s %+v; want %s with site=lab, ct text/plain, no ce", i, m.Body, m, want)
		}
	}
	if s := recv(t, done, "Run"); s.Acked != 3 || s.Sent != 3 {
		t.Errorf("stats %+v; want 3 sent and acked", s)
	}
	if res := c.call("reboot", ""); res.Status != 202 || string(res.Payload) != `{"ok":true}` {
		t.Errorf("reboot = %d %s", res.Status, res.Payload)
	}
	if res := c.call("SetTelemetryInterval", "10"); res.Status != 500 {
		t.Errorf("overridden SetTelemetryInterval = %d; want 500", res.Status)
	}
}

func TestParseMethodReply(t *testing.T) {
	good := map[string]MethodReply{
		"reboot=200":                   {Name: "reboot", Status: 200},
		`reboot=200:{"ok":true}`:       {Name: "reboot", Status: 200, Payload: json.RawMessage(`{"ok":true}`)},
		`fail=500:"broken: really"`:    {Name: "fail", Status: 500, Payload: json.RawMessage(`"broken: really"`)},
		`a.b-c=404:null`:               {Name: "a.b-c", Status: 404, Payload: json.RawMessage(`null`)},
		`x=201:{"url":"http://h:1/p"}`: {Name: "x", Status: 201, Payload: json.RawMessage(`{"url":"http://h:1/p"}`)},
	}
	for spec, want := range good {
		got, err := ParseMethodReply(spec)
		if err != nil || got.Name != want.Name || got.Status != want.Status || string(got.Payload) != string(want.Payload) {
			t.Errorf("ParseMethodReply(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, spec := range []string{"", "reboot", "=200", "reboot=", "reboot=ok", "reboot=99", "reboot=1000", "reboot=200:{bad", "reboot=200:text", "a/b=200"} {
		var se *SpecError
		if _, err := ParseMethodReply(spec); !errors.As(err, &se) {
			t.Errorf("ParseMethodReply(%q) = %v; want a *SpecError", spec, err)
		}
	}
}

func TestTemplates(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	tests := []struct {
		text string
		want string // regexp
	}{
		{`{"n":{{counter}},"id":"{{deviceId}}"}`, `^\{"n":7,"id":"sim-00002"\}$`},
		{`{{now}} {{unix}}`, `^2025-01-02T03:04:05\.678Z 1735787045$`},
		{`{{randInt 1 3}}`, `^[123]$`},
		{`{{randInt 5 5}}`, `^5$`},
		// printf rounds, so a value just under 35 prints as 35.00.
		{`{{randFloat 20 35 | printf "%.2f"}}`, `^(2\d|3[0-4])\.\d\d$|^35\.00$`},
		{`{{uuid}}`, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{`{{if gt counter 5}}big{{else}}small{{end}}`, `^big$`},
		{`{{printf "%s-%05d" deviceId counter}}`, `^sim-00002-00007$`},
		{`{{with $c := counter}}{{$c}}{{end}}`, `^7$`},
		{`plain text`, `^plain text$`},
	}
	for _, tt := range tests {
		tp, err := ParseTemplate(tt.text)
		if err != nil {
			t.Fatalf("ParseTemplate(%q) = %v", tt.text, err)
		}
		for range 20 {
			got, err := tp.Execute("sim-00002", 7, now)
			if err != nil || !regexp.MustCompile(tt.want).Match(got) {
				t.Fatalf("Execute(%q) = %q, %v; want %s", tt.text, got, err, tt.want)
			}
		}
	}
	f, err := ParseTemplate(`{{randFloat 20 35}}`)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		b, _ := f.Execute("d", 1, now)
		var x float64
		if err := json.Unmarshal(b, &x); err != nil || x < 20 || x >= 35 {
			t.Fatalf("randFloat 20 35 = %s", b)
		}
	}
	for _, bad := range []string{`{{counter`, `{{nosuch}}`, `{{randInt 10 1}}`, `{{randInt "a" 2}}`, `{{.Missing}}`, `{{counter 3}}`} {
		var te *TemplateError
		if _, err := ParseTemplate(bad); !errors.As(err, &te) {
			t.Errorf("ParseTemplate(%q) = %v; want a *TemplateError", bad, err)
		}
	}
}

func TestFleetIDs(t *testing.T) {
	if got := FleetIDs("sim-", 3); !slices.Equal(got, []string{"sim-00001", "sim-00002", "sim-00003"}) {
		t.Errorf("FleetIDs(sim-, 3) = %q", got)
	}
	if got := FleetIDs("d", 123456); got[0] != "d000001" || got[123455] != "d123456" {
		t.Errorf("FleetIDs(d, 123456) = %q ... %q", got[0], got[123455])
	}
}

func TestReadKeys(t *testing.T) {
	lines := "# fleet\nsim-00001 c2VjcmV0\n\n  sim-00002\tc2VjcmV0MgoK  \n"
	k, err := ReadKeys(strings.NewReader(lines))
	if err != nil || len(k) != 2 || k["sim-00002"] != "c2VjcmV0MgoK" {
		t.Fatalf("ReadKeys(lines) = %v, %v", k, err)
	}
	if ids := k.IDs(); !slices.Equal(ids, []string{"sim-00001", "sim-00002"}) {
		t.Errorf("IDs() = %q", ids)
	}
	j, err := ReadKeys(strings.NewReader(` {"a":"c2VjcmV0","b":"c2VjcmV0"}`))
	if err != nil || len(j) != 2 {
		t.Fatalf("ReadKeys(json) = %v, %v", j, err)
	}
	if key, err := j.EnsureDevice(context.Background(), "a"); err != nil || key != "c2VjcmV0" {
		t.Errorf("EnsureDevice(a) = %q, %v", key, err)
	}
	if _, err := j.EnsureDevice(context.Background(), "zz"); !errors.Is(err, ErrNoKey) {
		t.Errorf("EnsureDevice(zz) = %v; want ErrNoKey", err)
	}
	for _, bad := range []string{"", "# only a comment\n", "a\n", "a b c\n", "a not*base64\n", "a c2VjcmV0\na c2VjcmV0\n", `{"a":1}`, `{"a":"not*base64"}`} {
		var se *SpecError
		_, err := ReadKeys(strings.NewReader(bad))
		if !errors.As(err, &se) {
			t.Errorf("ReadKeys(%q) = %v; want a *SpecError", bad, err)
		} else if strings.Contains(err.Error(), "not*base64") {
			t.Errorf("error %q repeats the key", err)
		}
	}
}

func TestFleetUsesRegistryAndCounts(t *testing.T) {
	ids := FleetIDs("sim-", 3)
	keys := KeyMap{}
	for _, id := range ids {
		keys[id] = "c2VjcmV0"
	}
	s := newSink()
	f, conns := fakeFleet(t, &Options{Device: device.Options{HostName: "hub.example.net"}, DeviceIDs: ids, Keys: keys,
		Count: 2, Interval: time.Millisecond, Sink: s.put, ConnectRate: 1000, Rate: 1000,
		Reported: json.RawMessage(`{"model":"sim"}`)})
	st, err := f.Run(context.Background())
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st.Devices != 3 || st.Sent != 6 || st.Acked != 6 || st.Errors != 0 || st.Connected != 0 {
		t.Errorf("stats %+v; want 3 devices, 6 sent and acked, none connected at the end", st)
	}
	var got []string
	for range 3 {
		c := recv(t, conns, "device")
		if c.opts.HostName != "hub.example.net" || c.opts.SharedAccessKey != "c2VjcmV0" {
			t.Errorf("device options %+v", c.opts)
		}
		if r := recv(t, c.reported, "initial reported"); string(r) != `{"model":"sim"}` {
			t.Errorf("reported %s", r)
		}
		got = append(got, c.opts.DeviceID)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids) {
		t.Errorf("devices %q; want %q", got, ids)
	}
	if e := s.next(t, EventSummary); e.Stats.Acked != 6 {
		t.Errorf("summary %+v", e.Stats)
	}

	_, err = New(&Options{Device: device.Options{HostName: "h"}, DeviceIDs: ids})
	if err == nil {
		t.Error("New(fleet without keys) = nil error")
	}
	f2, _ := fakeFleet(t, &Options{Device: device.Options{HostName: "h"}, DeviceIDs: []string{"missing"}, Keys: keys})
	if _, err := f2.Run(context.Background()); !errors.Is(err, ErrNoKey) {
		t.Errorf("Run(unknown device) = %v; want ErrNoKey", err)
	}
}

func TestDesiredChangesAreEchoed(t *testing.T) {
	s := newSink()
	f, conns := fakeFleet(t, &Options{Device: device.Options{DeviceID: "d"}, Interval: time.Hour, Sink: s.put})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	c := recv(t, conns, "device")
	s.next(t, EventConnected)
	c.mu.Lock()
	h := c.desired
	c.mu.Unlock()
	h(json.RawMessage(`{"fan":true,"$version":4}`), 4)
	if r := recv(t, c.reported, "echo"); string(r) != `{"fan":true}` {
		t.Errorf("echoed %s; want {\"fan\":true}", r)
	}
	if e := s.next(t, EventTwin); e.Version != 4 || e.ReportedVersion != 42 || string(e.Reported) != `{"fan":true}` {
		t.Errorf("twin event %+v", e)
	}
	c.mu.Lock()
	c2d := c.c2d
	c.mu.Unlock()
	c2d(&messageWithProps)
	if e := s.next(t, EventC2D); string(e.Body) != `"hello"` || e.Properties["color"] != "red" || e.MessageID != "m1" {
		t.Errorf("c2d event %+v", e)
	}
}

func TestSingleDeviceRefusedIsReturned(t *testing.T) {
	f, err := New(&Options{Device: device.Options{DeviceID: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	f.dial = func(o *device.Options) (Conn, error) {
		c := newFake(o)
		c.connectErr = &device.ConnectError{Code: 5, Host: "h:8883"}
		return c, nil
	}
	if _, err := f.Run(context.Background()); !errors.Is(err, device.ErrUnauthorized) {
		t.Errorf("Run = %v; want ErrUnauthorized", err)
	}
}
