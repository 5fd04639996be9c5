package journal_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// benchDrafts returns n drafts with the content of generated events (0.5–2 KiB of canonical
// context each, about 1 KiB on average), for the journal to sequence and seal.
func benchDrafts(n int) []journal.Draft {
	events := sinktest.GenerateChain("bench", n, sinktest.GenOptions{Seed: 7})
	out := make([]journal.Draft, n)
	for i, e := range events {
		out[i] = journal.Draft{EventID: e.EventID, EventType: e.EventType, Action: e.Action, Result: e.Result,
			ResourceID: e.ResourceID, ResourceType: e.ResourceType, Actor: e.Actor, Context: e.Context, Metadata: e.Metadata}
	}
	return out
}

// histogram returns the sample count and sum of h.
func histogram(b *testing.B, h prometheus.Histogram) (count uint64, sum float64) {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// BenchmarkAppend measures journal appends per second with N concurrent appenders, with fsync
// on (the default: one fsync per group commit, so concurrent appends share it) and off. Every
// Append returns once its event is committed, as the proxy's audited requests wait for it.
// Reported: appends/s, the mean group-commit size (events per commit) and the p50/p99 latency
// of one Append.
//
//	go test -run '^$' -bench BenchmarkAppend -benchtime 2s ./chain/journal/
func BenchmarkAppend(b *testing.B) {
	drafts := benchDrafts(1024)
	for _, fsync := range []bool{true, false} {
		for _, appenders := range []int{1, 16, 64} {
			name := fmt.Sprintf("fsync=%s/appenders=%d", map[bool]string{true: "on", false: "off"}[fsync], appenders)
			b.Run(name, func(b *testing.B) {
				m := journal.NewMetrics(prometheus.NewRegistry())
				j, _, err := journal.Open(journal.Options{Path: filepath.Join(b.TempDir(), "journal.db"),
					NoSync: !fsync, MaxBytes: 16 << 30, Metrics: m})
				if err != nil {
					b.Fatal(err)
				}
				defer j.Close()
				ctx := context.Background()
				var next atomic.Int64
				lat := make([][]time.Duration, appenders)
				var wg sync.WaitGroup
				var failed atomic.Value
				b.ResetTimer()
				start := time.Now()
				for w := range appenders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							t0 := time.Now()
							if _, err := j.Append(ctx, drafts[i%int64(len(drafts))]); err != nil {
								failed.Store(err)
								return
							}
							lat[w] = append(lat[w], time.Since(t0))
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				commits, events := histogram(b, m.GroupSize)
				if int(events) != b.N {
					b.Fatalf("group commits hold %.0f events, want %d", events, b.N)
				}
				all := slices.Concat(lat...)
				slices.Sort(all)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
				b.ReportMetric(events/float64(commits), "events/commit")
				b.ReportMetric(msOf(pct(all, 50)), "p50-ms")
				b.ReportMetric(msOf(pct(all, 99)), "p99-ms")
			})
		}
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank p-th percentile of sorted.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(1, min(rank, len(sorted)))-1]
}

// BenchmarkAppendWithWork models the proxy: 64 goroutines each spend ~50 µs of CPU (building an
// event) before every append, with fsync on. Run with -cpu 1,2: with one P the writer must
// still group appends (it yields before each commit so that pending appenders can enqueue).
func BenchmarkAppendWithWork(b *testing.B) {
	m := journal.NewMetrics(prometheus.NewRegistry())
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(b.TempDir(), "j.db"), Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	drafts := benchDrafts(256)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				for i := 0; i < 60; i++ {
					_ = sha256.Sum256(buf)
				}
				if _, err := j.Append(context.Background(), drafts[n%int64(len(drafts))]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "appends/s")
	commits, _ := histogram(b, m.GroupSize)
	b.ReportMetric(float64(b.N)/float64(commits), "events/commit")
}
