package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

var update = flag.Bool("update", false, "rewrite golden files")

// events returns n sealed, linked events of chainID starting at sequence from.
func events(chainID string, from, n uint64) []chain.Event {
	base := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	out := make([]chain.Event, 0, n)
	for seq := from; seq < from+n; seq++ {
		e := chain.Event{
			EventID:      fmt.Sprintf("%s-%06d", chainID, seq),
			EventType:    chain.WorkflowUpdated,
			Action:       chain.ActionUpdate,
			Result:       chain.ResultSuccess,
			ResourceID:   "wf-1",
			ResourceType: chain.ResourceWorkflow,
			Actor:        chain.Actor{Type: chain.ActorUser, ID: "alice", IPAddress: "10.1.2.3"},
			Context:      json.RawMessage(`{"path": "/v1/workflows/wf-1", "status": 200}`),
			Metadata:     json.RawMessage(`{"workflow.id": "wf-1"}`),
			Timestamp:    base.Add(time.Duration(seq) * time.Second),
			ChainID:      chainID,
			Sequence:     seq,
		}
		if seq > 1 {
			e.PreviousHash = fmt.Sprintf("prev-%d", seq-1)
		}
		e.Seal()
		out = append(out, e)
	}
	return out
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newSink returns a configured sink over dir with extra config keys.
func newSink(t *testing.T, dir string, extra string, tweak ...func(*Sink)) (*Sink, *logBuf) {
	t.Helper()
	var lb logBuf
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&lb, nil))})
	for _, f := range tweak {
		f(s)
	}
	cfg := fmt.Sprintf(`{"dir": %q%s}`, dir, extra)
	if err := s.Configure(context.Background(), []byte(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, &lb
}

// readDir returns the sink's file names (sorted) and every event in them in file order, failing
// the test on a line that does not end in '\n' or does not decode.
func readDir(t *testing.T, dir string) ([]string, []chain.Event) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var all []chain.Event
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("%s does not end with a whole line", name)
		}
		for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var e chain.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("%s line %d: %v: %s", name, i+1, err, line)
			}
			all = append(all, e)
		}
	}
	return names, all
}

// checkExactlyOnce checks that got holds sequences 1..n of chainID once each, in order, with
// hashes that verify.
func checkExactlyOnce(t *testing.T, got []chain.Event, chainID string, n uint64) {
	t.Helper()
	var seqs []uint64
	for _, e := range got {
		if e.ChainID != chainID {
			continue
		}
		if h := e.ComputeHash(); h != e.Hash {
			t.Errorf("sequence %d: stored hash %s, recomputed from the file %s", e.Sequence, e.Hash, h)
		}
		seqs = append(seqs, e.Sequence)
	}
	if uint64(len(seqs)) != n {
		t.Fatalf("chain %s: %d events stored, want %d: %v", chainID, len(seqs), n, seqs)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("chain %s: event %d has sequence %d (duplicate or gap): %v", chainID, i, s, seqs)
		}
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in      string
		want    Config
		wantErr []string
	}{
		{in: `{"dir": "/x"}`, want: Config{Dir: "/x", Prefix: "audit", MaxBytes: 100 << 20, Fsync: "batch"}},
		{in: `{"dir": "/x", "prefix": "siem", "max_bytes": 1000, "rotate_every": "24h", "fsync": "never"}`,
			want: Config{Dir: "/x", Prefix: "siem", MaxBytes: 1000, RotateEvery: pluginconfig.Duration(24 * time.Hour), Fsync: "never"}},
		{in: `{}`, wantErr: []string{"dir: required"}},
		{in: `{"dir": "/x", "fsync": "sometimes"}`, wantErr: []string{`fsync: must be always, batch or never, got "sometimes"`}},
		{in: `{"dir": "/x", "rotate_every": "daily", "max_bytes": -1, "prefix": "../etc"}`, wantErr: []string{
			`rotate_every: not a duration (use e.g. 500ms, 5s, 1h): "daily"`, "max_bytes: must be positive, got -1", `prefix: "../etc" must start`}},
		{in: `{"dir": "/x", "rotate_every": "10ms"}`, wantErr: []string{"rotate_every: must be at least 1s"}},
		{in: `{"dir": "/x", "dirr": "/y"}`, wantErr: []string{`dirr: unknown key (known: dir, fsync, max_bytes, prefix, rotate_every)`}},
		{in: `{"dir": "/x", "dirr": "/y", "fsync": 1}`, wantErr: []string{`dirr: unknown key`, `fsync: must be a string, got 1`}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.in))
			if len(tc.wantErr) == 0 {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if (&Sink{}).ValidateConfig([]byte(tc.in)) == nil {
				t.Error("ValidateConfig accepted it")
			}
		})
	}
}

func TestLineGolden(t *testing.T) {
	e := events("chain-a", 2, 1)[0]
	e.Context = json.RawMessage(`{"body": {"name": "<script>&\u00e9\"q\""}, "n": 1.50, "tags": ["a", "b"]}`)
	e.Actor.ID = "line\nbreak\t\"quoted\" \u2028 <tag>"
	e.Seal()
	line, err := appendLine(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "event.ndjson")
	if *update {
		if err := os.WriteFile(golden, line, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(line, want) {
		t.Errorf("line differs from %s:\n got %s\nwant %s", golden, line, want)
	}
	var back chain.Event
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("decoded line differs:\n got %+v\nwant %+v", back, e)
	}
	if h := back.ComputeHash(); h != e.Hash {
		t.Errorf("hash recomputed from the line %s, want %s", h, e.Hash)
	}
}

func TestLineRejectsWhatItCannotKeepExact(t *testing.T) {
	for name, raw := range map[string]string{
		"invalid JSON": `{"a": `,
		"multi-line":   "{\"a\":\n 1}",
		"padded":       ` {"a": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := events("c", 1, 1)[0]
			e.Context = json.RawMessage(raw)
			_, err := appendLine(nil, &e)
			if !sink.IsPermanent(err) || !strings.Contains(err.Error(), "context") {
				t.Errorf("got %v, want a permanent error naming context", err)
			}
		})
	}
}

func FuzzAppendLine(f *testing.F) {
	f.Add("id", "alice", `{"a": "b"}`, int64(1767225600123456))
	f.Add("\xff\x00\"\\\u2029", "<&>", `[]`, int64(0))
	f.Fuzz(func(t *testing.T, id, actor, ctxText string, micros int64) {
		e := chain.Event{EventID: id, Actor: chain.Actor{ID: actor}, Context: json.RawMessage(ctxText),
			Timestamp: time.UnixMicro(micros % (1 << 50)).UTC(), ChainID: "c", Sequence: 1}
		line, err := appendLine(nil, &e)
		if err != nil {
			if !sink.IsPermanent(err) {
				t.Fatalf("non-permanent error %v", err)
			}
			return
		}
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line is not exactly one line: %q", line)
		}
		var back chain.Event
		if err := json.Unmarshal(line, &back); err != nil {
			t.Fatalf("line does not decode: %v: %s", err, line)
		}
		if !bytes.Equal(back.Context, e.Context) && (len(e.Context) > 0 || string(back.Context) != "{}") {
			t.Errorf("context changed: %q -> %q", e.Context, back.Context)
		}
		if !back.Timestamp.Equal(e.Timestamp) {
			t.Errorf("timestamp changed: %v -> %v", e.Timestamp, back.Timestamp)
		}
		// Strings come back as encoding/json would have kept them (invalid UTF-8 bytes become
		// U+FFFD one by one).
		viaJSON := func(s string) string {
			b, _ := json.Marshal(s)
			var out string
			_ = json.Unmarshal(b, &out)
			return out
		}
		if back.EventID != viaJSON(id) || back.Actor.ID != viaJSON(actor) {
			t.Errorf("strings changed: %q/%q -> %q/%q", id, actor, back.EventID, back.Actor.ID)
		}
	})
}

func TestWriteIsIdempotent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := newSink(t, dir, "")
	if h, err := s.Head(ctx, "a"); err != nil || h.Found {
		t.Fatalf("Head of an empty sink = %+v, %v", h, err)
	}
	all := events("a", 1, 30)
	steps := [][]chain.Event{all[0:10], all[4:15], all[0:15], all[14:20]}
	for _, batch := range steps {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := s.Head(ctx, "a"); h != (sink.Head{Found: true, Sequence: 20, Hash: all[19].Hash}) {
		t.Errorf("Head = %+v, want 20", h)
	}
	s.Close(ctx)

	// A new process recovers the head from the file and skips what is stored.
	s2, _ := newSink(t, dir, "")
	if h, _ := s2.Head(ctx, "a"); h.Sequence != 20 || h.Hash != all[19].Hash {
		t.Errorf("Head after restart = %+v, want 20", h)
	}
	if err := s2.Write(ctx, all[10:30]); err != nil {
		t.Fatal(err)
	}
	_, got := readDir(t, dir)
	checkExactlyOnce(t, got, "a", 30)
}

func TestHeadOfOtherChainsIsFoundByScanning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := newSink(t, dir, `, "max_bytes": 3000`)
	a, b := events("a", 1, 20), events("b", 1, 20)
	for i := 0; i < 20; i += 5 {
		if err := s.Write(ctx, a[i:i+5]); err != nil {
			t.Fatal(err)
		}
		if i < 10 {
			if err := s.Write(ctx, b[i:i+5]); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close(ctx)
	names, _ := readDir(t, dir)
	if len(names) < 3 {
		t.Fatalf("want several files for this test, got %v", names)
	}
	s2, _ := newSink(t, dir, `, "max_bytes": 3000`)
	if h, _ := s2.Head(ctx, "b"); h.Sequence != 10 || h.Hash != b[9].Hash {
		t.Errorf("Head(b) = %+v, want 10 (found by scanning older files)", h)
	}
	if h, _ := s2.Head(ctx, "a"); h.Sequence != 20 {
		t.Errorf("Head(a) = %+v, want 20", h)
	}
	if h, _ := s2.Head(ctx, "none"); h.Found {
		t.Errorf("Head(none) = %+v, want not found", h)
	}
	if err := s2.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	_, got := readDir(t, dir)
	checkExactlyOnce(t, got, "a", 20)
	checkExactlyOnce(t, got, "b", 20)
}

func TestRotationBySize(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	line, _ := appendLine(nil, &events("a", 22, 1)[0]) // the longest line
	maxBytes := 4 * len(line)                          // at most four lines per file
	s, _ := newSink(t, dir, fmt.Sprintf(`, "max_bytes": %d`, maxBytes))
	all := events("a", 1, 22)
	for _, batch := range [][]chain.Event{all[:3], all[3:13], all[13:14], all[14:]} {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	names, got := readDir(t, dir)
	checkExactlyOnce(t, got, "a", 22)
	if len(names) != 6 {
		t.Errorf("%d files, want 6 (22 lines, 4 per file): %v", len(names), names)
	}
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > int64(maxBytes) {
			t.Errorf("%s has %d bytes, more than max_bytes %d", n, st.Size(), maxBytes)
		}
		if !strings.HasPrefix(n, "audit-") || !strings.HasSuffix(n, ".ndjson") {
			t.Errorf("unexpected file name %s", n)
		}
	}
}

func TestRotationByTimeAndNameOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := time.Date(2026, 5, 1, 23, 59, 0, 0, time.UTC)
	s, _ := newSink(t, dir, `, "rotate_every": "24h"`, func(s *Sink) { s.now = func() time.Time { return clock } })
	all := events("a", 1, 6)
	write := func(from, to int) {
		t.Helper()
		if err := s.Write(ctx, all[from:to]); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 2)
	clock = clock.Add(30 * time.Second) // same day
	write(2, 3)
	clock = clock.Add(time.Minute) // next day, UTC midnight passed
	write(3, 4)
	clock = clock.Add(-2 * time.Hour) // the clock went back to the previous day
	write(4, 6)
	names, got := readDir(t, dir)
	checkExactlyOnce(t, got, "a", 6)
	want := []string{"audit-20260501T235900.000000Z.ndjson", "audit-20260502T000030.000000Z.ndjson"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}

	// A clock behind the newest file still yields names that sort after it.
	s.Close(ctx)
	s2, _ := newSink(t, dir, `, "max_bytes": 10`, func(s *Sink) { s.now = func() time.Time { return clock } })
	if err := s2.Write(ctx, events("a", 7, 2)); err != nil {
		t.Fatal(err)
	}
	names, got = readDir(t, dir)
	checkExactlyOnce(t, got, "a", 8)
	if !slices.IsSorted(names) || len(names) != 4 || names[2] != "audit-20260502T000030.000001Z.ndjson" {
		t.Errorf("files after a clock step back: %v", names)
	}
}

func TestTornLineIsCutOnStart(t *testing.T) {
	ctx := context.Background()
	for _, torn := range []string{`{"eventId":"a-000006","eventType":"WORKF`, "x"} {
		t.Run(torn, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := newSink(t, dir, "")
			all := events("a", 1, 8)
			if err := s.Write(ctx, all[:5]); err != nil {
				t.Fatal(err)
			}
			s.Close(ctx)
			names, _ := readDir(t, dir)
			path := filepath.Join(dir, names[len(names)-1])
			before, _ := os.ReadFile(path)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(torn) // a crash in the middle of writing event 6
			f.Close()

			s2, logs := newSink(t, dir, "")
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, before) {
				t.Errorf("file after recovery has %d bytes, want the %d before the torn write", len(after), len(before))
			}
			if !strings.Contains(logs.String(), "torn last line") || !strings.Contains(logs.String(), fmt.Sprintf("cut_bytes=%d", len(torn))) {
				t.Errorf("recovery was not logged: %s", logs)
			}
			if h, _ := s2.Head(ctx, "a"); h.Sequence != 5 {
				t.Errorf("Head = %+v, want 5", h)
			}
			if err := s2.Write(ctx, all[3:]); err != nil {
				t.Fatal(err)
			}
			_, got := readDir(t, dir)
			checkExactlyOnce(t, got, "a", 8)
		})
	}
}

func TestFsyncPolicies(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		policy    string
		fileSyncs int // for 2 writes of 5 events into one file
		dirSyncs  int
	}{
		{policy: "always", fileSyncs: 10, dirSyncs: 1},
		{policy: "batch", fileSyncs: 2, dirSyncs: 1},
		{policy: "never", fileSyncs: 0, dirSyncs: 0},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			dir := t.TempDir()
			var fileSyncs, dirSyncs int
			var sizesAtSync []int64
			s, _ := newSink(t, dir, `, "fsync": "`+tc.policy+`"`, func(s *Sink) {
				s.syncFile = func(f *os.File) error {
					fileSyncs++
					st, err := f.Stat()
					if err != nil {
						return err
					}
					sizesAtSync = append(sizesAtSync, st.Size())
					return f.Sync()
				}
				s.syncDir = func(string) error { dirSyncs++; return nil }
			})
			all := events("a", 1, 10)
			if err := s.Write(ctx, all[:5]); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, all[5:]); err != nil {
				t.Fatal(err)
			}
			if fileSyncs != tc.fileSyncs || dirSyncs != tc.dirSyncs {
				t.Errorf("fsync %s: %d file syncs and %d directory syncs, want %d and %d",
					tc.policy, fileSyncs, dirSyncs, tc.fileSyncs, tc.dirSyncs)
			}
			if !slices.IsSorted(sizesAtSync) {
				t.Errorf("file sizes at each sync %v", sizesAtSync)
			}
			_, got := readDir(t, dir)
			checkExactlyOnce(t, got, "a", 10)
		})
	}
}

func TestFailedSyncDoesNotDuplicateOnRetry(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	failNext := false
	s, _ := newSink(t, dir, "", func(s *Sink) {
		s.syncFile = func(f *os.File) error {
			if failNext {
				failNext = false
				return errors.New("injected fsync failure")
			}
			return f.Sync()
		}
	})
	all := events("a", 1, 10)
	if err := s.Write(ctx, all[:4]); err != nil {
		t.Fatal(err)
	}
	failNext = true
	err := s.Write(ctx, all[4:8])
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("Write with a failing fsync: got %v, want a retryable error", err)
	}
	// The host asks for the head again: it reflects what the file really holds.
	h, err := s.Head(ctx, "a")
	if err != nil || h.Sequence != 8 {
		t.Fatalf("Head after the failed write = %+v, %v; want 8 (the lines were written)", h, err)
	}
	if err := s.Write(ctx, all[4:]); err != nil {
		t.Fatal(err)
	}
	_, got := readDir(t, dir)
	checkExactlyOnce(t, got, "a", 10)
}

func TestWriteBeforeConfigure(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.Write(context.Background(), events("a", 1, 1)); err == nil {
		t.Error("Write before Configure succeeded")
	}
	if err := s.Configure(context.Background(), []byte(`{"fsync": "x"}`)); !sink.IsPermanent(err) {
		t.Errorf("Configure with a bad config: got %v, want a permanent error", err)
	}
	caps, _ := s.Capabilities(context.Background())
	if caps != (sink.Capabilities{Write: true}) {
		t.Errorf("Capabilities = %+v", caps)
	}
	if _, ok := any(s).(sink.Querier); ok {
		t.Error("the file sink must not claim to answer queries")
	}
}

// Forwarded checkpoints land in <dir>/<prefix>.checkpoints.ndjson in the checkpoint log's own
// format, once each, beside (not among) the event files.
func TestWriteCheckpointsForwardsOnce(t *testing.T) {
	dir := t.TempDir()
	s := New(Options{})
	if err := s.Configure(context.Background(), []byte(fmt.Sprintf(`{"dir": %q}`, dir))); err != nil {
		t.Fatal(err)
	}
	var w sink.CheckpointWriter = s
	cp := sink.Checkpoint{ChainID: "c", Sequence: 7, Hash: strings.Repeat("ab", 32), Time: time.Date(2026, 12, 1, 0, 0, 0, 5000, time.UTC),
		KeyID: "0123456789abcdef", Signature: "c2lnbmF0dXJl"}
	for i := 0; i < 2; i++ {
		if err := w.WriteCheckpoints(context.Background(), []sink.Checkpoint{cp}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile(DefaultPrefix)))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"chainId":"c","sequence":7,"hash":"` + strings.Repeat("ab", 32) + `","time":"2026-12-01T00:00:00.000005Z","keyId":"0123456789abcdef","signature":"c2lnbmF0dXJl"}` + "\n"
	if string(b) != want {
		t.Fatalf("checkpoint file:\n%s\nwant\n%s", b, want)
	}
	if h, err := s.Head(context.Background(), "c"); err != nil || h.Found {
		t.Fatalf("the checkpoint file was read as events: %+v %v", h, err)
	}
}
