package hub

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// The flags and argument of `hub query`, checked through runF without
// a hub.
func TestQueryFlags(t *testing.T) {
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
		var got *queryOptions
		f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
		c := newCmdQuery(f, func(_ *cobra.Command, o *queryOptions) error { got = o; return nil })
		c.SetArgs(tc.args)
		c.SetOut(&bytes.Buffer{})
		c.SetErr(&bytes.Buffer{})
		err := c.Execute()
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
