package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. Labels carry rule names and route templates,
// never raw paths or ids.
type Metrics struct {
	Requests         *prometheus.CounterVec
	Duration         *prometheus.HistogramVec
	UpstreamDuration *prometheus.HistogramVec
	Events           *prometheus.CounterVec
	Unclassified     *prometheus.CounterVec
	Refused          *prometheus.CounterVec
	Replays          prometheus.Counter
	HoldDuration     prometheus.Histogram
	InFlight         prometheus.Gauge
	HeldBytes        prometheus.Gauge
	Forwarded        prometheus.Counter
	Unintended       *prometheus.CounterVec
	Stranded         prometheus.Gauge
	Late             prometheus.Counter
}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics creates the proxy metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "flowker_audit"
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "proxy", Name: "requests_total",
			Help: "Requests handled by the sidecar, by route rule, method and status code."}, []string{"route", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "proxy", Name: "request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response headers, by route rule and method (audited requests include the journal commit).",
			Buckets: latencyBuckets}, []string{"route", "method"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "upstream", Name: "request_duration_seconds",
			Help: "Time Flowker took to answer with response headers, by route rule.", Buckets: latencyBuckets}, []string{"route"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_total",
			Help: "Audit events recorded, by event type and result."}, []string{"event_type", "result"}),
		Unclassified: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "unclassified_mutations_total",
			Help: "Mutating requests that matched no route rule (recorded as UNCLASSIFIED_MUTATION), by method."}, []string{"method"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "proxy", Name: "refused_total",
			Help: "Audited requests refused with 503 before reaching Flowker because the journal could not accept events (fail_closed), by reason."}, []string{"reason"}),
		Replays: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "execution_replays_total",
			Help: "Idempotent execution replays seen (no new execution, no event)."}),
		HoldDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "proxy", Name: "audit_hold_duration_seconds",
			Help: "Time an audited response was held while its event was built and made durable.", Buckets: latencyBuckets}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "proxy", Name: "in_flight_requests",
			Help: "Requests being handled right now."}),
		HeldBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "proxy", Name: "held_bytes",
			Help: "Body bytes held by audited requests in flight (bounded by capture.max_hold_total)."}),
		Forwarded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "proxy", Name: "audited_forwarded_total",
			Help: "Audited requests forwarded to Flowker (with fsyncs_total: the write path's fsyncs per audited request)."}),
		Unintended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "proxy", Name: "forwarded_without_intent_total",
			Help: "Audited requests forwarded without a durable intent (fail_open while the journal could not write), by reason."}, []string{"reason"}),
		Stranded: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "proxy", Name: "events_waiting",
			Help: "Events of requests Flowker answered, waiting for the journal to write again (their intents are durable)."}),
		Late: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "proxy", Name: "events_late_total",
			Help: "Events journaled after the journal wrote again (their requests reached Flowker while it could not)."}),
	}
	for _, reason := range []string{"journal_full", "journal_failed"} {
		m.Refused.WithLabelValues(reason) // exported at 0 from the start
		m.Unintended.WithLabelValues(reason)
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.UpstreamDuration, m.Events, m.Unclassified, m.Refused, m.Replays, m.HoldDuration, m.InFlight, m.HeldBytes,
			m.Forwarded, m.Unintended, m.Stranded, m.Late)
	}
	return m
}
