package hub_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/promtest"
)

// hub serve --metrics-addr prints where its Prometheus metrics are
// (metricsUrl) and serves the hub's there; an address without a port
// exits 3.
func TestServeMetrics(t *testing.T) {
	t.Parallel() // no t.Setenv: see certRun
	serve, _ := startServe(t, "--in-memory", "--metrics-addr", "127.0.0.1:0")
	var info struct {
		MetricsURL string `json:"metricsUrl"`
	}
	if err := json.Unmarshal([]byte(serve.out.String()), &info); err != nil || !strings.HasPrefix(info.MetricsURL, "http://127.0.0.1:") {
		t.Fatalf("hub serve printed %q; want a metricsUrl on 127.0.0.1", serve.out.String())
	}
	m := promtest.Scrape(t, info.MetricsURL)
	for _, s := range []string{"iotctl_hub_devices_connected", "iotctl_hub_c2d_queued", promtest.Series("iotctl_hub_telemetry_events", "partition", "0")} {
		if v, ok := m[s]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v); want 0 on a hub that holds nothing", s, v, ok)
		}
	}
	stopServe(t, serve)

	code, _, stderr := certRun(t, nil, "hub", "serve", "--addr", "127.0.0.1:0", "--in-memory", "--metrics-addr", "9090")
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, `--metrics-addr "9090": want HOST:PORT`) {
		t.Errorf("hub serve --metrics-addr 9090: exit %d stderr %q; want 3 and HOST:PORT", code, stderr)
	}
}
