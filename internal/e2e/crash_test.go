package e2e

import (
	"context"
	"fmt"
	"github.com/flowker-audit/flowker-audit/internal/syncbuf"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sidecarProcess is the real binary running `serve` as a child process.
type sidecarProcess struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	proxy  string
	admin  string
}

func writeConfig(t *testing.T, dir, upstream string, proxyPort, adminPort int) string {
	t.Helper()
	cfg := fmt.Sprintf(`version: 1
upstream: {url: %q}
listen: {addr: "127.0.0.1:%d"}
admin: {addr: "127.0.0.1:%d"}
data_dir: %q
auth: {api_keys: [%q]}
journal: {fsync: true, compact_every: 1s}
watcher: {enabled: false}
sinks:
  - name: store
    plugin: sqlite
    query: true
    batch_interval: 20ms
    config: {path: %q}
log: {format: text, level: info}
shutdown_timeout: 10s
`, upstream, proxyPort, adminPort, dir, testenv.AuditKey, filepath.Join(dir, "audit.db"))
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startProcess(t *testing.T, cfgPath string, proxyPort, adminPort int) *sidecarProcess {
	t.Helper()
	p := &sidecarProcess{stderr: &syncbuf.Buffer{}, proxy: fmt.Sprintf("http://127.0.0.1:%d", proxyPort), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort)}
	p.cmd = exec.Command(testenv.Binary(t), "serve", "--config", cfgPath)
	// The test's own knob is not the sidecar's: it refuses unknown FLOWKER_AUDIT_* variables.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWKER_AUDIT_CRASH_ROUNDS=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", p.stderr.String())
		}
	})
	testenv.Eventually(t, 30*time.Second, "the sidecar process to be ready", func() bool {
		resp, err := http.Get(p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// TestKill9DuringWriteBurst kills the real sidecar process with SIGKILL while clients are writing,
// restarts it, and checks the promise: every request that got a response has exactly one event,
// and the chain verifies.
func TestKill9DuringWriteBurst(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey})
	fsrv := httptest.NewServer(fake)
	defer fsrv.Close()
	dir := t.TempDir()
	pp, ap := freePort(t), freePort(t)
	cfg := writeConfig(t, dir, fsrv.URL, pp, ap)
	proc := startProcess(t, cfg, pp, ap)

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"name":"burst-%d-%d"}`, w, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", proc.proxy+"/v1/workflows", strings.NewReader(body))
				req.Header.Set("X-API-Key", testenv.FlowkerKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the sidecar died: this request got no response
				}
				resp.Body.Close()
				if resp.StatusCode == 201 {
					id := resp.Header.Get("X-Audit-Id")
					if id == "" {
						t.Error("201 without X-Audit-Id")
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	testenv.Eventually(t, 60*time.Second, "300 acknowledged writes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 300
	})
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
	stop()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	t.Logf("killed the sidecar after %d acknowledged writes", n)

	// Restart on the same data_dir.
	proc2 := startProcess(t, cfg, pp, ap)
	testenv.Eventually(t, 10*time.Second, "the recovery report in the log", func() bool {
		return strings.Contains(proc2.stderr.String(), "journal open")
	})
	var report string
	for _, line := range strings.Split(proc2.stderr.String(), "\n") {
		if strings.Contains(line, "journal open") {
			report = line
		}
	}
	if !strings.Contains(report, "records_cut=0") || !strings.Contains(report, "tail_checked=") {
		t.Fatalf("recovery report: %q", report)
	}
	t.Logf("recovery: %s", report[strings.Index(report, "msg="):])

	// Everything acknowledged reaches the query sink exactly once; the chain verifies.
	env := &testenv.Env{ProxyURL: proc2.proxy}
	var events []string
	testenv.Eventually(t, 60*time.Second, "every acknowledged event in the audit API", func() bool {
		all := allEventIDs(t, env)
		seen := map[string]int{}
		for _, id := range all {
			seen[id]++
		}
		for id := range acked {
			if seen[id] != 1 {
				return false
			}
		}
		events = all
		return true
	})
	seen := map[string]int{}
	for _, id := range events {
		seen[id]++
		if seen[id] > 1 {
			t.Fatalf("event %s stored twice", id)
		}
	}
	r := testenv.Do(t, "GET", proc2.proxy+"/v1/audit-events/"+events[len(events)-1]+"/verify", nil, map[string]string{"X-API-Key": testenv.AuditKey})
	if !strings.Contains(string(r.Body), `"isValid":true`) {
		t.Fatalf("verify after the crash: %s", r.Body)
	}
	t.Logf("%d events after restart (%d acknowledged before the kill, the rest were in flight); chain valid", len(events), n)
	if err := proc2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, proc2.stderr.String())
	}
}

func allEventIDs(t *testing.T, env *testenv.Env) []string {
	t.Helper()
	var ids []string
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
		for _, e := range p.Items {
			ids = append(ids, e.EventID)
		}
		if !p.HasMore {
			return ids
		}
		cursor = p.NextCursor
	}
}
