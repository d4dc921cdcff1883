package registry

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseQuery: the query parser returns a result or ErrArgumentInvalid, never panics.
func FuzzParseQuery(f *testing.F) {
	f.Add("SELECT * FROM devices")
	f.Add("SELECT * FROM devices.modules WHERE tags.a.b >= 1 AND status != 'x'")
	f.Fuzz(func(t *testing.T, q string) {
		if _, _, err := parseQuery(q); err != nil && !isRegistryError(err) {
			t.Fatalf("parseQuery(%q) = %v", q, err)
		}
	})
}

// FuzzTwinSection: an accepted patch merges into a twin section that
// renders back to valid JSON within the depth limit.
func FuzzTwinSection(f *testing.F) {
	f.Add([]byte(`{"a":{"b":null,"c":[1,{"d":"e"}]},"$version":3}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := parseSection("desired", raw, true)
		if err != nil {
			if !isRegistryError(err) {
				t.Fatalf("parseSection(%q) = %v", raw, err)
			}
			return
		}
		n := newObject(time.Time{}, 1)
		n.merge(m, 0, 2)
		b, err := json.Marshal(n.document(2, true))
		if err != nil || !json.Valid(b) {
			t.Fatalf("document of %q = %q, %v", raw, b, err)
		}
	})
}
