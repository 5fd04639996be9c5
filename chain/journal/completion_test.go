package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/damagetest"
)

// completed is the event draft of intent in, as the proxy completes it.
func completed(in Intent) Draft {
	d := in.Draft
	d.Result, d.Resolves = chain.ResultSuccess, in.ID
	return d
}

func doneFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.done-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCompleteAppendsAfterReturning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, _ := open(t, filepath.Join(dir, "j.db"))
	j.clog.fileBytes = 4 << 10 // a few completions per file: files rotate and go
	type outcome struct {
		ev  chain.Event
		err error
	}
	var mu sync.Mutex
	got := map[string]outcome{}
	var ids []string
	for i := range 40 {
		in := intent(i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		err := j.Complete(ctx, completed(in), func(ev chain.Event, err error) {
			mu.Lock()
			got[in.ID] = outcome{ev, err}
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.ID)
	}
	if err := j.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i, id := range ids {
		o, ok := got[id]
		if !ok || o.err != nil || o.ev.EventID != id || o.ev.Sequence != uint64(i+1) || o.ev.Result != chain.ResultSuccess {
			t.Fatalf("completion %d: called %v with %+v", i, ok, o)
		}
	}
	mu.Unlock()
	if n := j.Pending(); n != 0 {
		t.Fatalf("%d intents pending after their events were appended", n)
	}
	if n := testutil.ToFloat64(j.m.Completions); n != 40 {
		t.Fatalf("completions metric %v", n)
	}
	if files := doneFiles(t, dir); len(files) != 1 {
		t.Fatalf("completion files left besides the current one: %v", files)
	}
	verifyAll(t, j)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if files := doneFiles(t, dir); len(files) != 0 {
		t.Fatalf("completion files left after a clean close: %v", files)
	}
}

func TestCompleteRefusesWhatMustBeAppended(t *testing.T) {
	ctx := context.Background()
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"))
	defer j.Close()
	in := intent(1)
	if err := j.Intend(ctx, in); err != nil {
		t.Fatal(err)
	}
	never := func(chain.Event, error) { t.Error("then called for a refused completion") }
	once := completed(in)
	once.Once = "exec-start:x"
	if err := j.Complete(ctx, once, never); !errors.Is(err, ErrNotCompletable) {
		t.Fatalf("once-key: %v", err)
	}
	other := completed(intent(2)) // its intent was never written
	if err := j.Complete(ctx, other, never); !errors.Is(err, ErrNotCompletable) {
		t.Fatalf("no intent: %v", err)
	}
	fsyncs := testutil.ToFloat64(j.m.Fsyncs)
	if err := j.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(j.m.Fsyncs); n != fsyncs {
		t.Fatalf("a Flush with nothing queued before it synced (%v fsyncs, then %v)", fsyncs, n)
	}
	if j.Last() != 0 || j.Pending() != 1 {
		t.Fatalf("a refused completion changed the journal: last %d, pending %d", j.Last(), j.Pending())
	}
}

// stageCompletions writes n intents and their completions without appending the events: what a
// process killed between answering and the append leaves.
func stageCompletions(t *testing.T, path string, n int) []Intent {
	t.Helper()
	ctx := context.Background()
	j, _ := open(t, path)
	var out []Intent
	for i := range n {
		in := intent(i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		d := completed(in)
		d.Watch = &Watch{ExecutionID: fmt.Sprintf("exec-%d", i), WorkflowID: "wf", Since: time.Unix(1_700_000_000, 0).UTC()}
		rec, err := appendCompletion(make([]byte, completionHeader), &d)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.clog.write(in.ID, sealCompletion(rec)); err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCompletionsAreHandedToRecoveryInOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	staged := stageCompletions(t, path, 5)
	// One more intent, never completed: recovered from Flowker, after the completed ones.
	j, _ := open(t, path)
	bare := intent(99)
	if err := j.Intend(ctx, bare); err != nil {
		t.Fatal(err)
	}
	j.Close()

	j, rec := open(t, path)
	defer j.Close()
	if rec.Completions != 5 || rec.IntentsPending != 6 || len(rec.IntentsCut) != 0 {
		t.Fatalf("recovery: %+v", rec)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 6 {
		t.Fatalf("intents: %v %d", err, len(got))
	}
	for i, in := range staged {
		g := got[i]
		want := completed(in)
		if g.ID != in.ID || g.Completion == nil || g.Completion.EventID != in.ID || g.Completion.Resolves != in.ID ||
			g.Completion.Result != want.Result || g.Completion.Actor != want.Actor || string(g.Completion.Context) != string(want.Context) ||
			g.Completion.Watch == nil || g.Completion.Watch.ExecutionID != fmt.Sprintf("exec-%d", i) {
			t.Fatalf("intent %d read back as %+v (completion %+v)", i, g, g.Completion)
		}
	}
	if got[5].ID != bare.ID || got[5].Completion != nil {
		t.Fatalf("the intent without a completion: %+v", got[5])
	}
	// Appending a completion resolves its intent; the file goes once all of its are appended.
	for _, in := range got[:5] {
		if _, err := j.Append(ctx, *in.Completion); err != nil {
			t.Fatal(err)
		}
	}
	if files := doneFiles(t, filepath.Dir(path)); len(files) != 0 {
		t.Fatalf("completion files left after their events were appended: %v", files)
	}
	if ws, err := j.Watches(); err != nil || len(ws) != 5 {
		t.Fatalf("watch entries of the completed executions: %v %d", err, len(ws))
	}
	if j.Pending() != 1 {
		t.Fatalf("pending %d, want the one never completed", j.Pending())
	}
}

func TestDamagedCompletionIsCutOthersKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	staged := stageCompletions(t, path, 3)
	files := doneFiles(t, filepath.Dir(path))
	if len(files) != 1 {
		t.Fatalf("completion files: %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := damagetest.FlipAll(b, []byte(staged[1].ID)); n == 0 {
		t.Fatal("the second completion's id is not in the file")
	}
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path)
	defer j.Close()
	if len(rec.IntentsCut) != 1 || rec.IntentsCut[0].Segment != filepath.Base(files[0]) || rec.IntentsCut[0].Position == 0 ||
		rec.IntentsCut[0].Tail || rec.Completions != 2 {
		t.Fatalf("recovery: %+v", rec)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 3 {
		t.Fatalf("intents: %v %d", err, len(got))
	}
	// The two sound completions first, then the damaged one's intent, to be learned from Flowker.
	if got[0].ID != staged[0].ID || got[0].Completion == nil || got[1].ID != staged[2].ID || got[1].Completion == nil ||
		got[2].ID != staged[1].ID || got[2].Completion != nil {
		t.Fatalf("intents after the damage: %s %v, %s %v, %s %v", got[0].ID, got[0].Completion != nil,
			got[1].ID, got[1].Completion != nil, got[2].ID, got[2].Completion != nil)
	}
}

func TestTornCompletionTailIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	staged := stageCompletions(t, path, 2)
	files := doneFiles(t, filepath.Dir(path))
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], b[:len(b)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path)
	defer j.Close()
	if len(rec.IntentsCut) != 1 || !rec.IntentsCut[0].Tail || rec.Completions != 1 {
		t.Fatalf("recovery: %+v", rec)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 2 || got[0].ID != staged[0].ID || got[0].Completion == nil || got[1].Completion != nil {
		t.Fatalf("intents: %v %+v", err, got)
	}
}

// A completion whose event reached bbolt before the crash is not handed to recovery again.
func TestAppendedCompletionIsNotRecoveredAgain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	staged := stageCompletions(t, path, 2)
	j, _ := open(t, path)
	got, err := j.Intents()
	if err != nil || len(got) != 2 {
		t.Fatal(err, len(got))
	}
	if _, err := j.Append(ctx, *got[0].Completion); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j, rec := open(t, path)
	defer j.Close()
	got, err = j.Intents()
	if err != nil || rec.Completions != 1 || len(got) != 1 || got[0].ID != staged[1].ID {
		t.Fatalf("after one was appended: %v %+v %d", err, rec, len(got))
	}
}

func TestCompletionFilesOfALostJournalAreDeleted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.db")
	stageCompletions(t, path, 2)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path)
	defer j.Close()
	if rec.Completions != 0 || rec.IntentsForeign != 2 {
		t.Fatalf("recovery: %+v", rec)
	}
	if files := doneFiles(t, dir); len(files) != 0 {
		t.Fatalf("completion files of the lost journal left: %v", files)
	}
}

// completionChild intends and completes from 16 goroutines until killed, printing "answered <id>"
// each time Complete returned (the moment the proxy releases the client's response).
func completionChild(dir string) {
	runChild(dir, func(j *Journal, w, i int) (string, error) {
		in := intent(w*1_000_000 + i)
		if err := j.Intend(context.Background(), in); err != nil {
			return "", err
		}
		return "answered " + in.ID, j.Complete(context.Background(), completed(in), func(chain.Event, error) {})
	})
}

// TestKill9BetweenAnswerAndAppend kills a real child process (SIGKILL) while requests are being
// answered with their events completed after the answer: every answered event is then either in
// the journal or handed to recovery with its completion, exactly once.
func TestKill9BetweenAnswerAndAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := range 3 {
		dir := t.TempDir()
		var answered []string
		killChildAfter(t, "JOURNAL_COMPLETION_CHILD", dir, 300+round*700, func(line string) bool {
			id, ok := strings.CutPrefix(line, "answered ")
			if ok {
				answered = append(answered, id)
			}
			return ok
		})
		j, rec := open(t, filepath.Join(dir, "j.db"))
		stored := map[string]int{}
		if err := j.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
			stored[e.EventID]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		pending, err := j.Intents()
		if err != nil {
			t.Fatal(err)
		}
		completions := map[string]int{}
		for _, in := range pending {
			if in.Completion != nil {
				completions[in.ID]++
			}
		}
		for _, id := range answered {
			if stored[id]+completions[id] != 1 {
				t.Fatalf("round %d: answered %s: %d events, %d completions to recover", round, id, stored[id], completions[id])
			}
		}
		t.Logf("round %d: killed after %d answers: %d events in the journal, %d completions to recover, %d intents without one (requests in flight), %d cut",
			round, len(answered), rec.Last, len(completions), len(pending)-len(completions), len(rec.IntentsCut))
		j.Close()
	}
}

// FuzzCompletionFrames: the reader never panics, a record read back encodes to itself, and a
// sound frame written after any bytes is found (resynchronisation).
func FuzzCompletionFrames(f *testing.F) {
	d := completed(intent(1))
	d.Watch = &Watch{ExecutionID: "e", WorkflowID: "w", Since: time.Unix(1_700_000_000, 0).UTC()}
	rec, _ := appendCompletion(make([]byte, completionHeader), &d)
	sound := sealCompletion(rec)
	f.Add([]byte{})
	f.Add(sound[:len(sound)/2])
	f.Add(append(append([]byte(nil), completionMagic[:]...), 0, 0, 0, 9, 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		scanCompletions(b, func(got Draft) {
			again, err := appendCompletion(make([]byte, completionHeader), &got)
			if err != nil {
				t.Fatal(err)
			}
			if back, _, err := completionAt(sealCompletion(again), 0); err != nil || back.EventID != got.EventID || back.Result != got.Result {
				t.Fatalf("round trip: %v %+v %+v", err, back, got)
			}
		})
		var found bool
		scanCompletions(append(append([]byte(nil), b...), sound...), func(got Draft) {
			found = found || got.EventID == d.EventID
		})
		if !found {
			t.Fatalf("a sound frame after %x was not found", b)
		}
	})
}
