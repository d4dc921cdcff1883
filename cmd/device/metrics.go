package device

import (
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/metricsrv"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// metricsFlags is --metrics-addr: where a simulation serves its
// Prometheus metrics.
type metricsFlags struct {
	addr string
}

func (m *metricsFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&m.addr, "metrics-addr", "", "serve Prometheus metrics on http://HOST:PORT/metrics while the simulation runs (e.g. :9090; default: none)")
}

func (m *metricsFlags) validate() error {
	if m.addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(m.addr); err != nil {
		return cmdutil.Usagef("--metrics-addr %q: want HOST:PORT, e.g. :9090 or 127.0.0.1:9090", m.addr)
	}
	return nil
}

// serve registers sim's metrics, labelled with the fleet (its device
// prefix) and the shard when it is a fleet, and serves them. It
// returns nil when no --metrics-addr was given.
func (m *metricsFlags) serve(sim *simulate.Fleet, fleet bool, prefix string, shard simulate.Shard) (*metricsrv.Server, error) {
	if m.addr == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	var labels prometheus.Labels
	if fleet {
		labels = prometheus.Labels{simulate.MetricLabelFleet: prefix, simulate.MetricLabelShard: strconv.Itoa(shard.Index)}
	}
	if err := sim.RegisterMetrics(reg, labels); err != nil {
		return nil, err
	}
	return metricsrv.Listen(m.addr, reg)
}
