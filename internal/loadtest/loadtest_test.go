package loadtest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/plugins"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestParseBenchOutput(t *testing.T) {
	out := `goos: linux
pkg: github.com/flowker-audit/flowker-audit/chain/journal
BenchmarkSearch1M
    bench_test.go:90: built 1000000 events in 1m2s
BenchmarkSearch1M/first-page
BenchmarkSearch1M/first-page-2         	     500	   1234567 ns/op	         0.3500 p50-ms	         1.200 p99-ms
BenchmarkAppend/fsync=on/appenders=16-2        	   10000	    112861 ns/op	      8860 appends/s	         7.930 events/commit
BenchmarkVerify1KiB-8   	 1000000	       890.0 ns/op	1103.21 MB/s	     128 B/op	       2 allocs/op
BenchmarkNoProcs 	 10	 5 ns/op
BenchmarkBroken-2 	 10	 five ns/op
PASS
ok  	github.com/flowker-audit/flowker-audit/chain/journal	11.678s
`
	got, err := ParseBenchOutput(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []BenchLine{
		{Name: "BenchmarkSearch1M/first-page", Procs: 2, N: 500, Metrics: map[string]float64{"ns/op": 1234567, "p50-ms": 0.35, "p99-ms": 1.2}},
		{Name: "BenchmarkAppend/fsync=on/appenders=16", Procs: 2, N: 10000, Metrics: map[string]float64{"ns/op": 112861, "appends/s": 8860, "events/commit": 7.93}},
		{Name: "BenchmarkVerify1KiB", Procs: 8, N: 1000000, Metrics: map[string]float64{"ns/op": 890, "MB/s": 1103.21, "B/op": 128, "allocs/op": 2}},
		{Name: "BenchmarkNoProcs", Procs: 0, N: 10, Metrics: map[string]float64{"ns/op": 5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestMedian(t *testing.T) {
	lines := []BenchLine{
		{Name: "A", Metrics: map[string]float64{"ns/op": 30}},
		{Name: "B", Metrics: map[string]float64{"ns/op": 1}},
		{Name: "A", Metrics: map[string]float64{"ns/op": 10}},
		{Name: "A", Metrics: map[string]float64{"ns/op": 20}},
		{Name: "C", Metrics: map[string]float64{"ns/op": 4}},
		{Name: "C", Metrics: map[string]float64{"ns/op": 2}},
	}
	for _, tc := range []struct {
		name, metric string
		want         float64
		n            int
	}{
		{"A", "ns/op", 20, 3},
		{"B", "ns/op", 1, 1},
		{"C", "ns/op", 3, 2},
		{"A", "MB/s", 0, 0},
		{"D", "ns/op", 0, 0},
	} {
		got, n := Median(lines, tc.name, tc.metric)
		if got != tc.want || n != tc.n {
			t.Errorf("Median(%s, %s) = %v, %d; want %v, %d", tc.name, tc.metric, got, n, tc.want, tc.n)
		}
	}
	if got := Names(lines, "A"); !reflect.DeepEqual(got, []string{"A"}) {
		t.Errorf("Names = %v", got)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", hundred, 99, 99 * time.Millisecond},
		{"p50 of 100 is the 50th", hundred, 50, 50 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("Percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	r := Summarize(ms(4, 1, 3, 2))
	if r.P50 != 2 || r.Max != 4 || r.Mean != 2.5 {
		t.Fatalf("Summarize = %+v", r)
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP flowker_audit_events_total Audit events recorded.
# TYPE flowker_audit_events_total counter
flowker_audit_events_total{event_type="WORKFLOW_CREATED",result="SUCCESS"} 40
flowker_audit_events_total{event_type="WORKFLOW_CREATED",result="FAILED"} 2
flowker_audit_journal_group_commit_events_sum 42
flowker_audit_journal_group_commit_events_count 5
flowker_audit_sink_lag_events{sink="store"} 0
weird{path="a b}c"} 1.5e3
# EOF
`
	m, err := ParseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{"flowker_audit_events_total": 42, "flowker_audit_journal_group_commit_events_sum": 42,
		"flowker_audit_journal_group_commit_events_count": 5, "flowker_audit_sink_lag_events": 0, "weird": 1500}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	if _, err := ParseMetrics(strings.NewReader("no_value\n")); err == nil {
		t.Fatal("a line without a value was accepted")
	}
}

// TestRunCounts checks the load generator's bookkeeping against the server's own count: every
// request it sent is a success or an error, errors are the non-expected statuses, and no
// request of the window is lost.
func TestRunCounts(t *testing.T) {
	var served, failed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if strings.HasSuffix(r.URL.Path, "/fail") {
			failed.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	target := Target{Name: "test", Expect: http.StatusCreated, NewRequest: func(ctx context.Context, i uint64) (*http.Request, error) {
		path := "/ok"
		if i%5 == 4 {
			path = "/fail"
		}
		return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader("{}"))
	}}
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"closed loop", Options{Concurrency: 4, Warmup: 20 * time.Millisecond, Duration: 150 * time.Millisecond}},
		{"paced", Options{Concurrency: 4, Rate: 400, Warmup: 20 * time.Millisecond, Duration: 150 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served.Store(0)
			failed.Store(0)
			r, err := Run(context.Background(), tc.o, target)
			if err != nil {
				t.Fatal(err)
			}
			if r.TotalSuccess+r.TotalErrors != served.Load() {
				t.Fatalf("%d successes + %d errors, server answered %d", r.TotalSuccess, r.TotalErrors, served.Load())
			}
			if r.TotalErrors != failed.Load() {
				t.Fatalf("%d errors counted, server failed %d", r.TotalErrors, failed.Load())
			}
			if r.Requests > r.TotalSuccess+r.TotalErrors || r.Errors > r.TotalErrors {
				t.Fatalf("window counts exceed the run's: %+v", r)
			}
			if r.TotalErrors > 0 && (len(r.ErrorSamples) != 1 || r.ErrorSamples[0] != "status 500 (want 201)") {
				t.Fatalf("error samples %q", r.ErrorSamples)
			}
			if tc.o.Rate > 0 {
				// The schedule starts at most rate × (warm-up + duration) + 1 requests.
				limit := int64(tc.o.Rate*(tc.o.Warmup+tc.o.Duration).Seconds()) + 1
				if served.Load() > limit {
					t.Fatalf("paced run sent %d requests, the schedule allows %d", served.Load(), limit)
				}
			}
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{Concurrency: 0, Duration: time.Second}, Target{NewRequest: func(context.Context, uint64) (*http.Request, error) { return nil, nil }}); err == nil {
		t.Fatal("zero concurrency accepted")
	}
	_, err := RunProxyBench(context.Background(), ProxyBenchOptions{Binary: "/nonexistent", Methods: []string{"PUT"}})
	if err == nil || !strings.Contains(err.Error(), `method "PUT"`) {
		t.Fatalf("proxy bench with method PUT: %v", err)
	}
}

// TestSidecarConfigIsValid loads the generated sidecar configuration with the real loader, so
// that a configuration change cannot silently break the proxy benchmark.
func TestSidecarConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	for _, fsync := range []bool{true, false} {
		if err := os.WriteFile(path, []byte(SidecarConfig("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", filepath.Join(dir, "data"), fsync)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, config.Options{Plugins: plugins.Catalog{}})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Journal.Fsync != fsync || !cfg.Admin.Pprof || len(cfg.Auth.APIKeys) != 1 || cfg.Sinks[0].Plugin != "sqlite" || !cfg.Sinks[0].Query {
			t.Fatalf("unexpected configuration: %+v", cfg)
		}
	}
}

func TestPostBody(t *testing.T) {
	a, b := postBody(1), postBody(2)
	if bytes.Equal(a, b) || len(a) < 900 || len(a) > 1100 {
		t.Fatalf("bodies of %d and %d bytes, want distinct and about 1 KiB", len(a), len(b))
	}
}

// TestRenderGolden renders each fixture results directory and compares the document, byte for
// byte, with testdata/NAME.golden.md (go test -run TestRenderGolden -update):
//   - sample: the raw outputs of a BENCH_QUICK=1 run of scripts/bench.sh on the project
//     machine, with a failed ClickHouse section, plus the sqlite-search and ui sections of a
//     full run;
//   - variant: sample changed to reach the other branches: two rounds per case, paced runs,
//     pinned CPUs, a failed event check read back with an API error, no profile, a proxy
//     comparison with a service time, a passing ClickHouse section, a skipped and a missing
//     section, a UI timing without a figure, no commit;
//   - minimal: one skipped section and nothing else.
func TestRenderGolden(t *testing.T) {
	for _, name := range []string{"sample", "variant", "minimal"} {
		t.Run(name, func(t *testing.T) {
			r, err := LoadResults(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := Render(&b, r); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden.md")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("rendered document differs from %s (run with -update after checking the change):\n%s", golden, b.String())
			}
		})
	}
}

// TestRenderVerdicts checks, independently of the golden files, that the verdicts follow from
// the sample's numbers.
func TestRenderVerdicts(t *testing.T) {
	r, err := LoadResults(filepath.Join("testdata", "sample"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	// Independent of the golden file: the verdicts follow from the sample's numbers.
	for _, want := range []string{
		"| Reads (GET) through the sidecar ≥ 85% of direct throughput | 35.0% at c=32; 44.9% at c=64 | **no** |",
		"| Verify ≥ 50% of raw SHA-256 speed, 1 KiB events | 61.0%",
		"**The command failed** (exit status 1)",
		"| get-by-eventId | 500 | 0.023 | 0.203 |",
		"59 ms with the browser cache disabled",
		"the counts agree and the chain verifies",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("document lacks %q", want)
		}
	}
}

func TestLoadResultsMissingDir(t *testing.T) {
	if _, err := LoadResults(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("a missing results directory was accepted")
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtRate(1234567.4), "1,234,567"},
		{fmtRate(999), "999"},
		{fmtRate(-1500), "-1,500"},
		{fmtMs(0.12345), "0.123"},
		{fmtMs(1.234), "1.23"},
		{fmtMs(12.34), "12.3"},
		{fmtMs(1234.5), "1,235"},
		{fmtSigned(0.5), "+0.500"},
		{fmtSigned(-2), "-2.00"},
		{fmtPct(0.8523), "85.2%"},
		{trimFloat(1103.20, 1), "1103.2"},
		{trimFloat(2.0, 3), "2"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestRenderSkippedAndMissing renders a results directory with one skipped section and nothing
// else: the skipped section says why, and every target is "not measured" rather than judged.
func TestRenderSkippedAndMissing(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"meta.env":             "date=fixture\nnproc=2\nquick=1\n",
		"sqlite-search.cmd":    "go test -bench BenchmarkSearch1M ./plugins/sqlite/\n",
		"sqlite-search.status": "skipped: BENCH_QUICK=1 (fixed size)\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := LoadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	for _, want := range []string{
		"Not run: BENCH_QUICK=1 (fixed size)",
		"Command it would run:\n\n```sh\ngo test -bench BenchmarkSearch1M ./plugins/sqlite/\n```",
		"Not run in this run (section proxy).",
		"| Audited writes (POST) through the sidecar ≥ 3,000/s, journal fsync on | not measured | not measured |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q", want)
		}
	}
	if strings.Contains(doc, "**yes**") || strings.Contains(doc, "**no**") {
		t.Error("a target was judged without a measurement")
	}
}

// TestRenderIntents checks, independently of the golden file, that section 1c's ratios and
// verdicts follow from the variant's proxy-intents runs (before 835 and 1,409 req/s, after 142
// and 1,055 at c=32 and c=64; paced p99 275 → 684 ms).
func TestRenderIntents(t *testing.T) {
	r, err := LoadResults(filepath.Join("testdata", "variant"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IntentsBefore) != 1 || len(r.IntentsAfter) != 1 {
		t.Fatalf("loaded %d before and %d after runs, want 1 and 1", len(r.IntentsBefore), len(r.IntentsAfter))
	}
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 0.17× at c=32; 0.75× at c=64 | **no** |",
		"| c=64 | 1,409 | 1,055 | 1,409 / 1,055 | 0.75 |",
		"| +409 ms (p99 275 → 684 ms, medians) | **no** |",
		"round 1 after: start 11:45:37 load 23.24 20.68 14.40",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("document lacks %q", want)
		}
	}
}

func TestMedianOfRounds(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := append([]float64(nil), tc.in...)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median changed its input: %v", in)
		}
	}
}
