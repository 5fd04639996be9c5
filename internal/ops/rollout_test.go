package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for a child process's stderr and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sidecarProc is a sidecar running as a process of the real binary, with a fixed data
// directory and ports so that it can be restarted as a pod of a StatefulSet is.
type sidecarProc struct {
	name, cfgPath, dataDir string
	proxy, admin           string
	cmd                    *exec.Cmd
	log                    *syncBuffer
	exited                 chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newSidecarProc(t *testing.T, name, upstream string) *sidecarProc {
	t.Helper()
	dir := t.TempDir()
	p := &sidecarProc{name: name, dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "config.yaml"),
		proxy: freeAddr(t), admin: freeAddr(t)}
	// The store's batch interval is long, so that at SIGTERM the journal holds events the sink
	// has not acknowledged yet: the drain has work to do.
	cfg := fmt.Sprintf(`version: 1
upstream: {url: %q}
listen: {addr: %q}
admin: {addr: %q}
data_dir: %q
auth: {api_keys: [%q]}
watcher: {enabled: false}
sinks:
  - name: store
    plugin: sqlite
    query: true
    batch_interval: 2s
    batch_size: 100000
log: {format: json, level: info}
shutdown_timeout: 20s
`, upstream, p.proxy, p.admin, p.dataDir, testenv.AuditKey)
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *sidecarProc) start(t *testing.T) {
	t.Helper()
	p.log = &syncBuffer{}
	p.cmd = exec.Command(testenv.Binary(t), "serve")
	p.cmd.Env = append(os.Environ(), "FLOWKER_AUDIT_CONFIG="+p.cfgPath,
		"FLOWKER_AUDIT_IDENTITY_FINGERPRINT_KEY=rollout-fingerprint-key-0123456789abcdef0123456789")
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name, p.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-p.exited:
			t.Fatalf("%s exited at start: %v\n%s", p.name, err, p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60s\n%s", p.name, p.log.String())
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *sidecarProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("%s exited with %v after SIGTERM\n%s", p.name, err, p.log.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not exit within 60s of SIGTERM", p.name)
	}
}

// countingFlowker wraps the fake Flowker and counts the workflows it really created.
type countingFlowker struct {
	h       http.Handler
	created atomic.Int64
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func (c *countingFlowker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	c.h.ServeHTTP(rec, r)
	if r.Method == http.MethodPost && r.URL.Path == "/v1/workflows" && rec.code == http.StatusCreated {
		c.created.Add(1)
	}
}

// loadClient sends POST /v1/workflows round-robin to the sidecars, as a Service would. The
// documented drain behaviour: a stopping sidecar closes its listener and its idle connections,
// so a request can fail with a connection error before any response; such a request is sent
// again to another sidecar (a load balancer's retry). Nothing else may fail.
type loadClient struct {
	targets []string
	http    *http.Client
	next    atomic.Int64

	mu       sync.Mutex
	ok       map[string]int // audit id -> target index
	retried  int
	failures []string
}

func (c *loadClient) one(ctx context.Context, n int) {
	body := fmt.Sprintf(`{"name":"rollout-%d"}`, n)
	start := int(c.next.Add(1))
	var lastErr error
	for attempt := 0; attempt < 2*len(c.targets); attempt++ {
		i := (start + attempt) % len(c.targets)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.targets[i]+"/v1/workflows", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", testenv.FlowkerKey)
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			lastErr = err
			c.mu.Lock()
			c.retried++
			c.mu.Unlock()
			continue // connection refused or closed before a response: retry elsewhere
		}
		_, _ = readAllClose(resp)
		c.mu.Lock()
		defer c.mu.Unlock()
		id := resp.Header.Get("X-Audit-Id")
		if resp.StatusCode != http.StatusCreated || id == "" {
			c.failures = append(c.failures, fmt.Sprintf("request %d to %s: status %d, X-Audit-Id %q", n, c.targets[i], resp.StatusCode, id))
			return
		}
		c.ok[id] = i
		return
	}
	c.mu.Lock()
	c.failures = append(c.failures, fmt.Sprintf("request %d failed on every sidecar: %v", n, lastErr))
	c.mu.Unlock()
}

func readAllClose(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}

func (c *loadClient) succeeded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ok)
}

// TestRolloutUnderLoad: two sidecar processes behind a client under load; one gets SIGTERM
// and is restarted on its data directory (a StatefulSet pod's rollout). No request fails
// beyond the documented drain behaviour (connection errors retried on the other sidecar), the
// stopped sidecar's journal is empty when it exits (everything was delivered to its sink),
// every audited response's event is in a store after the restart, both chains verify, and the
// events count what Flowker really created.
func TestRolloutUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two sidecar processes under load")
	}
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey})
	counting := &countingFlowker{h: fake}
	fsrv := httptest.NewServer(counting)
	t.Cleanup(func() { fsrv.Close(); fake.Close() })

	a, b := newSidecarProc(t, "sidecar-a", fsrv.URL), newSidecarProc(t, "sidecar-b", fsrv.URL)
	a.start(t)
	b.start(t)
	client := &loadClient{targets: []string{a.proxy, b.proxy}, ok: map[string]int{},
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seq atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				client.one(ctx, int(seq.Add(1)))
			}
		}()
	}
	waitFor := func(n int, what string) {
		t.Helper()
		testenv.Eventually(t, 60*time.Second, what, func() bool { return client.succeeded() >= n })
	}

	waitFor(150, "150 audited requests before the rollout")
	a.stop(t) // SIGTERM under load
	if !strings.Contains(a.log.String(), "journal drained: every event was delivered to every sink") {
		t.Errorf("sidecar-a did not report a complete drain:\n%s", a.log.String())
	}
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(a.dataDir, "journal.db")})
	if err != nil {
		t.Fatalf("opening the stopped sidecar's journal: %v", err)
	}
	entries, _, _ := j.Stats()
	lastA := j.Last()
	j.Close()
	if entries != 0 {
		t.Errorf("the journal of the stopped sidecar holds %d events at exit, want 0 (everything delivered)", entries)
	}
	if lastA == 0 {
		t.Error("sidecar-a journaled nothing before its SIGTERM")
	}
	before := client.succeeded()
	waitFor(before+50, "requests served by the other sidecar while one is down")
	a.start(t) // the new pod on the same volume
	waitFor(client.succeeded()+150, "150 more audited requests after the restart")
	stopLoad()
	wg.Wait()

	client.mu.Lock()
	failures, retried, ok := client.failures, client.retried, client.ok
	client.mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d audited requests, %d connection errors retried on the other sidecar, %d failures", len(ok), retried, len(failures))

	// Every audited response's event is in the store of the sidecar that answered.
	auditGet := func(target, id string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+target+"/v1/audit-events/"+id, nil)
		req.Header.Set("X-API-Key", testenv.AuditKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	missing := 0
	for id, i := range ok {
		target := client.targets[i]
		found := false
		for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(100 * time.Millisecond) {
			if auditGet(target, id) == http.StatusOK {
				found = true
				break
			}
		}
		if !found {
			missing++
			if missing <= 5 {
				t.Errorf("event %s (answered by %s) is not in its store", id, target)
			}
		}
	}
	a.stop(t)
	b.stop(t)

	// Both chains are valid, and together they hold one event per workflow Flowker created.
	total := 0
	for _, p := range []*sidecarProc{a, b} {
		out, err := exec.Command(testenv.Binary(t), "verify", "--config", p.cfgPath, "--json").Output()
		var rep struct {
			Valid  bool `json:"valid"`
			Events int  `json:"events"`
		}
		if jerr := json.Unmarshal(out, &rep); jerr != nil || err != nil || !rep.Valid {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Logf("%s", ee.Stderr)
			}
			t.Errorf("verify %s: %v %v %s", p.name, err, jerr, out)
		}
		total += rep.Events
	}
	if created := int(counting.created.Load()); total != created {
		t.Errorf("the chains hold %d events, Flowker created %d workflows: a change is unaudited or an event lost", total, created)
	}
}
