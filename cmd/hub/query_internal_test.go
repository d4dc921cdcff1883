package hub

import (
	"strings"
	"testing"
)

// The flags and argument of `hub query`, checked through runF without
// a hub.
func TestQueryFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	for _, tc := range []struct {
		args    []string
		want    queryOptions
		wantErr string
	}{
		{[]string{"SELECT * FROM devices"}, queryOptions{Query: "SELECT * FROM devices"}, ""},
		{[]string{"SELECT * FROM devices.modules", "--top", "7"}, queryOptions{Query: "SELECT * FROM devices.modules", Top: 7}, ""},
		{[]string{}, queryOptions{}, "accepts 1 arg"},
		{[]string{"  "}, queryOptions{}, "the query is empty"},
		{[]string{"SELECT * FROM devices", "--top", "-1"}, queryOptions{}, "--top -1"},
	} {
		got, err := runFlags(t, newCmdQuery, tc.args...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("query %q: err %v; want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got == nil || got.Query != tc.want.Query || got.Top != tc.want.Top {
			t.Errorf("query %q = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}
