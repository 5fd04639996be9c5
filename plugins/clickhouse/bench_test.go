package clickhouse

// Benchmarks at scale against a real ClickHouse (18.16 on the project's machines). They are not
// run by `go test`; run them with, for example:
//
//	FLOWKER_AUDIT_BENCH_EVENTS=1000000 go test ./plugins/clickhouse -run '^$' -bench . -benchtime 1x -timeout 0
//
// Environment:
//
//	FLOWKER_AUDIT_BENCH_EVENTS       events in the data set (default 1,000,000; the target figures are for 10,000,000)
//	FLOWKER_AUDIT_BENCH_BATCH        events per Write (default 10,000)
//	FLOWKER_AUDIT_BENCH_RATIO_EVENTS events also inserted bare, interleaved batch by batch, for the ingest ratio (default all)
//	FLOWKER_AUDIT_BENCH_GAP          mean time between events (default 800ms: 10 M events span ~92 days)
//	FLOWKER_AUDIT_BENCH_DIR          keep the server's data here, so a later run reuses the loaded data set
//	FLOWKER_AUDIT_BENCH_SAMPLES      query samples per query kind (default 100)
//
// BenchmarkIngest loads the data set through Write and, for the same batches, inserts them with a
// bare clickhouse-go PrepareBatch into an identical schema in another database, alternating which
// goes first; it reports both rates and their ratio. BenchmarkQueries reports p50/p99 latencies of
// the audit API's queries; BenchmarkVerify reads the whole chain through ReadChain into a
// chain.Verifier.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

const (
	benchDB      = "bench"
	benchBareDB  = "bench_bare"
	benchChainID = "bench-chain"
	benchSeed    = 77
)

type benchEnv struct {
	events, batch, ratioEvents, samples int
	gap                                 time.Duration
}

func benchConfig(b *testing.B) benchEnv {
	env := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	e := benchEnv{
		events:  env("FLOWKER_AUDIT_BENCH_EVENTS", 1_000_000),
		batch:   env("FLOWKER_AUDIT_BENCH_BATCH", 10_000),
		samples: env("FLOWKER_AUDIT_BENCH_SAMPLES", 100),
		gap:     800 * time.Millisecond,
	}
	e.ratioEvents = env("FLOWKER_AUDIT_BENCH_RATIO_EVENTS", e.events)
	if v := os.Getenv("FLOWKER_AUDIT_BENCH_GAP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("FLOWKER_AUDIT_BENCH_GAP=%q: want a positive duration", v)
		}
		e.gap = d
	}
	return e
}

// benchState is shared by the benchmarks of one test binary.
var benchState struct {
	once   sync.Once
	err    error
	srv    *chtest.Server
	sink   *Sink
	loaded bool
}

// benchServer returns the server for benchmarks: the shared one, or one keeping its data in
// FLOWKER_AUDIT_BENCH_DIR.
func benchServer(b *testing.B) *chtest.Server {
	benchState.once.Do(func() {
		dir := os.Getenv("FLOWKER_AUDIT_BENCH_DIR")
		if dir == "" {
			benchState.srv = server(b)
			return
		}
		// Not closed by a cleanup: the benchmarks after this one use it; the process exit stops it.
		benchState.srv, benchState.err = chtest.Launch(chtest.WithDir(dir), chtest.WithLogf(b.Logf))
	})
	if benchState.err != nil {
		b.Fatal(benchState.err)
	}
	return benchState.srv
}

func benchSink(b *testing.B, srv *chtest.Server) *Sink {
	if benchState.sink == nil {
		s := New(Options{Logger: testLogger(b)})
		ctx := context.Background()
		if err := s.Configure(ctx, testConfig(srv, benchDB, map[string]any{"read_timeout": "10m", "max_execution_time": 600})); err != nil {
			b.Fatal(err)
		}
		benchState.sink = s
	}
	return benchState.sink
}

// Rare actors: every rareEvery-th event of the data set is made by one of rareActors API keys, in
// turn, so each of them has a few events spread over the whole time range (about 5 each at 1 M
// events, 50 at 10 M): the actor_cold shape, whose few keys span all the data. sinktest's own
// actors are few and busy.
const (
	rareEvery  = 997
	rareActors = 200
)

// rareActor returns the rare actor of the i-th event (0-based) of the data set, if it has one.
func rareActor(i int) (string, bool) {
	if i%rareEvery != rareEvery-1 {
		return "", false
	}
	return fmt.Sprintf("key:rare%03d", (i/rareEvery)%rareActors), true
}

// withRareActors gives the batch's events at data-set offset first their rare actors and re-seals
// the chain from the first change (prev is the previous batch's last event, already final).
func withRareActors(batch []chain.Event, first int, prev *chain.Event) {
	from := setRareActors(batch, first, "")
	if from < 0 {
		return
	}
	resealFrom(batch, from, prev)
}

// resealFrom re-seals the batch's chain from index from (prev: the previous batch's last event).
func resealFrom(batch []chain.Event, from int, prev *chain.Event) {
	for j := from; j < len(batch); j++ {
		switch {
		case j > 0:
			batch[j].PreviousHash = batch[j-1].Hash
		case prev != nil:
			batch[j].PreviousHash = prev.Hash
		}
		batch[j].Seal()
	}
}

// setRareActors gives the batch's events at data-set offset first their rare actors (their ids
// ending in suffix), without re-sealing, and returns the index of the first one changed (-1:
// none).
func setRareActors(batch []chain.Event, first int, suffix string) int {
	from := -1
	for j := range batch {
		if id, ok := rareActor(first + j); ok {
			batch[j].Actor = chain.Actor{Type: chain.ActorAPIKey, ID: id + suffix, IPAddress: batch[j].Actor.IPAddress}
			if from < 0 {
				from = j
			}
		}
	}
	return from
}

// generate streams the benchmark chain in batches to the returned channel.
func generate(ctx context.Context, env benchEnv) <-chan []chain.Event {
	out := make(chan []chain.Event, 2)
	go func() {
		defer close(out)
		opts := sinktest.GenOptions{Seed: benchSeed, MeanGap: env.gap, Workflows: 100_000,
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		var last *chain.Event
		for done := 0; done < env.events; {
			n := min(env.batch, env.events-done)
			opts.After = last
			batch := sinktest.GenerateChain(benchChainID, n, opts)
			withRareActors(batch, done, last)
			last = &batch[len(batch)-1]
			done += n
			select {
			case out <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func bareInsert(ctx context.Context, conn driver.Conn, events []chain.Event) error {
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", benchBareDB, TableEvents, insertColumns))
	if err != nil {
		return err
	}
	for i := range events {
		r, err := toRow(&events[i])
		if err != nil {
			return err
		}
		if err := batch.Append(r.chainID, r.seq, r.eventID, r.tsUs, r.eventType, r.action, r.result, r.resourceType,
			r.resourceID, r.actorType, r.actorID, r.actorIP, r.context, r.metadata, r.hash, r.prevHash); err != nil {
			return err
		}
	}
	return batch.Send()
}

// load writes the data set through the sink; with ratio, batches are also inserted bare into an
// identical schema and both are timed.
func load(b *testing.B, srv *chtest.Server, env benchEnv, ratio bool) {
	ctx := context.Background()
	for _, db := range []string{benchDB, benchBareDB} {
		query(b, srv, "DROP DATABASE IF EXISTS "+db)
	}
	if benchState.sink != nil {
		_ = benchState.sink.Close(ctx)
		benchState.sink = nil
	}
	s := benchSink(b, srv)
	// The bare insert speaks the protocol as the sink does, compression included, so that the
	// ratio compares the sink's own work only.
	method := map[string]ch.CompressionMethod{"none": ch.CompressionNone, "lz4": ch.CompressionLZ4, "zstd": ch.CompressionZSTD}[s.cfg.compressionMethod()]
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr}, Compression: &ch.Compression{Method: method}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if ratio {
		for _, q := range DDL(s.version, benchBareDB) {
			if err := conn.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	var (
		plugin, bare, pluginRatio time.Duration
		rows, ratioRows           int
		batches                   int
	)
	begin := time.Now()
	for batch := range generate(ctx, env) {
		both := ratio && rows < env.ratioEvents
		writePlugin := func() {
			t0 := time.Now()
			if err := s.Write(ctx, batch); err != nil {
				b.Fatalf("Write at event %d: %v", rows, err)
			}
			d := time.Since(t0)
			plugin += d
			if both {
				pluginRatio += d
			}
		}
		writeBare := func() {
			t0 := time.Now()
			if err := bareInsert(ctx, conn, batch); err != nil {
				b.Fatalf("bare insert at event %d: %v", rows, err)
			}
			bare += time.Since(t0)
		}
		switch {
		case !both:
			writePlugin()
		case batches%2 == 0:
			writePlugin()
			writeBare()
		default:
			writeBare()
			writePlugin()
		}
		if both {
			ratioRows += len(batch)
		}
		rows += len(batch)
		batches++
		if rows%1_000_000 == 0 {
			fmt.Fprintf(os.Stderr, "loaded %d events in %v\n", rows, time.Since(begin).Round(time.Second))
		}
	}
	wall := time.Since(begin)
	b.ReportMetric(float64(rows)/plugin.Seconds(), "plugin-events/s")
	b.ReportMetric(float64(rows)/wall.Seconds(), "wall-events/s")
	summary := fmt.Sprintf("ingest: %d events in batches of %d; plugin Write %.0f events/s (time inside Write %v, wall %v)",
		rows, env.batch, float64(rows)/plugin.Seconds(), plugin.Round(time.Millisecond), wall.Round(time.Second))
	if ratio && ratioRows > 0 {
		r := (float64(ratioRows) / pluginRatio.Seconds()) / (float64(ratioRows) / bare.Seconds())
		b.ReportMetric(float64(ratioRows)/bare.Seconds(), "bare-events/s")
		b.ReportMetric(r, "ratio")
		summary += fmt.Sprintf("; interleaved over %d events: plugin %.0f events/s, bare PrepareBatch %.0f events/s, ratio %.3f",
			ratioRows, float64(ratioRows)/pluginRatio.Seconds(), float64(ratioRows)/bare.Seconds(), r)
	}
	b.Log(summary)
	fmt.Println(summary)
	if ratio {
		query(b, srv, "DROP DATABASE IF EXISTS "+benchBareDB)
	}
	benchState.loaded = true
}

// ensureLoaded loads the data set unless this process or an earlier run (FLOWKER_AUDIT_BENCH_DIR)
// already did.
func ensureLoaded(b *testing.B, srv *chtest.Server, env benchEnv) *Sink {
	if !benchState.loaded {
		exists := query(b, srv, fmt.Sprintf("EXISTS TABLE %s.%s", benchDB, TableChainBlocks))
		if exists == "1" {
			h, err := benchSink(b, srv).Head(context.Background(), benchChainID)
			first, _ := rareActor(rareEvery - 1)
			rare := query(b, srv, fmt.Sprintf("SELECT count() FROM %s.%s WHERE actor_id = %s", benchDB, TableByActor, quoteString(first)))
			if err == nil && h.Found && h.Sequence == uint64(env.events) && rare != "0" { // a data set from before the rare actors is loaded again
				b.Logf("reusing the loaded data set of %d events", env.events)
				benchState.loaded = true
			}
		}
		if !benchState.loaded {
			b.Logf("loading %d events (not timed as a benchmark)", env.events)
			load(b, srv, env, false)
		}
	}
	return benchSink(b, srv)
}

func BenchmarkIngest(b *testing.B) {
	env := benchConfig(b)
	srv := benchServer(b)
	for i := 0; i < b.N; i++ {
		load(b, srv, env, true)
	}
}

// latencies collects durations and reports percentiles.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func BenchmarkQueries(b *testing.B) {
	env := benchConfig(b)
	srv := benchServer(b)
	s := ensureLoaded(b, srv, env)
	queryShapes(b, s, []shapeVia{{target: sinkTarget{s}, label: "the sink"}}, srv, benchDB, env.events, env.samples)
}

// shapeVia is one path queryShapes measures the search shapes through.
type shapeVia struct {
	target shapeTarget
	label  string // in the printed report
	prefix string // of the sub-benchmarks' names
}

// queryShapes measures p50/p99 of the audit API's search shapes through each of vias, in turn, on
// the data set of database db (events events), with parameters found once through srv and s, and
// prints a report per path.
func queryShapes(b *testing.B, s *Sink, vias []shapeVia, srv *chtest.Server, db string, events, samples int) {
	ctx := context.Background()
	env := struct{ events, samples int }{events, samples}

	// Parameters, found once.
	// Grouping every resource id of a 100 M data set needs more than the servers' 6 GB: the hot
	// resource is the busiest of the last week (the generator's workflows are Zipf-distributed,
	// so the busiest overall), and cold ones are looked for among one in every events/10 M
	// resource ids (by hash, so that each candidate's count is exact).
	hot := query(b, srv, fmt.Sprintf("SELECT resource_id FROM %[1]s.%[2]s WHERE resource_id != '' AND ts_us >= (SELECT max(ts_us) FROM %[1]s.%[2]s) - %[3]d GROUP BY resource_id ORDER BY count() DESC LIMIT 1",
		db, TableByResource, int64(7*24*time.Hour/time.Microsecond))) // "" (no resource) would search without a filter
	hotCount := query(b, srv, fmt.Sprintf("SELECT count() FROM %s.%s WHERE resource_id = %s", db, TableByResource, quoteString(hot)))
	cold := strings.Fields(query(b, srv, fmt.Sprintf("SELECT resource_id FROM %s.%s WHERE cityHash64(resource_id) %% %d = 0 GROUP BY resource_id HAVING count() BETWEEN 2 AND 20 LIMIT 200",
		db, TableByResource, max(1, events/10_000_000))))
	ids := strings.Fields(query(b, srv, fmt.Sprintf("SELECT toString(event_id) FROM %s.%s WHERE cityHash64(toString(event_id)) %% 1000 = 7 LIMIT 500", db, TableByID)))
	types := strings.Fields(query(b, srv, fmt.Sprintf("SELECT DISTINCT event_type FROM %s.%s", db, TableByResource)))
	hotActor := query(b, srv, fmt.Sprintf("SELECT actor_id FROM %s.%s GROUP BY actor_id ORDER BY count() DESC LIMIT 1", db, TableByActor))
	coldActors := strings.Fields(query(b, srv, fmt.Sprintf("SELECT actor_id FROM %s.%s GROUP BY actor_id HAVING count() BETWEEN 2 AND 200 LIMIT 200", db, TableByActor)))
	actorTypes := []string{chain.ActorAPIKey, chain.ActorUser, chain.ActorSystem}
	if len(coldActors) == 0 {
		b.Fatal("no rare actor (2 to 200 events) in the data set: actor_cold would measure a busy one")
	}
	depth := min(1_000_000, env.events/2)
	cur := strings.Fields(query(b, srv, fmt.Sprintf("SELECT ts_us, chain_id, seq FROM %s.%s ORDER BY ts_us DESC, chain_id DESC, seq DESC LIMIT 1 OFFSET %d", db, TableEvents, depth-1)))
	if len(cur) != 3 || len(cold) == 0 || len(ids) == 0 || len(types) == 0 {
		b.Fatalf("benchmark parameters: cursor %v, %d cold resources, %d ids, %d types", cur, len(cold), len(ids), len(types))
	}
	curTs, _ := strconv.ParseInt(cur[0], 10, 64)
	curSeq, _ := strconv.ParseUint(cur[2], 10, 64)
	cursor := sink.Position{TimeMicros: curTs, ChainID: cur[1], Sequence: curSeq}
	_, minTs, maxTs, err := s.timeRange(ctx, state{conn: s.conn, db: db, l: s.cfg.layout(), maxExec: 600})
	if err != nil {
		b.Fatal(err)
	}
	days := int((maxTs - minTs) / int64(24*time.Hour/time.Microsecond))
	b.Logf("data set: %d events; hot resource %s (%s events); cursor at depth %d: %+v; %d days", env.events, hot, hotCount, depth, cursor, days)
	for _, v := range vias {
		rng := rand.New(rand.NewPCG(1, 2)) // every path gets the same choices
		read0 := diskSectorsRead()
		measureShapes(b, v, env.events, env.samples, func(via shapeTarget) []shapeCase {
			search := func(q sink.Query, want int) func() error {
				return func() error {
					n, err := via.search(ctx, q)
					if err == nil && n < want {
						err = fmt.Errorf("%d events, want %d", n, want)
					}
					return err
				}
			}
			return []shapeCase{
				{"first_page", func() func() error { return search(sink.Query{Limit: 20}, 20) }},
				{"event_type", func() func() error {
					return search(sink.Query{Filter: sink.Filter{EventType: types[rng.IntN(len(types))]}, Limit: 20}, 1)
				}},
				{"resource_hot", func() func() error { return search(sink.Query{Filter: sink.Filter{ResourceID: hot}, Limit: 20}, 20) }},
				{"resource_cold", func() func() error {
					return search(sink.Query{Filter: sink.Filter{ResourceID: cold[rng.IntN(len(cold))]}, Limit: 20}, 2)
				}},
				{"one_day", func() func() error {
					if days < 2 { // a small data set (BENCH_QUICK) spans less than two whole days: its first day
						day := time.UnixMicro(minTs).UTC().Truncate(24 * time.Hour)
						return search(sink.Query{Filter: sink.Filter{From: day, To: day.Add(24*time.Hour - time.Microsecond)}, Limit: 20}, 1)
					}
					day := time.UnixMicro(minTs).UTC().Truncate(24*time.Hour).AddDate(0, 0, 1+rng.IntN(max(1, days-1)))
					return search(sink.Query{Filter: sink.Filter{From: day, To: day.Add(24*time.Hour - time.Microsecond)}, Limit: 20}, 20)
				}},
				{fmt.Sprintf("cursor_depth_%d", depth), func() func() error { return search(sink.Query{After: &cursor, Limit: 20}, 20) }},
				{"actor_type", func() func() error {
					return search(sink.Query{Filter: sink.Filter{ActorType: actorTypes[rng.IntN(len(actorTypes))]}, Limit: 20}, 1)
				}},
				{"actor_hot", func() func() error { return search(sink.Query{Filter: sink.Filter{ActorID: hotActor}, Limit: 20}, 20) }},
				{"actor_cold", func() func() error {
					return search(sink.Query{Filter: sink.Filter{ActorID: coldActors[rng.IntN(len(coldActors))]}, Limit: 20}, 1)
				}},
				{"actor_hot_event_type", func() func() error {
					return search(sink.Query{Filter: sink.Filter{ActorID: hotActor, EventType: types[rng.IntN(len(types))]}, Limit: 20}, 0)
				}},
				{"get_event_id", func() func() error {
					id := ids[rng.IntN(len(ids))]
					return func() error { return via.get(ctx, id) }
				}},
			}
		})
		if read0 >= 0 {
			fmt.Printf("disk reads while measuring through %s: %.1f MB (all block devices, /proc/diskstats)\n", v.label, float64(diskSectorsRead()-read0)*512/1e6)
		}
	}
}

// diskSectorsRead returns the 512-byte sectors read from the machine's disks so far (whole
// devices, not partitions, from /proc/diskstats), or -1 where that is not available: what the
// searches of a data set larger than memory read from the disk rather than the page cache.
func diskSectorsRead() int64 {
	data, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return -1
	}
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		if _, err := os.Stat("/sys/block/" + f[2]); err != nil {
			continue // a partition: its reads are counted in its device's
		}
		n, err := strconv.ParseInt(f[5], 10, 64)
		if err == nil {
			total += n
		}
	}
	return total
}

// shapeCase is one search shape: op returns its next call.
type shapeCase struct {
	name string
	op   func() func() error
}

// measureShapes runs every case that cases builds for v's target, samples times at least, and
// prints the report.
func measureShapes(b *testing.B, v shapeVia, events, samples int, cases func(shapeTarget) []shapeCase) {
	env := struct{ events, samples int }{events, samples}
	var report []string
	for _, c := range cases(v.target) {
		b.Run(v.prefix+c.name, func(b *testing.B) {
			if err := c.op()(); err != nil { // warm-up, not counted
				b.Fatal(err)
			}
			n := max(b.N, env.samples)
			var l latencies
			for i := 0; i < n; i++ {
				call := c.op()
				t0 := time.Now()
				if err := call(); err != nil {
					b.Fatal(err)
				}
				l = append(l, time.Since(t0))
			}
			p50, p99 := l.pct(0.50), l.pct(0.99)
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			line := fmt.Sprintf("%-22s n=%d p50 %7.1f ms  p99 %7.1f ms", c.name, n, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000)
			report = append(report, line)
		})
	}
	fmt.Printf("queries on %d events through %s:\n  %s\n", env.events, v.label, strings.Join(report, "\n  "))
}

func BenchmarkVerify(b *testing.B) {
	env := benchConfig(b)
	srv := benchServer(b)
	s := ensureLoaded(b, srv, env)
	// Measure verification on a settled table: right after a bulk load ClickHouse is still
	// merging parts in the background, which competes for the same two cores. Wait (bounded)
	// until no merge is running and say how long that took.
	t0 := time.Now()
	for time.Since(t0) < 10*time.Minute {
		if strings.TrimSpace(query(b, srv, "SELECT count() FROM system.merges")) == "0" {
			break
		}
		time.Sleep(2 * time.Second)
	}
	b.Logf("verify: waited %v for background merges to finish", time.Since(t0).Round(time.Second))
	printStorage(b, srv, benchDB, env.events, "storage")
	fmt.Printf("verify: waited %v for background merges to finish\n", time.Since(t0).Round(time.Second))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := chain.NewVerifier(benchChainID, 1, "")
		t0 := time.Now()
		err := s.ReadChain(context.Background(), benchChainID, 1, 0, func(e *chain.Event) error { return v.Add(e) })
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if v.Checked() != uint64(env.events) {
			b.Fatalf("verified %d events, want %d", v.Checked(), env.events)
		}
		rate := float64(v.Checked()) / d.Seconds()
		b.ReportMetric(rate, "events/s")
		line := fmt.Sprintf("verify: ReadChain + chain.Verifier over %d events in %v: %.0f events/s (compression %s)", v.Checked(), d.Round(time.Millisecond), rate, s.cfg.compressionMethod())
		b.Log(line)
		fmt.Println(line)

		// The same read with LZ4 forced, the default for a remote server, for comparison.
		lz4 := New(Options{Logger: testLogger(b)})
		if err := lz4.Configure(context.Background(), testConfig(srv, benchDB, map[string]any{"read_timeout": "10m", "max_execution_time": 600, "compression": "lz4"})); err != nil {
			b.Fatal(err)
		}
		v = chain.NewVerifier(benchChainID, 1, "")
		t0 = time.Now()
		err = lz4.ReadChain(context.Background(), benchChainID, 1, 0, func(e *chain.Event) error { return v.Add(e) })
		d = time.Since(t0)
		_ = lz4.Close(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		lzRate := float64(v.Checked()) / d.Seconds()
		b.ReportMetric(lzRate, "lz4-events/s")
		line = fmt.Sprintf("verify with compression lz4: %d events in %v: %.0f events/s (%.2f of the default)", v.Checked(), d.Round(time.Millisecond), lzRate, lzRate/rate)
		b.Log(line)
		fmt.Println(line)
	}
}
