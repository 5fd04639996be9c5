package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/internal/damagetest"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

type verifyOut struct {
	IsValid              bool     `json:"isValid"`
	FirstInvalidID       uint64   `json:"firstInvalidId"`
	TotalChecked         uint64   `json:"totalChecked"`
	Message              string   `json:"message"`
	ChainID              string   `json:"chainId"`
	Reason               string   `json:"reason"`
	Detail               string   `json:"detail"`
	CheckpointsMatched   int      `json:"checkpointsMatched"`
	NotYetCovered        uint64   `json:"notYetCovered"`
	DepartsAfterSequence *uint64  `json:"departsAfterSequence"`
	Coverage             string   `json:"coverage"`
	Warnings             []string `json:"warnings"`
}

// syncBuffer collects the sidecar's log across goroutines.
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

// tamperRun is one scenario: a sidecar in front of the fake Flowker with one query store, 20
// genuine events with signed checkpoints at sequences 10 and 20, then the attacker's move, a
// restart and every detector's answer.
type tamperRun struct {
	t       *testing.T
	st      tamperStore
	dir     string
	fakeURL string
	env     *testenv.Env
	logs    *syncBuffer
	chainID string
	stored  []chain.Event // the 20 genuine events, as stored
	genuine []string      // every event id acknowledged to a client (X-Audit-Id)
	logPath string
	tweak   func(*config.Config) // the scenario's own configuration, if any
	signed  []uint64             // the checkpointed sequences (10 and 20, and any a tick caught between)
}

// checkpointAround returns the lowest checkpointed sequence >= seq and the highest one below it
// (0 when none).
func (r *tamperRun) checkpointAround(seq uint64) (atOrAfter, before uint64) {
	for _, s := range r.signed {
		if s >= seq && (atOrAfter == 0 || s < atOrAfter) {
			atOrAfter = s
		}
		if s < seq && s > before {
			before = s
		}
	}
	return atOrAfter, before
}

func newTamperRun(t *testing.T, st tamperStore, tweak func(*config.Config)) *tamperRun {
	t.Helper()
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, ExecutionDelay: 50 * time.Millisecond})
	fsrv := httptest.NewServer(fake)
	t.Cleanup(func() { fsrv.Close(); fake.Close() })
	r := &tamperRun{t: t, st: st, dir: t.TempDir(), fakeURL: fsrv.URL, tweak: tweak}
	r.start()
	r.write(10)
	r.env.WaitDelivered(30 * time.Second)
	_, r.logPath = r.env.Config.CheckpointPaths()
	testenv.Eventually(t, 15*time.Second, "a checkpoint of sequence 10", func() bool {
		cps, err := checkpoint.ReadFile(r.logPath)
		return err == nil && len(cps) > 0 && cps[len(cps)-1].Sequence == 10
	})
	r.write(10)
	r.env.WaitDelivered(30 * time.Second)
	r.stored = r.env.AllEvents()
	if len(r.stored) != 20 {
		t.Fatalf("%d events stored, want 20", len(r.stored))
	}
	r.chainID = r.stored[0].ChainID
	r.stop() // the final checkpoint signs sequence 20
	cps, err := checkpoint.ReadFile(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		r.signed = append(r.signed, c.Sequence)
	}
	return r
}

func (r *tamperRun) start() {
	r.t.Helper()
	r.logs = &syncBuffer{}
	r.env = testenv.StartSidecar(r.t, r.fakeURL, testenv.Options{DataDir: r.dir, NoWaitReady: true, LogTo: r.logs,
		Config: func(c *config.Config) {
			c.Chain.CheckpointInterval = config.Duration(time.Second)
			c.Sinks = []config.Sink{r.st.sink(r.dir)}
			if r.tweak != nil {
				r.tweak(c)
			}
		}})
	// Started: the store's plugin is either up or has reported its conflict.
	testenv.Eventually(r.t, 60*time.Second, "the store sink to be up or in conflict", func() bool {
		_, rd := r.env.App.Ready()
		c := rd.Checks["sink:store"]
		return c.Status == "up" || strings.Contains(c.Error, "conflicts with the journal")
	})
}

func (r *tamperRun) stop() {
	r.t.Helper()
	if err := r.env.Stop(); err != nil {
		r.t.Fatal(err)
	}
}

// write sends n audited changes through the sidecar and records the ids it acknowledged.
func (r *tamperRun) write(n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		resp := r.env.Flowker("POST", "/v1/workflows", map[string]any{"name": fmt.Sprintf("genuine-%d", len(r.genuine))})
		id := resp.Header.Get("X-Audit-Id")
		if resp.Status != 201 || id == "" {
			r.t.Fatalf("create: %d %s (X-Audit-Id %q)", resp.Status, resp.Body, id)
		}
		r.genuine = append(r.genuine, id)
	}
}

// forge returns e changed by someone who knows the hash algorithm: another resource id, the
// hash recomputed.
func forge(e chain.Event) chain.Event {
	e.ResourceID = "forged-" + e.ResourceID
	e.Seal()
	return e
}

// verifyAPI asks /verify about the event with id.
func (r *tamperRun) verifyAPI(id string) verifyOut {
	r.t.Helper()
	var v verifyOut
	resp := r.env.Audit("/v1/audit-events/" + id + "/verify")
	if resp.Status != 200 {
		r.t.Fatalf("verify: %d %s", resp.Status, resp.Body)
	}
	resp.JSON(r.t, &v)
	r.t.Logf("%s /verify: valid=%v reason=%q first=%d checked=%d; %s; warnings %q", r.st.name(), v.IsValid, v.Reason, v.FirstInvalidID, v.TotalChecked, v.Coverage, v.Warnings)
	return v
}

// cli runs `flowker-audit verify` (the sidecar may run: the store is read through the plugin).
func (r *tamperRun) cli(extra ...string) (string, int) {
	r.t.Helper()
	out, err := exec.Command(testenv.Binary(r.t), append([]string{"verify", "--config", r.cliConfig()}, extra...)...).CombinedOutput()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("verify: %v\n%s", err, out)
	}
	r.t.Logf("%s CLI verify (exit %d): %s", r.st.name(), code, strings.TrimSpace(string(out)))
	return string(out), code
}

// cliConfig writes the configuration the CLI commands use (the data dir and the store) and
// returns its path.
func (r *tamperRun) cliConfig() string {
	r.t.Helper()
	cfgPath := filepath.Join(r.dir, "verify.yaml")
	yaml := fmt.Sprintf("version: 1\ndata_dir: %q\n", r.dir) + r.st.cliYAML(r.dir)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return cfgPath
}

// conflict reports whether the sidecar holds the store in conflict: readiness names it, the
// conflict gauge is 1 and sink_up is 0 (all three, or none: a state in between is a transition
// and reported as neither).
func (r *tamperRun) conflict() (bool, string) {
	r.t.Helper()
	m := r.metrics()
	gauge := strings.Contains(m, `flowker_audit_sink_conflict{sink="store"} 1`)
	up0 := strings.Contains(m, `flowker_audit_sink_up{sink="store"} 0`)
	_, rd := r.env.App.Ready()
	c := rd.Checks["sink:store"]
	inReadiness := c.Status == "down" && strings.Contains(c.Error, "conflicts with the journal")
	return gauge && up0 && inReadiness, c.Error
}

// noConflict checks that the store was never found in conflict.
func (r *tamperRun) noConflict(what string) {
	r.t.Helper()
	if !strings.Contains(r.metrics(), `flowker_audit_sink_conflicts_total{sink="store"} 0`) {
		r.t.Fatalf("%s was reported as a delivery conflict", what)
	}
}

// awaitConflict waits until the sidecar holds the store in conflict and returns the reason
// readiness gives.
func (r *tamperRun) awaitConflict() string {
	r.t.Helper()
	var why string
	testenv.Eventually(r.t, 30*time.Second, "the store to be reported in conflict", func() bool {
		var c bool
		c, why = r.conflict()
		return c
	})
	r.t.Logf("%s conflict: %s", r.st.name(), why)
	return why
}

// noGenuineEventLost checks the property every scenario must keep: each event acknowledged to
// a client is in the store (by id) or still held by the journal.
func (r *tamperRun) noGenuineEventLost() {
	r.t.Helper()
	r.env.Flush()
	held := map[string]bool{}
	if err := r.env.App.Journal().ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
		held[e.EventID] = true
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	for _, id := range r.genuine {
		if held[id] {
			continue
		}
		if resp := r.env.Audit("/v1/audit-events/" + id); resp.Status != 200 {
			cursor, _ := r.env.App.Journal().Cursor("store")
			r.t.Fatalf("event %s was acknowledged to its client but is neither in the store (%d) nor in the journal (cursor %d)", id, resp.Status, cursor)
		}
	}
}

// tamperScenario is one attacker move and what every detector must say about it.
type tamperScenario struct {
	name   string
	stores string // "" both, or "sqlite" / "clickhouse"
	config func(*config.Config)
	run    func(t *testing.T, r *tamperRun)
}

// metric returns the sidecar's exposition.
func (r *tamperRun) metrics() string {
	r.t.Helper()
	resp, err := http.Get(r.env.AdminURL + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// flipRecord flips one byte of the journal record of the event with id (in every copy bbolt
// keeps), as a disk error or an editor would.
func flipRecord(t *testing.T, path, id string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if damagetest.FlipAll(b, []byte(id)) == 0 {
		t.Fatalf("event %s not in the journal file", id)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

var tamperScenarios = []tamperScenario{
	{name: "field edit", run: func(t *testing.T, r *tamperRun) {
		e := r.stored[6]
		e.ResourceID = "edited"
		r.st.replace(t, r.dir, e)
		r.start()
		v := r.verifyAPI(r.stored[19].EventID)
		if v.IsValid || v.Reason != "hash mismatch" || v.FirstInvalidID != 7 || v.TotalChecked != 6 {
			t.Fatalf("verify: %+v", v)
		}
		out, code := r.cli()
		if code != 1 || !strings.Contains(out, "INVALID at sequence 7 (hash mismatch)") || !strings.Contains(out, "6 events verified before it") {
			t.Fatalf("CLI:\n%s", out)
		}
		r.write(2)
		r.env.WaitDelivered(30 * time.Second)
		r.noConflict("an edit below the head")
		r.noGenuineEventLost()
	}},
	{name: "edit with its own hash", run: func(t *testing.T, r *tamperRun) {
		r.st.replace(t, r.dir, forge(r.stored[6]))
		r.start()
		// The broken link at 8, unless a checkpoint signed 7 itself (a tick during the writes).
		reason, at := "broken link", uint64(8)
		if c, _ := r.checkpointAround(7); c == 7 {
			reason, at = "checkpoint mismatch", 7
		}
		v := r.verifyAPI(r.stored[19].EventID)
		if v.IsValid || v.Reason != reason || v.FirstInvalidID != at || v.TotalChecked != at-1 {
			t.Fatalf("verify: %+v", v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, fmt.Sprintf("INVALID at sequence %d (%s)", at, reason)) {
			t.Fatalf("CLI:\n%s", out)
		}
	}},
	{name: "re-link from 12", run: func(t *testing.T, r *tamperRun) {
		prev := r.stored[10].Hash
		for _, e := range r.stored[11:] {
			if e.Sequence == 12 {
				e.ResourceID = "rewritten"
			}
			e.PreviousHash = prev
			e.Seal()
			prev = e.Hash
			r.st.replace(t, r.dir, e)
		}
		r.start()
		// Found at the first checkpoint at or after 12; located after the last one before it.
		at, before := r.checkpointAround(12)
		span := fmt.Sprintf("sequences %d..%d", before+1, at)
		v := r.verifyAPI(r.stored[19].EventID)
		if v.IsValid || v.Reason != "checkpoint mismatch" || v.FirstInvalidID != at || v.DepartsAfterSequence == nil ||
			*v.DepartsAfterSequence != before || !strings.Contains(v.Detail, span) || v.TotalChecked != at-1 {
			t.Fatalf("verify (checkpoints %v): %+v", r.signed, v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, fmt.Sprintf("INVALID at sequence %d (checkpoint mismatch)", at)) || !strings.Contains(out, span) {
			t.Fatalf("CLI:\n%s", out)
		}
		// The store's head (20) now has another hash than the journal's head: delivery stops.
		r.awaitConflict()
		r.write(4)
		r.noGenuineEventLost()
	}},
	{name: "tail truncation with the summary fixed", run: func(t *testing.T, r *tamperRun) {
		r.st.delete(t, r.dir, r.chainID, 16, 20)
		r.st.fixSummary(t, r.dir, r.chainID)
		r.start()
		v := r.verifyAPI(r.stored[14].EventID)
		if v.IsValid || v.Reason != "truncated" || v.FirstInvalidID != 16 || v.TotalChecked != 15 {
			t.Fatalf("verify: %+v", v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "INVALID at sequence 16 (truncated)") {
			t.Fatalf("CLI:\n%s", out)
		}
		if out, _ := r.cli("--checkpoints", "none"); !strings.Contains(out, "valid — 15 events verified") {
			t.Fatalf("without checkpoints the cut chain should look valid (the gap checkpoints close):\n%s", out)
		}
	}},
	{name: "tail truncation with the checkpoint log deleted", run: func(t *testing.T, r *tamperRun) {
		// The attacker also deletes the log on the host: the checkpoints the store keeps (signed,
		// so not forgeable without the key) still prove the chain went to 20.
		r.st.delete(t, r.dir, r.chainID, 16, 20)
		r.st.fixSummary(t, r.dir, r.chainID)
		if err := os.Remove(r.logPath); err != nil {
			t.Fatal(err)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "INVALID at sequence 16 (truncated)") {
			t.Fatalf("CLI:\n%s", out)
		}
		r.start()
		v := r.verifyAPI(r.stored[14].EventID)
		// The warning holds until the running sidecar writes its first checkpoint into a new log
		// (a tick after start, sooner or later on a loaded machine).
		cps, _ := checkpoint.ReadFile(r.logPath)
		w := strings.Join(v.Warnings, ";")
		if v.IsValid || v.Reason != "truncated" || v.FirstInvalidID != 16 ||
			len(cps) == 0 && !strings.Contains(w, "no checkpoint log") && !strings.Contains(w, "is empty") {
			t.Fatalf("verify: %+v", v)
		}
	}},
	{name: "middle deletion", run: func(t *testing.T, r *tamperRun) {
		r.st.delete(t, r.dir, r.chainID, 5, 5)
		r.start()
		v := r.verifyAPI(r.stored[19].EventID)
		if v.IsValid || v.Reason != "gap" || v.FirstInvalidID != 5 || v.TotalChecked != 4 {
			t.Fatalf("verify: %+v", v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "INVALID at sequence 5 (gap)") {
			t.Fatalf("CLI:\n%s", out)
		}
	}},
	{name: "forged appends", run: func(t *testing.T, r *tamperRun) {
		// Three correctly linked events after the head, inserted while the sidecar is stopped.
		prev := r.stored[19]
		var forged []chain.Event
		for i := 0; i < 3; i++ {
			e := forge(prev)
			e.EventID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			e.Sequence, e.PreviousHash, e.Timestamp = prev.Sequence+1, prev.Hash, prev.Timestamp.Add(time.Second)
			e.Seal()
			forged = append(forged, e)
			prev = e
		}
		if err := r.st.insert(t, r.dir, forged...); err != nil {
			t.Fatal(err)
		}
		r.start()
		if why := r.awaitConflict(); !strings.Contains(why, "beyond the journal") {
			t.Fatalf("forged appends: conflict %q", why)
		}
		// Until a checkpoint covers sequences past 20, the forged events are "not yet covered".
		if v := r.verifyAPI(forged[2].EventID); !v.IsValid || v.NotYetCovered != 3 || v.CheckpointsMatched != len(r.signed) {
			t.Fatalf("verify before new checkpoints: %+v", v)
		}
		r.write(4) // genuine 21..24: never acknowledged by the conflicting store
		testenv.Eventually(t, 15*time.Second, "a checkpoint of sequence 24", func() bool {
			cps, err := checkpoint.ReadFile(r.logPath)
			return err == nil && cps[len(cps)-1].Sequence == 24
		})
		if cursor, _ := r.env.App.Journal().Cursor("store"); cursor != 20 {
			t.Fatalf("cursor %d: genuine events were acknowledged by a store holding forged ones", cursor)
		}
		r.noGenuineEventLost()
		if v := r.verifyAPI(forged[2].EventID); v.IsValid || v.Reason != "truncated" || v.FirstInvalidID != 24 {
			t.Fatalf("verify once sequence 24 is signed: %+v", v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "(truncated)") {
			t.Fatalf("CLI:\n%s", out)
		}
		r.repairConflict("sequence 21: stored hash " + forged[0].Hash)
	}},
	{name: "insert-only duplicate", run: func(t *testing.T, r *tamperRun) {
		dup := r.stored[8]
		dup.EventID = "00000000-0000-4000-8000-000000000009"
		dup = forge(dup)
		err := r.st.insert(t, r.dir, dup)
		if r.st.name() == "sqlite" {
			if err == nil {
				t.Fatal("SQLite stored a second row at one sequence")
			}
			return // the primary key refuses it
		}
		if err != nil {
			t.Fatal(err)
		}
		r.start()
		v := r.verifyAPI(r.stored[19].EventID)
		if v.IsValid || v.Reason != "duplicate" || v.FirstInvalidID != 9 {
			t.Fatalf("verify: %+v", v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "INVALID at sequence 9 (duplicate)") {
			t.Fatalf("CLI:\n%s", out)
		}
		// Every read path shows the genuine event for sequence 9, flagged.
		for _, id := range []string{r.stored[8].EventID, dup.EventID} {
			resp := r.env.Audit("/v1/audit-events/" + id)
			if resp.Status != 200 || !strings.Contains(string(resp.Body), `"eventId":"`+r.stored[8].EventID+`"`) ||
				!strings.Contains(string(resp.Body), `"conflictingDuplicate":true`) {
				t.Fatalf("get %s: %d %s", id, resp.Status, resp.Body)
			}
		}
		n := 0
		for _, e := range r.env.AllEvents() {
			if e.Sequence == 9 {
				n++
				if e.EventID != r.stored[8].EventID {
					t.Fatalf("the list shows the forged row at sequence 9")
				}
			}
		}
		if n != 1 {
			t.Fatalf("sequence 9 listed %d times", n)
		}
		r.write(2)
		r.env.WaitDelivered(30 * time.Second)
		r.noGenuineEventLost()
	}},
	{name: "insert-only duplicate at the head", stores: "clickhouse", run: func(t *testing.T, r *tamperRun) {
		dup := r.stored[19]
		dup.EventID = "00000000-0000-4000-8000-000000000020"
		dup = forge(dup)
		if err := r.st.insert(t, r.dir, dup); err != nil {
			t.Fatal(err)
		}
		r.start()
		if why := r.awaitConflict(); !strings.Contains(why, "different rows") {
			t.Fatalf("duplicate head: conflict %q", why)
		}
		r.write(3)
		if cursor, _ := r.env.App.Journal().Cursor("store"); cursor != 20 {
			t.Fatalf("cursor %d", cursor)
		}
		r.noGenuineEventLost()
		// The journal no longer holds sequence 20; the checkpoint signed at 20 tells the rows apart.
		r.repairConflict("sequence 20: stored hash "+dup.Hash, "a signed checkpoint says "+r.stored[19].Hash)
	}},
	{name: "summary forgery", run: func(t *testing.T, r *tamperRun) {
		r.st.claimHead(t, r.dir, r.chainID, 30)
		r.start()
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "claims the chain reaches sequence 30") {
			t.Fatalf("CLI:\n%s", out)
		}
		if r.st.name() == "sqlite" {
			// SQLite reads its head from the events themselves; the forged summary only
			// misleads Chains, which verify reports.
			r.write(2)
			r.env.WaitDelivered(30 * time.Second)
			r.noConflict("a forged summary in SQLite (its head comes from the events)")
			r.noGenuineEventLost()
			return
		}
		if why := r.awaitConflict(); !strings.Contains(why, "no event row holds it") {
			t.Fatalf("forged summary: conflict %q", why)
		}
		r.write(3)
		if cursor, _ := r.env.App.Journal().Cursor("store"); cursor != 20 {
			t.Fatalf("cursor %d", cursor)
		}
		r.noGenuineEventLost()
		r.repairConflict("no event row holds it")
	}},
	{name: "journal byte flip", stores: "sqlite", config: func(c *config.Config) {
		// A second sink that never starts keeps every record in the journal (its cursor stays 0;
		// shutdown compacts only what every sink acknowledged).
		c.Sinks = append(c.Sinks, config.Sink{Name: "lagging", Plugin: "file", Config: map[string]any{"dir": "/dev/null/not-a-dir"}})
		c.ShutdownTimeout = config.Duration(2 * time.Second)
	}, run: func(t *testing.T, r *tamperRun) {
		path := filepath.Join(r.dir, "journal.db")
		flipRecord(t, path, r.stored[4].EventID)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out, code := r.cli("--source", "journal")
		if code != 1 || !strings.Contains(out, "INVALID at sequence 5 (damaged record)") || !strings.Contains(out, "4 events verified before it") {
			t.Fatalf("CLI --source journal:\n%s", out)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("verify --source journal changed the journal")
		}
		// Restarted with the store alone (the lagging sink is gone from the configuration, as
		// a rebase needs every sink's head): the start cuts the record, says it was in the middle
		// and that every sink holds it, so nothing is counted lost.
		r.tweak = nil
		r.start()
		logs := r.logs.String()
		if !strings.Contains(logs, "every sink had already acknowledged them") || !strings.Contains(logs, `where="in the middle`) {
			t.Fatalf("recovery log:\n%s", logs)
		}
		m := r.metrics()
		if !strings.Contains(m, `flowker_audit_events_lost_total{reason="journal_corrupt"} 0`) || !strings.Contains(m, "flowker_audit_journal_recovery_cut_records_total 1") {
			t.Fatalf("a record held by the sinks was counted as lost:\n%s", m)
		}
		if v := r.verifyAPI(r.stored[19].EventID); !v.IsValid {
			t.Fatalf("the store is intact: %+v", v)
		}
		r.noGenuineEventLost()
	}},
	{name: "journal deleted", stores: "sqlite", run: func(t *testing.T, r *tamperRun) {
		// The journal is lost while the store lacks its last three events (not yet delivered).
		if err := os.Remove(filepath.Join(r.dir, "journal.db")); err != nil {
			t.Fatal(err)
		}
		r.st.delete(t, r.dir, r.chainID, 18, 20)
		r.st.fixSummary(t, r.dir, r.chainID)
		r.start()
		if got := r.env.App.Journal().ChainID(); got != r.chainID {
			t.Fatalf("a new chain %s was started instead of continuing %s", got, r.chainID)
		}
		if !strings.Contains(r.logs.String(), "the journal was lost; continuing that chain") {
			t.Fatalf("no warning:\n%s", r.logs)
		}
		if m := r.metrics(); !strings.Contains(m, `flowker_audit_events_lost_total{reason="journal_lost"} 3`) {
			t.Fatalf("the three events neither the journal nor the store holds are not counted")
		}
		r.genuine = r.genuine[:17] // 18..20 are gone (counted above); the rest must survive
		r.write(1)
		r.env.WaitDelivered(30 * time.Second)
		evs := r.env.AllEvents()
		if last := evs[len(evs)-1]; last.Sequence != 18 || last.PreviousHash != r.stored[16].Hash {
			t.Fatalf("the chain continued at %d (prev %s), want 18 after 17", last.Sequence, last.PreviousHash)
		}
		r.noGenuineEventLost()
		// The checkpoint signed at 20 still proves what was lost.
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "(truncated)") && !strings.Contains(out, "(checkpoint mismatch)") {
			t.Fatalf("CLI:\n%s", out)
		}
	}},
	{name: "checkpoint log edited", stores: "sqlite", run: func(t *testing.T, r *tamperRun) {
		b, err := os.ReadFile(r.logPath)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(b), r.stored[9].Hash, r.stored[8].Hash, 1)
		if err := os.WriteFile(r.logPath, []byte(edited), 0o640); err != nil {
			t.Fatal(err)
		}
		r.start()
		v := r.verifyAPI(r.stored[19].EventID)
		if v.IsValid || v.Reason != "checkpoint log" || !strings.Contains(v.Detail, "does not verify") {
			t.Fatalf("verify: %+v", v)
		}
		if out, code := r.cli(); code != 1 || !strings.Contains(out, "(checkpoint log)") {
			t.Fatalf("CLI:\n%s", out)
		}
	}},
	{name: "checkpoint log torn", stores: "sqlite", run: func(t *testing.T, r *tamperRun) {
		f, err := os.OpenFile(r.logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(`{"chainId":"` + r.chainID + `","sequence":2`); err != nil {
			t.Fatal(err)
		}
		f.Close()
		// Read by verifiers while the sidecar is stopped: the torn line is named, not ignored.
		out, code := r.cli()
		if code != 0 || !strings.Contains(out, "is torn") {
			t.Fatalf("CLI:\n%s", out)
		}
		r.start()
		if !strings.Contains(r.logs.String(), "cut a torn last line") {
			t.Fatalf("no warning about the torn line at start:\n%s", r.logs)
		}
	}},
	{name: "checkpoint log deleted or emptied", stores: "sqlite", run: func(t *testing.T, r *tamperRun) {
		// Deleted while the sidecar is stopped: the start warns.
		if err := os.Remove(r.logPath); err != nil {
			t.Fatal(err)
		}
		if out, code := r.cli(); code != 0 || !strings.Contains(out, "no checkpoint log") {
			t.Fatalf("CLI:\n%s", out)
		}
		r.start()
		if !strings.Contains(r.logs.String(), "holds no checkpoint of this chain") {
			t.Fatalf("no warning about the deleted log at start:\n%s", r.logs)
		}
		testenv.Eventually(t, 15*time.Second, "a new checkpoint", func() bool {
			cps, err := checkpoint.ReadFile(r.logPath)
			return err == nil && len(cps) > 0
		})
		// Emptied while it runs: /verify says the file lacks what this sidecar signed, and
		// still checks against it.
		if err := os.Truncate(r.logPath, 0); err != nil {
			t.Fatal(err)
		}
		v := r.verifyAPI(r.stored[19].EventID)
		if !v.IsValid || !strings.Contains(strings.Join(v.Warnings, "; "), "lacks the checkpoint this sidecar last wrote") || v.CheckpointsMatched < 1 {
			t.Fatalf("verify: %+v", v)
		}
	}},
}

// TestTamperSuite runs every attacker move against a real SQLite store and a real
// clickhouse-server, and checks what /verify, `flowker-audit verify` and the delivery host say,
// and that no event acknowledged to a client is ever lost without trace.
func TestTamperSuite(t *testing.T) {
	ch := chtest.Start(t)
	for i, sc := range tamperScenarios {
		for _, st := range []tamperStore{sqliteStore{}, clickhouseStore{ch: ch, db: fmt.Sprintf("tamper_%d", i)}} {
			if sc.stores != "" && sc.stores != st.name() {
				continue
			}
			t.Run(st.name()+"/"+sc.name, func(t *testing.T) {
				t.Parallel() // each run has its own data dir and database; most of a run is waiting
				r := newTamperRun(t, st, sc.config)
				sc.run(t, r)
			})
		}
	}
}

// TestTamperingWithTheSQLiteFileIsNamed: fake Flowker -> sidecar -> SQLite; the API shows the
// events and /verify is valid; editing one stored event in the database file makes /verify name
// its sequence.
func TestTamperingWithTheSQLiteFileIsNamed(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for i := 0; i < 12; i++ {
		r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": "tamper-me"})
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	env.WaitDelivered(30 * time.Second)
	events := env.AllEvents()
	if len(events) != 12 {
		t.Fatalf("%d events, want 12", len(events))
	}
	last := events[len(events)-1]
	var v verifyOut
	env.Audit("/v1/audit-events/"+last.EventID+"/verify").JSON(t, &v)
	if !v.IsValid || v.TotalChecked != 12 || v.ChainID != last.ChainID {
		t.Fatalf("verify before tampering: %+v", v)
	}
	st := sqliteStore{}
	st.must(t, env.DataDir, `UPDATE events SET context = '{"tampered": true}' WHERE chain_id = ? AND seq = 7`, last.ChainID)
	env.Audit("/v1/audit-events/"+last.EventID+"/verify").JSON(t, &v)
	if v.IsValid || v.FirstInvalidID != 7 || v.TotalChecked != 6 {
		t.Fatalf("verify after tampering with sequence 7: %+v", v)
	}
	// Deleting a later row is a gap at its sequence (checked up to an event before the edit).
	st.must(t, env.DataDir, `DELETE FROM events WHERE chain_id = ? AND seq = 4`, last.ChainID)
	env.Audit("/v1/audit-events/"+events[5].EventID+"/verify").JSON(t, &v)
	if v.IsValid || v.FirstInvalidID != 4 {
		t.Fatalf("verify after deleting sequence 4: %+v", v)
	}
}
