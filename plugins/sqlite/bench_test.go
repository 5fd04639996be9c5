package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func benchSink(b *testing.B, path, extra string) *Sink {
	b.Helper()
	s := New(Options{})
	if err := s.Configure(context.Background(), []byte(fmt.Sprintf(`{"path": %q%s}`, path, extra))); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// BenchmarkWrite measures Write throughput (events/s) for batch sizes the host sends, with
// synchronous full (the default: one fsync per batch) and normal.
func BenchmarkWrite(b *testing.B) {
	for _, syncMode := range []string{"full", "normal"} {
		for _, size := range []int{500, 5000} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", syncMode, size), func(b *testing.B) {
				s := benchSink(b, filepath.Join(b.TempDir(), "audit.db"), fmt.Sprintf(`, "synchronous": %q`, syncMode))
				ctx := context.Background()
				var last *chain.Event
				var busy time.Duration
				for range b.N {
					b.StopTimer()
					batch := sinktest.GenerateChain("chain-bench", size, sinktest.GenOptions{Seed: 1, After: last})
					last = &batch[len(batch)-1]
					b.StartTimer()
					start := time.Now()
					if err := s.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
					busy += time.Since(start)
				}
				b.ReportMetric(float64(b.N*size)/busy.Seconds(), "events/s")
			})
		}
	}
}

const benchEvents = 1_000_000

// buildBenchDB fills path with benchEvents events of three interleaved chains, generating on one
// goroutine while writing on another.
func buildBenchDB(b *testing.B, path string) {
	b.Helper()
	start := time.Now()
	s := benchSink(b, path, `, "synchronous": "normal", "cache_size_mib": 256`)
	ctx := context.Background()
	const batch = 5000
	chains := []string{"replica-a", "replica-b", "replica-c"}
	batches := make(chan []chain.Event, 4)
	go func() {
		defer close(batches)
		last := make([]*chain.Event, len(chains))
		for n := 0; n < benchEvents; {
			for i, id := range chains {
				size := min(batch, benchEvents-n)
				if size == 0 {
					break
				}
				evs := sinktest.GenerateChain(id, size, sinktest.GenOptions{Seed: 42, After: last[i]})
				last[i] = &evs[len(evs)-1]
				n += size
				batches <- evs
			}
		}
	}()
	for evs := range batches {
		if err := s.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	b.Logf("built %d events in %s (%.0f events/s, synchronous=normal, batches of %d); database %d MiB",
		benchEvents, time.Since(start).Round(time.Second), float64(benchEvents)/time.Since(start).Seconds(), batch, fi.Size()>>20)
}

// BenchmarkSearch1M measures query latency at one million stored events and reports p50/p99 per
// query shape. The database is built once per run (or reused from $SQLITE_BENCH_DB when that file
// exists; set it to a path to keep the database between runs).
func BenchmarkSearch1M(b *testing.B) {
	path := os.Getenv("SQLITE_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
	}
	if _, err := os.Stat(path); err != nil {
		buildBenchDB(b, path)
	}
	s := benchSink(b, path, "") // the defaults: synchronous full, 64 MiB cache
	st, err := s.store()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var count int
	if err := st.r.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&count); err != nil || count < benchEvents {
		b.Fatalf("bench database holds %d events (%v), want %d", count, err, benchEvents)
	}
	column := func(q string) []string {
		rows, err := st.r.QueryContext(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				b.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	eventIDs := column(`SELECT event_id FROM events WHERE rowid % 997 = 0`)
	// Resource ids sampled by event (so popular ones come up more often; most are executions
	// with a few events each), and workflow ids only (fewer, busier: full pages).
	resourceIDs := column(`SELECT resource_id FROM events WHERE rowid % 4999 = 0 AND resource_id != ''`)
	workflowIDs := column(`SELECT resource_id FROM events WHERE rowid % 4999 = 0 AND resource_type = 'workflow'`)
	var deep []sink.Position
	rows, err := st.r.QueryContext(ctx, `SELECT ts_us, chain_id, seq FROM events INDEXED BY events_ts
		ORDER BY ts_us DESC, chain_id DESC, seq DESC LIMIT 64 OFFSET 500000`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var p sink.Position
		var seq int64
		if err := rows.Scan(&p.TimeMicros, &p.ChainID, &seq); err != nil {
			b.Fatal(err)
		}
		p.Sequence = uint64(seq)
		deep = append(deep, p)
	}
	rows.Close()
	// Actor ids sampled by event (busy API keys and users come up more often).
	actorIDs := column(`SELECT actor_id FROM events WHERE rowid % 4999 = 0`)
	actorTypes := []string{chain.ActorAPIKey, chain.ActorUser, chain.ActorSystem}
	types := []string{chain.ExecutionStarted, chain.WorkflowUpdated, chain.ProviderConfigUpdated, chain.WorkflowDeleted, chain.ExecutorConfigDeleted}

	shapes := []struct {
		name string
		run  func(i int) error
	}{
		{"first-page", func(int) error {
			_, err := s.Search(ctx, sink.Query{Limit: 20})
			return err
		}},
		{"eventType-page", func(i int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{EventType: types[i%len(types)]}, Limit: 20})
			return err
		}},
		{"resourceId-page", func(i int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ResourceID: resourceIDs[i%len(resourceIDs)]}, Limit: 20})
			return err
		}},
		{"resourceId-page-workflow", func(i int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ResourceID: workflowIDs[i%len(workflowIDs)]}, Limit: 20})
			return err
		}},
		{"deep-cursor-page", func(i int) error {
			_, err := s.Search(ctx, sink.Query{After: &deep[i%len(deep)], Limit: 20})
			return err
		}},
		{"get-by-eventId", func(i int) error {
			_, err := s.Get(ctx, eventIDs[(i*7919)%len(eventIDs)])
			return err
		}},
		{"actorType-page", func(i int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ActorType: actorTypes[i%len(actorTypes)]}, Limit: 20})
			return err
		}},
		{"actorId-page", func(i int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ActorID: actorIDs[i%len(actorIDs)]}, Limit: 20})
			return err
		}},
		{"actorId+eventType-page", func(i int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ActorID: actorIDs[i%len(actorIDs)], EventType: types[i%len(types)]}, Limit: 20})
			return err
		}},
		{"actorId-deep-cursor-page", func(i int) error {
			p := deep[i%len(deep)]
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ActorID: actorIDs[i%len(actorIDs)]}, After: &p, Limit: 20})
			return err
		}},
		// Worst case for the single-index plan: a combination nothing matches, so the scan walks
		// the whole eventType group (~20% of the table) checking result on each row.
		{"worst-combined-no-match", func(int) error {
			_, err := s.Search(ctx, sink.Query{Filter: sink.Filter{EventType: chain.ExecutionCompleted, Result: chain.ResultFailed}, Limit: 20})
			return err
		}},
	}
	b.ResetTimer()
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := range b.N {
				start := time.Now()
				if err := sh.run(i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
		})
	}
}

// BenchmarkExportScan1M pages through every one of the million events the way the audit API's
// export does (keyset pages of 1000, oldest first) and reports events/s; it needs the database of
// BenchmarkSearch1M ($SQLITE_BENCH_DB, built when missing).
func BenchmarkExportScan1M(b *testing.B) {
	path := os.Getenv("SQLITE_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
	}
	if _, err := os.Stat(path); err != nil {
		buildBenchDB(b, path)
	}
	s := benchSink(b, path, "")
	ctx := context.Background()
	for _, f := range []struct {
		name   string
		filter sink.Filter
	}{{"all", sink.Filter{}}, {"actorType=user", sink.Filter{ActorType: chain.ActorUser}}} {
		b.Run(f.name, func(b *testing.B) {
			var n int
			start := time.Now()
			for range b.N {
				q := sink.Query{Filter: f.filter, Order: sink.Asc, Limit: MaxLimit}
				for {
					p, err := s.Search(ctx, q)
					if err != nil {
						b.Fatal(err)
					}
					n += len(p.Events)
					if !p.More {
						break
					}
					last := sink.PositionOf(&p.Events[len(p.Events)-1])
					q.After = &last
				}
			}
			b.ReportMetric(float64(n)/float64(b.N), "events/op")
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		})
	}
}
