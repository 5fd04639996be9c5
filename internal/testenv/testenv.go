// Package testenv starts real flowker-audit environments for end-to-end tests: the fake Flowker,
// the sidecar (in-process or as a child process of the real binary) with its real plugin
// processes, and clients for both. It is imported by tests only.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/plugins"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// Credentials used by every environment.
const (
	FlowkerKey = "e2e-flowker-key-0001"
	AuditKey   = "e2e-audit-key-0001"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// ModuleRoot returns the repository root (where go.mod is).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Binary builds cmd/flowker-audit once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowker-audit-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "flowker-audit")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/flowker-audit")
		cmd.Dir = ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building flowker-audit: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Options tune an environment.
type Options struct {
	// Config adjusts the sidecar configuration before start (sinks, rules, ...).
	Config func(*config.Config)
	// ExecutionDelay of the fake Flowker (default 100ms).
	ExecutionDelay time.Duration
	// SinkTuning adjusts supervisors (default: short backoffs).
	SinkTuning func(*host.SinkConfig)
	// RetentionTuning adjusts the retention driver (a clock) and its interval.
	RetentionTuning func(*host.Retention, *time.Duration)
	// DataDir reuses a data directory (restart tests); default a fresh temp dir.
	DataDir string
	// NoWaitReady returns as soon as the sidecar listens, without waiting for /readyz (tests of
	// sidecars that must stay unready, e.g. a query sink in conflict).
	NoWaitReady bool
	// LogTo also receives the sidecar's log (text, info level and above); it must be safe for
	// concurrent writes.
	LogTo io.Writer
}

// Env is a running fake Flowker with a sidecar in front of it.
type Env struct {
	t        testing.TB
	Fake     *fakeflowker.Server
	FakeURL  string
	App      *app.App
	Registry *prometheus.Registry
	Config   *config.Config
	ProxyURL string
	AdminURL string
	DataDir  string
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

// Start starts the fake Flowker and an in-process sidecar whose plugins are real processes of
// the flowker-audit binary.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.ExecutionDelay == 0 {
		o.ExecutionDelay = 100 * time.Millisecond
	}
	fake := fakeflowker.New(fakeflowker.Options{APIKey: FlowkerKey, ExecutionDelay: o.ExecutionDelay})
	fsrv := httptest.NewServer(fake)
	t.Cleanup(func() { fsrv.Close(); fake.Close() })
	e := StartSidecar(t, fsrv.URL, o)
	e.Fake, e.FakeURL = fake, fsrv.URL
	return e
}

// StartSidecar starts an in-process sidecar in front of upstream.
func StartSidecar(t testing.TB, upstream string, o Options) *Env {
	t.Helper()
	bin := Binary(t)
	dir := o.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := config.Default()
	cfg.Upstream.URL = upstream
	cfg.Listen.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Auth.APIKeys = []string{AuditKey}
	cfg.Watcher.APIKey = FlowkerKey
	cfg.Watcher.Interval = config.Duration(50 * time.Millisecond)
	cfg.Watcher.MaxInterval = config.Duration(500 * time.Millisecond)
	cfg.Journal.CompactEvery = config.Duration(200 * time.Millisecond)
	cfg.ShutdownTimeout = config.Duration(10 * time.Second)
	cfg.Sinks = []config.Sink{{Name: "store", Plugin: "sqlite", Query: true, Config: map[string]any{"path": filepath.Join(dir, "audit.db")}}}
	if o.Config != nil {
		o.Config(cfg)
	}
	if errs := config.Validate(cfg, plugins.Catalog{}); len(errs) > 0 {
		t.Fatalf("test configuration: %v", errs)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tuning := o.SinkTuning
	if tuning == nil {
		tuning = func(c *host.SinkConfig) {
			c.MinBackoff, c.MaxBackoff = 20*time.Millisecond, 300*time.Millisecond
			c.RestartCooldown = time.Second
			c.BatchInterval = 20 * time.Millisecond
			c.PingInterval = 200 * time.Millisecond
		}
	}
	a, err := app.New(context.Background(), app.Options{
		Config: cfg, Registry: reg, Version: "e2e", Logger: testLogger(t, o.LogTo),
		PluginCommand: func(name string) (string, []string, error) { return bin, []string{"plugin", name}, nil },
		SinkTuning:    tuning, RetentionTuning: o.RetentionTuning,
	})
	if err != nil {
		t.Fatalf("starting the sidecar: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Env{t: t, App: a, Registry: reg, Config: cfg, DataDir: dir, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		e.done <- a.Run(ctx, func(p, adm net.Addr) {
			e.ProxyURL, e.AdminURL = "http://"+p.String(), "http://"+adm.String()
			close(ready)
		})
	}()
	select {
	case <-ready:
	case err := <-e.done:
		t.Fatalf("sidecar stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("sidecar did not start within 30s")
	}
	t.Cleanup(func() { e.Stop() })
	if !o.NoWaitReady {
		e.WaitReady(30 * time.Second)
	}
	return e
}

// Stop shuts the sidecar down gracefully and returns Run's error.
func (e *Env) Stop() error {
	var err error
	e.stopOnce.Do(func() {
		e.cancel()
		select {
		case err = <-e.done:
		case <-time.After(60 * time.Second):
			err = fmt.Errorf("sidecar did not stop within 60s")
		}
	})
	return err
}

// WaitReady polls /readyz until 200.
func (e *Env) WaitReady(d time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(e.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sidecar not ready after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Response is a completed HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// Do sends a request to base+path with the Flowker key and a JSON body (nil: none).
func Do(t testing.TB, method, url string, body any, hdr map[string]string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Flowker calls the sidecar (or, with direct=true, the fake Flowker) with the Flowker key.
func (e *Env) Flowker(method, path string, body any, hdr ...string) Response {
	e.t.Helper()
	h := map[string]string{"X-API-Key": FlowkerKey}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	r := Do(e.t, method, e.ProxyURL+path, body, h)
	if method != "GET" && method != "HEAD" {
		// The request's event may be committed just after its answer: tests that read the journal
		// next see it.
		e.Flush()
	}
	return r
}

// Flush waits until the journal has committed every event queued so far (the events of the
// requests answered so far).
func (e *Env) Flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.App.Journal().Flush(ctx); err != nil {
		e.t.Fatalf("waiting for the journal's appends: %v", err)
	}
}

// Audit calls the sidecar's audit API with the audit key.
func (e *Env) Audit(path string) Response {
	e.t.Helper()
	return Do(e.t, "GET", e.ProxyURL+path, nil, map[string]string{"X-API-Key": AuditKey})
}

// Page is a decoded GET /v1/audit-events answer.
type Page struct {
	Items      []chain.Event `json:"items"`
	NextCursor string        `json:"nextCursor"`
	HasMore    bool          `json:"hasMore"`
}

// AllEvents pages through the audit API (ascending) and returns every event.
func (e *Env) AllEvents() []chain.Event {
	e.t.Helper()
	var out []chain.Event
	cursor := ""
	for {
		path := "/v1/audit-events?limit=100&sortOrder=ASC"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.Audit(path)
		if r.Status != 200 {
			e.t.Fatalf("audit API: %d %s", r.Status, r.Body)
		}
		var p Page
		r.JSON(e.t, &p)
		out = append(out, p.Items...)
		if !p.HasMore {
			return out
		}
		cursor = p.NextCursor
	}
}

// WaitDelivered waits until the query sink holds every journaled event.
func (e *Env) WaitDelivered(d time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	// The events of requests answered so far are in the journal once the appends queued before
	// this are committed (an event can be committed just after its answer).
	fctx, cancel := context.WithDeadline(context.Background(), deadline)
	err := e.App.Journal().Flush(fctx)
	cancel()
	if err != nil {
		e.t.Fatalf("waiting for the journal's appends: %v", err)
	}
	for {
		last := e.App.Journal().Last()
		if c, _ := e.App.Journal().Cursor("store"); c >= last {
			return
		}
		if time.Now().After(deadline) {
			c, _ := e.App.Journal().Cursor("store")
			e.t.Fatalf("sink store acknowledged %d of %d events after %s", c, last, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Eventually polls cond until it is true or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
