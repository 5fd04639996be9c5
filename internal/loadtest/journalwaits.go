package loadtest

import (
	"context"
	"fmt"
	"math"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// JournalWaits splits an audited run's latency by the journal's durable writes, from the
// sidecar's own histograms scraped before and after the measured window: how long requests waited
// for their intent (before forwarding), how long their event's append took (before the answer in
// the design before intents; after it for an event written to the completion file), and how many
// commits and fsyncs the window took per request. Quantiles are read from the histograms'
// buckets (linear within a bucket), so they are as coarse as the buckets (0.1, 0.25, 0.5, 1,
// 2.5, 5, 10 ms ...).
type JournalWaits struct {
	Requests float64 `json:"requests"` // events appended in the window
	// IntentP50Ms and IntentP99Ms: flowker_audit_journal_intent_duration_seconds.
	IntentP50Ms float64 `json:"intentP50Ms"`
	IntentP99Ms float64 `json:"intentP99Ms"`
	// EventP50Ms and EventP99Ms: flowker_audit_journal_append_duration_seconds.
	EventP50Ms float64 `json:"eventP50Ms"`
	EventP99Ms float64 `json:"eventP99Ms"`
	// CommitP99Ms: flowker_audit_journal_commit_duration_seconds (the event journal's commits).
	CommitP99Ms       float64 `json:"commitP99Ms"`
	CommitsPerRequest float64 `json:"commitsPerRequest"`
	FsyncsPerRequest  float64 `json:"fsyncsPerRequest"`
}

const (
	intentHist = "flowker_audit_journal_intent_duration_seconds"
	appendHist = "flowker_audit_journal_append_duration_seconds"
	commitHist = "flowker_audit_journal_commit_duration_seconds"
	fsyncTotal = "flowker_audit_journal_fsyncs_total"
)

// histSnapshot is the cumulative bucket counts of the histograms JournalWaits reads, and the
// fsync counter.
type histSnapshot struct {
	hist   map[string][]bucket
	fsyncs float64
}

type bucket struct {
	le    float64 // upper bound, seconds (+Inf last)
	count float64 // cumulative
}

func scrapeHistograms(ctx context.Context, c *http.Client, adminURL string) (histSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return histSnapshot{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return histSnapshot{}, fmt.Errorf("scraping the sidecar's metrics: %w", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histSnapshot{}, fmt.Errorf("parsing the sidecar's metrics: %w", err)
	}
	s := histSnapshot{hist: map[string][]bucket{}}
	for _, name := range []string{intentHist, appendHist, commitHist} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			continue
		}
		s.hist[name] = buckets(f.GetMetric()[0].GetHistogram())
	}
	if f := fams[fsyncTotal]; f != nil && len(f.GetMetric()) > 0 {
		s.fsyncs = f.GetMetric()[0].GetCounter().GetValue()
	}
	return s, nil
}

func buckets(h *dto.Histogram) []bucket {
	var out []bucket
	for _, b := range h.GetBucket() {
		out = append(out, bucket{le: b.GetUpperBound(), count: float64(b.GetCumulativeCount())})
	}
	return append(out, bucket{le: math.Inf(1), count: float64(h.GetSampleCount())})
}

// journalWaits is what happened between two snapshots.
func journalWaits(before, after histSnapshot) *JournalWaits {
	delta := func(name string) []bucket {
		a, b := after.hist[name], before.hist[name]
		if len(a) == 0 {
			return nil
		}
		out := make([]bucket, len(a))
		for i := range a {
			out[i] = a[i]
			if i < len(b) {
				out[i].count -= b[i].count
			}
		}
		return out
	}
	total := func(bs []bucket) float64 {
		if len(bs) == 0 {
			return 0
		}
		return bs[len(bs)-1].count
	}
	ev, in, cm := delta(appendHist), delta(intentHist), delta(commitHist)
	w := &JournalWaits{Requests: total(ev)}
	if w.Requests == 0 {
		return nil
	}
	w.IntentP50Ms, w.IntentP99Ms = 1000*quantile(in, 0.5), 1000*quantile(in, 0.99)
	w.EventP50Ms, w.EventP99Ms = 1000*quantile(ev, 0.5), 1000*quantile(ev, 0.99)
	w.CommitP99Ms = 1000 * quantile(cm, 0.99)
	w.CommitsPerRequest = total(cm) / w.Requests
	w.FsyncsPerRequest = (after.fsyncs - before.fsyncs) / w.Requests
	return w
}

// quantile reads quantile q from cumulative buckets, linearly within the bucket it falls in (the
// last finite bound when it falls in +Inf); 0 without observations.
func quantile(bs []bucket, q float64) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].count
	lo, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lo
			}
			if b.count == below {
				return b.le
			}
			return lo + (b.le-lo)*(rank-below)/(b.count-below)
		}
		lo, below = b.le, b.count
	}
	return lo
}
