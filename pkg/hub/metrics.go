package hub

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotctl/iotctl/pkg/hub/core"
)

// meter is what the hub's endpoints count; the hub's Prometheus
// metrics (Options.Metrics) implement it.
type meter interface {
	// conn counts a connection of protocol ("mqtt", "amqp", "https")
	// as open; the function returned counts it closed (once, however
	// often it is called).
	conn(protocol string) (closed func())
	// messageIn counts a device-to-cloud message stored.
	messageIn(protocol string)
	// methodCall counts a direct-method call and how it ended (err
	// from InvokeMethod).
	methodCall(err error)
	// c2d counts a cloud-to-device message enqueued, delivered or
	// completed.
	c2d(event string)
}

// The events of meter.c2d.
const (
	c2dEnqueued  = "enqueued"
	c2dDelivered = "delivered"
	c2dCompleted = "completed"
)

const metricsNamespace = "iotctl_hub"

// hubMetrics is the meter behind Options.Metrics.
type hubMetrics struct {
	conns      *prometheus.GaugeVec
	connsTotal *prometheus.CounterVec
	messagesIn *prometheus.CounterVec
	methods    *prometheus.CounterVec
	c2dTotal   *prometheus.CounterVec

	// inBy holds messagesIn's counter of each protocol the hub speaks,
	// made once: WithLabelValues allocates on every call, and
	// messageIn runs for every message (read only after newHubMetrics).
	inBy map[string]prometheus.Counter
}

func newHubMetrics() *hubMetrics {
	m := &hubMetrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "connections",
			Help: "Connections open now, by protocol: mqtt and amqp (over TLS or WebSocket), https (until upgraded to a WebSocket)."}, []string{"protocol"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "connections_total",
			Help: "Connections opened, by protocol."}, []string{"protocol"}),
		messagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "messages_in_total",
			Help: "Device-to-cloud messages stored in the telemetry log, by protocol."}, []string{"protocol"}),
		methods: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "method_calls_total",
			Help: "Direct-method calls, by result: answered, not_online (404103), timeout (504101), error."}, []string{"result"}),
		c2dTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "c2d_messages_total",
			Help: "Cloud-to-device messages, by event: enqueued, delivered (sent to the device), completed."}, []string{"event"}),
		inBy: map[string]prometheus.Counter{},
	}
	for _, p := range []string{"mqtt", "amqp", "https"} { // the core.AttachOptions.Transport values
		m.inBy[p] = m.messagesIn.WithLabelValues(p)
	}
	return m
}

func (m *hubMetrics) conn(protocol string) func() {
	m.conns.WithLabelValues(protocol).Inc()
	m.connsTotal.WithLabelValues(protocol).Inc()
	var once sync.Once
	return func() { once.Do(func() { m.conns.WithLabelValues(protocol).Dec() }) }
}

func (m *hubMetrics) messageIn(protocol string) {
	if c, ok := m.inBy[protocol]; ok {
		c.Inc()
		return
	}
	m.messagesIn.WithLabelValues(protocol).Inc()
}

func (m *hubMetrics) methodCall(err error) {
	result := "answered"
	switch {
	case err == nil:
	case errors.Is(err, ErrDeviceNotOnline):
		result = "not_online"
	case errors.Is(err, ErrMethodTimeout):
		result = "timeout"
	default:
		result = "error"
	}
	m.methods.WithLabelValues(result).Inc()
}

func (m *hubMetrics) c2d(event string) { m.c2dTotal.WithLabelValues(event).Inc() }

// httpConnState counts the HTTPS connections: open from StateNew until
// closed or hijacked (a WebSocket, then counted as MQTT or AMQP).
func (m *hubMetrics) httpConnState() func(net.Conn, http.ConnState) {
	var mu sync.Mutex
	open := map[net.Conn]func(){}
	return func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open[c] = m.conn("https")
		case http.StateHijacked, http.StateClosed:
			if closed, ok := open[c]; ok {
				closed()
				delete(open, c)
			}
		}
	}
}

// register registers the metrics with reg, and gauges read from the
// hub's state at each scrape: devices connected, C2D messages queued,
// telemetry events held per partition. Start calls it once the
// telemetry log is open.
func (h *Hub) registerMetrics(reg prometheus.Registerer) error {
	m := h.prom
	cs := []prometheus.Collector{m.conns, m.connsTotal, m.messagesIn, m.methods, m.c2dTotal,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "devices_connected",
			Help: "Devices and modules connected now."}, func() float64 { return float64(h.Connected()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "c2d_queued",
			Help: "Cloud-to-device messages in every device's queue (locked ones included)."}, func() float64 {
			n, err := h.reg.C2DQueued()
			if err != nil {
				h.log.Warn("metrics: counting the c2d queues failed", "err", err)
			}
			return float64(n)
		}),
	}
	for i := range h.telemetry.Partitions() {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "telemetry_events",
			Help:        "Events held in a partition of the telemetry log (the Event Hub-compatible endpoint).",
			ConstLabels: prometheus.Labels{"partition": strconv.Itoa(i)}}, func() float64 { return float64(h.telemetry.Info(i).Count) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// coreEvents tells the hub's meter what the device core does.
type coreEvents struct{ m meter }

func (e coreEvents) MessageStored(transport string) { e.m.messageIn(transport) }
func (e coreEvents) MethodCalled(err error)         { e.m.methodCall(err) }
func (e coreEvents) C2D(event string) {
	switch event {
	case core.C2DDelivered:
		e.m.c2d(c2dDelivered)
	case core.C2DCompleted:
		e.m.c2d(c2dCompleted)
	}
}
