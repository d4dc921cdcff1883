// Package promtest scrapes a Prometheus metrics endpoint for tests.
package promtest

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Scrape gets url as Prometheus does (text exposition format) and
// returns every sample by its series: "name" or
// "name{label=value,...}" with the labels sorted by name; a
// histogram gives name_count and name_sum. It fails t when the
// endpoint does not answer 200 with metrics it can parse.
func Scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, res.Status)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("scraping %s: not the text exposition format: %v", url, err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := Series(name, labels(m)...)
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Untyped != nil:
				out[key] = m.Untyped.GetValue()
			case m.Histogram != nil:
				out[Series(name+"_count", labels(m)...)] = float64(m.Histogram.GetSampleCount())
				out[Series(name+"_sum", labels(m)...)] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func labels(m *dto.Metric) []string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName(), l.GetValue())
	}
	return kv
}

// Series is the key Scrape gives the series of name with the label
// pairs kv (name, value, name, value...), in any order.
func Series(name string, kv ...string) string {
	if len(kv) == 0 {
		return name
	}
	pairs := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, kv[i]+"="+kv[i+1])
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}
