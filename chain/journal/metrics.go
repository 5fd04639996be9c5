package journal

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the journal's Prometheus metrics.
type Metrics struct {
	AppendDuration prometheus.Histogram
	CommitDuration prometheus.Histogram
	GroupSize      prometheus.Histogram
	Fsyncs         prometheus.Counter
	AppendedBytes  prometheus.Counter
	AppendedEvents prometheus.Counter
	Bytes          prometheus.Gauge
	MaxBytes       prometheus.Gauge
	Entries        prometheus.Gauge
	Writable       prometheus.Gauge
	Compacted      prometheus.Counter
	RecoveryCut    prometheus.Counter
	ChainSequence  *prometheus.GaugeVec
	IntentDuration prometheus.Histogram
	IntentsWritten prometheus.Counter
	IntentsPending prometheus.Gauge
	IntentsCut     prometheus.Counter
	IntentsForeign prometheus.Counter
	// Completions counts events written to the completion log before their request was answered
	// (Complete): appended to bbolt after the answer.
	Completions prometheus.Counter
	// IntentsRecovered counts intents found unresolved (after a crash or a journal failure) and
	// turned into an event, by outcome (observed, reconciled, unknown); the application increments it.
	IntentsRecovered *prometheus.CounterVec
	// EventsLost counts events that should exist but could not be journaled, by reason. It must
	// stay at zero; the proxy increments it too (fail_open losses).
	EventsLost *prometheus.CounterVec
}

// NewMetrics creates the journal metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "flowker_audit", "journal"
	m := &Metrics{
		AppendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "append_duration_seconds",
			Help:    "Time from an append request to its event being durable (includes waiting for the group commit).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		CommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "commit_duration_seconds",
			Help:    "Duration of one group commit transaction, fsync included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		GroupSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "group_commit_events",
			Help:    "Number of events made durable by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		Fsyncs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fsyncs_total",
			Help: "Writes made durable with fsync: the journal's group commits, the intent log's group writes and new intent segments."}),
		AppendedBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "appended_bytes_total",
			Help: "Bytes of event records appended to the journal."}),
		AppendedEvents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "appended_events_total",
			Help: "Events appended to the journal."}),
		Bytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "bytes",
			Help: "Bytes of event records currently retained in the journal (bounded by journal.max_bytes)."}),
		MaxBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "max_bytes",
			Help: "Configured bound on retained journal bytes; audited requests are refused (fail_closed) at the bound."}),
		Entries: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "entries",
			Help: "Events currently retained in the journal (not yet acknowledged by every sink, or not yet compacted)."}),
		Writable: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "writable",
			Help: "1 when the journal accepts appends, 0 when it is full or failing."}),
		Compacted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "compacted_events_total",
			Help: "Events removed from the journal after every sink acknowledged them."}),
		RecoveryCut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "recovery_cut_records_total",
			Help: "Corrupt records cut from the journal tail during recovery at startup."}),
		ChainSequence: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "chain", Name: "sequence",
			Help: "Sequence number of the last event appended to the chain."}, []string{"chain"}),
		IntentDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "intent_duration_seconds",
			Help:    "Time from an intent request to the intent being durable (before the request is forwarded; includes waiting for the group commit).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		IntentsWritten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "intents_written_total",
			Help: "Intents made durable before forwarding an audited request."}),
		IntentsPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "intents_pending",
			Help: "Audited requests forwarded (or being forwarded) whose event is not journaled yet."}),
		IntentsCut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "intents_cut_total",
			Help: "Damaged intent records cut at start (each is a forwarded request whose event cannot be rebuilt; must stay 0)."}),
		IntentsForeign: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "intents_foreign_total",
			Help: "Intents found at start in segments of another journal file (the journal was lost or replaced): not recovered, since which of them had an event was lost with it."}),
		Completions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "completions_total",
			Help: "Events written to the completion log before their request was answered, and appended to the journal after the answer."}),
		IntentsRecovered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "intents_recovered_total",
			Help: "Unresolved intents turned into an event after a crash or a journal failure, by outcome (observed: the event was written before the answer and appended as it was; reconciled: learned from Flowker; unknown)."}, []string{"outcome"}),
		EventsLost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_lost_total",
			Help: "Audit events that could not be journaled (must stay 0), by reason."}, []string{"reason"}),
	}
	// Pre-create the loss series so a healthy sidecar exports them at 0 and increase() sees the
	// first loss.
	for _, reason := range []string{"journal_full", "journal_failed", "journal_corrupt"} {
		m.EventsLost.WithLabelValues(reason)
	}
	for _, outcome := range []string{"observed", "reconciled", "unknown"} {
		m.IntentsRecovered.WithLabelValues(outcome)
	}
	if reg != nil {
		reg.MustRegister(m.AppendDuration, m.CommitDuration, m.GroupSize, m.Fsyncs, m.AppendedBytes, m.AppendedEvents,
			m.Bytes, m.MaxBytes, m.Entries, m.Writable, m.Compacted, m.RecoveryCut, m.ChainSequence, m.EventsLost,
			m.IntentDuration, m.IntentsWritten, m.IntentsPending, m.IntentsCut, m.IntentsForeign, m.Completions, m.IntentsRecovered)
	}
	return m
}
