package journal_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowker-audit/flowker-audit/chain/journal"
)

// BenchmarkIntentAppend measures the write-ahead pattern of an audited request against the append
// alone: N concurrent requests each make an intent durable, then append the event that resolves
// it (two group-commit waits), fsync on (and off: the CPU alone). Reported: requests/s, fsyncs per request and the p50/p99
// latency of one request (intent + event).
//
//	go test -run '^$' -bench BenchmarkIntentAppend -benchtime 2s ./chain/journal/
func BenchmarkIntentAppend(b *testing.B) {
	drafts := benchDrafts(1024)
	for _, c := range []struct {
		intents, fsync bool
		appenders      int
	}{{false, true, 32}, {true, true, 32}, {false, true, 64}, {true, true, 64}, {false, false, 32}, {true, false, 32}} {
		intents, appenders := c.intents, c.appenders
		fsync := map[bool]string{true: "on", false: "off"}[c.fsync]
		b.Run(fmt.Sprintf("fsync=%s/intents=%t/appenders=%d", fsync, intents, appenders), func(b *testing.B) {
			m := journal.NewMetrics(prometheus.NewRegistry())
			j, _, err := journal.Open(journal.Options{Path: filepath.Join(b.TempDir(), "journal.db"),
				MaxBytes: 16 << 30, Metrics: m, NoSync: !c.fsync})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			ctx := context.Background()
			var next atomic.Int64
			lat := make([][]time.Duration, appenders)
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ReportAllocs()
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
						d := drafts[i%int64(len(drafts))]
						d.EventID = uuid.Must(uuid.NewV7()).String() // as the proxy's event ids: time-ordered
						t0 := time.Now()
						if intents {
							pending := d
							pending.Result = ""
							if err := j.Intend(ctx, journal.Intent{ID: d.EventID, Start: t0, Draft: pending,
								Detail: []byte(`{"rule":"workflow.create","method":"POST","path":"/v1/workflows"}`)}); err != nil {
								failed.Store(err)
								return
							}
							d.Resolves = d.EventID
						}
						if _, err := j.Append(ctx, d); err != nil {
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
			if n := j.Pending(); n != 0 {
				b.Fatalf("%d intents left pending", n)
			}
			fsyncs := counterValue(b, m.Fsyncs)
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
			b.ReportMetric(fsyncs/float64(b.N), "fsyncs/request")
			b.ReportMetric(msOf(pct(all, 50)), "p50-ms")
			b.ReportMetric(msOf(pct(all, 99)), "p99-ms")
		})
	}
}

func counterValue(b *testing.B, c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
