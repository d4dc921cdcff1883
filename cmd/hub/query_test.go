package hub_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

func TestQueryCommand(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	const n = 1010
	createDevices(t, e, n, "q%04d")
	e.ok(t, "hub", "twin", "update", "q0007", "--tags", `{"site":"lab"}`)
	e.ok(t, "hub", "twin", "update", "q1005", "--tags", `{"site":"lab"}`)

	// Every twin, past the first page of the query API.
	var all []map[string]any
	if err := json.Unmarshal([]byte(e.ok(t, "hub", "query", "SELECT * FROM devices", "-o", "json")), &all); err != nil || len(all) != n {
		t.Fatalf("query -o json gave %d twins (%v); want %d", len(all), err, n)
	}
	// NDJSON: one twin a line.
	lines := strings.Split(strings.TrimSpace(e.ok(t, "hub", "query", "SELECT * FROM devices WHERE tags.site = 'lab'", "-o", "ndjson")), "\n")
	if len(lines) != 2 {
		t.Fatalf("ndjson gave %d lines; want 2", len(lines))
	}
	for i, want := range []string{"q0007", "q1005"} {
		var tw map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &tw); err != nil || tw["deviceId"] != want {
			t.Errorf("ndjson line %d = %q (%v); want the twin of %s", i, lines[i], err, want)
		}
	}
	if out := e.ok(t, "hub", "query", "SELECT * FROM devices", "--top", "3", "-o", "ndjson"); strings.Count(out, "\n") != 3 {
		t.Errorf("--top 3 printed %q", out)
	}
	// The table, piped: tab-separated rows.
	table := e.ok(t, "hub", "query", "SELECT * FROM devices WHERE deviceId = 'q0007'")
	if !strings.HasPrefix(table, "q0007\t-\tenabled\tDisconnected\t") || strings.Count(table, "\n") != 1 {
		t.Errorf("table:\n%s", table)
	}
	// A query the hub refuses is a usage error naming the problem.
	e.fails(t, cmdutil.ExitUsage, "SELECT", "hub", "query", "DROP TABLE devices")
	e.fails(t, cmdutil.ExitUsage, "unknown format", "hub", "query", "SELECT * FROM devices", "-o", "csv")
}
