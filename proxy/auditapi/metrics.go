package auditapi

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the audit API. Labels never carry ids or raw paths: endpoint is one of
// list, get, verify, ui-config; code is the HTTP status.
type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	verifyFailures prometheus.Counter
	duplicates     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowker_audit", Subsystem: "search", Name: "requests_total",
			Help: "Audit API requests answered by the sidecar, by endpoint and HTTP status.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flowker_audit", Subsystem: "search", Name: "duration_seconds",
			Help:    "Time to answer an audit API request, by endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		verifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flowker_audit", Name: "verify_failures_total",
			Help: "Verify calls that found a broken hash chain.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flowker_audit", Name: "conflicting_duplicates_served_total",
			Help: "Events the audit API served whose sequence the store holds as several conflicting rows (the row that links is served, flagged conflictingDuplicate).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.verifyFailures, m.duplicates} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register audit api metrics: %w (one API per registry)", err)
			}
			return nil, fmt.Errorf("register audit api metrics: %w", err)
		}
	}
	return m, nil
}
