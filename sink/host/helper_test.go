package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/plugins/file"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host/internal/memsource"
)

// helperEnv makes the test binary act as the named plugin (see TestMain).
const helperEnv = "FLOWKER_AUDIT_HOST_TEST_PLUGIN"

var buildDir string // holds binaries built once per test binary (see nullsinkPath)

func TestMain(m *testing.M) {
	switch name := os.Getenv(helperEnv); name {
	case "":
		dir, err := os.MkdirTemp("", "flowker-audit-host-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		buildDir = dir
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	case "applog":
		sink.Serve(&appendLog{log: sink.NewLogger(os.Stderr, slog.LevelDebug)})
	case "file":
		sink.Serve(file.New(file.Options{Logger: sink.NewLogger(os.Stderr, slog.LevelInfo)}))
	case "sqlite": // retention_test.go: small retention blocks
		sink.Serve(sqlite.New(sqlite.Options{Logger: sink.NewLogger(os.Stderr, slog.LevelInfo), RetentionBatch: 50}))
	default:
		fmt.Fprintf(os.Stderr, "unknown test plugin %q\n", name)
		os.Exit(2)
	}
	os.Exit(0)
}

// appendLog is a strict test sink: it appends every event it is sent to a file, without
// skipping duplicates, so a host that sends an event twice is caught. Head is the last line of
// the file, recovered (torn line cut) on Configure, so it survives its own kill -9.
type appendLog struct {
	log *slog.Logger

	mu     sync.Mutex
	cfg    appendLogConfig
	f      *os.File
	head   sink.Head
	writes int
}

type appendLogConfig struct {
	Path             string `json:"path"`
	PIDFile          string `json:"pid_file"`
	HangOnce         string `json:"hang_once"`          // marker: the first Write of a run without it hangs
	FailWrites       int    `json:"fail_writes"`        // the first N writes of each process fail (retryable)
	StoreThenFail    bool   `json:"store_then_fail"`    // ... after storing the batch
	PermanentUntil   string `json:"permanent_until"`    // writes fail permanently until this file exists
	CrashOnConfigure bool   `json:"crash_on_configure"` // the process exits in Configure
	ClosedMarker     string `json:"closed_marker"`      // created by Close
	DropAfter        int    `json:"drop_after"`         // writes after the first N return nil without storing (a lying sink)
	Watermarks       string `json:"watermarks"`         // WriteWatermark appends {"upTo","head"} here; unset: ErrUnsupported
}

func (s *appendLog) Configure(_ context.Context, raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s.cfg); err != nil {
		return sink.Permanentf("appendlog config: %w", err)
	}
	if s.cfg.CrashOnConfigure {
		os.Exit(4)
	}
	if s.cfg.PIDFile != "" {
		if err := os.WriteFile(s.cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(s.cfg.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		s.log.Warn("cutting torn line", "bytes", len(b)-i-1)
		if err := os.Truncate(s.cfg.Path, int64(i+1)); err != nil {
			return err
		}
		b = b[:i+1]
	}
	if lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")); len(b) > 0 {
		var r logRecord
		if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
			return err
		}
		s.head = sink.Head{Found: true, Sequence: r.Sequence, Hash: r.Hash}
	}
	s.f, err = os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	return err
}

// logRecord is one line of an appendLog file.
type logRecord struct {
	ChainID  string `json:"chainId"`
	Sequence uint64 `json:"sequence"`
	Hash     string `json:"hash"`
}

func (s *appendLog) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true}, nil
}

func (s *appendLog) Write(_ context.Context, events []chain.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.cfg.HangOnce != "" {
		if _, err := os.Stat(s.cfg.HangOnce); errors.Is(err, os.ErrNotExist) {
			_ = os.WriteFile(s.cfg.HangOnce, nil, 0o600)
			select {} // hang, ignoring the context, like a stuck driver
		}
	}
	if s.cfg.PermanentUntil != "" {
		if _, err := os.Stat(s.cfg.PermanentUntil); err != nil {
			return sink.Permanentf("table is read-only")
		}
	}
	if s.cfg.DropAfter > 0 && s.writes > s.cfg.DropAfter {
		return nil // acknowledged, not stored
	}
	fail := s.writes <= s.cfg.FailWrites
	if fail && !s.cfg.StoreThenFail {
		return errors.New("store briefly unavailable")
	}
	var buf []byte
	for i := range events {
		b, err := json.Marshal(logRecord{ChainID: events[i].ChainID, Sequence: events[i].Sequence, Hash: events[i].Hash})
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := s.f.Write(buf); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	last := events[len(events)-1]
	s.head = sink.Head{Found: true, Sequence: last.Sequence, Hash: last.Hash}
	if fail {
		return errors.New("stored, but the acknowledgement was lost")
	}
	return nil
}

// WriteWatermark records the watermark with the head stored at that moment, so that a test can
// check the claim against the journal.
func (s *appendLog) WriteWatermark(_ context.Context, chainID string, upTo time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Watermarks == "" {
		return sink.ErrUnsupported
	}
	b, err := json.Marshal(watermarkRecord{ChainID: chainID, UpTo: upTo.UnixMicro(), Head: s.head.Sequence})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.cfg.Watermarks, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}

// watermarkRecord is one line of an appendLog's watermarks file.
type watermarkRecord struct {
	ChainID string `json:"chainId"`
	UpTo    int64  `json:"upTo"`
	Head    uint64 `json:"head"`
}

// Head is the last line of the file, read again on every call, so that a test can repair the
// file while the plugin runs.
func (s *appendLog) Head(context.Context, string) (sink.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.cfg.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return sink.Head{}, err
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(b) == 0 {
		return sink.Head{}, nil
	}
	var r logRecord
	if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
		return sink.Head{}, err
	}
	s.head = sink.Head{Found: true, Sequence: r.Sequence, Hash: r.Hash}
	return s.head, nil
}

func (s *appendLog) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.ClosedMarker != "" {
		_ = os.WriteFile(s.cfg.ClosedMarker, nil, 0o600)
	}
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// selfLaunch starts this test binary as the named helper plugin.
func selfLaunch(t testing.TB, name string) sink.LaunchOptions {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A race-enabled binary sleeps 1s at exit unless told otherwise.
	return sink.LaunchOptions{Path: exe, Env: []string{helperEnv + "=" + name, "GORACE=atexit_sleep_ms=0"}}
}

var nullsinkOnce struct {
	sync.Once
	path string
	err  error
}

// nullsinkPath builds the example external plugin once per test binary.
func nullsinkPath(t testing.TB) string {
	t.Helper()
	nullsinkOnce.Do(func() {
		out := filepath.Join(buildDir, "nullsink")
		cmd := exec.Command("go", "build", "-o", out, "github.com/flowker-audit/flowker-audit/sink/examples/nullsink")
		if b, err := cmd.CombinedOutput(); err != nil {
			nullsinkOnce.err = fmt.Errorf("go build nullsink: %v\n%s", err, b)
			return
		}
		nullsinkOnce.path = out
	})
	if nullsinkOnce.err != nil {
		t.Fatal(nullsinkOnce.err)
	}
	return nullsinkOnce.path
}

// testConfig is a SinkConfig with test-friendly timings.
func testConfig(name string, launch sink.LaunchOptions, config any) SinkConfig {
	raw, err := json.Marshal(config)
	if err != nil {
		panic(err)
	}
	return SinkConfig{
		Name: name, Plugin: "test", Launch: launch, Config: raw,
		BatchSize: 200, BatchInterval: 20 * time.Millisecond,
		PingInterval: 200 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		RestartBudget: 50,
	}
}

// harness runs a supervisor for a test.
type harness struct {
	t    *testing.T
	src  *memsource.Source
	reg  *prometheus.Registry
	m    *Metrics
	sup  *Supervisor
	logs *syncBuffer
	stop func()
	done chan error
}

func start(t *testing.T, cfg SinkConfig, src *memsource.Source) *harness {
	t.Helper()
	h := &harness{t: t, src: src, reg: prometheus.NewRegistry(), logs: &syncBuffer{}, done: make(chan error, 1)}
	h.m = NewMetrics(h.reg)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(h.logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.sup = NewSupervisor(cfg, src, h.m, log)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- h.sup.Run(ctx) }()
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(h.stop)
	return h
}

// counter reads one sink's metric.
func (h *harness) value(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func (h *harness) restarts() float64 { return h.value(h.m.restarts.WithLabelValues(h.sup.cfg.Name)) }
func (h *harness) errs(kind string) float64 {
	return h.value(h.m.errors.WithLabelValues(h.sup.cfg.Name, kind))
}

// waitDelivered waits until the sink acknowledged sequence n.
func (h *harness) waitDelivered(n uint64) {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("sequence %d to be acknowledged", n), func() bool {
		c, _ := h.src.Cursor(h.sup.cfg.Name)
		return c >= n
	})
}

// waitFor polls cond until it holds; the deadline only guards against a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readLog returns the sequences an appendLog file holds, in order, checking each hash against
// the journal's event.
func readLog(t *testing.T, path string, src *memsource.Source) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seqs []uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.Sequence == 0 || r.Sequence > src.Last() || src.Events(r.Sequence, r.Sequence)[0].Hash != r.Hash || r.ChainID != src.ChainID() {
			t.Fatalf("%s: stored sequence %d (chain %s, hash %s) is not the journal's event", path, r.Sequence, r.ChainID, r.Hash)
		}
		seqs = append(seqs, r.Sequence)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// checkExactlyOnce checks that seqs is 1..n.
func checkExactlyOnce(t *testing.T, seqs []uint64, n uint64) {
	t.Helper()
	seen := make(map[uint64]int, len(seqs))
	var dups []uint64
	for _, s := range seqs {
		seen[s]++
		if seen[s] == 2 {
			dups = append(dups, s)
		}
	}
	if len(dups) > 0 {
		t.Fatalf("%d sequences stored more than once, first ones: %v", len(dups), dups[:min(len(dups), 10)])
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("event %d has sequence %d: out of order or missing", i+1, s)
		}
	}
	if uint64(len(seqs)) != n {
		t.Fatalf("%d events stored, want %d", len(seqs), n)
	}
}

func readPID(t testing.TB, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testWriter sends log output to the test log (shown for failing tests with -v).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	if os.Getenv("FLOWKER_AUDIT_TEST_LOGS") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
