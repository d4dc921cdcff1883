package simulate

import (
	"maps"
	"testing"
)

// The shared property maps hold what a map per message held: the
// quickstart's temperatureAlert, then the fleet's properties (which
// may override it), and never the caller's map itself.
func TestMessagePropertiesAreTheFleetsWithTheAlert(t *testing.T) {
	tests := []struct {
		name string
		user map[string]string
		want [3]map[string]string
	}{
		{"none", nil, [3]map[string]string{nil, {"temperatureAlert": "false"}, {"temperatureAlert": "true"}}},
		{"some", map[string]string{"site": "a"}, [3]map[string]string{
			{"site": "a"}, {"temperatureAlert": "false", "site": "a"}, {"temperatureAlert": "true", "site": "a"}}},
		{"overriding the alert", map[string]string{"temperatureAlert": "never"}, [3]map[string]string{
			{"temperatureAlert": "never"}, {"temperatureAlert": "never"}, {"temperatureAlert": "never"}}},
	}
	for _, tt := range tests {
		got := messageProperties(tt.user)
		for i := range got {
			if !maps.Equal(got[i], tt.want[i]) {
				t.Errorf("%s: messageProperties(%v)[%d] = %v; want %v", tt.name, tt.user, i, got[i], tt.want[i])
			}
		}
		if tt.user != nil {
			tt.user["later"] = "x"
			for i := range got {
				if _, ok := got[i]["later"]; ok {
					t.Errorf("%s: messageProperties(%v)[%d] changed with the caller's map", tt.name, tt.user, i)
				}
			}
		}
	}
}
