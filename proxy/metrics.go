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
	}
	for _, reason := range []string{"journal_full", "journal_failed"} {
		m.Refused.WithLabelValues(reason) // exported at 0 from the start
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.UpstreamDuration, m.Events, m.Unclassified, m.Refused, m.Replays, m.HoldDuration, m.InFlight, m.HeldBytes)
	}
	return m
}
