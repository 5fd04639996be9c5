package ops

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// section9 is every metric family ARCHITECTURE §9 asks for, with the families that carry it.
// Families that appear only once something happened (a loss, a refusal) are checked by the
// fault scenario.
var section9 = []struct {
	what     string
	families []string
}{
	{"proxy requests and duration by route/method/code", []string{"flowker_audit_proxy_requests_total", "flowker_audit_proxy_request_duration_seconds"}},
	{"upstream duration", []string{"flowker_audit_upstream_request_duration_seconds"}},
	{"events by type and result", []string{"flowker_audit_events_total"}},
	{"unclassified mutations", []string{"flowker_audit_unclassified_mutations_total"}},
	{"journal append duration / fsyncs / bytes / entries", []string{"flowker_audit_journal_append_duration_seconds",
		"flowker_audit_journal_fsyncs_total", "flowker_audit_journal_bytes", "flowker_audit_journal_appended_bytes_total", "flowker_audit_journal_entries"}},
	{"chain sequence per chain", []string{"flowker_audit_chain_sequence"}},
	{"per sink: written, errors by kind, write duration, lag, oldest-unacked age, up, plugin restarts", []string{
		"flowker_audit_sink_written_events_total", "flowker_audit_sink_errors_total", "flowker_audit_sink_write_duration_seconds",
		"flowker_audit_sink_lag_events", "flowker_audit_sink_oldest_unacked_age_seconds", "flowker_audit_sink_up", "flowker_audit_sink_plugin_restarts_total"}},
	{"search requests and duration", []string{"flowker_audit_search_requests_total", "flowker_audit_search_duration_seconds"}},
	{"watcher pending", []string{"flowker_audit_watcher_pending"}},
	{"build info", []string{"flowker_audit_build_info"}},
	{"Go and process collectors", []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"}},
}

// faultFamilies appear only after a loss or a refusal (labelled counters without pre-created
// series).
var faultFamilies = []string{"flowker_audit_events_lost_total", "flowker_audit_proxy_refused_total"}

var uuidRe = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestRunningSidecar runs the sidecar in front of the fake Flowker and checks, over HTTP, what
// operators rely on: the admin endpoints, every metric family after a fixed scenario (values,
// naming, cardinality, a golden exposition), readiness when the query sink's plugin is killed,
// the fault path (journal full: refusals and losses), the logs, and that the dashboard, the
// alert rules and docs/OPERATIONS.md refer to exactly what the sidecar exports.
func TestRunningSidecar(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		// Every documented family must be exported: the optional access trail and retention on
		// (a year, so nothing of the scenario is removed) make their metrics part of the check.
		c.AccessEvents.Enabled = true
		c.AccessEvents.Sinks = []config.Sink{{Name: "access", Plugin: "sqlite", Query: true,
			Config: map[string]any{"path": filepath.Join(t.TempDir(), "access-events.db")}}} // outside data_dir: one SQLite process there
		for i := range c.Sinks {
			c.Sinks[i].Retention = config.Duration(365 * 24 * time.Hour)
		}
	}, SinkTuning: func(c *host.SinkConfig) {
		c.BatchInterval = 20 * time.Millisecond
		c.PingInterval = 200 * time.Millisecond
		// A restart waits 0.75-1.5s, long enough for /readyz to be seen failing.
		c.MinBackoff, c.MaxBackoff = 1500*time.Millisecond, 3*time.Second
		c.RestartCooldown = time.Second
	}})
	seen := &exported{}

	// The scenario runs first so that the golden exposition does not depend on other subtests.
	t.Run("metrics after a scenario", func(t *testing.T) { checkScenarioMetrics(t, env, seen) })
	t.Run("admin endpoints", func(t *testing.T) { checkAdmin(t, env) })
	t.Run("readyz when the query sink plugin is killed", func(t *testing.T) { checkQuerySinkKilled(t, env) })
	t.Run("faults and logs", func(t *testing.T) { checkFaultsAndLogs(t, seen) })
	t.Run("dashboard, alerts and docs use exported metrics", func(t *testing.T) { checkReferences(t, seen) })
}

func checkAdmin(t *testing.T, env *testenv.Env) {
	r := testenv.Do(t, "GET", env.AdminURL+"/healthz", nil, nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(r.Body), `"alive"`) {
		t.Errorf("/healthz: %d %q %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	code, body := readiness(t, env.AdminURL)
	if code != http.StatusOK || body.Status != "ready" {
		t.Errorf("/readyz: %d %+v", code, body)
	}
	if c := body.Checks["journal"]; c.Status != "up" {
		t.Errorf("/readyz journal check: %+v", c)
	}
	if c := body.Checks["sink:store"]; c.Status != "up" || !c.Query {
		t.Errorf("/readyz query sink check: %+v", c)
	}
	// pprof is off unless admin.pprof is set.
	if r := testenv.Do(t, "GET", env.AdminURL+"/debug/pprof/", nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("/debug/pprof/ with admin.pprof=false: %d", r.Status)
	}
	// The admin endpoints are not on the proxy port: there they are Flowker's paths.
	if r := testenv.Do(t, "GET", env.ProxyURL+"/metrics", nil, nil); strings.Contains(string(r.Body), "flowker_audit_") {
		t.Errorf("the proxy port serves the sidecar's metrics")
	}
	if r := testenv.Do(t, "GET", env.ProxyURL+"/readyz", nil, nil); strings.Contains(string(r.Body), "sink:store") {
		t.Errorf("the proxy port serves the sidecar's readiness")
	}
}

// TestAdminPprof checks that admin.pprof mounts /debug/pprof on the admin listener only.
func TestAdminPprof(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) { c.Admin.Pprof = true }})
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
		if r := testenv.Do(t, "GET", env.AdminURL+p, nil, nil); r.Status != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.Status)
		}
	}
	if r := testenv.Do(t, "GET", env.ProxyURL+"/debug/pprof/", nil, nil); strings.Contains(string(r.Body), "goroutine") {
		t.Error("the proxy port serves pprof")
	}
}

func checkScenarioMetrics(t *testing.T, env *testenv.Env, seen *exported) {
	s := newScenario(t, env.ProxyURL)
	s.run()
	testenv.Eventually(t, 30*time.Second, "every execution outcome", func() bool { return int(env.App.Journal().Last()) >= s.total() })
	env.WaitDelivered(30 * time.Second)
	events := env.AllEvents()
	if len(events) != s.total() {
		t.Fatalf("the audit API returns %d events, the scenario made %d", len(events), s.total())
	}
	// The other audit API endpoints, a refused caller and the page.
	if r := env.Audit("/v1/audit-events/" + events[0].EventID); r.Status != http.StatusOK {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if r := env.Audit("/v1/audit-events/" + events[len(events)-1].EventID + "/verify"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"isValid":true`) {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	if r := testenv.Do(t, "GET", env.ProxyURL+"/v1/audit-events", nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("audit API without a key: %d", r.Status)
	}
	if r := testenv.Do(t, "GET", env.ProxyURL+"/audit-trail", nil, nil); r.Status != http.StatusOK {
		t.Fatalf("audit trail page: %d", r.Status)
	}

	// The lag gauges are refreshed every second: wait for them to settle.
	var raw []byte
	var fams families
	pollUntil(t, 30*time.Second, "sink lag 0 and no pending execution in /metrics", func() bool {
		raw, fams = scrape(t, env.AdminURL)
		lag, _ := fams.sum("flowker_audit_sink_lag_events", lbl("sink", "store"))
		age, _ := fams.sum("flowker_audit_sink_oldest_unacked_age_seconds", lbl("sink", "store"))
		acked, _ := fams.sum("flowker_audit_sink_acked_sequence", lbl("sink", "store"))
		pending, _ := fams.sum("flowker_audit_watcher_pending", nil)
		// The reads above are access events: wait until the access sink holds every one.
		reads, _ := fams.sum("flowker_audit_access_events_recorded_total", nil)
		readsAcked, _ := fams.sum("flowker_audit_sink_acked_sequence", lbl("sink", "access-access"))
		return lag == 0 && age == 0 && pending == 0 && int(acked) == len(events) && reads > 0 && readsAcked == reads
	})
	seen.add(fams)
	n := float64(len(events))

	for _, s9 := range section9 {
		for _, f := range s9.families {
			if fams[f] == nil {
				t.Errorf("§9 %s: family %s missing from /metrics", s9.what, f)
			}
		}
	}
	for _, f := range faultFamilies {
		if v, ok := fams.sum(f, nil); ok && v != 0 {
			t.Errorf("%s = %v after a healthy scenario", f, v)
		}
	}

	// Events: the counters agree with what the audit API returns, by type and result.
	want := map[[2]string]float64{}
	for _, e := range events {
		want[[2]string{e.EventType, e.Result}]++
	}
	if got := fams.must(t, "flowker_audit_events_total", nil); got != n {
		t.Errorf("sum of flowker_audit_events_total = %v, the audit API returns %v events", got, n)
	}
	for k, w := range want {
		if got := fams.must(t, "flowker_audit_events_total", lbl("event_type", k[0], "result", k[1])); got != w {
			t.Errorf("flowker_audit_events_total{event_type=%q,result=%q} = %v, want %v", k[0], k[1], got, w)
		}
	}
	unclassified := want[[2]string{chain.UnclassifiedMutation, chain.ResultFailed}]
	if got := fams.must(t, "flowker_audit_unclassified_mutations_total", lbl("method", "POST")); got != unclassified || got == 0 {
		t.Errorf("flowker_audit_unclassified_mutations_total{method=POST} = %v, want %v", got, unclassified)
	}
	for _, c := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"flowker_audit_sink_written_events_total", lbl("sink", "store"), n},
		{"flowker_audit_sink_acked_sequence", lbl("sink", "store"), n},
		{"flowker_audit_sink_lag_events", lbl("sink", "store"), 0},
		{"flowker_audit_sink_oldest_unacked_age_seconds", lbl("sink", "store"), 0},
		{"flowker_audit_sink_up", lbl("sink", "store"), 1},
		{"flowker_audit_sink_plugin_restarts_total", lbl("sink", "store"), 0},
		{"flowker_audit_sink_errors_total", lbl("sink", "store"), 0},
		{"flowker_audit_chain_sequence", lbl("chain", env.App.Journal().ChainID()), n},
		{"flowker_audit_journal_appended_events_total", nil, n},
		{"flowker_audit_journal_append_duration_seconds", nil, n},
		{"flowker_audit_journal_writable", nil, 1},
		{"flowker_audit_journal_max_bytes", nil, float64(env.Config.Journal.MaxBytes)},
		{"flowker_audit_journal_recovery_cut_records_total", nil, 0},
		{"flowker_audit_execution_replays_total", nil, 1},
		{"flowker_audit_watcher_pending", nil, 0},
		{"flowker_audit_verify_failures_total", nil, 0},
		{"flowker_audit_proxy_in_flight_requests", nil, 0},
		{"flowker_audit_proxy_requests_total", lbl("route", "audit_api", "code", "200"), 3},
		{"flowker_audit_proxy_requests_total", lbl("route", "audit_api", "code", "401"), 1},
		{"flowker_audit_search_requests_total", lbl("endpoint", "list", "code", "200"), 1},
		{"flowker_audit_search_requests_total", lbl("endpoint", "verify", "code", "200"), 1},
		{"flowker_audit_search_requests_total", lbl("endpoint", "get", "code", "200"), 1},
		{"flowker_audit_build_info", lbl("version", "e2e"), 1},
	} {
		if got := fams.must(t, c.name, c.match); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	// Every audited request and every read went through the proxy metrics.
	if got := fams.must(t, "flowker_audit_proxy_requests_total", nil); got < float64(s.Sync+2) {
		t.Errorf("flowker_audit_proxy_requests_total = %v, fewer than the %d requests sent", got, s.Sync+2)
	}

	checkCardinality(t, fams)
	checkLint(t, raw)
	checkGolden(t, fams, "metrics.golden")
}

// checkCardinality fails on label values that carry ids or raw paths: route labels must be
// rule names, never request paths.
func checkCardinality(t *testing.T, fams families) {
	t.Helper()
	for name, mf := range fams {
		if !strings.HasPrefix(name, "flowker_audit_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for k, v := range labelsOf(m) {
				if name == "flowker_audit_build_info" || k == "chain" || k == "le" {
					continue
				}
				if strings.Contains(v, "/") || uuidRe.MatchString(v) || len(v) > 64 {
					t.Errorf("%s{%s=%q}: a label value that looks like a path or an id (unbounded cardinality)", name, k, v)
				}
			}
		}
	}
	routes := fams["flowker_audit_proxy_requests_total"]
	for _, m := range routes.GetMetric() {
		if r := labelsOf(m)["route"]; !regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)?$`).MatchString(r) {
			t.Errorf("route label %q is not a rule name", r)
		}
	}
}

// checkLint runs promlint over the exposition exactly as served.
func checkLint(t *testing.T, raw []byte) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(string(raw))).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func checkQuerySinkKilled(t *testing.T, env *testenv.Env) {
	if code, _ := readiness(t, env.AdminURL); code != http.StatusOK {
		t.Fatalf("not ready before the kill: %d", code)
	}
	pid := pluginPID(t, "sqlite", env.DataDir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	var down map[string]any
	pollUntil(t, 30*time.Second, "/readyz 503 naming the query sink", func() bool {
		r := testenv.Do(t, "GET", env.AdminURL+"/readyz", nil, nil)
		if r.Status != http.StatusServiceUnavailable {
			return false
		}
		r.JSON(t, &down)
		return true
	})
	b, _ := json.Marshal(down)
	var body struct {
		Status string `json:"status"`
		Checks map[string]struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Query  bool   `json:"query"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	c := body.Checks["sink:store"]
	if body.Status != "not ready" || c.Status != "down" || !c.Query || !strings.Contains(c.Error, "store") {
		t.Errorf("/readyz while the query sink is down does not name it: %s", b)
	}
	if j := body.Checks["journal"]; j.Status != "up" {
		t.Errorf("/readyz journal check while only the sink is down: %s", b)
	}
	pollUntil(t, 30*time.Second, "/readyz 200 after the supervisor restarted the plugin", func() bool {
		code, _ := readiness(t, env.AdminURL)
		return code == http.StatusOK
	})
	if again := pluginPID(t, "sqlite", env.DataDir); again == pid {
		t.Errorf("the plugin process %d is still the killed one", pid)
	}
	_, fams := scrape(t, env.AdminURL)
	if got := fams.must(t, "flowker_audit_sink_plugin_restarts_total", lbl("sink", "store")); got < 1 {
		t.Errorf("flowker_audit_sink_plugin_restarts_total{sink=store} = %v after a kill", got)
	}
	if got := fams.must(t, "flowker_audit_sink_up", lbl("sink", "store")); got != 1 {
		t.Errorf("flowker_audit_sink_up{sink=store} = %v after the restart", got)
	}
	// Delivery and the audit API work again.
	before := len(env.AllEvents())
	if r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": "after-restart"}); r.Status != http.StatusCreated || r.Header.Get("X-Audit-Id") == "" {
		t.Fatalf("a change after the restart: %d %s", r.Status, r.Body)
	}
	env.WaitDelivered(30 * time.Second)
	if after := len(env.AllEvents()); after != before+1 {
		t.Errorf("the audit API returns %d events after one more change, had %d", after, before)
	}
}

// checkReferences checks the dashboard's queries, the alert rules and docs/OPERATIONS.md against
// the families the running sidecar exported (after the scenario and the fault scenario).
func checkReferences(t *testing.T, seen *exported) {
	if len(seen.names()) == 0 {
		t.Skip("no exposition was collected (an earlier subtest failed)")
	}
	for _, f := range faultFamilies {
		if seen.resolve(f) == "" {
			t.Errorf("%s was never exported, not even after the fault scenario", f)
		}
	}
	for _, q := range dashboardQueries(t) {
		names, err := seriesNames(q.expr)
		if err != nil {
			t.Errorf("dashboard panel %q: %v", q.panel, err)
			continue
		}
		for _, n := range names {
			if seen.resolve(n) == "" {
				t.Errorf("dashboard panel %q queries %s, which the sidecar does not export", q.panel, n)
			}
		}
	}
	for _, r := range alertRules(t) {
		names, err := seriesNames(r.Expr)
		if err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
			continue
		}
		for _, n := range names {
			if n == "up" { // written by Prometheus itself for every scrape
				continue
			}
			if seen.resolve(n) == "" {
				t.Errorf("alert %s uses %s, which the sidecar does not export", r.Alert, n)
			}
		}
	}
	doc := string(readFile(t, docPath(t)))
	for _, n := range seen.names() {
		if strings.HasPrefix(n, "flowker_audit_") && !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("docs/OPERATIONS.md does not document %s", n)
		}
	}
	// And the docs name no family that does not exist.
	for _, m := range regexp.MustCompile("`(flowker_audit_[a-z_]+)`").FindAllStringSubmatch(doc, -1) {
		if seen.resolve(m[1]) == "" {
			t.Errorf("docs/OPERATIONS.md names %s, which the sidecar does not export", m[1])
		}
	}
}
