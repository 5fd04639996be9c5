package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// openSink configures a sink on path with extra config keys (a JSON fragment, may be empty).
func openSink(t *testing.T, path, extra string) *Sink {
	t.Helper()
	s := New(Options{})
	cfg := fmt.Sprintf(`{"path": %q%s}`, path, extra)
	if err := s.Configure(t.Context(), []byte(cfg)); err != nil {
		t.Fatalf("Configure(%s): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newSink(t *testing.T) *Sink {
	return openSink(t, filepath.Join(t.TempDir(), "audit.db"), "")
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sink.Sink { return newSink(t) })
}

// rawDB opens path with its own connection, bypassing the sink (as an attacker or an operator
// with sqlite3 would).
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func writeAll(t *testing.T, s *Sink, events []chain.Event) {
	t.Helper()
	if err := s.Write(t.Context(), events); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// verifyStored reads the whole chain back and returns the verifier's first problem (nil if the
// chain verifies) and how many events were read.
func verifyStored(t *testing.T, s *Sink, chainID string) (*chain.Problem, int) {
	t.Helper()
	v := chain.NewVerifier(chainID, 1, "")
	n := 0
	err := s.ReadChain(t.Context(), chainID, 1, 0, func(e *chain.Event) error {
		n++
		v.Add(e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadChain: %v", err)
	}
	return v.Problem(), n
}

func TestTamperingIsDetected(t *testing.T) {
	const id = "chain-tamper"
	for _, tc := range []struct {
		name       string
		sql        string
		wantSeq    uint64
		wantReason chain.Reason
	}{
		{"context updated", `UPDATE events SET context = replace(context, '"status": ', '"status": 1') WHERE chain_id = ? AND seq = 17`, 17, chain.ReasonHashMismatch},
		{"result flipped", `UPDATE events SET result = CASE result WHEN 'SUCCESS' THEN 'FAILED' ELSE 'SUCCESS' END WHERE chain_id = ? AND seq = 42`, 42, chain.ReasonHashMismatch},
		{"middle row deleted", `DELETE FROM events WHERE chain_id = ? AND seq = 30`, 30, chain.ReasonGap},
		{"hash altered", `UPDATE events SET hash = 'ab' || substr(hash, 3) WHERE chain_id = ? AND seq = 55`, 55, chain.ReasonHashMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.db")
			s := openSink(t, path, "")
			writeAll(t, s, sinktest.GenerateChain(id, 100, sinktest.GenOptions{Seed: 9}))
			if p, n := verifyStored(t, s, id); p != nil || n != 100 {
				t.Fatalf("before tampering: %d events, problem %v", n, p)
			}
			res, err := rawDB(t, path).ExecContext(t.Context(), tc.sql, id)
			if err != nil {
				t.Fatalf("tampering: %v", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("tampering changed %d rows, want 1", n)
			}
			p, _ := verifyStored(t, s, id)
			if p == nil {
				t.Fatalf("%s: the chain still verifies", tc.name)
			}
			if p.Sequence != tc.wantSeq || p.Reason != tc.wantReason {
				t.Fatalf("%s: verifier reports %v, want sequence %d (%s)", tc.name, p, tc.wantSeq, tc.wantReason)
			}
			t.Logf("%s: %v", tc.name, p)
		})
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "audit.db")
	evs := sinktest.GenerateChain("chain-r", 300, sinktest.GenOptions{Seed: 4})
	s := New(Options{})
	if err := s.Configure(t.Context(), []byte(fmt.Sprintf(`{"path": %q, "synchronous": "normal"}`, path))); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, evs)
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Head(t.Context(), "chain-r"); err == nil {
		t.Fatal("Head after Close succeeded")
	}

	s2 := openSink(t, path, "")
	h, err := s2.Head(t.Context(), "chain-r")
	if err != nil || !h.Found || h.Sequence != 300 || h.Hash != evs[299].Hash {
		t.Fatalf("Head after reopening = %+v, %v; want sequence 300", h, err)
	}
	if p, n := verifyStored(t, s2, "chain-r"); p != nil || n != 300 {
		t.Fatalf("after reopening: %d events, problem %v", n, p)
	}
	var v string
	if err := rawDB(t, path).QueryRow(`SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v); err != nil || v != fmt.Sprint(SchemaVersion()) {
		t.Fatalf("meta.schema_version = %q, %v; want %d", v, err, SchemaVersion())
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s := New(Options{})
	cfg := []byte(fmt.Sprintf(`{"path": %q}`, path))
	if err := s.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, path).Exec(`UPDATE meta SET value = '99' WHERE key = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	err := New(Options{}).Configure(t.Context(), cfg)
	if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), "newer than this plugin supports") {
		t.Fatalf("Configure on a schema from the future: %v; want a permanent error saying so", err)
	}
}

func TestConfigureErrors(t *testing.T) {
	dir := t.TempDir()
	notADB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notADB, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cfg string
	}{
		{"invalid config", `{"synchronous": "sometimes"}`},
		{"not a database", fmt.Sprintf(`{"path": %q}`, notADB)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(Options{}).Configure(t.Context(), []byte(tc.cfg))
			if err == nil || !sink.IsPermanent(err) {
				t.Fatalf("Configure(%s) = %v, want a permanent error", tc.cfg, err)
			}
		})
	}
	s := newSink(t)
	if err := s.Configure(t.Context(), []byte(`{}`)); err == nil {
		t.Fatal("second Configure succeeded")
	}
	unconfigured := New(Options{})
	if err := unconfigured.Write(t.Context(), sinktest.GenerateChain("c", 1, sinktest.GenOptions{})); !errors.Is(err, errNotConfigured) {
		t.Fatalf("Write before Configure: %v", err)
	}
}

func TestWriteRejectsConflictsAndStoresNothingOfTheBatch(t *testing.T) {
	s := newSink(t)
	evs := sinktest.GenerateChain("chain-w", 20, sinktest.GenOptions{Seed: 1})
	writeAll(t, s, evs[:10])

	forked := sinktest.GenerateChain("chain-w", 20, sinktest.GenOptions{Seed: 2}) // same positions, other events
	reused := append([]chain.Event(nil), evs[10:15]...)
	reused[2].EventID = evs[3].EventID // an event id already stored at sequence 4
	reused[2].Seal()
	noChain := append([]chain.Event(nil), evs[10:12]...)
	noChain[1].ChainID = ""
	zeroSeq := append([]chain.Event(nil), evs[10:12]...)
	zeroSeq[0].Sequence = 0

	for _, tc := range []struct {
		name  string
		batch []chain.Event
		want  string
	}{
		{"different hash at a stored position", append(append([]chain.Event(nil), evs[10:12]...), forked[5]), "already stored with hash"},
		{"event id reused", reused, "already stored at another position"},
		{"no chain id", noChain, "has no chainId"},
		{"sequence zero", zeroSeq, "has sequence 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Write(t.Context(), tc.batch)
			if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v; want a permanent error containing %q", err, tc.want)
			}
			h, err := s.Head(t.Context(), "chain-w")
			if err != nil || h.Sequence != 10 {
				t.Fatalf("Head after a rejected batch = %+v, %v; want 10 (nothing of the batch stored)", h, err)
			}
			if p, n := verifyStored(t, s, "chain-w"); p != nil || n != 10 {
				t.Fatalf("after a rejected batch: %d events, problem %v", n, p)
			}
		})
	}
	writeAll(t, s, evs[10:])
	if p, n := verifyStored(t, s, "chain-w"); p != nil || n != 20 {
		t.Fatalf("after the valid rest: %d events, problem %v", n, p)
	}
}

func TestWriteHonoursCancellation(t *testing.T) {
	s := newSink(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Write(ctx, sinktest.GenerateChain("chain-x", 10, sinktest.GenOptions{}))
	if !errors.Is(err, context.Canceled) || sink.IsPermanent(err) {
		t.Fatalf("Write with a cancelled context: %v; want a retryable context.Canceled", err)
	}
	if h, err := s.Head(t.Context(), "chain-x"); err != nil || h.Found {
		t.Fatalf("Head after a cancelled Write = %+v, %v; want nothing stored", h, err)
	}
}

func TestEmptyContextRoundTrips(t *testing.T) {
	s := newSink(t)
	e := sinktest.GenerateChain("chain-e", 1, sinktest.GenOptions{})[0]
	e.Context, e.Metadata = nil, nil
	e.Seal()
	writeAll(t, s, []chain.Event{e})
	got, err := s.Get(t.Context(), e.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Context != nil || got.Metadata != nil || got.ComputeHash() != e.Hash {
		t.Fatalf("Get = context %q metadata %q hash ok %v; want both empty and the hash to verify", got.Context, got.Metadata, got.ComputeHash() == e.Hash)
	}
}

func TestSearchRejectsBadQueries(t *testing.T) {
	s := newSink(t)
	for _, q := range []sink.Query{{Limit: 0}, {Limit: MaxLimit + 1}, {Limit: 5, Order: 7}} {
		if _, err := s.Search(t.Context(), q); err == nil || !sink.IsPermanent(err) {
			t.Errorf("Search(%+v) = %v, want a permanent error", q, err)
		}
	}
}

// TestReadsDoNotWaitForWriter holds the write lock from another connection with busy_timeout 0:
// any read that needed the lock would fail at once with SQLITE_BUSY instead of waiting.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s := openSink(t, path, `, "busy_timeout": "0s"`)
	evs := sinktest.GenerateChain("chain-l", 50, sinktest.GenOptions{Seed: 3})
	writeAll(t, s, evs[:40])

	other := rawDB(t, path)
	ctx := t.Context()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "DELETE FROM events WHERE chain_id = 'chain-l' AND seq > 35"); err != nil {
		t.Fatal(err)
	}

	if h, err := s.Head(ctx, "chain-l"); err != nil || h.Sequence != 40 {
		t.Errorf("Head while another connection writes = %+v, %v; want 40 (the committed state)", h, err)
	}
	if p, err := s.Search(ctx, sink.Query{Limit: 100}); err != nil || len(p.Events) != 40 {
		t.Errorf("Search while another connection writes: %d events, %v; want 40", len(p.Events), err)
	}
	if _, err := s.Get(ctx, evs[39].EventID); err != nil {
		t.Errorf("Get while another connection writes: %v", err)
	}
	if p, n := verifyStored(t, s, "chain-l"); p != nil || n != 40 {
		t.Errorf("ReadChain while another connection writes: %d events, problem %v", n, p)
	}
	if _, err := s.Chains(ctx); err != nil {
		t.Errorf("Chains while another connection writes: %v", err)
	}
	// A write has to wait for the lock; with no busy timeout it fails, retryably.
	if err := s.Write(ctx, evs[40:]); err == nil || sink.IsPermanent(err) {
		t.Errorf("Write while another connection holds the lock = %v, want a retryable error", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	writeAll(t, s, evs[40:])
	if p, n := verifyStored(t, s, "chain-l"); p != nil || n != 50 {
		t.Errorf("after the lock is released: %d events, problem %v", n, p)
	}
}

func TestReadChainStreamsInChunks(t *testing.T) {
	s := newSink(t)
	n := 3*readChainChunk + 17
	evs := sinktest.GenerateChain("chain-big", n, sinktest.GenOptions{Seed: 8, MeanGap: time.Millisecond})
	writeAll(t, s, evs)
	for _, r := range []struct{ from, to uint64 }{{1, 0}, {readChainChunk, 2 * readChainChunk}, {readChainChunk + 1, uint64(n)}, {uint64(n), 0}} {
		var got []uint64
		err := s.ReadChain(t.Context(), "chain-big", r.from, r.to, func(e *chain.Event) error {
			got = append(got, e.Sequence)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		to := r.to
		if to == 0 {
			to = uint64(n)
		}
		if uint64(len(got)) != to-r.from+1 || got[0] != r.from || got[len(got)-1] != to {
			t.Fatalf("ReadChain(%d, %d): %d events from %d to %d", r.from, r.to, len(got), got[0], got[len(got)-1])
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+1 {
				t.Fatalf("ReadChain(%d, %d): %d follows %d", r.from, r.to, got[i], got[i-1])
			}
		}
	}
}
