package clickhouse

// BenchmarkCluster: the scale-out figures on a replicated cluster (ZooKeeper and two
// 18.16 replicas of one shard by default, started by chtest in temporary directories). Not run by `go test`,
// nor by the plain `-bench .` of the clickhouse section: it runs only with
// FLOWKER_AUDIT_BENCH_CLUSTER=1 (scripts/bench.sh, section clickhouse-cluster):
//
//	FLOWKER_AUDIT_BENCH_CLUSTER=1 FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS=1000000 \
//	  go test ./plugins/clickhouse -run '^$' -bench BenchmarkCluster -benchtime 1x -timeout 0
//
// Environment:
//
//	FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS  events in all (default 100,000,000), over 4 chains
//	FLOWKER_AUDIT_BENCH_CLUSTER_RATIO   events of the ingest comparison (default 4,000,000 or all, if fewer)
//	FLOWKER_AUDIT_BENCH_CLUSTER_REPLICAS replicas of the shard (default 2)
//	FLOWKER_AUDIT_BENCH_CLUSTER_CONTEXT proxy (default) or rich: the events' context shape
//	                                    (bench_context_test.go)
//	FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION lz4 (default: 18.16's) or zstd, the servers'
//	                                    <compression> for every part
//	FLOWKER_AUDIT_BENCH_CLUSTER_API_AGAIN=1 measure the searches through the audit API once more,
//	                                    after the sink's pass, with the same choices
//	FLOWKER_AUDIT_BENCH_CLUSTER_DIR     keep ZooKeeper's and the servers' data here; a later run of
//	                                    the same size, replicas, context shape and compression
//	                                    reuses the loaded data set and skips steps 1 and 2; an
//	                                    events table kept from before the cluster layout was
//	                                    partitioned by chain is re-partitioned in place first
//	                                    (repartitionKept)
//	FLOWKER_AUDIT_BENCH_BATCH, FLOWKER_AUDIT_BENCH_GAP, FLOWKER_AUDIT_BENCH_SAMPLES as for the single-server benchmarks
//
// The servers keep their data under $TMPDIR. Before anything is loaded the benchmark checks that
// the filesystem has room for the data set on every replica (bytesPerEvent: the 1 M runs' figures
// plus headroom; the bare comparison's copy is dropped before the rest is loaded) and stops with
// the figure otherwise: 100 M events of proxy-shaped contexts need ~60 GB per replica with 18.16's
// lz4 and ~36 GB with zstd, so on a disk with ~40 GB free only one replica with zstd fits.
//
// Steps, each printed as one line:
//  1. ingest comparison: the first RATIO events of the four chains go, batch by batch and
//     alternating which goes first, through the plugin's Write into the cluster and with a bare
//     clickhouse-go PrepareBatch into an identical cluster schema in another database (both
//     through the Distributed table with insert_distributed_sync = 1, as the sink writes);
//  2. the rest is loaded through Write by four writers at once (one per chain, like four
//     sidecars), then every chain gets its heartbeat watermark (the read horizon is on);
//  3. after background merges settle (bounded wait): the search shapes of BenchmarkQueries, p50/p99,
//     first as HTTP requests to the audit API over the bundled clickhouse plugin in its own process
//     (FLOWKER_AUDIT_BIN, relative to the repository root, or a fresh build; the path a request
//     takes in the sidecar, less its listener and middleware), then through the sink in this
//     process (the store's share of that time);
//  4. verify: ReadChain + chain.Verifier of each chain, events/s per chain;
//  5. storage: compressed bytes on disk per event from system.parts on the first replica, for
//     the events table alone and for every table of the database.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	benchClusterDB     = "bench_cluster"
	benchClusterBareDB = "bench_cluster_bare"
	benchClusterChains = 4
)

func BenchmarkCluster(b *testing.B) {
	if os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER") != "1" {
		b.Skip("set FLOWKER_AUDIT_BENCH_CLUSTER=1 to run the cluster benchmark (scripts/bench.sh section clickhouse-cluster)")
	}
	env := benchConfig(b)
	total := envInt(b, "FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS", 100_000_000)
	ratioEvents := min(total, envInt(b, "FLOWKER_AUDIT_BENCH_CLUSTER_RATIO", 4_000_000))
	replicas := envInt(b, "FLOWKER_AUDIT_BENCH_CLUSTER_REPLICAS", 2)
	shape := clusterContext(b)
	perChain := total / benchClusterChains
	total = perChain * benchClusterChains
	// A data set kept in FLOWKER_AUDIT_BENCH_CLUSTER_DIR by an earlier run of the same size and
	// shape is reused: steps 1 and 2 are skipped.
	dataDir := os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_DIR")
	loaded := ""
	if dataDir != "" {
		loaded = filepath.Join(dataDir, fmt.Sprintf("loaded-%d-%d-%s-%s", total, replicas, shape, os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION")))
	}
	if _, err := os.Stat(loaded); loaded != "" && err == nil {
		fmt.Printf("cluster: %d events, %d replica(s), %s contexts, reusing the data set in %s (no ingest comparison)\n", total, replicas, shape, dataDir)
		reuseCluster(b, dataDir, total, replicas, env)
		return
	}
	// A load that an earlier run started in dataDir (its ingest comparison done) continues where
	// each chain's stored head is.
	ratioFile := loaded + ".ratio"
	ratioLine, err := os.ReadFile(ratioFile)
	resume := loaded != "" && err == nil
	if entries, _ := os.ReadDir(dataDir); dataDir != "" && !resume && len(entries) > 0 {
		b.Fatalf("FLOWKER_AUDIT_BENCH_CLUSTER_DIR=%s holds another data set, or one whose ingest comparison did not finish: remove it or choose another directory", dataDir)
	}
	if resume {
		fmt.Printf("cluster: %d events, %d replica(s), %s contexts, continuing the load kept in %s\n", total, replicas, shape, dataDir)
		resumeCluster(b, dataDir, string(ratioLine), loaded, total, replicas, env, shape)
		return
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(os.TempDir(), &fs); err != nil {
		b.Fatal(err)
	}
	free := fs.Bavail * uint64(fs.Bsize)
	perEvent := bytesPerEvent(shape, os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION"))
	if need := uint64(total) * perEvent * uint64(replicas); need > free {
		b.Fatalf("%d events on %d replicas need about %.1f GB under %s (%d bytes per event and replica), %.1f GB are free: set FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS lower, FLOWKER_AUDIT_BENCH_CLUSTER_REPLICAS=1, FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION=zstd or TMPDIR elsewhere",
			total, replicas, float64(need)/1e9, os.TempDir(), perEvent, float64(free)/1e9)
	}
	fmt.Printf("cluster: %d events, %d replica(s), %s contexts, disk check at %d bytes per event and replica (%.1f GB of %.1f GB free)\n",
		total, replicas, shape, perEvent, float64(uint64(total)*perEvent*uint64(replicas))/1e9, float64(free)/1e9)
	c, s, cfg := openBenchCluster(b, dataDir, replicas)
	ctx := context.Background()
	// The bare insert: the same DDL in another database, the same protocol settings.
	method := map[string]ch.CompressionMethod{"none": ch.CompressionNone, "lz4": ch.CompressionLZ4, "zstd": ch.CompressionZSTD}[s.cfg.compressionMethod()]
	conn, err := ch.Open(&ch.Options{Addr: c.Addrs(), Compression: &ch.Compression{Method: method}, ReadTimeout: 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	bareLayout := Layout{Database: benchClusterBareDB, Cluster: "audit"}
	for _, q := range SchemaDDL(s.version, bareLayout) {
		if err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	syncCtx := ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))

	// One generator per chain, in batches.
	gens := make([]<-chan []chain.Event, benchClusterChains)
	for i := range gens {
		gens[i] = generateChain(ctx, fmt.Sprintf("bench-chain-%d", i), int64(benchSeed+i), perChain, env, shape)
	}

	// 1. The ingest comparison, one chain's batch after another's.
	var plugin, bare time.Duration
	ratioRows, batches := 0, 0
	for ratioRows < ratioEvents {
		batch, ok := <-gens[batches%benchClusterChains]
		if !ok {
			break
		}
		writePlugin := func() {
			t0 := time.Now()
			if err := s.Write(ctx, batch); err != nil {
				b.Fatalf("Write: %v", err)
			}
			plugin += time.Since(t0)
		}
		writeBare := func() {
			t0 := time.Now()
			if err := bareInsertInto(syncCtx, conn, benchClusterBareDB, batch); err != nil {
				b.Fatalf("bare insert: %v", err)
			}
			bare += time.Since(t0)
		}
		if batches%2 == 0 {
			writePlugin()
			writeBare()
		} else {
			writeBare()
			writePlugin()
		}
		ratioRows += len(batch)
		batches++
	}
	pr, br := float64(ratioRows)/plugin.Seconds(), float64(ratioRows)/bare.Seconds()
	b.ReportMetric(pr/br, "ingest-ratio")
	line := fmt.Sprintf("cluster ingest over %d events in batches of %d: plugin Write %.0f events/s, bare PrepareBatch %.0f events/s, ratio %.3f\n",
		ratioRows, env.batch, pr, br, pr/br)
	fmt.Print(line)
	if loaded != "" {
		if err := os.WriteFile(ratioFile, []byte(line), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+benchClusterBareDB+" ON CLUSTER audit"); err != nil {
		b.Fatal(err)
	}

	// 2. The rest: four writers at once.
	begin := time.Now()
	writeChains(ctx, b, s, gens)
	rest := total - ratioRows
	fmt.Printf("cluster load: %d more events by %d concurrent writers in %v (%.0f events/s); %d events in all\n",
		rest, benchClusterChains, time.Since(begin).Round(time.Second), float64(rest)/time.Since(begin).Seconds(), total)
	markChains(ctx, b, s)
	syncReplicas(b, c, Layout{Database: benchClusterDB, Cluster: "audit"})
	waitMerges(b, c.Replicas[0])
	if loaded != "" {
		if err := os.WriteFile(loaded, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	measureCluster(b, c, s, cfg, total, env)
}

// openBenchCluster starts the benchmark's cluster (in dataDir when it is set) and a sink
// configured for it, with the configuration it was given.
func openBenchCluster(b *testing.B, dataDir string, replicas int) (*chtest.Cluster, *Sink, map[string]any) {
	var c *chtest.Cluster
	if dataDir != "" {
		c = chtest.StartClusterIn(b, dataDir, "audit", replicas, clusterServerOptions(b, 6_000_000_000)...)
	} else {
		c = chtest.StartCluster(b, "audit", replicas, clusterServerOptions(b, 6_000_000_000)...)
	}
	cfg := clusterConfig(c.Addrs(), benchClusterDB, map[string]any{"read_timeout": "10m", "max_execution_time": 600})
	s, err := configureSink(b, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c, s, cfg
}

// resumeCluster restarts the cluster kept in dataDir, whose load an earlier run began, loads the
// rest of every chain after its stored head, marks it loaded and measures.
func resumeCluster(b *testing.B, dataDir, ratioLine, loaded string, total, replicas int, env benchEnv, shape benchContext) {
	c, s, cfg := openBenchCluster(b, dataDir, replicas)
	ctx := context.Background()
	fmt.Print("(from the run that began the load) " + ratioLine)
	perChain := total / benchClusterChains
	gens := make([]<-chan []chain.Event, benchClusterChains)
	stored := 0
	for i := range gens {
		id := fmt.Sprintf("bench-chain-%d", i)
		head, err := s.Head(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		stored += int(head.Sequence)
		var after *chain.Event
		if head.Found {
			if err := s.ReadChain(ctx, id, head.Sequence, head.Sequence, func(e *chain.Event) error {
				after = e
				return nil
			}); err != nil || after == nil {
				b.Fatalf("read the stored head %d of %s: %v", head.Sequence, id, err)
			}
			if head.Sequence%uint64(env.batch) != 0 {
				fmt.Printf("cluster: %s stops at %d, not after a whole batch of %d: the rest differs from an uninterrupted load's (still one valid chain)\n", id, head.Sequence, env.batch)
			}
		}
		gens[i] = generateChainAfter(ctx, id, int64(benchSeed+i), perChain, env, shape, after)
	}
	begin := time.Now()
	writeChains(ctx, b, s, gens)
	fmt.Printf("cluster load: %d more events by %d concurrent writers in %v (%.0f events/s); %d events in all\n",
		total-stored, benchClusterChains, time.Since(begin).Round(time.Second), float64(total-stored)/time.Since(begin).Seconds(), total)
	markChains(ctx, b, s)
	syncReplicas(b, c, Layout{Database: benchClusterDB, Cluster: "audit"})
	waitMerges(b, c.Replicas[0])
	repartitionKept(b, c.Replicas[0])
	if err := os.WriteFile(loaded, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	measureCluster(b, c, s, cfg, total, env)
}

// reuseCluster restarts the cluster kept in dataDir, checks that it holds total events, marks the
// chains again (their watermarks are as old as the load) and measures.
func reuseCluster(b *testing.B, dataDir string, total, replicas int, env benchEnv) {
	c, s, cfg := openBenchCluster(b, dataDir, replicas)
	if got := query(b, c.Replicas[0], "SELECT count() FROM "+benchClusterDB+"."+TableEvents); got != strconv.Itoa(total) {
		b.Fatalf("the kept data set in %s holds %s events, want %d: remove the directory", dataDir, got, total)
	}
	repartitionKept(b, c.Replicas[0])
	markChains(context.Background(), b, s)
	measureCluster(b, c, s, cfg, total, env)
}

// repartitionKept rewrites a kept events table that an earlier layout partitioned by month alone
// into the current key (PartitionKey), so that a data set loaded before that change is measured
// with today's layout without loading it again: a table with the new key under another name
// (its own ZooKeeper path), filled month by month with INSERT ... SELECT from the kept one, each
// month dropped from the kept one once copied (so that the disk holds one month twice at most),
// then swapped in by name and merged. The views and lookup tables are not touched: their rows do
// not change, and no query depends on the partition key. A table already partitioned by the new
// key is left alone.
func repartitionKept(b *testing.B, srv *chtest.Server) {
	db, old, tmp := benchClusterDB, local(TableEvents), local(TableEvents)+"_repartition"
	parts := func(table string) []string {
		out := query(b, srv, fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = '%s' AND table = '%s' AND active ORDER BY partition", db, table))
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}
	months := parts(old)
	if len(months) == 0 || strings.HasPrefix(months[0], "(") {
		return // empty, or already partitioned by month and chain
	}
	ctx := context.Background()
	long := func(sql string) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
		defer cancel()
		if _, err := srv.Query(ctx, sql); err != nil {
			b.Fatalf("re-partition: %s: %v", sql, err)
		}
	}
	t0 := time.Now()
	total := query(b, srv, fmt.Sprintf("SELECT count() FROM %s.%s", db, old))
	create := SchemaDDL(Legacy, Layout{Database: db, Cluster: "audit"})[1]
	if !strings.Contains(create, "CREATE TABLE IF NOT EXISTS "+db+"."+old+" ON CLUSTER") {
		b.Fatalf("re-partition: the second statement of the cluster DDL is not the events table:\n%s", create)
	}
	long(strings.ReplaceAll(create, old, tmp))
	for _, m := range months {
		// Blocks of up to 1 M rows or 1 GiB (the server's default squashes to 256 MiB): fewer,
		// larger parts to merge afterwards, within the 6 GB per-query memory limit.
		long(fmt.Sprintf("INSERT INTO %s.%s SELECT * FROM %s.%s WHERE toYYYYMM(ts) = %s SETTINGS min_insert_block_size_rows = 1048576, min_insert_block_size_bytes = 1073741824",
			db, tmp, db, old, m))
		long(fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", db, old, m))
		// Wait until the dropped parts are deleted from the disk (old_parts_lifetime, above).
		for t1 := time.Now(); time.Since(t1) < 5*time.Minute && query(b, srv, fmt.Sprintf("SELECT count() FROM system.parts WHERE database = '%s' AND table = '%s' AND NOT active", db, old)) != "0"; {
			time.Sleep(5 * time.Second)
		}
		fmt.Printf("cluster: re-partitioned month %s of the kept events table (%v so far)\n", m, time.Since(t0).Round(time.Second))
	}
	if got := query(b, srv, fmt.Sprintf("SELECT count() FROM %s.%s", db, tmp)); got != total {
		b.Fatalf("re-partition: %s events copied, want %s", got, total)
	}
	long(fmt.Sprintf("RENAME TABLE %[1]s.%[2]s TO %[1]s.%[2]s_monthly, %[1]s.%[3]s TO %[1]s.%[2]s", db, old, tmp))
	long(fmt.Sprintf("DROP TABLE %s.%s_monthly", db, old))
	// The copy's parts merge in the background; measure once they have (the loaded data set's
	// merges had finished too), for at most an hour.
	for t1 := time.Now(); time.Since(t1) < time.Hour && query(b, srv, "SELECT count() FROM system.merges") != "0"; {
		time.Sleep(5 * time.Second)
	}
	waitMerges(b, srv)
	fmt.Printf("cluster: re-partitioned the kept events table by month and chain (%s) in %v: %s events, %d partitions\n",
		PartitionKey(true), time.Since(t0).Round(time.Second), total, len(parts(old)))
}

// measureCluster runs steps 3 to 5 on a loaded cluster.
func measureCluster(b *testing.B, c *chtest.Cluster, s *Sink, cfg map[string]any, total int, env benchEnv) {
	ctx := context.Background()
	perChain := total / benchClusterChains
	// 3. Searches: through the audit API over the plugin process, then through the sink alone.
	// With FLOWKER_AUDIT_BENCH_CLUSTER_API_AGAIN=1 the audit API is measured a second time, last,
	// with the same choices: on a data set larger than memory the first pass reads from the disk
	// what the later ones find cached (each pass prints its disk reads).
	api := newAPITarget(b, cfg)
	vias := []shapeVia{
		{target: api, label: "the audit API (HTTP, then gRPC to the plugin process)", prefix: "api_"},
		{target: sinkTarget{s}, label: "the sink in this process (no HTTP or gRPC hop)"},
	}
	if os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_API_AGAIN") == "1" {
		vias = append(vias, shapeVia{target: api, label: "the audit API again (the same choices)", prefix: "api_again_"})
	}
	queryShapes(b, s, vias, c.Replicas[0], benchClusterDB, total, env.samples)

	// 4. Verify, chain by chain, with where its time goes: this process's CPU (query, transfer,
	// decode, hashing) and the first replica's server CPU per event. The first chain is then read
	// again without verifying (query, transfer and decode alone), and with
	// FLOWKER_AUDIT_BENCH_CLUSTER_PROFILE=FILE its verify is CPU-profiled into FILE.
	srvPID := c.Replicas[0].PID()
	for i := 0; i < benchClusterChains; i++ {
		id := fmt.Sprintf("bench-chain-%d", i)
		v := chain.NewVerifier(id, 1, "")
		stopProfile := func() {}
		if p := os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_PROFILE"); p != "" && i == 0 {
			stopProfile = startCPUProfile(b, p)
		}
		cpu0, srv0 := cpuTime(b), pidCPU(b, srvPID)
		t0 := time.Now()
		if err := s.ReadChain(ctx, id, 1, 0, func(e *chain.Event) error { return v.Add(e) }); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		cpu, srv := cpuTime(b)-cpu0, pidCPU(b, srvPID)-srv0
		stopProfile()
		if v.Checked() != uint64(perChain) {
			b.Fatalf("verified %d events of %s, want %d", v.Checked(), id, perChain)
		}
		rate := float64(v.Checked()) / d.Seconds()
		b.ReportMetric(rate, fmt.Sprintf("verify-%d-events/s", i))
		fmt.Printf("cluster verify %s: %d events in %v: %.0f events/s\n", id, v.Checked(), d.Round(time.Millisecond), rate)
		n := float64(v.Checked())
		fmt.Printf("cluster verify cost %s: CPU per event %.2f µs in this process (read, decode, verify), %.2f µs in the server; load average %s\n",
			id, float64(cpu.Nanoseconds())/1e3/n, float64(srv.Nanoseconds())/1e3/n, loadAverage())
		if i == 0 {
			read, cpu0, srv0 := 0, cpuTime(b), pidCPU(b, srvPID)
			t0 := time.Now()
			if err := s.ReadChain(ctx, id, 1, 0, func(*chain.Event) error { read++; return nil }); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			cpu, srv := cpuTime(b)-cpu0, pidCPU(b, srvPID)-srv0
			fmt.Printf("cluster read %s without verifying: %d events in %v: %.0f events/s; CPU per event %.2f µs in this process, %.2f µs in the server\n",
				id, read, d.Round(time.Millisecond), float64(read)/d.Seconds(), float64(cpu.Nanoseconds())/1e3/float64(read), float64(srv.Nanoseconds())/1e3/float64(read))
		}
	}

	// 5. Storage per event on the first replica.
	printStorage(b, c.Replicas[0], benchClusterDB, total, "cluster storage, one replica")
	printColumns(b, c.Replicas[0], benchClusterDB, total)
}

// bytesPerEvent is the disk a cluster benchmark event needs per replica, all tables, for the
// free-space check: the 1 M runs of BenchmarkClusterVerify measured 529 bytes (proxy contexts,
// lz4), 319 (proxy, zstd) and 666 (rich, lz4), all tables, active parts; about 10% is added for
// parts being merged.
func bytesPerEvent(shape benchContext, compression string) uint64 {
	switch {
	case shape == contextProxy && compression == "zstd":
		return 360
	case shape == contextProxy:
		return 600
	default:
		return 740
	}
}

// clusterServerOptions are the cluster benchmarks' server options: the memory limit and, with
// FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION=zstd, zstd for every part instead of 18.16's lz4 (a
// server setting; the 18.16 schema has no per-column codecs).
func clusterServerOptions(b *testing.B, maxMemory int64) []chtest.Option {
	// Parts replaced by a merge or dropped with their partition are deleted after 30 s instead of
	// 8 minutes: a 100 M data set fills most of the disk, and re-partitioning it (repartitionKept)
	// drops a month's old parts before copying the next month.
	opts := []chtest.Option{chtest.WithMaxMemoryUsage(maxMemory),
		chtest.WithConfig("    <merge_tree><old_parts_lifetime>30</old_parts_lifetime></merge_tree>\n")}
	switch v := os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION"); v {
	case "", "lz4":
	case "zstd":
		opts = append(opts, chtest.WithConfig("    <compression><case><method>zstd</method></case></compression>\n"))
	default:
		b.Fatalf("FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION=%q: want lz4 or zstd", v)
	}
	return opts
}

// printColumns prints the compressed bytes per event of each column of the events table on srv.
func printColumns(b *testing.B, srv *chtest.Server, db string, events int) {
	out := query(b, srv, fmt.Sprintf("SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns WHERE database = '%s' AND table IN ('audit_events', 'audit_events_local') AND data_compressed_bytes > 0 ORDER BY data_compressed_bytes DESC", db))
	var cols []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		c, _ := strconv.ParseFloat(f[1], 64)
		u, _ := strconv.ParseFloat(f[2], 64)
		cols = append(cols, fmt.Sprintf("%s %.1f (%.1f)", f[0], c/float64(events), u/float64(events)))
	}
	fmt.Printf("events table per column, compressed (uncompressed) bytes/event: %s\n", strings.Join(cols, ", "))
}

// printStorage prints the bytes per event of database db on srv from system.parts (active
// parts): for the events table alone and for every table (lookups and summaries included).
func printStorage(b *testing.B, srv *chtest.Server, db string, events int, label string) {
	for _, where := range []string{"table IN ('audit_events', 'audit_events_local')", "1"} {
		out := query(b, srv, fmt.Sprintf("SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(bytes_on_disk) FROM system.parts WHERE active AND database = '%s' AND %s",
			db, where))
		f := strings.Fields(out)
		if len(f) != 4 {
			b.Fatalf("system.parts: %q", out)
		}
		compressed, _ := strconv.ParseFloat(f[1], 64)
		uncompressed, _ := strconv.ParseFloat(f[2], 64)
		disk, _ := strconv.ParseFloat(f[3], 64)
		what := "the events table"
		if where == "1" {
			what = "all tables (events, lookups, summaries)"
		}
		fmt.Printf("%s, %s: %.1f bytes/event compressed data, %.1f on disk (%.1f uncompressed; %d events)\n",
			label, what, compressed/float64(events), disk/float64(events), uncompressed/float64(events), events)
	}
}

func envInt(b *testing.B, name string, def int) int {
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

// clusterContext is the context shape of the cluster benchmarks' events:
// FLOWKER_AUDIT_BENCH_CLUSTER_CONTEXT, proxy (default) or rich (bench_context_test.go).
func clusterContext(b *testing.B) benchContext {
	switch v := benchContext(os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER_CONTEXT")); v {
	case "", contextProxy:
		return contextProxy
	case contextRich:
		return contextRich
	default:
		b.Fatalf("FLOWKER_AUDIT_BENCH_CLUSTER_CONTEXT=%q: want proxy or rich", v)
		return ""
	}
}

// generateChain streams n events of chainID in batches of env.batch, with contexts of the given
// shape.
func generateChain(ctx context.Context, chainID string, seed int64, n int, env benchEnv, shape benchContext) <-chan []chain.Event {
	return generateChainAfter(ctx, chainID, seed, n, env, shape, nil)
}

// generateChainAfter is generateChain continuing after the stored event after (nil: from the
// start). A batch depends only on the event before it (sinktest.GenerateChain seeds each call from
// its After's sequence, and takes its hash and time), so a load stopped after whole batches
// continues with the very batches an uninterrupted one would have written, without generating
// the stored ones again (about 60 µs of CPU per event).
func generateChainAfter(ctx context.Context, chainID string, seed int64, n int, env benchEnv, shape benchContext, after *chain.Event) <-chan []chain.Event {
	out := make(chan []chain.Event, 1)
	go func() {
		defer close(out)
		opts := sinktest.GenOptions{Seed: seed, MeanGap: env.gap, Workflows: 100_000,
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		// Rare actors (the actor_cold shape, 2 to 200 events each): the chains share 200 while
		// that gives each at most ~100 events (up to ~10 M events in all), beyond that each chain
		// has its own 200 (125 events each at 100 M).
		rareSuffix := ""
		if n*benchClusterChains/rareEvery/rareActors > 100 {
			rareSuffix = "@" + chainID
		}
		last, done := after, 0
		if after != nil {
			done = int(after.Sequence)
		}
		for done < n {
			k := min(env.batch, n-done)
			opts.After = last
			batch := sinktest.GenerateChain(chainID, k, opts)
			from := setRareActors(batch, done, rareSuffix)
			if shape == contextProxy {
				withProxyContexts(batch, last) // re-seals the whole batch
			} else if from >= 0 {
				resealFrom(batch, from, last)
			}
			last = &batch[len(batch)-1]
			done += k
			select {
			case out <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// bareInsertInto inserts events with a bare PrepareBatch into db's events table.
func bareInsertInto(ctx context.Context, conn driver.Conn, db string, events []chain.Event) error {
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, TableEvents, insertColumns))
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

// waitMerges waits (up to 10 minutes) until srv runs no background merge, and says how long.
func waitMerges(b *testing.B, srv *chtest.Server) {
	t0 := time.Now()
	for time.Since(t0) < 10*time.Minute {
		if query(b, srv, "SELECT count() FROM system.merges") == "0" {
			break
		}
		time.Sleep(2 * time.Second)
	}
	fmt.Printf("cluster: waited %v for background merges to finish\n", time.Since(t0).Round(time.Second))
}

// writeChains writes every generator's batches through s, one writer per generator at once, and
// fails b on the first permanent error. A retryable one (a ZooKeeper session lost on a starved
// machine, a replica restarting) is retried after a pause, up to writeRetries times in a row, as
// the sidecar's sink host retries a batch: a run of hours must not end on a blip.
func writeChains(ctx context.Context, b *testing.B, s *Sink, gens []<-chan []chain.Event) {
	var wg sync.WaitGroup
	errs := make(chan error, len(gens))
	for _, g := range gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range g {
				if err := writeRetrying(ctx, s, batch); err != nil {
					errs <- err
					for range g { // let the generator finish
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// writeRetries bounds writeChains' retries of one batch.
const writeRetries = 20

func writeRetrying(ctx context.Context, s *Sink, batch []chain.Event) error {
	for try := 1; ; try++ {
		err := s.Write(ctx, batch)
		if err == nil || sink.IsPermanent(err) || try == writeRetries {
			return err
		}
		fmt.Printf("cluster load: retrying a batch of %d events after a retryable error (try %d): %v\n", len(batch), try, err)
		time.Sleep(time.Duration(try) * time.Second)
	}
}

// markChains writes a watermark of now for every chain of the benchmark (all of it is stored).
func markChains(ctx context.Context, b *testing.B, s *Sink) {
	for i := 0; i < benchClusterChains; i++ {
		if err := s.WriteWatermark(ctx, fmt.Sprintf("bench-chain-%d", i), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// startCPUProfile profiles this process's CPU into path until the returned func is called.
func startCPUProfile(b *testing.B, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("cluster verify profile: %s\n", path)
	}
}

// pidCPU is the CPU time (user and system) process pid used so far, from /proc/PID/stat.
func pidCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the parenthesised command name: state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, raw)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on every Linux ABI
}

// loadAverage is /proc/loadavg's three load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
