package hub

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/iotctl/iotctl/pkg/message"
)

// A device's twin requests are applied in the order it sent them: 300
// reported-property patches back to back get increasing versions, in
// the order of their request ids, and a GET sent after them sees the
// last one.
func TestTwinRequestsKeepTheirOrder(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, message.TwinResponseFilter, 0)
	const n = 300
	for i := range n {
		d.c.Publish(message.TwinPatchReportedTopic(strconv.Itoa(i)), 0, false, `{"n":`+strconv.Itoa(i)+`}`)
	}
	d.c.Publish(message.TwinGetTopic("get"), 0, false, " ")
	versions := make(map[int]int64, n)
	var got []byte
	for len(versions) < n || got == nil {
		m := d.next(t)
		tp, err := message.ParseTopic(m.Topic())
		if err != nil {
			t.Fatalf("response topic %q: %v", m.Topic(), err)
		}
		if tp.RequestID == "get" {
			got = m.Payload()
			continue
		}
		i, err := strconv.Atoi(tp.RequestID)
		if err != nil || tp.Status != 204 {
			t.Fatalf("response %q; want 204 for a patch", m.Topic())
		}
		versions[i] = tp.Version
	}
	for i := 1; i < n; i++ {
		if versions[i] <= versions[i-1] {
			t.Fatalf("patch %d got $version %d, patch %d got %d: applied out of order", i-1, versions[i-1], i, versions[i])
		}
	}
	var twin struct {
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(got, &twin); err != nil || twin.Reported["n"] != float64(n-1) {
		t.Errorf("GET after the patches: reported %v (%v); want n = %d", twin.Reported, err, n-1)
	}
	stored, err := h.reg.Twin("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	var reported map[string]any
	_ = json.Unmarshal(stored.Properties.Reported, &reported)
	if reported["n"] != float64(n-1) || reported["$version"] != float64(versions[n-1]) {
		t.Errorf("stored reported properties %s; want n = %d at $version %d", stored.Properties.Reported, n-1, versions[n-1])
	}
}
