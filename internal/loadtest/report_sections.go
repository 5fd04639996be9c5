package loadtest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ---- 2. Journal

// journalRow is one line of the journal table.
type journalRow struct {
	Appenders                 int
	Fsync                     string
	Rate, PerCommit, P50, P99 float64
	HasRatio                  bool
	Ratio                     float64
}

// latencyFigures is a rate with its p50 and p99 in milliseconds.
type latencyFigures struct{ Rate, P50, P99 float64 }

func (x *renderer) journal() {
	x.t("journal-title", nil)
	s := x.r.Sections["journal"]
	if !x.header(s, "section journal") {
		return
	}
	var rows []journalRow
	for _, n := range []int{1, 16, 64} {
		off, okOff := Median(s.Bench, fmt.Sprintf("BenchmarkAppend/fsync=off/appenders=%d", n), "appends/s")
		for _, f := range []string{"on", "off"} {
			name := fmt.Sprintf("BenchmarkAppend/fsync=%s/appenders=%d", f, n)
			rate, ok := Median(s.Bench, name, "appends/s")
			if ok == 0 {
				continue
			}
			row := journalRow{Appenders: n, Fsync: f, Rate: rate}
			row.PerCommit, _ = Median(s.Bench, name, "events/commit")
			row.P50, _ = Median(s.Bench, name, "p50-ms")
			row.P99, _ = Median(s.Bench, name, "p99-ms")
			if f == "on" && okOff > 0 && off > 0 {
				row.HasRatio, row.Ratio = true, rate/off
			}
			rows = append(rows, row)
		}
	}
	var disk *latencyFigures
	if p50, n := Median(s.Bench, "BenchmarkFdatasync4KiB", "p50-ms"); n > 0 {
		disk = &latencyFigures{P50: p50}
		disk.P99, _ = Median(s.Bench, "BenchmarkFdatasync4KiB", "p99-ms")
		disk.Rate, _ = Median(s.Bench, "BenchmarkFdatasync4KiB", "syncs/s")
	}
	x.t("journal", struct {
		Rows []journalRow
		Disk *latencyFigures
	}{rows, disk})
}

// ---- 3. Verify

func (x *renderer) verify() {
	x.t("verify-title", nil)
	s := x.r.Sections["verify"]
	target := x.s("target-verify", TargetVerifyRatio*100)
	if !x.header(s, "section verify") {
		x.notMeasured(target)
		return
	}
	vns, vn := Median(s.Bench, "BenchmarkVerify1KiB", "ns/op")
	hns, hn := Median(s.Bench, "BenchmarkSHA256Raw1KiB", "ns/op")
	if vn == 0 || hn == 0 {
		x.t("verify-no-result", nil)
		x.notMeasured(target)
		return
	}
	vmb, _ := Median(s.Bench, "BenchmarkVerify1KiB", "MB/s")
	hmb, _ := Median(s.Bench, "BenchmarkSHA256Raw1KiB", "MB/s")
	v := struct {
		Runs             int
		VerifyNs, HashNs float64
		VerifyMB, HashMB float64
		Ratio            float64
	}{min(vn, hn), vns, hns, vmb, hmb, hns / vns}
	x.t("verify", v)
	x.verdict(target, v.Ratio >= TargetVerifyRatio, true, x.s("measured-verify", v))
}

// ---- 4. Plugin boundary

var (
	batchOf = regexp.MustCompile(`batch=(\d+)`)
	sinkOf  = regexp.MustCompile(`sink=([^/]+)`)
	syncOf  = regexp.MustCompile(`sync=([^/]+)`)
)

// batchRow is one line of the no-op sink tables.
type batchRow struct {
	Batch      string
	Events, MB float64
}

// deliveryRow is one line of the plugin delivery table.
type deliveryRow struct {
	Sink, Batch                       string
	Events, MiB, PerWrite, MsPerWrite float64
	CPU, ReceiverCPU                  string
}

// sqliteWriteRow is one line of the in-process SQLite table.
type sqliteWriteRow struct {
	Mode, Batch string
	Events      float64
	Via, Ratio  string
}

func (x *renderer) pluginBoundary() {
	target := x.s("target-nullsink", TargetNullsink)
	x.t("plugin-title", nil)
	var deliveries []float64
	var deliveryParts []string

	if s := x.r.Sections["nullsink-write"]; x.header(s, "section nullsink-write") {
		var rows []batchRow
		for _, name := range Names(s.Bench, "BenchmarkWriteNullsink/") {
			ev, _ := Median(s.Bench, name, "events/s")
			mb, _ := Median(s.Bench, name, "MB/s")
			rows = append(rows, batchRow{batchLabel(name), ev, mb})
		}
		x.t("nullsink-write", rows)
	}
	x.t("nullsink-delivery-title", nil)
	if s := x.r.Sections["nullsink-delivery"]; x.header(s, "section nullsink-delivery") {
		var rows []batchRow
		for _, name := range Names(s.Bench, "BenchmarkDeliveryNullsink/") {
			ev, _ := Median(s.Bench, name, "events/s")
			row := batchRow{Batch: batchLabel(name), Events: ev}
			rows = append(rows, row)
			deliveries = append(deliveries, ev)
			deliveryParts = append(deliveryParts, x.s("measured-delivery-memory", row))
		}
		x.t("nullsink-delivery", rows)
	}
	x.t("plugin-delivery-title", nil)
	sqliteVia := map[string]float64{}
	if s := x.r.Sections["plugin-delivery"]; x.header(s, "section plugin-delivery") {
		forwarding := map[string]float64{}
		var forwardingParts []string
		var rows []deliveryRow
		for _, name := range Names(s.Bench, "BenchmarkDeliveryPlugin/") {
			row := deliveryRow{Sink: "?", Batch: batchLabel(name), CPU: "—", ReceiverCPU: "—"}
			row.Events, _ = Median(s.Bench, name, "events/s")
			row.MiB, _ = Median(s.Bench, name, "MiB/s")
			row.PerWrite, _ = Median(s.Bench, name, "events/write")
			row.MsPerWrite, _ = Median(s.Bench, name, "ms/write")
			if cpu, n := Median(s.Bench, name, "cpu-us/event"); n > 0 {
				row.CPU = trimFloat(cpu, 1)
			}
			if rcpu, n := Median(s.Bench, name, "receiver-cpu-us/event"); n > 0 {
				row.ReceiverCPU = trimFloat(rcpu, 1)
			}
			if m := sinkOf.FindStringSubmatch(name); m != nil {
				row.Sink = m[1]
			}
			rows = append(rows, row)
			if strings.HasPrefix(row.Sink, "syslog") || strings.HasPrefix(row.Sink, "otlp") {
				forwarding[row.Sink] = max(forwarding[row.Sink], row.Events)
				forwardingParts = append(forwardingParts, x.s("measured-forwarding", row))
			}
			if row.Sink == "nullsink" {
				deliveries = append(deliveries, row.Events)
				deliveryParts = append(deliveryParts, x.s("measured-delivery-journal", row))
			}
			if row.Sink == "sqlite" {
				sqliteVia[row.Batch] = row.Events
			}
		}
		x.t("plugin-delivery", rows)
		fwdTarget := x.s("target-forwarding", TargetForwarding)
		if len(forwarding) == 0 {
			x.notMeasured(fwdTarget)
		} else {
			met := true
			for _, ev := range forwarding {
				met = met && ev >= TargetForwarding
			}
			x.verdict(fwdTarget, met, true, forwardingParts...)
		}
	}
	x.t("sqlite-write-title", nil)
	if s := x.r.Sections["sqlite-write"]; x.header(s, "section sqlite-write") {
		var rows []sqliteWriteRow
		for _, name := range Names(s.Bench, "BenchmarkWrite/") {
			row := sqliteWriteRow{Mode: "?", Batch: batchLabel(name), Via: "—", Ratio: "—"}
			row.Events, _ = Median(s.Bench, name, "events/s")
			if m := syncOf.FindStringSubmatch(name); m != nil {
				row.Mode = m[1]
			}
			if v, ok := sqliteVia[row.Batch]; ok && row.Mode == "full" && row.Events > 0 {
				row.Via, row.Ratio = fmtRate(v), fmtPct(v/row.Events)
			}
			rows = append(rows, row)
		}
		x.t("sqlite-write", rows)
	}
	if len(deliveries) == 0 {
		x.notMeasured(target)
		return
	}
	met := true
	for _, d := range deliveries {
		met = met && d >= TargetNullsink
	}
	x.verdict(target, met, true, deliveryParts...)
}

func batchLabel(name string) string {
	if m := batchOf.FindStringSubmatch(name); m != nil {
		n, _ := strconv.Atoi(m[1])
		return fmtRate(float64(n))
	}
	return "?"
}

// ---- 5. SQLite search

// queryRow is one query shape's latencies.
type queryRow struct {
	Query    string
	Calls    int64
	P50, P99 float64
}

func (x *renderer) sqliteSearch() {
	x.t("sqlite-search-title", nil)
	s := x.r.Sections["sqlite-search"]
	if !x.header(s, "section sqlite-search") {
		x.notMeasured(x.s("target-sqlite-search-missing", nil))
		return
	}
	var rows []queryRow
	var parts []string
	for _, name := range Names(s.Bench, "BenchmarkSearch1M/") {
		row := queryRow{Query: strings.TrimPrefix(name, "BenchmarkSearch1M/")}
		row.P50, _ = Median(s.Bench, name, "p50-ms")
		row.P99, _ = Median(s.Bench, name, "p99-ms")
		for _, l := range s.Bench {
			if l.Name == name {
				row.Calls = l.N
			}
		}
		rows = append(rows, row)
		parts = append(parts, x.s("measured-query", row))
	}
	x.t("sqlite-search", struct {
		Built []string
		Rows  []queryRow
	}{grepLines(s.Out, "built "), rows})
	met := "met-not-measured"
	if len(parts) > 0 {
		met = "met-reported"
	}
	x.verdicts = append(x.verdicts, verdict{Target: x.s("target-sqlite-search", nil), Measured: parts, Met: x.s(met, nil)})
}

// ---- 6. ClickHouse

var benchEventsOf = regexp.MustCompile(`FLOWKER_AUDIT_BENCH_EVENTS=(\d+)`)

func (x *renderer) clickhouse() {
	x.t("clickhouse-title", nil)
	s := x.r.Sections["clickhouse"]
	if !x.header(s, "section clickhouse") {
		x.notMeasured(x.s("target-clickhouse-missing", nil))
		return
	}
	x.t("clickhouse", grepLines(s.Out, "ingest:", "queries on", "verify:", "verify with", "data set:", "storage, "))
	x.benchTable(s.Bench)
	var parts []string
	if m := benchEventsOf.FindStringSubmatch(s.Cmd); m != nil {
		n, _ := strconv.ParseFloat(m[1], 64)
		parts = append(parts, x.s("measured-clickhouse-events", n))
	}
	if v, n := Median(s.Bench, "BenchmarkIngest", "plugin-events/s"); n > 0 {
		r, nr := Median(s.Bench, "BenchmarkIngest", "ratio")
		parts = append(parts, x.s("measured-clickhouse-ingest", struct {
			Events, Ratio float64
			HasRatio      bool
		}{v, r, nr > 0}))
	}
	var queries []string
	queriesMet, queriesSeen := true, false
	for _, name := range Names(s.Bench, "BenchmarkQueries/") {
		row := queryRow{Query: strings.TrimPrefix(name, "BenchmarkQueries/")}
		row.P50, _ = Median(s.Bench, name, "p50-ms")
		row.P99, _ = Median(s.Bench, name, "p99-ms")
		queries = append(queries, x.s("measured-query", row))
		queriesSeen = true
		queriesMet = queriesMet && row.P50 <= 50 && row.P99 <= 250
	}
	parts = append(parts, queries...)
	if !s.OK() {
		x.verdicts = append(x.verdicts, verdict{Target: x.s("target-clickhouse-failed", nil),
			Measured: parts, OrDash: true, Met: x.s("met-clickhouse-failed", nil)})
		return
	}
	// Issue 6's targets: ingest >= 0.85 of a bare insert; every query p50 <= 50 ms and
	// p99 <= 250 ms; verify >= 200k events/s.
	if r, n := Median(s.Bench, "BenchmarkIngest", "ratio"); n > 0 {
		x.verdict(x.s("target-clickhouse-ingest", nil), r >= 0.85, true, parts[min(1, len(parts)-1)])
	} else {
		x.notMeasured(x.s("target-clickhouse-ingest", nil))
	}
	x.verdictOrDash(x.s("target-clickhouse-queries", nil), queriesMet, queriesSeen, queries)
	if v, n := Median(s.Bench, "BenchmarkVerify", "events/s"); n > 0 {
		lz, nlz := Median(s.Bench, "BenchmarkVerify", "lz4-events/s")
		measured := x.s("measured-clickhouse-verify", struct {
			Events, LZ4 float64
			HasLZ4      bool
		}{v, lz, nlz > 0})
		x.verdict(x.s("target-clickhouse-verify", nil), v >= 200000, true, measured)
	} else {
		x.notMeasured(x.s("target-clickhouse-verify", nil))
	}
}

// benchLineRow is one result line with its formatted metrics.
type benchLineRow struct {
	Name    string
	N       int64
	Metrics []string
}

// benchTable writes every result line with its metrics (ns/op and allocation figures left out).
func (x *renderer) benchTable(lines []BenchLine) {
	if len(lines) == 0 {
		return
	}
	var rows []benchLineRow
	for _, l := range lines {
		var units []string
		for u := range l.Metrics {
			if u != "ns/op" && u != "B/op" && u != "allocs/op" {
				units = append(units, u)
			}
		}
		slices.Sort(units)
		row := benchLineRow{Name: l.Name, N: l.N}
		for _, u := range units {
			v := l.Metrics[u]
			switch {
			case strings.HasSuffix(u, "-ms"):
				row.Metrics = append(row.Metrics, fmtMs(v)+" "+u)
			case v >= 100:
				row.Metrics = append(row.Metrics, fmtRate(v)+" "+u)
			default:
				row.Metrics = append(row.Metrics, trimFloat(v, 3)+" "+u)
			}
		}
		rows = append(rows, row)
	}
	x.t("bench-table", rows)
}

// ---- 7. UI

var (
	uiMeasuredOf = regexp.MustCompile(`: (.*?);`)
	uiFirstMsOf  = regexp.MustCompile(`(\d+(?:\.\d+)?) ms`)
)

func (x *renderer) ui() {
	x.t("ui-title", nil)
	s := x.r.Sections["ui"]
	target := x.s("target-ui", nil)
	if !x.header(s, "section ui") {
		x.notMeasured(target)
		return
	}
	x.t("ui", x.r.UITiming)
	if x.r.UITiming == "" {
		x.notMeasured(target)
		x.t("ui-no-timing", nil)
		return
	}
	measured := x.r.UITiming
	if m := uiMeasuredOf.FindStringSubmatch(measured); m != nil {
		measured = m[1]
	}
	if m := uiFirstMsOf.FindStringSubmatch(x.r.UITiming); m != nil {
		first, _ := strconv.ParseFloat(m[1], 64)
		x.verdict(target, first <= 1000, true, measured)
	} else {
		x.verdicts = append(x.verdicts, verdict{Target: target, Measured: []string{measured}, Met: x.s("met-reported", nil)})
	}
}
