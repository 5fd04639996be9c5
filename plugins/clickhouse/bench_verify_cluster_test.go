package clickhouse

// BenchmarkClusterVerify: verify per chain (ReadChain + chain.Verifier) on a replicated table
// holding several chains whose events interleave in time, the shape of the 100 M data set
// at a size that loads in a minute. Not run by `go test`; it runs only with
// FLOWKER_AUDIT_BENCH_CLUSTER=1:
//
//	FLOWKER_AUDIT_BENCH_CLUSTER=1 FLOWKER_AUDIT_BENCH_VERIFY_EVENTS=1000000 \
//	  go test ./plugins/clickhouse -run '^$' -bench BenchmarkClusterVerify -benchtime 1x -timeout 0
//
// Environment:
//
//	FLOWKER_AUDIT_BENCH_VERIFY_EVENTS  events in all, over 4 chains (default 1,000,000)
//	FLOWKER_AUDIT_BENCH_VERIFY_ROUNDS  rounds of the measurements (default 3)
//	FLOWKER_AUDIT_BENCH_CLUSTER_CONTEXT proxy (default) or rich: the events' context shape
//	                                    (bench_context_test.go)
//	FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION lz4 (default: 18.16's) or zstd, the servers' <compression>
//	FLOWKER_AUDIT_BENCH_VERIFY_HOLD     after loading, hold the server this long (a duration)
//	FLOWKER_AUDIT_BENCH_VERIFY_ADDR     measure against that held server instead of loading one
//	                                    (A/B of two builds on the same data)
//
// One ZooKeeper and one 18.16 replica (the cost measured is the read of one chain, which a
// second replica does not change). Each round measures, per chain and in this order:
//   - verify: ReadChain + chain.Verifier (what `verify` and the audit API do);
//   - read: ReadChain with a callback that does nothing (query, transfer and decode);
//   - server: the blocks' queries with FORMAT Null over HTTP (the server's share alone).
//
// It prints the median of each over the rounds, and the load average.

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
)

func BenchmarkClusterVerify(b *testing.B) {
	if os.Getenv("FLOWKER_AUDIT_BENCH_CLUSTER") != "1" {
		b.Skip("set FLOWKER_AUDIT_BENCH_CLUSTER=1 to run the cluster benchmarks")
	}
	env := benchConfig(b)
	total := envInt(b, "FLOWKER_AUDIT_BENCH_VERIFY_EVENTS", 1_000_000)
	rounds := envInt(b, "FLOWKER_AUDIT_BENCH_VERIFY_ROUNDS", 3)
	perChain := total / benchClusterChains
	shape := clusterContext(b)
	ctx := context.Background()
	// Attached to the server of an earlier run held with FLOWKER_AUDIT_BENCH_VERIFY_HOLD: no
	// load, and no server-only measure (it goes over that server's HTTP port).
	var srv *chtest.Server
	var s *Sink
	if addr := os.Getenv("FLOWKER_AUDIT_BENCH_VERIFY_ADDR"); addr != "" {
		var err error
		if s, err = configureSink(b, clusterConfig([]string{addr}, benchClusterDB, map[string]any{"read_timeout": "10m", "max_execution_time": 600})); err != nil {
			b.Fatal(err)
		}
	} else {
		srv, s = loadVerifyCluster(b, env, perChain, shape)
	}
	st, err := s.ensureReady(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rates := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for i := 0; i < benchClusterChains; i++ {
			id := fmt.Sprintf("bench-chain-%d", i)
			// verify
			v := chain.NewVerifier(id, 1, "")
			t0, cpu0 := time.Now(), cpuTime(b)
			if err := s.ReadChain(ctx, id, 1, 0, func(e *chain.Event) error { return v.Add(e) }); err != nil {
				b.Fatal(err)
			}
			if v.Checked() != uint64(perChain) {
				b.Fatalf("verified %d events of %s, want %d", v.Checked(), id, perChain)
			}
			rates["verify"] = append(rates["verify"], float64(perChain)/time.Since(t0).Seconds())
			// The client's CPU per event (this process: query, decode, hash), which the load of
			// other processes changes less than the wall time.
			rates["client-cpu-ns"] = append(rates["client-cpu-ns"], float64((cpuTime(b)-cpu0).Nanoseconds())/float64(perChain))
			// read only
			n := 0
			t0 = time.Now()
			if err := s.ReadChain(ctx, id, 1, 0, func(*chain.Event) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
			rates["read"] = append(rates["read"], float64(n)/time.Since(t0).Seconds())
			if srv == nil {
				continue
			}
			// server only: the same block queries, FORMAT Null, one after another
			var qs []string
			if err := s.listBlocks(ctx, st, id, 1, 0, func(bl blockInfo) bool {
				qs = append(qs, blockQuery(st, id, bl, 1, 0)+" FORMAT Null")
				return true
			}); err != nil {
				b.Fatal(err)
			}
			t0 = time.Now()
			for _, q := range qs {
				query(b, srv, q)
			}
			rates["server"] = append(rates["server"], float64(perChain)/time.Since(t0).Seconds())
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	var report []string
	for _, k := range []string{"verify", "read", "server", "client-cpu-ns"} {
		v := rates[k]
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		med := v[len(v)/2]
		unit := "events/s"
		if k == "client-cpu-ns" {
			unit = "ns/event"
		} else {
			k += "-events/s"
		}
		b.ReportMetric(med, k)
		report = append(report, fmt.Sprintf("%s %.0f %s (min %.0f, max %.0f)", strings.TrimSuffix(k, "-events/s"), med, unit, v[0], v[len(v)-1]))
	}
	fmt.Printf("cluster verify, %d events per chain, %d chains x %d rounds, medians: %s; load average %s\n",
		perChain, benchClusterChains, rounds, strings.Join(report, "; "), strings.TrimSpace(string(load)))
}

// loadVerifyCluster starts ZooKeeper and one replica and loads perChain events into each of the
// benchmark's chains, four writers at once; with FLOWKER_AUDIT_BENCH_VERIFY_HOLD it then holds
// the loaded server that long (for FLOWKER_AUDIT_BENCH_VERIFY_ADDR runs).
func loadVerifyCluster(b *testing.B, env benchEnv, perChain int, shape benchContext) (*chtest.Server, *Sink) {
	c := chtest.StartCluster(b, "audit", 1, clusterServerOptions(b, 4_000_000_000)...)
	srv := c.Replicas[0]
	ctx := context.Background()
	s, err := configureSink(b, clusterConfig(c.Addrs(), benchClusterDB, map[string]any{"read_timeout": "10m", "max_execution_time": 600}))
	if err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	gens := make([]<-chan []chain.Event, benchClusterChains)
	for i := range gens {
		gens[i] = generateChain(ctx, fmt.Sprintf("bench-chain-%d", i), int64(benchSeed+i), perChain, env, shape)
	}
	writeChains(ctx, b, s, gens)
	fmt.Printf("cluster verify: loaded %d events (%s contexts) over %d chains in %v\n", perChain*benchClusterChains, shape, benchClusterChains, time.Since(begin).Round(time.Second))
	markChains(ctx, b, s)
	waitMerges(b, srv)
	query(b, srv, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", benchClusterDB, local(TableChainBlocks)))
	printStorage(b, srv, benchClusterDB, perChain*benchClusterChains, "cluster verify storage, one replica")
	printColumns(b, srv, benchClusterDB, perChain*benchClusterChains)

	if d := os.Getenv("FLOWKER_AUDIT_BENCH_VERIFY_HOLD"); d != "" {
		hold, err := time.ParseDuration(d)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("holding the loaded server %s (HTTP %s) for %v\n", srv.Addr, srv.HTTPAddr, hold)
		time.Sleep(hold)
	}
	return srv, s
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
