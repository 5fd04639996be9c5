package loadtest

import (
	"math"
	"testing"
)

func TestQuantileFromBuckets(t *testing.T) {
	inf := math.Inf(1)
	// 100 observations: 50 up to 1 ms, 40 in (1, 2.5] ms, 9 in (2.5, 5] ms, 1 above 5 ms.
	bs := []bucket{{0.001, 50}, {0.0025, 90}, {0.005, 99}, {inf, 100}}
	for _, c := range []struct {
		q, want float64
	}{
		{0.5, 0.001},
		{0.7, 0.001 + 0.0015*20/40},
		{0.99, 0.005},
		{0.999, 0.005}, // in +Inf: the last finite bound
		{0.25, 0.0005},
	} {
		if got := quantile(bs, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile %.3f = %g, want %g", c.q, got, c.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("no buckets: %g", got)
	}
}

func TestJournalWaitsAreDeltas(t *testing.T) {
	inf := math.Inf(1)
	snap := func(n, slow, commits, fsyncs float64) histSnapshot {
		h := []bucket{{0.001, n - slow}, {0.01, n}, {inf, n}}
		return histSnapshot{hist: map[string][]bucket{
			appendHist: h, intentHist: h,
			commitHist: {{0.001, commits}, {inf, commits}},
		}, fsyncs: fsyncs}
	}
	// Before the window: 1,000 requests, all fast. In it: 100 more, 10 of them slow.
	w := journalWaits(snap(1000, 0, 100, 200), snap(1100, 10, 120, 250))
	if w == nil || w.Requests != 100 || w.CommitsPerRequest != 0.2 || w.FsyncsPerRequest != 0.5 {
		t.Fatalf("%+v", w)
	}
	if w.EventP99Ms <= 1 || w.EventP50Ms > 1 || w.IntentP99Ms != w.EventP99Ms {
		t.Fatalf("quantiles of the window alone: %+v", w)
	}
	if journalWaits(snap(5, 0, 1, 1), snap(5, 0, 1, 1)) != nil {
		t.Fatal("a window without events has no waits")
	}
}
