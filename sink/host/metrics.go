package host

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds of flowker_audit_sink_errors_total.
const (
	KindRetryable = "retryable" // the sink failed a call and asked for a retry
	KindPermanent = "permanent" // the sink refused a call for good (bad config, rejected event)
	KindTimeout   = "timeout"   // a call to the plugin ran past its deadline (the plugin is restarted)
	KindCrash     = "crash"     // the plugin process died or stopped answering (it is restarted)
)

// Metrics holds the per-sink delivery metrics. One Metrics serves every Supervisor of a process.
type Metrics struct {
	written   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	writeDur  *prometheus.HistogramVec
	batch     *prometheus.HistogramVec
	lag       *prometheus.GaugeVec
	oldestAge *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	restarts  *prometheus.CounterVec
	acked     *prometheus.GaugeVec
	conflict  *prometheus.GaugeVec
	conflicts *prometheus.CounterVec
}

// NewMetrics creates the sink metrics and registers them with reg (nil: not registered). It
// panics if they are already registered there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "flowker_audit", "sink"
	sinkLabel := []string{"sink"}
	m := &Metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "written_events_total",
			Help: "Number of events the sink stored and acknowledged.",
		}, sinkLabel),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Number of failed calls to the sink plugin, by kind: retryable, permanent, timeout or crash.",
		}, []string{"sink", "kind"}),
		writeDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "write_duration_seconds",
			Help:    "Time a successful batch write to the sink plugin took, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, sinkLabel),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "batch_events",
			Help:    "Number of events in each batch written to the sink.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}, sinkLabel),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "lag_events",
			Help: "Number of journaled events the sink has not acknowledged yet.",
		}, sinkLabel),
		oldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "oldest_unacked_age_seconds",
			Help: "Age in seconds of the oldest journaled event the sink has not acknowledged, 0 when it is up to date.",
		}, sinkLabel),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "up",
			Help: "Whether the sink plugin is running and accepting events (1) or down, restarting or failing permanently (0).",
		}, sinkLabel),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "plugin_restarts_total",
			Help: "Number of times the sink plugin process was started again after a crash, a hang, a failed health check or a failed start.",
		}, sinkLabel),
		acked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "acked_sequence",
			Help: "Highest chain sequence the sink has acknowledged.",
		}, sinkLabel),
		conflict: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "conflict",
			Help: "1 while the sink's store disagrees with the journal (a sequence stored with another hash, a head beyond the journal, a write that was acknowledged but not stored): delivery to it is stopped and the journal keeps its events.",
		}, sinkLabel),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "conflicts_total",
			Help: "Number of times the sink's store was found to disagree with the journal.",
		}, sinkLabel),
	}
	if reg != nil {
		reg.MustRegister(m.written, m.errors, m.writeDur, m.batch, m.lag, m.oldestAge, m.up, m.restarts, m.acked, m.conflict, m.conflicts)
	}
	return m
}

// sinkMetrics are one sink's children of the metric vectors.
type sinkMetrics struct {
	written   prometheus.Counter
	errors    map[string]prometheus.Counter
	writeDur  prometheus.Observer
	batch     prometheus.Observer
	lag       prometheus.Gauge
	oldestAge prometheus.Gauge
	up        prometheus.Gauge
	restarts  prometheus.Counter
	acked     prometheus.Gauge
	conflict  prometheus.Gauge
	conflicts prometheus.Counter
}

// forSink creates (and so exports, at zero) every series of one sink.
func (m *Metrics) forSink(name string) *sinkMetrics {
	sm := &sinkMetrics{
		written:   m.written.WithLabelValues(name),
		errors:    map[string]prometheus.Counter{},
		writeDur:  m.writeDur.WithLabelValues(name),
		batch:     m.batch.WithLabelValues(name),
		lag:       m.lag.WithLabelValues(name),
		oldestAge: m.oldestAge.WithLabelValues(name),
		up:        m.up.WithLabelValues(name),
		restarts:  m.restarts.WithLabelValues(name),
		acked:     m.acked.WithLabelValues(name),
		conflict:  m.conflict.WithLabelValues(name),
		conflicts: m.conflicts.WithLabelValues(name),
	}
	for _, k := range []string{KindRetryable, KindPermanent, KindTimeout, KindCrash} {
		sm.errors[k] = m.errors.WithLabelValues(name, k)
	}
	return sm
}
