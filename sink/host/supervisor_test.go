package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host/internal/memsource"
)

// appendInBackground appends total events in chunks while the test runs and returns a wait
// function.
func appendInBackground(src *memsource.Source, total, chunk int) func() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; n < total; n += chunk {
			src.Append(min(chunk, total-n), 300)
			time.Sleep(2 * time.Millisecond) // spread the appends over the delivery
		}
	}()
	return wg.Wait
}

func TestDeliveryEndToEnd(t *testing.T) {
	dir := t.TempDir()
	src := memsource.New("chain-e2e")
	src.Append(2500, 300)
	path := filepath.Join(dir, "log.ndjson")
	h := start(t, testConfig("e2e", selfLaunch(t, "applog"), map[string]any{"path": path}), src)
	wait := appendInBackground(src, 1500, 100)
	wait()
	h.waitDelivered(4000)
	checkExactlyOnce(t, readLog(t, path, src), 4000)

	if ok, why := h.sup.Ready(); !ok {
		t.Errorf("Ready = false (%s) after delivery", why)
	}
	if got := h.value(h.m.written.WithLabelValues("e2e")); got != 4000 {
		t.Errorf("written_events_total = %v, want 4000", got)
	}
	waitFor(t, "lag gauges to settle", func() bool {
		return h.value(h.m.acked.WithLabelValues("e2e")) == 4000 && h.value(h.m.lag.WithLabelValues("e2e")) == 0
	})
	if got := h.sup.Lag(); got != 0 {
		t.Errorf("Lag() = %d, want 0", got)
	}
	if got := h.value(h.m.up.WithLabelValues("e2e")); got != 1 {
		t.Errorf("up = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(h.m.batch); n != 1 {
		t.Errorf("batch histogram has %d series, want 1", n)
	}
	if _, err := h.sup.Querier(); !errors.Is(err, sink.ErrUnsupported) {
		t.Errorf("Querier of a write-only sink: got %v, want ErrUnsupported", err)
	}
	for _, a := range src.Acks("e2e") {
		if a > 4000 {
			t.Fatalf("acknowledged %d beyond the journal", a)
		}
	}

	h.stop()
	if ok, _ := h.sup.Ready(); ok {
		t.Error("Ready after Run returned")
	}
	if got := h.value(h.m.up.WithLabelValues("e2e")); got != 0 {
		t.Errorf("up = %v after stop, want 0", got)
	}
}

func TestKill9MidStream(t *testing.T) {
	dir := t.TempDir()
	src := memsource.New("chain-kill")
	src.Append(3000, 300)
	path, pidFile := filepath.Join(dir, "log.ndjson"), filepath.Join(dir, "pid")
	cfg := testConfig("killed", selfLaunch(t, "applog"), map[string]any{"path": path, "pid_file": pidFile})
	cfg.BatchSize = 50 // many writes, so that the kills land in the middle of the stream
	h := start(t, cfg, src)
	wait := appendInBackground(src, 3000, 50)

	const kills = 3
	lastPID := 0
	for i := range kills {
		var pid int
		waitFor(t, "a new plugin process", func() bool {
			pid = readPID(t, pidFile)
			return pid != 0 && pid != lastPID && alive(pid)
		})
		before, _ := src.Cursor("killed")
		waitFor(t, "delivery progress before the kill", func() bool {
			c, _ := src.Cursor("killed")
			return c > before
		})
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		lastPID = pid
	}
	wait()
	h.waitDelivered(6000)
	checkExactlyOnce(t, readLog(t, path, src), 6000)
	if got := h.restarts(); got < kills {
		t.Errorf("plugin_restarts_total = %v, want at least %d", got, kills)
	}
	if got := h.errs(KindCrash); got < kills {
		t.Errorf("errors_total{kind=crash} = %v, want at least %d", got, kills)
	}
	if ok, why := h.sup.Ready(); !ok {
		t.Errorf("Ready = false (%s) after recovery", why)
	}
}

func TestHungWriteIsTimedOutAndRestarted(t *testing.T) {
	dir := t.TempDir()
	src := memsource.New("chain-hang")
	src.Append(500, 300)
	path := filepath.Join(dir, "log.ndjson")
	cfg := testConfig("hung", selfLaunch(t, "applog"), map[string]any{"path": path, "hang_once": filepath.Join(dir, "hung")})
	cfg.WriteTimeout = 500 * time.Millisecond
	h := start(t, cfg, src)
	h.waitDelivered(500)
	checkExactlyOnce(t, readLog(t, path, src), 500)
	if got := h.errs(KindTimeout); got < 1 {
		t.Errorf("errors_total{kind=timeout} = %v, want at least 1", got)
	}
	if got := h.restarts(); got < 1 {
		t.Errorf("plugin_restarts_total = %v, want at least 1", got)
	}
	if !strings.Contains(h.logs.String(), "hung for 500ms") {
		t.Errorf("the hang was not logged:\n%s", h.logs)
	}
}

func TestRetryableErrorsAreRetriedWithoutDuplicates(t *testing.T) {
	for _, storeThenFail := range []bool{false, true} {
		t.Run(fmt.Sprintf("store_then_fail=%v", storeThenFail), func(t *testing.T) {
			dir := t.TempDir()
			src := memsource.New("chain-retry")
			src.Append(1000, 300)
			path := filepath.Join(dir, "log.ndjson")
			h := start(t, testConfig("retry", selfLaunch(t, "applog"),
				map[string]any{"path": path, "fail_writes": 3, "store_then_fail": storeThenFail}), src)
			h.waitDelivered(1000)
			checkExactlyOnce(t, readLog(t, path, src), 1000)
			if got := h.errs(KindRetryable); got != 3 {
				t.Errorf("errors_total{kind=retryable} = %v, want 3", got)
			}
			if got := h.restarts(); got != 0 {
				t.Errorf("plugin_restarts_total = %v, want 0 (retryable errors do not restart the plugin)", got)
			}
			if ok, why := h.sup.Ready(); !ok {
				t.Errorf("Ready = false (%s)", why)
			}
		})
	}
}

func TestPermanentErrorMarksSinkFailedUntilFixed(t *testing.T) {
	dir := t.TempDir()
	src := memsource.New("chain-perm")
	src.Append(300, 300)
	path, fixed := filepath.Join(dir, "log.ndjson"), filepath.Join(dir, "fixed")
	h := start(t, testConfig("perm", selfLaunch(t, "applog"), map[string]any{"path": path, "permanent_until": fixed}), src)

	waitFor(t, "the sink to be marked failed", func() bool {
		ok, why := h.sup.Ready()
		return !ok && strings.Contains(why, "table is read-only")
	})
	waitFor(t, "a second, slow retry", func() bool { return h.errs(KindPermanent) >= 2 })
	if got := h.value(h.m.up.WithLabelValues("perm")); got != 0 {
		t.Errorf("up = %v while failing permanently, want 0", got)
	}
	if got := h.restarts(); got != 0 {
		t.Errorf("plugin_restarts_total = %v, want 0 (the plugin is healthy)", got)
	}
	if !strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("the permanent failure was not logged at error level:\n%s", h.logs)
	}

	if err := os.WriteFile(fixed, nil, 0o600); err != nil { // the operator fixes the store
		t.Fatal(err)
	}
	h.waitDelivered(300)
	checkExactlyOnce(t, readLog(t, path, src), 300)
	waitFor(t, "readiness to return", func() bool { ok, _ := h.sup.Ready(); return ok })
	if got := h.value(h.m.up.WithLabelValues("perm")); got != 1 {
		t.Errorf("up = %v after the fix, want 1", got)
	}
}

func TestBadConfigIsPermanentAndRetriedSlowly(t *testing.T) {
	src := memsource.New("chain-badcfg")
	h := start(t, testConfig("badcfg", selfLaunch(t, "applog"), map[string]any{"no_such_key": 1}), src)
	waitFor(t, "the configuration error to show", func() bool {
		ok, why := h.sup.Ready()
		return !ok && strings.Contains(why, `unknown field "no_such_key"`)
	})
	waitFor(t, "a retry", func() bool { return h.errs(KindPermanent) >= 2 })
	if _, err := h.sup.Querier(); !errors.Is(err, sink.ErrUnsupported) {
		t.Errorf("Querier: got %v", err)
	}
}

func TestQuerySinkNeedsQueryCapability(t *testing.T) {
	src := memsource.New("chain-q")
	cfg := testConfig("q", selfLaunch(t, "applog"), map[string]any{"path": filepath.Join(t.TempDir(), "log")})
	cfg.Query = true
	h := start(t, cfg, src)
	if _, err := h.sup.Querier(); err == nil {
		t.Error("Querier succeeded for a plugin that cannot answer queries")
	}
	waitFor(t, "the capability problem to show", func() bool {
		ok, why := h.sup.Ready()
		return !ok && strings.Contains(why, "cannot")
	})
	_, err := h.sup.Querier()
	if !errors.Is(err, ErrSinkDown) && !errors.Is(err, sink.ErrUnsupported) {
		t.Errorf("Querier: got %v, want ErrSinkDown or ErrUnsupported", err)
	}
}

func TestQuerierIsDownBeforeStart(t *testing.T) {
	cfg := testConfig("q", selfLaunch(t, "applog"), map[string]any{})
	cfg.Query = true
	sup := NewSupervisor(cfg, memsource.New("c"), nil, nil)
	if _, err := sup.Querier(); !errors.Is(err, ErrSinkDown) {
		t.Errorf("Querier before Run: got %v, want ErrSinkDown", err)
	}
	if ok, why := sup.Ready(); ok || !strings.Contains(why, "not started") {
		t.Errorf("Ready before Run = %v, %q", ok, why)
	}
}

func TestRestartBudgetCoolsDown(t *testing.T) {
	src := memsource.New("chain-budget")
	cfg := testConfig("budget", selfLaunch(t, "applog"), map[string]any{"crash_on_configure": true})
	cfg.RestartBudget, cfg.RestartWindow, cfg.RestartCooldown = 2, time.Hour, time.Hour
	h := start(t, cfg, src)
	waitFor(t, "the restart budget to run out", func() bool {
		return strings.Contains(h.logs.String(), "restart budget exhausted")
	})
	if got := h.restarts(); got != 2 {
		t.Errorf("plugin_restarts_total = %v when the budget ran out, want 2", got)
	}
	if got := h.errs(KindCrash); got != 3 {
		t.Errorf("errors_total{kind=crash} = %v, want 3 (one per start)", got)
	}
	if ok, why := h.sup.Ready(); ok || !strings.Contains(why, "restarting") {
		t.Errorf("Ready = %v, %q; want down and restarting", ok, why)
	}
	h.stop() // returns promptly even during the cool-down
}

func TestGracefulStopClosesAndEndsThePlugin(t *testing.T) {
	dir := t.TempDir()
	src := memsource.New("chain-stop")
	src.Append(10, 100)
	pidFile, closed := filepath.Join(dir, "pid"), filepath.Join(dir, "closed")
	h := start(t, testConfig("stop", selfLaunch(t, "applog"),
		map[string]any{"path": filepath.Join(dir, "log"), "pid_file": pidFile, "closed_marker": closed}), src)
	h.waitDelivered(10)
	pid := readPID(t, pidFile)
	h.stop()
	if _, err := os.Stat(closed); err != nil {
		t.Errorf("Close was not called on the plugin: %v", err)
	}
	waitFor(t, "the plugin process to be gone", func() bool { return !alive(pid) })
}

func TestFilePluginThroughSupervisor(t *testing.T) {
	dir := t.TempDir()
	src := memsource.New("chain-file")
	src.Append(1500, 500)
	config := map[string]any{"dir": dir, "max_bytes": 200 << 10}
	h := start(t, testConfig("archive", selfLaunch(t, "file"), config), src)
	h.waitDelivered(1500)
	h.stop()

	// A second sink over the same directory has no journal cursor: the plugin's Head (recovered
	// from the files) makes the supervisor skip what is stored.
	src.Append(500, 500)
	h2 := start(t, testConfig("archive-2", selfLaunch(t, "file"), config), src)
	h2.waitDelivered(2000)
	if acks := src.Acks("archive-2"); len(acks) == 0 || acks[0] != 1500 {
		t.Errorf("first ack of the second sink = %v, want 1500 (from the plugin's head)", acks)
	}
	h2.stop()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 3 {
		t.Errorf("%d files, want rotation into several", len(entries))
	}
	var seqs []uint64
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		seqs = append(seqs, fileSequences(t, filepath.Join(dir, n), src)...)
	}
	checkExactlyOnce(t, seqs, 2000)
}

func TestExternalPluginBinary(t *testing.T) {
	bin := nullsinkPath(t)
	sum, err := sink.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "heads.json")
	src := memsource.New("chain-ext")
	src.Append(700, 300)

	launch := sink.LaunchOptions{Path: bin, SHA256: sum}
	h := start(t, testConfig("null", launch, map[string]any{"state_file": state}), src)
	h.waitDelivered(700)
	h.stop()

	// The head survives the plugin's restart through its state file.
	h2 := start(t, testConfig("null-2", launch, map[string]any{"state_file": state}), src)
	waitFor(t, "the second sink to adopt the plugin's head", func() bool {
		acks := src.Acks("null-2")
		return len(acks) > 0
	})
	if acks := src.Acks("null-2"); acks[0] != 700 {
		t.Errorf("first ack = %d, want 700", acks[0])
	}
	h2.stop()
}

func TestWrongChecksumIsRefused(t *testing.T) {
	bin := nullsinkPath(t)
	sum, err := sink.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	cfg := testConfig("pinned", sink.LaunchOptions{Path: bin, SHA256: wrong}, map[string]any{})
	cfg.Query = true
	h := start(t, cfg, memsource.New("c"))
	waitFor(t, "the refusal", func() bool {
		ok, why := h.sup.Ready()
		return !ok && strings.Contains(why, "checksum")
	})
	_, why := h.sup.Ready()
	for _, want := range []string{"expected sha256 " + wrong, "got " + sum} {
		if !strings.Contains(why, want) {
			t.Errorf("readiness reason %q does not name %q", why, want)
		}
	}
	if _, err := h.sup.Querier(); !errors.Is(err, ErrSinkDown) {
		t.Errorf("Querier: got %v, want ErrSinkDown", err)
	}
	waitFor(t, "the error metric", func() bool { return h.errs(KindPermanent) >= 1 })
}

func TestMetricFamilies(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.forSink("s")
	m.writeDur.WithLabelValues("s").Observe(0.01)
	m.batch.WithLabelValues("s").Observe(10)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetType().String()
		if help := mf.GetHelp(); !strings.HasSuffix(help, ".") || len(strings.Fields(help)) < 4 {
			t.Errorf("%s: help %q is not a sentence", mf.GetName(), help)
		}
	}
	want := map[string]string{
		"flowker_audit_sink_written_events_total":       "COUNTER",
		"flowker_audit_sink_errors_total":               "COUNTER",
		"flowker_audit_sink_write_duration_seconds":     "HISTOGRAM",
		"flowker_audit_sink_batch_events":               "HISTOGRAM",
		"flowker_audit_sink_lag_events":                 "GAUGE",
		"flowker_audit_sink_oldest_unacked_age_seconds": "GAUGE",
		"flowker_audit_sink_up":                         "GAUGE",
		"flowker_audit_sink_plugin_restarts_total":      "COUNTER",
		"flowker_audit_sink_acked_sequence":             "GAUGE",
		"flowker_audit_sink_conflict":                   "GAUGE",
		"flowker_audit_sink_conflicts_total":            "COUNTER",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("families:\n got %v\nwant %v", got, want)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	if n := testutil.CollectAndCount(m.errors); n != 4 {
		t.Errorf("%d error series for a new sink, want 4 (one per kind)", n)
	}
}

func TestLagGaugesWhileDown(t *testing.T) {
	src := memsource.New("chain-lag")
	src.Append(42, 10)
	cfg := testConfig("lagging", selfLaunch(t, "applog"), map[string]any{"crash_on_configure": true})
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	h := start(t, cfg, src)
	waitFor(t, "the lag gauge", func() bool { return h.value(h.m.lag.WithLabelValues("lagging")) == 42 })
	if h.sup.Lag() != 42 {
		t.Errorf("Lag() = %d, want 42", h.sup.Lag())
	}
	waitFor(t, "the age gauge", func() bool { return h.value(h.m.oldestAge.WithLabelValues("lagging")) > 0 })
}

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	for i := range 10 {
		d := b.next()
		ceiling := min(100*time.Millisecond<<i, time.Second)
		if d < ceiling/2 || d > ceiling {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, ceiling/2, ceiling)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

// fileSequences returns the sequences of a file sink's file, checking that every line decodes
// into the journal's event and that its hash can be recomputed from the file alone.
func fileSequences(t *testing.T, path string, src *memsource.Source) []uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var e chain.Event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if e.ComputeHash() != e.Hash {
			t.Fatalf("%s: sequence %d: the hash cannot be recomputed from the file", path, e.Sequence)
		}
		if want := src.Events(e.Sequence, e.Sequence)[0]; !reflect.DeepEqual(e, want) {
			t.Fatalf("%s: sequence %d differs from the journal:\n got %+v\nwant %+v", path, e.Sequence, e, want)
		}
		seqs = append(seqs, e.Sequence)
	}
	return seqs
}

// A sink whose head disagrees with the journal is a conflict, never skipped to: another event
// at a sequence the journal holds (a fork or a rewrite), or a head beyond the journal (rows
// someone else inserted). Delivery stops, nothing is acknowledged (so the journal keeps every
// event), sink_up is 0, the conflict gauge and counter say so and readiness names it; once the
// operator repairs the store, delivery resumes by itself.
func TestHeadThatDisagreesWithTheJournalIsAConflict(t *testing.T) {
	for _, tc := range []struct {
		name, foreign, want string
	}{
		{"fork", fmt.Sprintf(`{"chainId":"chain-c","sequence":5,"hash":%q}`, strings.Repeat("f", 64)), "forked or rewritten"},
		{"beyond", fmt.Sprintf(`{"chainId":"chain-c","sequence":13,"hash":%q}`, strings.Repeat("e", 64)), "beyond the journal's last sequence 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := memsource.New("chain-c")
			src.Append(10, 100)
			path := filepath.Join(dir, "log")
			if err := os.WriteFile(path, []byte(tc.foreign+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			h := start(t, testConfig("c", selfLaunch(t, "applog"), map[string]any{"path": path}), src)
			waitFor(t, "the conflict", func() bool { return h.value(h.m.conflict.WithLabelValues("c")) == 1 })
			ok, why := h.sup.Ready()
			if ok || !strings.Contains(why, "conflicts with the journal") || !strings.Contains(why, tc.want) {
				t.Fatalf("Ready() = %v, %q", ok, why)
			}
			if got := h.value(h.m.up.WithLabelValues("c")); got != 0 {
				t.Errorf("sink_up %v during a conflict", got)
			}
			if got := h.value(h.m.conflicts.WithLabelValues("c")); got != 1 {
				t.Errorf("conflicts_total %v, want 1", got)
			}
			waitFor(t, "a re-check that still conflicts", func() bool { return strings.Count(h.logs.String(), "still conflicts") >= 1 })
			if acks := src.Acks("c"); len(acks) != 0 {
				t.Fatalf("acks %v during a conflict", acks)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.foreign+"\n" {
				t.Fatalf("the conflicting sink was written to:\n%s", b)
			}
			if err := os.WriteFile(path, nil, 0o600); err != nil { // the operator removes the foreign row
				t.Fatal(err)
			}
			h.waitDelivered(10)
			checkExactlyOnce(t, readLog(t, path, src), 10)
			waitFor(t, "readiness to return", func() bool { ok, _ := h.sup.Ready(); return ok })
			if h.value(h.m.conflict.WithLabelValues("c")) != 0 || h.value(h.m.up.WithLabelValues("c")) != 1 {
				t.Errorf("conflict gauge / up not reset after the repair")
			}
		})
	}
}

// A sink that acknowledges a write without storing it (its head does not move) is caught by the
// host's check after every write: the batch is not acknowledged, and the journal keeps it.
func TestAcknowledgedButNotStoredIsAConflict(t *testing.T) {
	src := memsource.New("chain-lie")
	src.Append(5, 100)
	path := filepath.Join(t.TempDir(), "log")
	h := start(t, testConfig("lie", selfLaunch(t, "applog"), map[string]any{"path": path, "drop_after": 1}), src)
	h.waitDelivered(5)
	src.Append(5, 100)
	waitFor(t, "the conflict", func() bool { return h.value(h.m.conflict.WithLabelValues("lie")) == 1 })
	if _, why := h.sup.Ready(); !strings.Contains(why, "did not store what it acknowledged") {
		t.Fatalf("Ready: %q", why)
	}
	if c, _ := src.Cursor("lie"); c != 5 {
		t.Fatalf("cursor %d: events the sink did not store were acknowledged", c)
	}
}

// After a rebase the journal continues at a sequence whose predecessors it never held (they are
// in the sinks that reported the head). A sink whose cursor is behind that gap steps over it
// instead of looping on an empty read, and its lag returns to 0.
func TestJournalGapIsSteppedOver(t *testing.T) {
	ctx := context.Background()
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(t.TempDir(), "j.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Rebase(ctx, 50, strings.Repeat("a", 64), time.Now()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log")
	m := NewMetrics(prometheus.NewRegistry())
	sup := NewSupervisor(testConfig("gap", selfLaunch(t, "applog"), map[string]any{"path": path}), j, m, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(rctx) }()
	// Nothing appended yet: the chain is at 50 and the journal holds no event.
	waitFor(t, "the cursor to step over the gap", func() bool { c, _ := j.Cursor("gap"); return c >= 50 })
	// The gauge follows the durable cursor (the supervisor observes after its acknowledgement is
	// committed): wait for it rather than read it at once.
	waitFor(t, "no lag over the gap", func() bool { return testutil.ToFloat64(m.lag.WithLabelValues("gap")) == 0 })
	for i := 0; i < 3; i++ {
		if _, err := j.Append(ctx, journal.Draft{EventID: uuid.NewString(), EventType: chain.WorkflowCreated, Action: chain.ActionCreate,
			Result: chain.ResultSuccess, ResourceID: uuid.NewString(), ResourceType: chain.ResourceWorkflow,
			Actor: chain.Actor{Type: chain.ActorAPIKey, ID: "key:0123456789ab", IPAddress: "203.0.113.9"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "sequence 53 to be acknowledged", func() bool { c, _ := j.Cursor("gap"); return c >= 53 })
	waitFor(t, "no lag after delivery", func() bool { return testutil.ToFloat64(m.lag.WithLabelValues("gap")) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 3 || !strings.Contains(string(b), `"sequence":51`) {
		t.Fatalf("sink holds:\n%s\nwant sequences 51..53", b)
	}
}
