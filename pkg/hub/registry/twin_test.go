package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

func desired(s string) *iothub.TwinUpdate {
	return &iothub.TwinUpdate{Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(s)}}
}

func section(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("section %s: %v", raw, err)
	}
	return m
}

func TestNewTwin(t *testing.T) {
	s := newStore(t, nil)
	d := mustCreate(t, s, "d1")
	tw, err := s.Twin("d1", "")
	if err != nil {
		t.Fatal(err)
	}
	if tw.Version != 1 || tw.Etag != "AAAAAAAAAAE=" || tw.DeviceEtag != d.Etag || tw.Status != iothub.StatusEnabled || tw.AuthenticationType != iothub.AuthSAS {
		t.Errorf("twin = %+v", tw)
	}
	b, _ := json.Marshal(tw)
	for _, want := range []string{`"tags":{}`, `"$version":1`, `"statusUpdateTime":"0001-01-01T00:00:00Z"`, `"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("twin JSON %s lacks %s", b, want)
		}
	}
	_, err = s.Twin("nope", "")
	wantCode(t, "Twin(nope)", err, ErrDeviceNotFound)
	_, err = s.Twin("d1", "nope")
	wantCode(t, "Twin(d1, nope)", err, ErrModuleNotFound)
}

func TestPatchTwin(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	mustCreate(t, s, "d1")

	clk.Add(time.Second)
	tw, delta, err := s.PatchTwin("d1", "", &iothub.TwinUpdate{
		Tags:       json.RawMessage(`{"loc":{"region":"eu","site":"x"}}`),
		Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"interval":10,"cfg":{"a":1,"b":[1,2]},"$version":99}`)},
	}, `"AAAAAAAAAAE="`)
	if err != nil {
		t.Fatal(err)
	}
	if tw.Version != 2 || delta == nil || delta.Version != 2 {
		t.Fatalf("version %d delta %+v", tw.Version, delta)
	}
	if string(delta.Patch) != `{"$version":2,"cfg":{"a":1,"b":[1,2]},"interval":10}` {
		t.Errorf("delta = %s", delta.Patch)
	}
	des := section(t, tw.Properties.Desired)
	meta := des["$metadata"].(map[string]any)
	if meta["$lastUpdated"] != "2024-05-01T10:00:01.000Z" || meta["$lastUpdatedVersion"] != 2.0 {
		t.Errorf("desired $metadata = %v", meta)
	}
	leaf := meta["cfg"].(map[string]any)["a"].(map[string]any)
	if leaf["$lastUpdated"] != "2024-05-01T10:00:01.000Z" || leaf["$lastUpdatedVersion"] != 2.0 {
		t.Errorf("leaf metadata = %v", leaf)
	}

	// null deletes; objects merge; untouched leaves keep their metadata.
	clk.Add(time.Second)
	tw, delta, err = s.PatchTwin("d1", "", &iothub.TwinUpdate{
		Tags:       json.RawMessage(`{"loc":{"site":null}}`),
		Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"cfg":{"a":null,"c":"x"}}`)},
	}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if delta == nil || string(delta.Patch) != `{"$version":3,"cfg":{"a":null,"c":"x"}}` {
		t.Errorf("delta = %+v; want the patch as sent with $version 3", delta)
	}
	if string(tw.Tags) != `{"loc":{"region":"eu"}}` {
		t.Errorf("tags = %s", tw.Tags)
	}
	des = section(t, tw.Properties.Desired)
	if fmt.Sprint(des["cfg"]) != "map[b:[1 2] c:x]" || des["interval"] != 10.0 || des["$version"] != 3.0 {
		t.Errorf("desired = %v", des)
	}
	meta = des["$metadata"].(map[string]any)
	if meta["interval"].(map[string]any)["$lastUpdatedVersion"] != 2.0 || meta["cfg"].(map[string]any)["$lastUpdatedVersion"] != 3.0 {
		t.Errorf("metadata = %v", meta)
	}

	// tags only: no delta, desired $version unchanged.
	tw, delta, err = s.PatchTwin("d1", "", &iothub.TwinUpdate{Tags: json.RawMessage(`{"x":true}`)}, tw.Etag)
	if err != nil || delta != nil || tw.Version != 4 || section(t, tw.Properties.Desired)["$version"] != 3.0 {
		t.Errorf("tags-only patch: %v %+v %d", err, delta, tw.Version)
	}
	_, _, err = s.PatchTwin("d1", "", &iothub.TwinUpdate{Tags: json.RawMessage(`{"x":1}`)}, `"AAAAAAAAAAE="`)
	wantCode(t, "PatchTwin(stale etag)", err, ErrPreconditionFailed)
	_, _, err = s.PatchTwin("nope", "", desired(`{}`), "")
	wantCode(t, "PatchTwin(nope)", err, ErrDeviceNotFound)
}

func TestPatchTwinLimits(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 11) + "1" + strings.Repeat("}", 11)
	okDeep := strings.Repeat(`{"a":`, 10) + "1" + strings.Repeat("}", 10)
	tests := []struct {
		name    string
		desired string
		tags    string
		wantErr bool
	}{
		{"ok", `{"a":1}`, "", false},
		{"depth 10", okDeep, "", false},
		{"depth 11", deep, "", true},
		{"dot in key", `{"a.b":1}`, "", true},
		{"dollar in key", `{"$a":1}`, "", true},
		{"space in key", `{"a b":1}`, "", true},
		{"control in key", `{"a\u0001":1}`, "", true},
		{"C1 control in key", `{"a\u0085":1}`, "", true},
		{"empty key", `{"":1}`, "", true},
		{"long key", `{"` + strings.Repeat("k", 1025) + `":1}`, "", true},
		{"1 KB key", `{"` + strings.Repeat("k", 1024) + `":1}`, "", false},
		{"long string", `{"a":"` + strings.Repeat("s", 4097) + `"}`, "", true},
		{"4 KB string", `{"a":"` + strings.Repeat("s", 4096) + `"}`, "", false},
		{"big integer", `{"a":4503599627370496}`, "", true},
		{"big float ok", `{"a":1e300}`, "", false},
		{"desired over 32 KB", bigDoc(9, 4000), "", true},
		{"tags over 8 KB", "", bigDoc(3, 4000), true},
		{"not an object", `[1]`, "", true},
		{"not JSON", `{`, "", true},
		{"trailing data", `{} {}`, "", true},
		{"bad key in array object", `{"a":[{"b.c":1}]}`, "", true},
	}
	s := newStore(t, nil)
	mustCreate(t, s, "d")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &iothub.TwinUpdate{}
			if tt.desired != "" {
				u.Properties = &iothub.TwinUpdateProperties{Desired: json.RawMessage(tt.desired)}
			}
			if tt.tags != "" {
				u.Tags = json.RawMessage(tt.tags)
			}
			_, _, err := s.ReplaceTwin("d", "", u, "")
			if tt.wantErr {
				wantCode(t, "ReplaceTwin", err, ErrArgumentInvalid)
			} else if err != nil {
				t.Errorf("ReplaceTwin = %v", err)
			}
		})
	}
}

func bigDoc(n, each int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"k%d":"%s"`, i, strings.Repeat("v", each)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestReplaceTwin(t *testing.T) {
	s := newStore(t, nil)
	mustCreate(t, s, "d")
	s.PatchTwin("d", "", &iothub.TwinUpdate{Tags: json.RawMessage(`{"old":1}`), Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"a":1,"b":2}`)}}, "")
	tw, delta, err := s.ReplaceTwin("d", "", &iothub.TwinUpdate{Tags: json.RawMessage(`{"new":1}`), Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"b":3}`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if string(tw.Tags) != `{"new":1}` {
		t.Errorf("tags = %s", tw.Tags)
	}
	if string(delta.Patch) != `{"$version":3,"a":null,"b":3}` {
		t.Errorf("delta = %s", delta.Patch)
	}
	des := section(t, tw.Properties.Desired)
	if _, ok := des["a"]; ok || des["b"] != 3.0 {
		t.Errorf("desired = %v", des)
	}
}

func TestPatchReported(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	mustCreate(t, s, "d")
	s.CreateModule(&iothub.Module{DeviceID: "d", ModuleID: "m"})
	v, err := s.PatchReported("d", "", json.RawMessage(`{"fw":"1.0","temp":{"c":21.5}}`))
	if err != nil || v != 2 {
		t.Fatalf("PatchReported = %d, %v; want 2", v, err)
	}
	v, err = s.PatchReported("d", "", json.RawMessage(`{"fw":null}`))
	if err != nil || v != 3 {
		t.Fatalf("PatchReported = %d, %v; want 3", v, err)
	}
	tw, _ := s.Twin("d", "")
	rep := section(t, tw.Properties.Reported)
	if _, ok := rep["fw"]; ok || rep["$version"] != 3.0 || tw.Version != 3 {
		t.Errorf("reported = %v version %d", rep, tw.Version)
	}
	if _, ok := rep["$metadata"].(map[string]any)["$lastUpdatedVersion"]; ok {
		t.Errorf("reported metadata should not carry $lastUpdatedVersion")
	}
	if v, err := s.PatchReported("d", "m", json.RawMessage(`{"x":1}`)); err != nil || v != 2 {
		t.Errorf("module PatchReported = %d, %v", v, err)
	}
	mt, _ := s.Twin("d", "m")
	if mt.ModuleID != "m" || section(t, mt.Properties.Reported)["x"] != 1.0 || mt.Status != "" {
		t.Errorf("module twin = %+v", mt)
	}
	_, err = s.PatchReported("d", "", json.RawMessage(`"x"`))
	wantCode(t, "PatchReported(string)", err, ErrArgumentInvalid)
	_, err = s.PatchReported("d", "", json.RawMessage(bigDoc(9, 4000)))
	wantCode(t, "PatchReported(big)", err, ErrArgumentInvalid)
	_, err = s.PatchReported("x", "", json.RawMessage(`{}`))
	wantCode(t, "PatchReported(nope)", err, ErrDeviceNotFound)
}

func TestQuery(t *testing.T) {
	s := newStore(t, nil)
	for i := range 4 {
		id := fmt.Sprintf("d%d", i)
		mustCreate(t, s, id)
		s.PatchTwin(id, "", &iothub.TwinUpdate{Tags: json.RawMessage(fmt.Sprintf(`{"n":%d,"site":"s%d"}`, i, i%2))}, "")
	}
	s.CreateModule(&iothub.Module{DeviceID: "d0", ModuleID: "m"})
	tests := []struct {
		q       string
		want    int
		wantErr bool
	}{
		{"SELECT * FROM devices", 4, false},
		{"select * from devices where tags.site = 's1'", 2, false},
		{"SELECT * FROM devices WHERE tags.n >= 1 AND tags.site = \"s1\"", 2, false},
		{"SELECT * FROM devices WHERE tags.n > 1 AND tags.site = 's1'", 1, false},
		{"SELECT * FROM devices WHERE deviceId = 'd2'", 1, false},
		{"SELECT * FROM devices WHERE tags.missing = null", 4, false},
		{"SELECT * FROM devices WHERE status != 'enabled'", 0, false},
		{"SELECT * FROM devices.modules", 1, false},
		{"SELECT deviceId FROM devices", 0, true},
		{"SELECT * FROM jobs", 0, true},
		{"SELECT * FROM devices WHERE", 0, true},
		{"SELECT * FROM devices WHERE a ~ 1", 0, true},
		{"SELECT * FROM devices WHERE a = 'x", 0, true},
	}
	for _, tt := range tests {
		got, _, err := s.Query(tt.q, "", 0)
		if tt.wantErr {
			wantCode(t, fmt.Sprintf("Query(%q)", tt.q), err, ErrArgumentInvalid)
			continue
		}
		if err != nil || len(got) != tt.want {
			t.Errorf("Query(%q) = %d twins, %v; want %d", tt.q, len(got), err, tt.want)
		}
	}
}

func TestQueryPages(t *testing.T) {
	s := newStore(t, nil)
	for i := range 7 {
		mustCreate(t, s, fmt.Sprintf("d%d", i))
		s.PatchTwin(fmt.Sprintf("d%d", i), "", &iothub.TwinUpdate{Tags: json.RawMessage(fmt.Sprintf(`{"odd":%t}`, i%2 == 1))}, "")
	}
	// Every page but the last is full and names the next; the pages
	// together hold each matching twin once, in order.
	for _, tt := range []struct {
		q     string
		limit int
		want  []string
	}{
		{"SELECT * FROM devices", 3, []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6"}},
		{"SELECT * FROM devices", 7, []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6"}},
		{"SELECT * FROM devices WHERE tags.odd = true", 2, []string{"d1", "d3", "d5"}},
		{"SELECT * FROM devices WHERE tags.odd = true", 3, []string{"d1", "d3", "d5"}},
	} {
		var got []string
		tok, pages := "", 0
		for {
			page, next, err := s.Query(tt.q, tok, tt.limit)
			if err != nil {
				t.Fatalf("Query(%q, %q, %d) = %v", tt.q, tok, tt.limit, err)
			}
			pages++
			if next != "" && len(page) != tt.limit {
				t.Errorf("Query(%q, limit %d): page %d has %d twins and a continuation", tt.q, tt.limit, pages, len(page))
			}
			for _, tw := range page {
				got = append(got, tw.DeviceID)
			}
			if next == "" {
				break
			}
			tok = next
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Query(%q) in pages of %d = %v; want %v", tt.q, tt.limit, got, tt.want)
		}
		if wantPages := (len(tt.want) + tt.limit - 1) / tt.limit; pages != wantPages {
			t.Errorf("Query(%q) in pages of %d took %d pages; want %d", tt.q, tt.limit, pages, wantPages)
		}
	}
	_, _, err := s.Query("SELECT * FROM devices", "!!not-a-token", 2)
	wantCode(t, "Query with a bad continuation", err, ErrArgumentInvalid)
}
