package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// queryOptions are the inputs of `hub query`.
type queryOptions struct {
	f     *cmdutil.Factory
	Query string
	Top   int
}

// newCmdQuery returns `hub query`; runF replaces queryRun in tests of
// flag parsing (nil: queryRun).
func newCmdQuery(f *cmdutil.Factory, runF func(*queryOptions) error) *cobra.Command {
	opts := &queryOptions{f: f}
	c := &cobra.Command{
		Use:   "query QUERY",
		Short: "Run an IoT Hub query over device or module twins",
		Long: `Run an IoT Hub query (SELECT ... FROM devices or devices.modules) and print every
result, following the query API's pages: no result is left out unless --top says
so. Output: a table of twins on a terminal (tab-separated when piped), -o json
(one array), -o yaml, or -o ndjson (one result a line, printed page by page as
they arrive: for scripts and large hubs).

The local hub understands SELECT * FROM devices[.modules] [WHERE path op literal
[AND ...]]; Azure IoT Hub the whole query language.`,
		Example: `  $ iotctl hub query "SELECT * FROM devices WHERE status = 'disabled'"
  $ iotctl hub query "SELECT * FROM devices WHERE tags.site = 'lab'" -o ndjson | jq -r .deviceId
  $ iotctl hub query "SELECT * FROM devices.modules" --top 10 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Query = args[0]
			if strings.TrimSpace(opts.Query) == "" {
				return cmdutil.Usagef("the query is empty: give one such as \"SELECT * FROM devices\"")
			}
			if opts.Top < 0 {
				return cmdutil.Usagef("--top %d: give a positive number, or 0 for every result", opts.Top)
			}
			if runF != nil {
				return runF(opts)
			}
			return queryRun(cmd.Context(), opts)
		},
	}
	c.Flags().IntVar(&opts.Top, "top", 0, "print at most this many results (0: every result, page after page)")
	c.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
	cmdutil.AddServiceAuth(c, cmdutil.LoginNeeds(auth.ActionTwinsRead))
	c.Flags().String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addProxyFlag(c.Flags())
	return c
}

func queryRun(ctx context.Context, opts *queryOptions) error {
	err := runQuery(ctx, opts)
	if errors.Is(err, service.ErrBadRequest) {
		// The hub refused the query itself: the user's to fix.
		return &cmdutil.UsageError{Err: err}
	}
	return err
}

func runQuery(ctx context.Context, opts *queryOptions) error {
	f := opts.f
	p, client, err := printerClient(ctx, f, output.FormatTable, output.FormatJSON, output.FormatYAML, output.FormatNDJSON)
	if err != nil {
		return err
	}
	if p.Format == output.FormatNDJSON {
		s := output.NewStream(p.Out)
		return client.QueryPages(ctx, opts.Query, opts.Top, func(page []json.RawMessage) error {
			for _, item := range page {
				if err := s.Write(item); err != nil {
					return err
				}
			}
			return nil
		})
	}
	items, err := client.Query(ctx, opts.Query, opts.Top)
	if err != nil {
		return err
	}
	return p.Print(items, func(t *output.Table) { queryTable(t, items) })
}

// queryTable shows twins as rows; a result that is not a twin (from a
// projection such as SELECT deviceId) is shown as its JSON.
func queryTable(t *output.Table, items []json.RawMessage) {
	t.Header("DEVICE", "MODULE", "STATUS", "CONNECTION", "LAST ACTIVITY", "VERSION")
	for _, raw := range items {
		var tw service.Twin
		if err := json.Unmarshal(raw, &tw); err != nil || tw.DeviceID == "" || tw.ConnectionState == "" {
			t.Row(string(raw), "", "", "", "", "")
			continue
		}
		t.Row(tw.DeviceID, dash(tw.ModuleID), dash(tw.Status), tw.ConnectionState,
			tw.LastActivityTime.Format("2006-01-02T15:04:05Z07:00"), fmt.Sprint(tw.Version))
	}
}
