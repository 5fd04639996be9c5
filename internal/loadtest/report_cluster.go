package loadtest

import (
	"regexp"
	"strconv"
	"strings"
)

// ---- 6b. ClickHouse cluster (issue 15)

var (
	clusterEventsOf = regexp.MustCompile(`FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS=(\d+)`)
	// The parent benchmark's own metrics are not printed (it has sub-benchmarks): its lines are.
	// A continued load prints the ratio of the run that began it, with a prefix saying so.
	clusterRatioOf  = regexp.MustCompile(`(?m)^(?:\(from the run that began the load\) )?cluster ingest over .* ratio ([0-9.]+)$`)
	clusterVerifyOf = regexp.MustCompile(`(?m)^cluster verify \S+: \d+ events in \S+: (\d+) events/s$`)
)

// clickhouseCluster renders the clickhouse-cluster section (plugins/clickhouse BenchmarkCluster)
// and its targets: ingest >= 0.85 of a bare insert, every search p50 <= 50 ms and p99 <= 250 ms,
// verify >= 200k events/s per chain.
func (x *renderer) clickhouseCluster() {
	x.t("clickhouse-cluster-title", nil)
	s := x.r.Sections["clickhouse-cluster"]
	if !x.header(s, "section clickhouse-cluster") {
		x.notMeasured(x.s("target-cluster-missing", nil))
		return
	}
	x.t("clickhouse-cluster", grepLines(s.Out, "cluster ingest", "cluster load", "cluster: waited", "cluster verify", "cluster read", "cluster storage", "queries on", "disk reads"))
	x.benchTable(s.Bench)
	events := ""
	if m := clusterEventsOf.FindStringSubmatch(s.Cmd); m != nil {
		n, _ := strconv.ParseFloat(m[1], 64)
		events = x.s("measured-clickhouse-events", n)
	}
	if !s.OK() {
		x.verdicts = append(x.verdicts, verdict{Target: x.s("target-cluster-failed", nil), Measured: []string{events}, OrDash: true, Met: x.s("met-cluster-failed", nil)})
		return
	}
	if m := clusterRatioOf.FindStringSubmatch(s.Out); m != nil {
		r, _ := strconv.ParseFloat(m[1], 64)
		x.verdict(x.s("target-cluster-ingest", nil), r >= 0.85, true, x.s("measured-cluster-ratio", struct {
			Ratio  float64
			Events string
		}{r, events}))
	} else {
		x.notMeasured(x.s("target-cluster-ingest", nil))
	}
	var queries []string
	met, seen := true, false
	for _, name := range Names(s.Bench, "BenchmarkCluster/") {
		row := queryRow{Query: strings.TrimPrefix(name, "BenchmarkCluster/")}
		row.P50, _ = Median(s.Bench, name, "p50-ms")
		row.P99, _ = Median(s.Bench, name, "p99-ms")
		queries = append(queries, x.s("measured-query", row))
		seen = true
		met = met && row.P50 <= 50 && row.P99 <= 250
	}
	x.verdictOrDash(x.s("target-cluster-queries", nil), met, seen, queries)
	var verify []string
	slowest, vseen := 0.0, false
	for _, m := range clusterVerifyOf.FindAllStringSubmatch(s.Out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		if !vseen || v < slowest {
			slowest = v
		}
		vseen = true
		verify = append(verify, x.s("measured-cluster-verify", v))
	}
	x.verdictOrDash(x.s("target-cluster-verify", nil), slowest >= 200000, vseen, verify)
}
