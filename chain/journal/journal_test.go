package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

func TestMain(m *testing.M) {
	// Crash-test child: append as fast as possible and print each acknowledged event.
	if dir := os.Getenv("JOURNAL_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if dir := os.Getenv("JOURNAL_COMPLETION_CHILD"); dir != "" {
		completionChild(dir)
		return
	}
	os.Exit(m.Run())
}

func open(t *testing.T, path string, mut ...func(*Options)) (*Journal, *Recovery) {
	t.Helper()
	o := Options{Path: path, Metrics: NewMetrics(prometheus.NewRegistry())}
	for _, f := range mut {
		f(&o)
	}
	j, rec, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return j, rec
}

func draft(i int) Draft {
	return Draft{
		EventID: uuid.NewString(), EventType: chain.WorkflowCreated, Action: chain.ActionCreate, Result: chain.ResultSuccess,
		ResourceID: uuid.NewString(), ResourceType: chain.ResourceWorkflow,
		Actor:    chain.Actor{Type: chain.ActorAPIKey, ID: "key:0123456789ab", IPAddress: "203.0.113.9"},
		Context:  []byte(fmt.Sprintf(`{"n": %d, "path": "/v1/workflows"}`, i)),
		Metadata: []byte(`{"workflow.name": "w"}`),
	}
}

func verifyAll(t *testing.T, j *Journal) uint64 {
	t.Helper()
	v := chain.NewVerifier(j.ChainID(), 1, "")
	err := j.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error { return v.Add(e) })
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return v.Checked()
}

func TestAppendReadVerify(t *testing.T) {
	j, rec := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	if !rec.Fresh || rec.Last != 0 {
		t.Fatalf("fresh journal: %+v", rec)
	}
	ctx := context.Background()
	var prev chain.Event
	for i := 0; i < 10; i++ {
		e, err := j.Append(ctx, draft(i))
		if err != nil {
			t.Fatal(err)
		}
		if e.Sequence != uint64(i+1) || e.ChainID != j.ChainID() || e.PreviousHash != prev.Hash {
			t.Fatalf("event %d: seq %d chain %q prev %q", i, e.Sequence, e.ChainID, e.PreviousHash)
		}
		if i > 0 && !e.Timestamp.After(prev.Timestamp) {
			t.Fatalf("timestamps must strictly increase: %v then %v", prev.Timestamp, e.Timestamp)
		}
		prev = e
	}
	if n := verifyAll(t, j); n != 10 {
		t.Fatalf("verified %d, want 10", n)
	}
	got, err := j.Read(ctx, 4, 3, 1<<20)
	if err != nil || len(got) != 3 || got[0].Sequence != 4 || got[2].Sequence != 6 {
		t.Fatalf("read: %v %v", err, got)
	}
	// maxBytes bounds the read but always returns at least one event.
	got, _ = j.Read(ctx, 1, 100, 1)
	if len(got) != 1 {
		t.Fatalf("read with tiny maxBytes returned %d events", len(got))
	}
}

func TestConcurrentWritersNeverFork(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	const writers, each = 64, 40
	var wg sync.WaitGroup
	seen := make(chan uint64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e, err := j.Append(context.Background(), draft(i))
				if err != nil {
					t.Error(err)
					return
				}
				seen <- e.Sequence
			}
		}()
	}
	wg.Wait()
	close(seen)
	got := map[uint64]bool{}
	for s := range seen {
		if got[s] {
			t.Fatalf("sequence %d handed out twice", s)
		}
		got[s] = true
	}
	if n := verifyAll(t, j); n != writers*each {
		t.Fatalf("verified %d, want %d", n, writers*each)
	}
}

func TestOnceIsAtomic(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, dup := 0, 0
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := draft(0)
			d.Once = "exec-start:same"
			_, err := j.Append(context.Background(), d)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrDuplicate):
				dup++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || dup != 31 {
		t.Fatalf("once: %d appended, %d duplicates; want 1 and 31", ok, dup)
	}
	// Survives a restart.
	path := j.opts.Path
	j.Close()
	j2, _ := open(t, path)
	defer j2.Close()
	d := draft(0)
	d.Once = "exec-start:same"
	if _, err := j2.Append(context.Background(), d); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("after restart: %v, want ErrDuplicate", err)
	}
}

func TestWatchListInSameTransaction(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	d := draft(0)
	d.Watch = &Watch{ExecutionID: "e1", WorkflowID: "w1", Since: time.Unix(1, 0).UTC()}
	if _, err := j.Append(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	ws, err := j.Watches()
	if err != nil || len(ws) != 1 || ws[0].ExecutionID != "e1" || ws[0].WorkflowID != "w1" {
		t.Fatalf("watches: %v %+v", err, ws)
	}
	d = draft(1)
	d.Unwatch = "e1"
	if _, err := j.Append(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if ws, _ := j.Watches(); len(ws) != 0 {
		t.Fatalf("watch not removed: %+v", ws)
	}
}

func TestSizeBoundAndCompaction(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"), func(o *Options) { o.MaxBytes = reserve + 64<<10; o.Metrics = m })
	defer j.Close()
	ctx := context.Background()
	n := 0
	for ; ; n++ {
		if err := j.Accepting(); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("accepting: %v", err)
			}
			break
		}
		if _, err := j.Append(ctx, draft(n)); err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
	}
	if n == 0 || testutil.ToFloat64(m.Writable) != 0 {
		t.Fatalf("expected some appends then a full, unwritable journal (n=%d)", n)
	}
	// Appends beyond the hard bound fail with ErrFull and journal nothing.
	big := draft(0)
	big.Context = []byte(`{"pad": "` + strings.Repeat("x", reserve) + `"}`)
	if _, err := j.Append(ctx, big); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized append: %v, want ErrFull", err)
	}
	last := j.Last()
	// One sink acknowledges everything: compaction frees the space.
	if err := j.Ack(ctx, "store", last); err != nil {
		t.Fatal(err)
	}
	if c, _ := j.Cursor("store"); c != last {
		t.Fatalf("cursor %d, want %d", c, last)
	}
	removed, err := j.Compact(ctx, last)
	if err != nil || removed != n {
		t.Fatalf("compact: removed %d of %d: %v", removed, n, err)
	}
	if err := j.Accepting(); err != nil {
		t.Fatalf("after compaction: %v", err)
	}
	e, err := j.Append(ctx, draft(0))
	if err != nil || e.Sequence != last+1 {
		t.Fatalf("append after compaction: seq %d err %v", e.Sequence, err)
	}
	entries, _, first := j.Stats()
	if entries != 1 || first != last+1 {
		t.Fatalf("stats: entries %d first %d", entries, first)
	}
	// The chain still links across the compacted range.
	v := chain.NewVerifier(j.ChainID(), last+1, e.PreviousHash)
	if err := j.ReadRange(ctx, 1, 0, func(e *chain.Event) error { return v.Add(e) }); err != nil {
		t.Fatal(err)
	}
}

func TestChainIDPersistsAndConflicts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, rec := open(t, path)
	id := j.ChainID()
	if id == "" || !rec.Fresh {
		t.Fatal("expected a generated chain id")
	}
	j.Close()
	j, rec = open(t, path)
	if j.ChainID() != id || rec.Fresh {
		t.Fatalf("chain id changed across restart: %q -> %q", id, j.ChainID())
	}
	j.Close()
	_, _, err := Open(Options{Path: path, ChainID: "other"})
	if err == nil || !strings.Contains(err.Error(), "belongs to chain") {
		t.Fatalf("configured chain id conflict: %v", err)
	}
}

func TestSecondProcessIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	defer j.Close()
	_, _, err := Open(Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: %v", err)
	}
}

// corrupt flips one byte inside the stored record of the event with the given id (in every copy
// of it: bbolt's copy-on-write pages may still hold stale copies in free pages).
func corrupt(t *testing.T, path, eventID string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte(eventID)) == 0 {
		t.Fatal("event id not found in the file")
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(eventID))
		if i < 0 {
			break
		}
		b[off+i+3] ^= 0x20
		off += i + len(eventID)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryCutsCorruptTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	j, _ := open(t, path)
	var events []chain.Event
	for i := 0; i < 20; i++ {
		e, err := j.Append(context.Background(), draft(i))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	j.Close()
	corrupt(t, path, events[19].EventID) // the last record: a damaged tail

	j, rec := open(t, path, func(o *Options) { o.Metrics = m })
	defer j.Close()
	if rec.CutCount != 1 || rec.CutFrom != 20 || rec.Last != 19 {
		t.Fatalf("recovery: %+v", rec)
	}
	if got := testutil.ToFloat64(m.RecoveryCut); got != 1 {
		t.Fatalf("recovery_cut_records_total = %v", got)
	}
	if got := testutil.ToFloat64(m.EventsLost.WithLabelValues("journal_corrupt")); got != 1 {
		t.Fatalf("events_lost_total{journal_corrupt} = %v", got)
	}
	// The chain resumes from the last good record.
	e, err := j.Append(context.Background(), draft(99))
	if err != nil || e.Sequence != 20 || e.PreviousHash != events[18].Hash {
		t.Fatalf("resume: seq %d prev %s err %v", e.Sequence, e.PreviousHash, err)
	}
	if n := verifyAll(t, j); n != 20 {
		t.Fatalf("verified %d", n)
	}
}

func TestRecoveryCutsDamagedMiddleRecordOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	var events []chain.Event
	for i := 0; i < 10; i++ {
		e, _ := j.Append(context.Background(), draft(i))
		events = append(events, e)
	}
	j.Close()
	corrupt(t, path, events[4].EventID)
	j, rec := open(t, path)
	defer j.Close()
	if rec.CutCount != 1 || rec.CutFrom != 5 || rec.Last != 10 {
		t.Fatalf("recovery: %+v", rec)
	}
	// Sound records after the damage are kept; verification reports the gap honestly.
	v := chain.NewVerifier(j.ChainID(), 1, "")
	err := j.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error { return v.Add(e) })
	var p *chain.Problem
	if !errors.As(err, &p) || p.Reason != chain.ReasonGap || p.Sequence != 5 {
		t.Fatalf("verify after cut: %v", err)
	}
}

func TestRebase(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	ctx := context.Background()
	if err := j.Rebase(ctx, 41, strings.Repeat("a", 64), time.Now()); err != nil {
		t.Fatal(err)
	}
	e, err := j.Append(ctx, draft(0))
	if err != nil || e.Sequence != 42 || e.PreviousHash != strings.Repeat("a", 64) {
		t.Fatalf("after rebase: %d %s %v", e.Sequence, e.PreviousHash, err)
	}
	if err := j.Rebase(ctx, 10, "x", time.Now()); err == nil {
		t.Fatal("rebase backwards must fail")
	}
}

func TestAppendAfterClose(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	j.Close()
	if _, err := j.Append(context.Background(), draft(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := j.Accepting(); !errors.Is(err, ErrClosed) {
		t.Fatalf("accepting after close: %v", err)
	}
}

// Every call that goes through the writer answers ErrClosed after Close, promptly: before, a
// call could be queued after the writer had stopped and wait forever.
func TestCallsAfterCloseReturn(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	j.Close()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		done := make(chan error, 3)
		go func() { done <- j.Ack(ctx, "s", 1) }()
		go func() { done <- j.Rebase(ctx, 10, strings.Repeat("a", 64), time.Now()) }()
		go func() { _, err := j.Compact(ctx, 1); done <- err }()
		for k := 0; k < 3; k++ {
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("call after Close: %v, want ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a call after Close never returned")
			}
		}
	}
}

// TestAppendRacingClose: appends that race Close are either journaled or refused with
// ErrClosed, never left waiting forever; everything that returned an event is in the file.
func TestAppendRacingClose(t *testing.T) {
	for round := 0; round < 50; round++ {
		path := filepath.Join(t.TempDir(), "j.db")
		j, _ := open(t, path, func(o *Options) { o.NoSync = true })
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := map[uint64]bool{}
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					e, err := j.Append(context.Background(), draft(i))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					mu.Lock()
					acked[e.Sequence] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		j.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: an Append racing Close never returned", round)
		}
		j2, _ := open(t, path)
		if got := verifyAll(t, j2); got < uint64(len(acked)) {
			t.Fatalf("round %d: %d events in the file, %d acknowledged", round, got, len(acked))
		}
		j2.Close()
	}
}

// crashChild appends from 16 goroutines until killed, printing "ack <seq> <eventId>" after each
// Append returned (the moment a proxy would release the client's response).
func crashChild(dir string) {
	runChild(dir, func(j *Journal, _, i int) (string, error) {
		e, err := j.Append(context.Background(), draft(i))
		return fmt.Sprintf("ack %d %s", e.Sequence, e.EventID), err
	})
}

// runChild opens the journal in dir and runs step from 16 goroutines (w: the goroutine, i: its
// step) until the process is killed, printing each step's line once it returned; a step's error
// ends the process with status 3.
func runChild(dir string, step func(j *Journal, w, i int) (string, error)) {
	j, _, err := Open(Options{Path: filepath.Join(dir, "j.db")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	fmt.Fprintln(out, "ready")
	out.Flush()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				line, err := step(j, w, i)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintln(out, line)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// killChildAfter runs this test binary as a crash child (env=dir selects what it does, see
// TestMain), passes fn each line it prints, and kills it with SIGKILL once fn has counted n of
// them (fn reports whether a line counts). It fails t if the child ends before that.
func killChildAfter(t *testing.T, env, dir string, n int, fn func(line string) bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	counted := 0
	for sc.Scan() {
		if fn(sc.Text()) {
			if counted++; counted == n {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	_ = cmd.Wait()
	if counted < n {
		t.Fatalf("child died early after %d lines: %s", counted, stderr.String())
	}
}

// TestKill9DuringWriteBurst kills a real child process mid-burst (SIGKILL) and checks that every
// event whose Append returned is present exactly once after recovery and the chain verifies.
func TestKill9DuringWriteBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		acked := map[uint64]string{}
		killAt := 300 + round*700
		killChildAfter(t, "JOURNAL_CRASH_CHILD", dir, killAt, func(line string) bool {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "ack" {
				return false
			}
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			acked[seq] = f[2]
			return true
		})
		j, rec := open(t, filepath.Join(dir, "j.db"))
		if rec.CutCount != 0 {
			t.Errorf("round %d: bbolt commits are atomic, yet recovery cut %d records (%s)", round, rec.CutCount, rec.CutReason)
		}
		stored := map[string]int{}
		err := j.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
			stored[e.EventID]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for seq, id := range acked {
			if stored[id] != 1 {
				t.Fatalf("round %d: acknowledged event seq %d (%s) stored %d times", round, seq, id, stored[id])
			}
		}
		if n := verifyAll(t, j); n != rec.Last {
			t.Fatalf("round %d: verified %d of %d", round, n, rec.Last)
		}
		t.Logf("round %d: killed after %d acknowledged appends; recovered %d events (the rest were in flight)", round, len(acked), rec.Last)
		// The chain continues after the crash.
		if e, err := j.Append(context.Background(), draft(0)); err != nil || e.Sequence != rec.Last+1 {
			t.Fatalf("append after recovery: %v %d", err, e.Sequence)
		}
		j.Close()
	}
}

// After a rebase the retained sequences are not contiguous with the head: Stats reports the
// first retained one as it is.
func TestFirstRetainedAfterRebase(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := j.Append(ctx, draft(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Rebase(ctx, 100, strings.Repeat("a", 64), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, draft(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if entries, _, first := j.Stats(); entries != 2 || first != 2 {
		t.Fatalf("entries %d, first %d; want 2 entries from sequence 2", entries, first)
	}
}

// Once keys are forgotten after their retention, and released when their event is cut from a
// damaged tail (a retry of the same change is then recorded, not refused as a duplicate).
func TestOnceKeysArePrunedAndReleasedOnCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	j, _ := open(t, path, func(o *Options) { o.Now = clock })
	ctx := context.Background()
	appendOnce := func(j *Journal, key string) (chain.Event, error) {
		d := draft(0)
		d.Once = key
		return j.Append(ctx, d)
	}
	if _, err := appendOnce(j, "exec-start:old"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(48 * time.Hour)
	if _, err := appendOnce(j, "exec-start:new"); err != nil {
		t.Fatal(err)
	}
	n, err := j.PruneOnce(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the one key older than a day", n, err)
	}
	if _, err := appendOnce(j, "exec-start:old"); err != nil {
		t.Fatalf("a pruned key is still refused: %v", err)
	}
	if _, err := appendOnce(j, "exec-start:new"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a kept key: %v, want ErrDuplicate", err)
	}
	last, err := appendOnce(j, "exec-start:cut")
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	corrupt(t, path, last.EventID)
	j, rec := open(t, path, func(o *Options) { o.Now = clock })
	defer j.Close()
	if rec.CutCount != 1 {
		t.Fatalf("recovery: %+v", rec)
	}
	if _, err := appendOnce(j, "exec-start:cut"); err != nil {
		t.Fatalf("the key of a cut event is still refused: %v", err)
	}
}

// FuzzDecodeRecord: a damaged record is an error, never a panic, and whatever decodes encodes
// back to the same bytes (the decoder accepts exactly what the encoder writes).
func FuzzDecodeRecord(f *testing.F) {
	e := chain.Event{EventID: "id", EventType: chain.WorkflowCreated, Action: chain.ActionCreate, Result: chain.ResultSuccess,
		ResourceID: "r", ResourceType: chain.ResourceWorkflow, Actor: chain.Actor{Type: "user", ID: "u", IPAddress: "1.2.3.4"},
		Context: []byte(`{"a": 1}`), Metadata: []byte(`{}`), Timestamp: time.UnixMicro(1_700_000_000_000_000).UTC(),
		ChainID: "c", Sequence: 7, Hash: strings.Repeat("a", 64)}
	f.Add(appendRecord(nil, &e))
	f.Add([]byte{recordVersion, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := appendRecord(nil, &got); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", got, again, b)
		}
	})
}

// A draft whose companions (once-key, watch entry) cannot be written is refused whole: its event
// never reaches the file, and the appends around it in the same batch are unaffected.
func TestRefusedDraftLeavesNoRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	cases := []struct {
		name string
		mut  func(*Draft)
	}{
		{"once-key too long", func(d *Draft) { d.Once = strings.Repeat("k", 40000) }},
		{"empty execution id to watch", func(d *Draft) { d.Watch = &Watch{WorkflowID: "w"} }},
		{"execution id to unwatch too long", func(d *Draft) { d.Unwatch = strings.Repeat("e", 40000) }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := j.Last()
			d := draft(i)
			c.mut(&d)
			if _, err := j.Append(context.Background(), d); err == nil {
				t.Fatal("append succeeded")
			}
			if j.Last() != before {
				t.Fatalf("head moved from %d to %d", before, j.Last())
			}
			var stored int
			_ = j.db.View(func(tx *bolt.Tx) error { stored = tx.Bucket(bucketEvents).Stats().KeyN; return nil })
			if uint64(stored) != before {
				t.Fatalf("%d records in the file after the refused append, want %d", stored, before)
			}
			if _, err := j.Append(context.Background(), draft(100+i)); err != nil {
				t.Fatalf("next append: %v", err)
			}
		})
	}
	want := j.Last()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, _ = open(t, path)
	defer j.Close()
	if got := verifyAll(t, j); got != want {
		t.Fatalf("after reopen %d events verify, want %d", got, want)
	}
}
