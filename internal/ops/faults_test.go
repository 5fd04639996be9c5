package ops

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/flowker-audit/flowker-audit/internal/syncbuf"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// Secrets configured in the fault scenario's sidecar. None of them may appear in logs.
const (
	fingerprintSecret = "fp-secret-3391-0123456789abcdef"
	cursorSecret      = "cursor-secret-8812-0123456789abcdef"
	jwtSecret         = "jwt-hmac-secret-6650-0123456789abcdef"
)

// logLine is one decoded JSON log line.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// parseLogs decodes every line; a line that is not a JSON object with time, level and msg fails.
func parseLogs(t *testing.T, s string) []logLine {
	t.Helper()
	var out []logLine
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("log line %d is not JSON: %v: %s", i+1, err, line)
			continue
		}
		if l.str("time") == "" || l.str("level") == "" || l.str("msg") == "" {
			t.Errorf("log line %d lacks time, level or msg: %s", i+1, line)
		}
		out = append(out, l)
	}
	return out
}

// hs256 returns a signed HS256 JWT for sub.
func hs256(sub, secret string) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, time.Now().Add(time.Hour).Unix())))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(h + "." + p))
	return h + "." + p + "." + enc.EncodeToString(m.Sum(nil))
}

// checkFaultsAndLogs runs a sidecar logging JSON at debug level through the normal scenario
// (with credentials and secrets in headers and bodies), then kills its only sink and fills its
// 1MiB journal: fail_closed routes are refused before reaching Flowker, a fail_open route loses
// an event. It checks the metrics and readiness of that state, and the logs: one "audited" line
// per audited request, every loss at error level with its event_id, no secret anywhere.
func checkFaultsAndLogs(t *testing.T, seen *exported) {
	_, fakeURL := fakeFlowker(t)
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Upstream.URL = fakeURL
	cfg.DataDir = dir
	cfg.Auth.APIKeys = []string{testenv.AuditKey}
	cfg.Auth.CursorKey = cursorSecret
	cfg.Identity.FingerprintKey = fingerprintSecret
	cfg.Identity.JWT.HMACSecret = jwtSecret
	cfg.Watcher.APIKey = testenv.FlowkerKey
	cfg.Watcher.Interval = config.Duration(50 * time.Millisecond)
	cfg.Watcher.MaxInterval = config.Duration(500 * time.Millisecond)
	cfg.Journal.MaxBytes = 1 << 20
	cfg.Journal.CompactEvery = config.Duration(200 * time.Millisecond)
	cfg.Capture.MaxBodyBytes = 128 << 10
	cfg.ShutdownTimeout = config.Duration(2 * time.Second)
	cfg.Log = config.Log{Format: "json", Level: "debug"}
	cfg.Sinks = []config.Sink{{Name: "store", Plugin: "sqlite", Query: true, Config: map[string]any{"path": filepath.Join(dir, "audit.db")}}}
	// Workflow creation is fail_open here (the built-in rule, replaced with the mode changed);
	// every other route keeps the default fail_closed.
	cfg.Rules = []config.Rule{{Name: "workflow.create", Method: "POST", Path: "/v1/workflows", EventType: "WORKFLOW_CREATED",
		Action: "CREATE", ResourceType: "workflow", ResourceID: []string{"response:workflowId"},
		Metadata: map[string][]string{"workflow.name": {"response:name"}}, FailMode: config.FailOpen}}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sc := startSidecar(t, cfg, log, func(c *host.SinkConfig) {
		c.BatchInterval = 20 * time.Millisecond
		c.PingInterval = 200 * time.Millisecond
		// Once killed, the sink stays down for the rest of the test.
		c.MinBackoff, c.MaxBackoff = 10*time.Minute, 10*time.Minute
	})
	pollUntil(t, 30*time.Second, "ready", func() bool { code, _ := readiness(t, sc.AdminURL); return code == http.StatusOK })

	// The normal scenario, with a JWT beside the API key and secrets in headers and bodies.
	token := hs256("ops-user", jwtSecret)
	s := newScenario(t, sc.ProxyURL, "Authorization", "Bearer "+token)
	s.run()
	pollUntil(t, 30*time.Second, "every execution outcome", func() bool { return int(sc.App.Journal().Last()) >= s.total() })
	pollUntil(t, 30*time.Second, "delivery", func() bool {
		c, _ := sc.App.Journal().Cursor("store")
		return c >= sc.App.Journal().Last()
	})
	if r := testenv.Do(t, "GET", sc.ProxyURL+"/v1/audit-events?limit=5", nil, map[string]string{"X-API-Key": testenv.AuditKey}); r.Status != http.StatusOK {
		t.Fatalf("audit API: %d %s", r.Status, r.Body)
	}
	healthy := parseLogs(t, logs.String())
	for _, l := range healthy {
		if l.str("level") == "ERROR" {
			t.Errorf("error logged during the healthy scenario: %v", l)
		}
	}

	// Fault: the only sink dies and stays down; the 1MiB journal fills with big workflows.
	pid := pluginPID(t, "sqlite", dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	pollUntil(t, 30*time.Second, "the sink reported down", func() bool {
		_, body := readiness(t, sc.AdminURL)
		return body.Checks["sink:store"].Status == "down"
	})
	big := strings.Repeat("x", 100<<10)
	n := 0
	bigWorkflow := func() testenv.Response {
		n++
		return testenv.Do(t, "POST", sc.ProxyURL+"/v1/workflows", map[string]any{"name": fmt.Sprintf("big-%d", n), "description": big},
			map[string]string{"X-API-Key": testenv.FlowkerKey})
	}
	journalDown := func() bool {
		_, body := readiness(t, sc.AdminURL)
		return body.Checks["journal"].Status == "down"
	}
	for !journalDown() {
		if n > 40 {
			t.Fatalf("the journal still accepts events after %d big workflows", n)
		}
		r := bigWorkflow()
		if r.Status != http.StatusCreated || r.Header.Get("X-Audit-Id") == "" {
			t.Fatalf("big workflow %d before the bound: %d, X-Audit-Id %q", n, r.Status, r.Header.Get("X-Audit-Id"))
		}
		s.AuditIDs = append(s.AuditIDs, r.Header.Get("X-Audit-Id"))
	}
	code, body := readiness(t, sc.AdminURL)
	if j := body.Checks["journal"]; code != http.StatusServiceUnavailable || j.Status != "down" || !strings.Contains(j.Error, "full") {
		t.Errorf("/readyz with a full journal: %d %+v", code, body)
	}

	// fail_closed: refused with 503 before reaching Flowker.
	refused := testenv.Do(t, "POST", sc.ProxyURL+"/v1/workflows/"+s.Workflow+"/deactivate", nil, map[string]string{"X-API-Key": testenv.FlowkerKey})
	if refused.Status != http.StatusServiceUnavailable || !strings.Contains(string(refused.Body), "FLKAUD-0503") || refused.Header.Get("X-Audit-Id") != "" {
		t.Errorf("fail_closed route with a full journal: %d %s", refused.Status, refused.Body)
	}
	wf := testenv.Do(t, "GET", fakeURL+"/v1/workflows/"+s.Workflow, nil, map[string]string{"X-API-Key": testenv.FlowkerKey})
	if !strings.Contains(string(wf.Body), `"active"`) {
		t.Errorf("the refused deactivation reached Flowker: %s", wf.Body)
	}

	// fail_open: forwarded; once the event no longer fits it is lost (no X-Audit-Id).
	lost := 0
	for lost == 0 {
		if n > 80 {
			t.Fatalf("no event lost after %d big workflows past the bound", n)
		}
		r := bigWorkflow()
		if r.Status != http.StatusCreated {
			t.Fatalf("fail_open route with a full journal: %d %s", r.Status, r.Body)
		}
		if id := r.Header.Get("X-Audit-Id"); id != "" {
			s.AuditIDs = append(s.AuditIDs, id)
		} else {
			lost++
		}
	}

	var fams families
	var raw []byte
	pollUntil(t, 30*time.Second, "journal_writable 0, sink_up 0 and a sink lag in /metrics", func() bool {
		raw, fams = scrape(t, sc.AdminURL)
		w, _ := fams.sum("flowker_audit_journal_writable", nil)
		up, _ := fams.sum("flowker_audit_sink_up", lbl("sink", "store"))
		// The lag gauges are refreshed every second: wait for the refresh after the last append.
		lag, _ := fams.sum("flowker_audit_sink_lag_events", lbl("sink", "store"))
		age, _ := fams.sum("flowker_audit_sink_oldest_unacked_age_seconds", lbl("sink", "store"))
		return w == 0 && up == 0 && lag == float64(sc.App.Journal().Last())-float64(s.total()) && age > 0
	})
	seen.add(fams)
	checkLint(t, raw)
	if got := fams.must(t, "flowker_audit_proxy_refused_total", lbl("reason", "journal_full")); got != 1 {
		t.Errorf("flowker_audit_proxy_refused_total{reason=journal_full} = %v, want 1", got)
	}
	if got := fams.must(t, "flowker_audit_events_lost_total", lbl("reason", "journal_full")); got != float64(lost) {
		t.Errorf("flowker_audit_events_lost_total{reason=journal_full} = %v, want %d", got, lost)
	}
	// The sink acknowledged the scenario's events before it died; every event since is lag.
	if got, want := fams.must(t, "flowker_audit_sink_lag_events", lbl("sink", "store")), float64(len(s.AuditIDs)-s.Sync); got != want {
		t.Errorf("flowker_audit_sink_lag_events{sink=store} = %v with the sink down, want the %v events appended since", got, want)
	}
	if got := fams.must(t, "flowker_audit_sink_plugin_restarts_total", lbl("sink", "store")); got != 0 {
		t.Errorf("flowker_audit_sink_plugin_restarts_total = %v while the restart waits its backoff", got)
	}

	// Logs of the whole run.
	lines := parseLogs(t, logs.String())
	audited := map[string]int{}
	var lossLines, refusedLines []logLine
	for _, l := range lines {
		switch {
		case l.str("msg") == "audited":
			if l.str("level") != "DEBUG" {
				t.Errorf("audited line at %s: %v", l.str("level"), l)
			}
			for _, k := range []string{"event_id", "event_type", "result", "route", "actor"} {
				if l.str(k) == "" {
					t.Errorf("audited line without %s: %v", k, l)
				}
			}
			audited[l.str("event_id")]++
		case l.str("level") == "ERROR" && strings.Contains(l.str("msg"), "could not be journaled"):
			lossLines = append(lossLines, l)
		case l.str("level") == "ERROR" && strings.Contains(l.str("msg"), "refused"):
			refusedLines = append(refusedLines, l)
		}
	}
	if len(audited) != len(s.AuditIDs) {
		t.Errorf("%d distinct audited log lines for %d audited requests", len(audited), len(s.AuditIDs))
	}
	for _, id := range s.AuditIDs {
		if audited[id] != 1 {
			t.Errorf("event %s (X-Audit-Id) has %d audited log lines, want 1", id, audited[id])
		}
	}
	if len(lossLines) != lost {
		t.Errorf("%d error lines for %d lost events", len(lossLines), lost)
	}
	for _, l := range lossLines {
		if id := l.str("event_id"); !uuidRe.MatchString(id) || audited[id] != 0 {
			t.Errorf("loss line without the lost event's own id: %v", l)
		}
		for _, k := range []string{"event_type", "route", "fail_mode", "err"} {
			if l.str(k) == "" {
				t.Errorf("loss line without %s: %v", k, l)
			}
		}
	}
	if len(refusedLines) != 1 {
		t.Errorf("%d error lines for 1 refused request", len(refusedLines))
	}
	for _, l := range refusedLines {
		if l.str("route") == "" || l.str("method") == "" {
			t.Errorf("refusal line without route or method: %v", l)
		}
	}
	all := logs.String()
	for what, secret := range map[string]string{
		"Flowker API key": testenv.FlowkerKey, "audit API key": testenv.AuditKey, "fingerprint key": fingerprintSecret,
		"cursor key": cursorSecret, "JWT HMAC secret": jwtSecret, "JWT": token, "JWT signature": token[strings.LastIndexByte(token, '.')+1:],
		"provider configuration secret": providerSecret, "cookie": cookieSecret, "password in a body": bodyPassword,
	} {
		if strings.Contains(all, secret) {
			t.Errorf("the logs contain the %s", what)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", all)
	}
}
