package ops

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/plugins"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// deployFile returns the path of a file under deployments/.
func deployFile(t testing.TB, parts ...string) string {
	t.Helper()
	return filepath.Join(append([]string{testenv.ModuleRoot(t), "deployments"}, parts...)...)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// families is one scrape of /metrics, by family name.
type families map[string]*dto.MetricFamily

// scrape fetches /metrics over HTTP in the classic text format (what Prometheus negotiates
// first without OpenMetrics) and parses it.
func scrape(t testing.TB, adminURL string) ([]byte, families) {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, raw)
	}
	return raw, fams
}

// labelsOf returns a metric's labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// metricValue is the value of a counter, gauge or untyped metric (histograms: the count).
func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// sum adds the values of the series of family name whose labels include match. ok is false
// when the family or every matching series is missing.
func (f families) sum(name string, match map[string]string) (total float64, ok bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		ls := labelsOf(m)
		for k, v := range match {
			if ls[k] != v {
				continue next
			}
		}
		total += metricValue(m)
		ok = true
	}
	return total, ok
}

// must returns sum(name, match) and fails when nothing matches.
func (f families) must(t testing.TB, name string, match map[string]string) float64 {
	t.Helper()
	v, ok := f.sum(name, match)
	if !ok {
		t.Fatalf("no series %s%v in /metrics", name, match)
	}
	return v
}

// lbl builds a label match from name/value pairs.
func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// exported records every family name (and type) the sidecar was seen exporting.
type exported struct {
	mu    sync.Mutex
	types map[string]dto.MetricType
}

func (e *exported) add(f families) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.types == nil {
		e.types = map[string]dto.MetricType{}
	}
	for name, mf := range f {
		e.types[name] = mf.GetType()
	}
}

// resolve maps a series name used in PromQL to the exported family it belongs to: the family
// itself, or a histogram family for name_bucket, name_sum and name_count (summaries: _sum and
// _count). It returns "" when the sidecar exports no such series.
func (e *exported) resolve(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.types[name]; ok {
		return name
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(name, suf)
		if !found {
			continue
		}
		switch e.types[base] {
		case dto.MetricType_HISTOGRAM:
			return base
		case dto.MetricType_SUMMARY:
			if suf != "_bucket" {
				return base
			}
		}
	}
	return ""
}

func (e *exported) names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.types))
	for n := range e.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var promqlParser = parser.NewParser(parser.Options{})

// grafanaVars replaces Grafana's dashboard variables with values PromQL accepts.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"${datasource}", "prometheus",
)

var grafanaVarRe = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// seriesNames parses a PromQL expression and returns the metric names it selects (by name or
// by an equality matcher on __name__). A selector without a fixed name is an error: every
// query must say which metric it reads.
func seriesNames(expr string) ([]string, error) {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s has no metric name", vs)
			return nil
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

// running is a sidecar started by this package (for tests that need options testenv does not
// offer, such as a logger or a configuration file from deployments/).
type running struct {
	App      *app.App
	Registry *prometheus.Registry
	Config   *config.Config
	ProxyURL string
	AdminURL string
	stop     func() error
}

// startSidecar runs cfg in-process with real plugin processes of the flowker-audit binary. The
// caller sets upstream, data_dir and the sinks; listeners are moved to free loopback ports.
func startSidecar(t *testing.T, cfg *config.Config, log *slog.Logger, tuning func(*host.SinkConfig)) *running {
	t.Helper()
	bin := testenv.Binary(t)
	cfg.Listen.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
	if errs := config.Validate(cfg, plugins.Catalog{}); len(errs) > 0 {
		t.Fatalf("configuration: %v", errs)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := app.New(context.Background(), app.Options{
		Config: cfg, Registry: reg, Version: "ops", Logger: log, SinkTuning: tuning,
		PluginCommand: func(name string) (string, []string, error) { return bin, []string{"plugin", name}, nil },
	})
	if err != nil {
		t.Fatalf("starting the sidecar: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{App: a, Registry: reg, Config: cfg}
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- a.Run(ctx, func(p, adm net.Addr) {
			r.ProxyURL, r.AdminURL = "http://"+p.String(), "http://"+adm.String()
			close(ready)
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("sidecar stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("sidecar did not start within 30s")
	}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("sidecar did not stop within 60s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stopping the sidecar: %v", err)
		}
	})
	return r
}

// fakeFlowker starts the in-memory fake Flowker and returns its URL.
func fakeFlowker(t *testing.T) (*fakeflowker.Server, string) {
	t.Helper()
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, ExecutionDelay: 100 * time.Millisecond})
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	return fake, srv.URL
}

// readiness fetches /readyz.
func readiness(t testing.TB, adminURL string) (int, app.Readiness) {
	t.Helper()
	r := testenv.Do(t, "GET", adminURL+"/readyz", nil, nil)
	var body app.Readiness
	r.JSON(t, &body)
	return r.Status, body
}

// pollUntil calls cond every 10ms until it is true or d passes (then it fails with what).
func pollUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, d, what, cond)
}

// pluginPID finds the process of the bundled plugin name that this test process started for
// the sink whose file lives under dataDir: a child of this process (PPID), running the test
// binary of flowker-audit with "plugin NAME", with an open file under dataDir.
func pluginPID(t testing.TB, name, dataDir string) int {
	t.Helper()
	bin := testenv.Binary(t)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc to find the plugin process: %v", err)
	}
	me := os.Getpid()
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == me {
			continue
		}
		if ppid(pid) != me {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		if len(args) != 3 || args[0] != bin || args[1] != "plugin" || args[2] != name {
			continue
		}
		if !hasOpenFileUnder(pid, dataDir) {
			continue
		}
		found = append(found, pid)
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %q plugin process with a file open under %s, found %v", name, dataDir, found)
	}
	return found[0]
}

// ppid reads the parent process id from /proc/PID/stat (field 4, after the parenthesised name).
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	p, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return p
}

func hasOpenFileUnder(pid int, dir string) bool {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	dir = filepath.Clean(dir) + string(filepath.Separator)
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, dir) {
			return true
		}
	}
	return false
}
