package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// appliedLog records every change the fake Flowker applied (a 2xx answer to a mutating
// request), whatever became of the answer: the ground truth the trail is compared with.
type appliedLog struct {
	mu      sync.Mutex
	changes map[string]int // "EVENT_TYPE resourceId" -> times applied
	// started are the executions answered so far: a 201 naming one again is an idempotent
	// replay of a running execution (a client's retry, or recovery's lookup by key), not a change.
	started map[string]bool
}

var (
	wfPath    = regexp.MustCompile(`^/v1/workflows/([0-9a-f-]{36})$`)
	wfAction  = regexp.MustCompile(`^/v1/workflows/([0-9a-f-]{36})/(activate|deactivate|draft)$`)
	execStart = regexp.MustCompile(`^/v1/workflows/([0-9a-f-]{36})/executions$`)
)

type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) { c.status = code; c.ResponseWriter.WriteHeader(code) }
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

func (l *appliedLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &captureWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		if cw.status < 200 || cw.status > 299 || r.Method == http.MethodGet {
			return
		}
		var out struct {
			WorkflowID  string `json:"workflowId"`
			ExecutionID string `json:"executionId"`
		}
		_ = json.Unmarshal(cw.body.Bytes(), &out)
		p := r.URL.Path
		key := ""
		switch {
		case r.Method == "POST" && p == "/v1/workflows":
			key = chain.WorkflowCreated + " " + out.WorkflowID
		case r.Method == "PUT" && wfPath.MatchString(p):
			key = chain.WorkflowUpdated + " " + wfPath.FindStringSubmatch(p)[1]
		case r.Method == "DELETE" && wfPath.MatchString(p):
			key = chain.WorkflowDeleted + " " + wfPath.FindStringSubmatch(p)[1]
		case r.Method == "POST" && wfAction.MatchString(p):
			m := wfAction.FindStringSubmatch(p)
			key = map[string]string{"activate": chain.WorkflowActivated, "deactivate": chain.WorkflowDeactivated, "draft": chain.WorkflowDrafted}[m[2]] + " " + m[1]
		case r.Method == "POST" && execStart.MatchString(p) && cw.status == http.StatusCreated:
			l.mu.Lock()
			replay := l.started[out.ExecutionID]
			if l.started == nil {
				l.started = map[string]bool{}
			}
			l.started[out.ExecutionID] = true
			l.mu.Unlock()
			if replay {
				return
			}
			key = chain.ExecutionStarted + " " + out.ExecutionID
		default:
			return
		}
		l.mu.Lock()
		l.changes[key]++
		l.mu.Unlock()
	})
}

func writeCrashConfig(t *testing.T, dir, upstream string, proxyPort, adminPort int, extra string) string {
	t.Helper()
	if extra == "" {
		extra = ", compact_every: 1s"
	}
	cfg := fmt.Sprintf(`version: 1
upstream: {url: %q}
listen: {addr: "127.0.0.1:%d"}
admin: {addr: "127.0.0.1:%d"}
data_dir: %q
auth: {api_keys: [%q]}
journal: {fsync: true%s}
watcher: {enabled: true, api_key: %q, interval: 50ms, max_interval: 500ms}
sinks:
  - name: store
    plugin: sqlite
    query: true
    batch_interval: 20ms
    config: {path: %q}
log: {format: text, level: info}
shutdown_timeout: 10s
`, upstream, proxyPort, adminPort, dir, testenv.AuditKey, extra, testenv.FlowkerKey, filepath.Join(dir, "audit.db"))
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// workload drives one worker's life cycle of workflows through the sidecar: create, update,
// activate, start an execution, deactivate, delete. A step whose answer is lost (the sidecar
// died) abandons the workflow; the next one starts fresh. Every 2xx X-Audit-Id is kept.
type workload struct {
	proxy  func() string
	client *http.Client
	mu     sync.Mutex
	acked  map[string]string // X-Audit-Id -> "METHOD path"
	errors int
}

func (wl *workload) do(ctx context.Context, method, path string, body any, hdr map[string]string) (int, []byte, bool) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, wl.proxy()+path, rd)
	req.Header.Set("X-API-Key", testenv.FlowkerKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := wl.client.Do(req)
	if err != nil {
		wl.mu.Lock()
		wl.errors++
		wl.mu.Unlock()
		return 0, nil, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		id := resp.Header.Get("X-Audit-Id")
		wl.mu.Lock()
		wl.acked[id] = method + " " + path
		wl.mu.Unlock()
	}
	return resp.StatusCode, b, true
}

func (wl *workload) run(ctx context.Context, worker int) {
	for i := 0; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("crash-%d-%d-%d", worker, i, rand.IntN(1<<30))
		status, b, ok := wl.do(ctx, "POST", "/v1/workflows", map[string]any{"name": name, "nodes": []any{map[string]any{"id": "t", "type": "trigger",
			"data": map[string]any{"triggerType": "webhook", "path": "/w/" + name, "method": "POST"}}}}, nil)
		if !ok || status != 201 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var c struct {
			WorkflowID string `json:"workflowId"`
		}
		_ = json.Unmarshal(b, &c)
		wf := "/v1/workflows/" + c.WorkflowID
		steps := []struct {
			method, path string
			body         any
			hdr          map[string]string
		}{
			{"PUT", wf, map[string]any{"name": name + "-u", "nodes": []any{map[string]any{"id": "t", "type": "trigger",
				"data": map[string]any{"triggerType": "webhook", "path": "/w/" + name, "method": "POST"}}}}, nil},
			{"POST", wf + "/activate", nil, nil},
			{"POST", wf + "/executions", map[string]any{"inputData": map[string]any{"n": i}}, map[string]string{"Idempotency-Key": name}},
			{"POST", wf + "/deactivate", nil, nil},
			{"DELETE", wf, nil, nil},
		}
		for _, s := range steps {
			if _, _, ok := wl.do(ctx, s.method, s.path, s.body, s.hdr); !ok {
				break // the sidecar died: abandon this workflow
			}
		}
	}
}

// crashRounds is the number of SIGKILLs: 3 in `make test`, more with FLOWKER_AUDIT_CRASH_ROUNDS
// (make crash-long).
func crashRounds() int {
	if n, err := strconv.Atoi(os.Getenv("FLOWKER_AUDIT_CRASH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// TestKill9WithIntentsLeavesNoChangeWithoutEvent: clients create, update, activate, execute,
// deactivate and delete workflows through the real sidecar process while it is killed with
// SIGKILL at random moments and restarted on the same data_dir. Afterwards every change the
// fake Flowker applied has exactly one SUCCESS event, every 2xx X-Audit-Id is readable, no event
// is stored twice, every execution has exactly one outcome, and the chain verifies.
func TestKill9WithIntentsLeavesNoChangeWithoutEvent(t *testing.T) {
	applied := &appliedLog{changes: map[string]int{}}
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, ExecutionDelay: 200 * time.Millisecond})
	fsrv := httptest.NewServer(applied.wrap(fake))
	defer fsrv.Close()
	dir := t.TempDir()
	pp, ap := freePort(t), freePort(t)
	cfg := writeCrashConfig(t, dir, fsrv.URL, pp, ap, "")
	proc := startProcess(t, cfg, pp, ap)

	proxyURL := proc.proxy // the same port across restarts
	wl := &workload{proxy: func() string { return proxyURL }, client: &http.Client{Timeout: 10 * time.Second}, acked: map[string]string{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); wl.run(ctx, w) }()
	}
	rounds := crashRounds()
	var logs []string
	for round := range rounds {
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = proc.cmd.Wait()
		logs = append(logs, proc.stderr.String())
		proc = startProcess(t, cfg, pp, ap)
		t.Logf("round %d: killed and restarted", round+1)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	// Everything settles: intents resolved, executions finished and recorded, sink caught up.
	metric := func(name string) float64 {
		r := testenv.Do(t, "GET", proc.admin+"/metrics", nil, nil)
		for _, line := range strings.Split(string(r.Body), "\n") {
			if strings.HasPrefix(line, name+" ") {
				v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
				return v
			}
		}
		return -1
	}
	// lagged sums flowker_audit_sink_lag_events over its series: the events journaled (outcomes of
	// executions included, which no client waits for) that a sink has not acknowledged yet.
	lagged := func() float64 {
		r := testenv.Do(t, "GET", proc.admin+"/metrics", nil, nil)
		sum, found := 0.0, false
		for _, line := range strings.Split(string(r.Body), "\n") {
			if rest, ok := strings.CutPrefix(line, "flowker_audit_sink_lag_events{"); ok {
				if _, v, ok := strings.Cut(rest, "} "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					sum, found = sum+f, true
				}
			}
		}
		if !found {
			return -1
		}
		return sum
	}
	testenv.Eventually(t, 60*time.Second, "no intent pending, no execution watched, every event delivered", func() bool {
		return metric("flowker_audit_intents_pending") == 0 && metric("flowker_audit_proxy_events_waiting") == 0 &&
			metric("flowker_audit_watcher_pending") <= 0 && lagged() == 0
	})
	env := &testenv.Env{ProxyURL: proc.proxy}
	var events []chain.Event
	testenv.Eventually(t, 60*time.Second, "the trail to hold every acknowledged event", func() bool {
		events = allEvents(t, env)
		have := map[string]bool{}
		for _, e := range events {
			have[e.EventID] = true
		}
		wl.mu.Lock()
		defer wl.mu.Unlock()
		for id := range wl.acked {
			if !have[id] {
				return false
			}
		}
		return true
	})

	seen := map[string]bool{}
	success := map[string]int{}
	terminal := map[string]int{}
	outcomes := map[string]int{}
	for _, e := range events {
		if seen[e.EventID] {
			t.Errorf("event %s stored twice", e.EventID)
		}
		seen[e.EventID] = true
		var c struct {
			Outcome string `json:"outcome"`
		}
		_ = json.Unmarshal(e.Context, &c)
		if c.Outcome != "" {
			outcomes[c.Outcome+" "+e.Result]++
		}
		switch e.EventType {
		case chain.ExecutionCompleted, chain.ExecutionFailed:
			terminal[e.ResourceID]++
			continue
		}
		if e.Result == chain.ResultSuccess {
			success[e.EventType+" "+e.ResourceID]++
		}
	}
	applied.mu.Lock()
	defer applied.mu.Unlock()
	changes := 0
	for k, n := range applied.changes {
		changes += n
		if success[k] != n {
			t.Errorf("%s: applied %d times by Flowker, %d SUCCESS events", k, n, success[k])
		}
	}
	for k, n := range success {
		if applied.changes[k] == 0 {
			t.Errorf("%s: %d SUCCESS events, never applied by Flowker", k, n)
		}
		if strings.HasPrefix(k, chain.ExecutionStarted+" ") {
			if id := strings.TrimPrefix(k, chain.ExecutionStarted+" "); terminal[id] != 1 {
				t.Errorf("execution %s has %d outcome events, want 1", id, terminal[id])
			}
		}
	}
	r := testenv.Do(t, "GET", proc.proxy+"/v1/audit-events/"+events[len(events)-1].EventID+"/verify", nil, map[string]string{"X-API-Key": testenv.AuditKey})
	if !strings.Contains(string(r.Body), `"isValid":true`) {
		t.Fatalf("verify: %s", r.Body)
	}
	recovered, observed := 0, 0
	for _, l := range append(logs, proc.stderr.String()) {
		for _, line := range strings.Split(l, "\n") {
			switch {
			case !strings.Contains(line, "event recovered from an intent"):
			case strings.Contains(line, "outcome=observed"):
				observed++
			default:
				recovered++
			}
		}
	}
	wl.mu.Lock()
	t.Logf("%d kills; %d changes applied by Flowker, %d events, %d acknowledged, %d client errors; %d events of answered requests appended at start as observed; %d other events recovered from intents, outcomes %v",
		rounds, changes, len(events), len(wl.acked), wl.errors, observed, recovered, outcomes)
	wl.mu.Unlock()
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// allEvents pages through the audit API.
func allEvents(t *testing.T, env *testenv.Env) []chain.Event {
	t.Helper()
	var out []chain.Event
	cursor := ""
	for {
		path := "/v1/audit-events?limit=100&sortOrder=ASC"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := testenv.Do(t, "GET", env.ProxyURL+path, nil, map[string]string{"X-API-Key": testenv.AuditKey})
		if r.Status != 200 {
			return nil
		}
		var p testenv.Page
		r.JSON(t, &p)
		out = append(out, p.Items...)
		if !p.HasMore {
			return out
		}
		cursor = p.NextCursor
	}
}
