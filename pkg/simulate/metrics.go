package simulate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrorKind says what failed, for the errors_total metric's kind label.
type ErrorKind int

// The kinds of errors a simulation counts (Stats.Errors is their sum).
const (
	// ErrorCredentials: a fleet device got no key or certificate (the
	// registry refused or failed, or DPS refused its registration).
	ErrorCredentials ErrorKind = iota
	// ErrorConnect: a device's first connection failed (refused
	// credentials included).
	ErrorConnect
	// ErrorSend: a message was not acknowledged.
	ErrorSend
	// ErrorTwin: a reported-properties update failed.
	ErrorTwin
	// ErrorMessage: a message body could not be made (a template
	// failed).
	ErrorMessage
	numErrorKinds
)

// String is the kind's label value: credentials, connect, send, twin
// or message.
func (k ErrorKind) String() string {
	switch k {
	case ErrorCredentials:
		return "credentials"
	case ErrorConnect:
		return "connect"
	case ErrorSend:
		return "send"
	case ErrorTwin:
		return "twin"
	case ErrorMessage:
		return "message"
	}
	return "unknown"
}

func (f *Fleet) countError(k ErrorKind) {
	f.errs.Add(1)
	f.errKinds[k].Add(1)
}

// Errors returns how many errors of kind k the simulation counted.
func (f *Fleet) Errors(k ErrorKind) int64 {
	if k < 0 || k >= numErrorKinds {
		return 0
	}
	return f.errKinds[k].Load()
}

// ackLatency is the histogram of the time from handing a message to
// the client to its acknowledgement (QoS 1: the PUBACK; QoS 0: the
// write).
type ackLatency struct{ h prometheus.Histogram }

// AckLatencyBuckets are the upper bounds, in seconds, of the
// acknowledgement latency histogram: 1 ms to about 16 s, doubling.
var AckLatencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

func newAckLatency() ackLatency {
	return ackLatency{h: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "ack_latency_seconds",
		Help:    "Time from sending a message to its acknowledgement by the hub (QoS 1), or to its write (QoS 0).",
		Buckets: AckLatencyBuckets,
	})}
}

func (a ackLatency) observe(d time.Duration) { a.h.Observe(d.Seconds()) }

const metricsNamespace = "iotctl_simulate"

// MetricLabelFleet and MetricLabelShard are the labels RegisterMetrics
// is usually given, so that a cluster's shards can be told apart and
// summed (sum by (fleet) (...)).
const (
	MetricLabelFleet = "fleet"
	MetricLabelShard = "shard"
)

// RegisterMetrics registers f's counters with reg as Prometheus
// metrics named iotctl_simulate_*, each with the constant labels
// given (e.g. fleet and shard; nil for none). Each scrape reads one
// Stats of the fleet and reports every counter from it, so a scrape
// agrees with itself (never more acknowledged than sent), with Stats
// and with the summary of the run:
//
//	iotctl_simulate_devices                devices this process simulates
//	iotctl_simulate_devices_connected      devices connected now
//	iotctl_simulate_messages_sent_total    messages handed to the client (Stats.Sent)
//	iotctl_simulate_messages_acked_total   messages acknowledged (Stats.Acked)
//	iotctl_simulate_errors_total{kind}     errors by ErrorKind (their sum is Stats.Errors)
//	iotctl_simulate_reconnects_total       reconnections (Stats.Reconnects)
//	iotctl_simulate_method_calls_total     direct-method calls answered
//	iotctl_simulate_twin_desired_total     desired-property changes received
//	iotctl_simulate_c2d_received_total     cloud-to-device messages received
//	iotctl_simulate_ack_latency_seconds    histogram of acknowledgement latency
//
// It returns reg's error when a metric is already registered there
// (RegisterMetrics called twice on one registry).
func (f *Fleet) RegisterMetrics(reg prometheus.Registerer, labels prometheus.Labels) error {
	r := prometheus.WrapRegistererWith(labels, reg)
	if err := r.Register(newStatsCollector(f)); err != nil {
		return err
	}
	return r.Register(f.ackTime.h)
}

// statsCollector reports a fleet's counters from one Stats per
// scrape. A registry gathers its collectors at once on many
// goroutines, so counters registered one by one would be read at
// different moments: a message sent and acknowledged in between
// would show more acknowledged than sent.
type statsCollector struct {
	f                                                  *Fleet
	devices, connected                                 *prometheus.Desc
	sent, acked, reconns, methods, twin, c2d, errsKind *prometheus.Desc
}

func newStatsCollector(f *Fleet) *statsCollector {
	d := func(name, help string, kv ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, kv, nil)
	}
	return &statsCollector{f: f,
		devices:   d("devices", "Devices this process simulates (its shard of the fleet)."),
		connected: d("devices_connected", "Devices connected now."),
		sent:      d("messages_sent_total", "Messages handed to the device client."),
		acked:     d("messages_acked_total", "Messages acknowledged by the hub (QoS 1) or written (QoS 0)."),
		reconns:   d("reconnects_total", "Reconnections after a lost connection or to renew a SAS token."),
		methods:   d("method_calls_total", "Direct-method calls answered."),
		twin:      d("twin_desired_total", "Desired-property changes received."),
		c2d:       d("c2d_received_total", "Cloud-to-device messages received."),
		errsKind:  d("errors_total", "Errors by kind: credentials, connect, send, twin, message.", "kind"),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.devices, c.connected, c.sent, c.acked, c.reconns, c.methods, c.twin, c.c2d, c.errsKind} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	var kinds [numErrorKinds]int64
	for k := range numErrorKinds {
		kinds[k] = c.f.errKinds[k].Load()
	}
	s := c.f.Stats()
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v int64, kv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), kv...)
	}
	gauge(c.devices, int64(s.Devices))
	gauge(c.connected, s.Connected)
	counter(c.sent, s.Sent)
	counter(c.acked, s.Acked)
	counter(c.reconns, s.Reconnects)
	counter(c.methods, s.Methods)
	counter(c.twin, s.Twin)
	counter(c.c2d, s.C2D)
	for k := range numErrorKinds {
		counter(c.errsKind, kinds[k], k.String())
	}
}
