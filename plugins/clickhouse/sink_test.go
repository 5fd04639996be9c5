package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// rawConn opens a plain clickhouse-go connection to srv.
func rawConn(t testing.TB, srv *chtest.Server) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr}, Compression: &ch.Compression{Method: ch.CompressionLZ4}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// insertRaw inserts events straight into the events table, bypassing the sink (a batch that the
// server stored although the client saw an error, or a duplicate from a retried insert).
func insertRaw(t testing.TB, conn driver.Conn, database string, events []chain.Event) {
	t.Helper()
	ctx := ctxT(t)
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", database, TableEvents, insertColumns))
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		r, err := toRow(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append(r.chainID, r.seq, r.eventID, r.tsUs, r.eventType, r.action, r.result, r.resourceType,
			r.resourceID, r.actorType, r.actorID, r.actorIP, r.context, r.metadata, r.hash, r.prevHash); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads the whole chain and verifies it; it returns the events and the verifier.
func readAll(t testing.TB, s *Sink, chainID string) ([]chain.Event, *chain.Verifier) {
	t.Helper()
	v := chain.NewVerifier(chainID, 1, "")
	var got []chain.Event
	err := s.ReadChain(ctxT(t), chainID, 1, 0, func(e *chain.Event) error {
		_ = v.Add(e)
		got = append(got, *e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadChain(%s): %v", chainID, err)
	}
	return got, v
}

// checkStored asserts that the sink holds exactly want (one chain, sequences 1..n), with no
// duplicate visible through ReadChain, Head, Get, Search or Chains.
func checkStored(t *testing.T, s *Sink, want []chain.Event) {
	t.Helper()
	ctx := ctxT(t)
	id := want[0].ChainID
	got, v := readAll(t, s, id)
	if p := v.Problem(); p != nil {
		t.Fatalf("chain does not verify: %v", p)
	}
	if len(got) != len(want) {
		t.Fatalf("ReadChain returned %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameEvent(&got[i], &want[i]) {
			t.Fatalf("ReadChain event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	h, err := s.Head(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	last := want[len(want)-1]
	if !h.Found || h.Sequence != last.Sequence || h.Hash != last.Hash {
		t.Fatalf("Head = %+v, want sequence %d hash %s", h, last.Sequence, last.Hash)
	}
	for _, i := range []int{0, len(want) / 2, len(want) - 1} {
		e, err := s.Get(ctx, want[i].EventID)
		if err != nil {
			t.Fatalf("Get(%s): %v", want[i].EventID, err)
		}
		if !sameEvent(&e, &want[i]) {
			t.Fatalf("Get(%s) = %+v, want %+v", want[i].EventID, e, want[i])
		}
	}
	// Page through everything in both orders: every event exactly once.
	for _, order := range []sink.Order{sink.Asc, sink.Desc} {
		seen := map[uint64]int{}
		q := sink.Query{Order: order, Limit: 37}
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("%v: paging does not end", order)
			}
			p, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				seen[e.Sequence]++
			}
			if !p.More {
				break
			}
			pos := sink.PositionOf(&p.Events[len(p.Events)-1])
			q.After = &pos
		}
		if len(seen) != len(want) {
			t.Fatalf("%v: Search returned %d distinct events, want %d", order, len(seen), len(want))
		}
		for seq, n := range seen {
			if n != 1 {
				t.Fatalf("%v: Search returned sequence %d %d times", order, seq, n)
			}
		}
	}
	// A resourceId page of a resource that occurs in duplicated rows.
	rid := want[0].ResourceID
	p, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ResourceID: rid}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	wantN := 0
	for _, e := range want {
		if e.ResourceID == rid {
			wantN++
		}
	}
	if len(p.Events) != wantN {
		t.Fatalf("resourceId %s: %d events, want %d", rid, len(p.Events), wantN)
	}
	chains, err := s.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := sink.ChainInfo{ChainID: id, Count: uint64(len(want)), First: 1, Last: last.Sequence}
	if len(chains) != 1 || chains[0] != wantInfo {
		t.Fatalf("Chains = %+v, want [%+v]", chains, wantInfo)
	}
}

func TestIdempotentRetries(t *testing.T) {
	srv := server(t)
	db := newDatabase("idem")
	s := openSink(t, srv, db, Options{}, nil)
	ctx := ctxT(t)
	evs := sinktest.GenerateChain("chain-retry", 600, sinktest.GenOptions{Seed: 3})

	write := func(what string, batch []chain.Event) {
		t.Helper()
		if err := s.Write(ctx, batch); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	write("1..100", evs[:100])
	write("1..100 again", evs[:100])
	write("51..250 overlapping", evs[50:250])

	// The server stored 251..400 but the client saw a failure: the rows are there, and a new
	// sink process (no cached head) is handed the same batch again.
	insertRaw(t, rawConn(t, srv), db, evs[250:400])
	s2 := openSink(t, srv, db, Options{}, nil)
	if err := s2.Write(ctx, evs[250:450]); err != nil {
		t.Fatalf("retry of a stored batch: %v", err)
	}
	// The first sink's cached head is stale (250); its write of an overlapping batch must still
	// not add copies visible to readers.
	write("stale sink, 201..600", evs[200:600])
	checkStored(t, s2, evs)
	checkStored(t, s, evs)
}

// TestDuplicateRows covers the second safety net: rows duplicated in the table itself (18.16 has
// no insert deduplication) never show through reads.
func TestDuplicateRows(t *testing.T) {
	srv := server(t)
	db := newDatabase("dups")
	s := openSink(t, srv, db, Options{}, nil)
	evs := sinktest.GenerateChain("chain-dups", 300, sinktest.GenOptions{Seed: 4})
	if err := s.Write(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, srv)
	insertRaw(t, conn, db, evs[100:160])
	insertRaw(t, conn, db, evs[0:1])
	insertRaw(t, conn, db, evs[299:300])
	if n := query(t, srv, fmt.Sprintf("SELECT count() FROM %s.%s", db, TableEvents)); n != "362" {
		t.Fatalf("raw row count = %s, want 362 (the duplicates must really be stored)", n)
	}
	checkStored(t, s, evs)
}

// TestConflictingDuplicateReported: a second, different row for a stored sequence is not hidden
// from ReadChain; the verifier reports that sequence.
func TestConflictingDuplicateReported(t *testing.T) {
	srv := server(t)
	db := newDatabase("conflict")
	s := openSink(t, srv, db, Options{}, nil)
	evs := sinktest.GenerateChain("chain-conflict", 50, sinktest.GenOptions{Seed: 5})
	if err := s.Write(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	forged := evs[20]
	forged.Context = []byte(`{"forged": true}`)
	insertRaw(t, rawConn(t, srv), db, []chain.Event{forged})
	_, v := readAll(t, s, "chain-conflict")
	p := v.Problem()
	if p == nil || p.Sequence != 21 {
		t.Fatalf("verifier problem = %v, want one at sequence 21", p)
	}
}

func TestTamperDetected(t *testing.T) {
	srv := server(t)
	db := newDatabase("tamper")
	s := openSink(t, srv, db, Options{}, nil)
	evs := sinktest.GenerateChain("chain-tamper", 400, sinktest.GenOptions{Seed: 6})
	for i := 0; i < len(evs); i += 100 {
		if err := s.Write(ctxT(t), evs[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	const n = 237
	query(t, srv, fmt.Sprintf(`ALTER TABLE %s.%s UPDATE context = '{"tampered": true}' WHERE seq = %d`, db, TableEvents, n))
	// Mutations are asynchronous on 18.16: wait until it is applied.
	deadline := time.Now().Add(time.Minute)
	for {
		out := query(t, srv, fmt.Sprintf("SELECT count() FROM system.mutations WHERE database = '%s' AND table = '%s' AND is_done = 0", db, TableEvents))
		if out == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mutation not done after a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := query(t, srv, fmt.Sprintf("SELECT context FROM %s.%s WHERE seq = %d", db, TableEvents, n)); got != `{"tampered": true}` {
		t.Fatalf("tamper not applied: context = %s", got)
	}
	got, v := readAll(t, s, "chain-tamper")
	p := v.Problem()
	if p == nil {
		t.Fatalf("tampered chain verified (%d events)", len(got))
	}
	if p.Sequence != n || p.Reason != chain.ReasonHashMismatch {
		t.Fatalf("problem = %v, want hash mismatch at sequence %d", p, n)
	}
}

// TestOutage stops the server while writing: Write fails with retryable errors while it is down
// and succeeds after it is back, with nothing lost or duplicated.
func TestOutage(t *testing.T) {
	t.Parallel()
	srv := chtest.Start(t)
	db := newDatabase("outage")
	s := openSink(t, srv, db, Options{}, nil)
	evs := sinktest.GenerateChain("chain-outage", 500, sinktest.GenOptions{Seed: 8})
	ctx := ctxT(t)
	if err := s.Write(ctx, evs[:100]); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		err := s.Write(ctx, evs[100:200])
		if err == nil {
			t.Fatal("Write succeeded while the server was down")
		}
		if sink.IsPermanent(err) {
			t.Fatalf("Write while down returned a permanent error: %v", err)
		}
		if _, err := s.Head(ctx, "chain-outage"); err == nil || sink.IsPermanent(err) {
			t.Fatalf("Head while down: %v, want a retryable error", err)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The host retries the same batch, then goes on.
	if err := s.Write(ctx, evs[100:200]); err != nil {
		t.Fatalf("Write after restart: %v", err)
	}
	if err := s.Write(ctx, evs[150:400]); err != nil {
		t.Fatal(err)
	}
	// A crash (SIGKILL) mid-way, too.
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, evs[400:500]); err == nil || sink.IsPermanent(err) {
		t.Fatalf("Write while killed: %v, want a retryable error", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, evs[400:500]); err != nil {
		t.Fatalf("Write after crash: %v", err)
	}
	checkStored(t, s, evs)
}

// TestOutageAtConfigure: an unreachable server is retryable at Configure, and the sink becomes
// usable once it is up, without another Configure.
func TestOutageAtConfigure(t *testing.T) {
	t.Parallel()
	srv := chtest.Start(t)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Logger: testLogger(t)})
	defer s.Close(context.Background())
	err := s.Configure(ctxT(t), testConfig(srv, newDatabase("late"), nil))
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("Configure with the server down: %v, want a retryable error", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	evs := sinktest.GenerateChain("chain-late", 20, sinktest.GenOptions{Seed: 9})
	if err := s.Write(ctxT(t), evs); err != nil {
		t.Fatalf("Write once the server is up: %v", err)
	}
	checkStored(t, s, evs)
}

func TestPermanentErrors(t *testing.T) {
	srv := server(t)
	for _, tc := range []struct {
		name   string
		config map[string]any
	}{
		{"unknown key", map[string]any{"adress": "x"}},
		{"wrong password", map[string]any{"password": "nope"}},
		{"unknown user", map[string]any{"user": "nobody"}},
		{"schema missing and create_schema false", map[string]any{"create_schema": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Logger: testLogger(t)})
			defer s.Close(context.Background())
			err := s.Configure(ctxT(t), testConfig(srv, newDatabase("perm"), tc.config))
			if err == nil || !sink.IsPermanent(err) {
				t.Fatalf("Configure: %v, want a permanent error", err)
			}
		})
	}
}

func TestInvalidEventsRejected(t *testing.T) {
	srv := server(t)
	s := openSink(t, srv, newDatabase("invalid"), Options{}, nil)
	good := sinktest.GenerateChain("chain-invalid", 3, sinktest.GenOptions{Seed: 10})
	for _, tc := range []struct {
		name   string
		mutate func(e *chain.Event)
		want   string
	}{
		{"uppercase event id", func(e *chain.Event) { e.EventID = strings.ToUpper(e.EventID) }, "eventId"},
		{"short hash", func(e *chain.Event) { e.Hash = e.Hash[:62] }, "hash"},
		{"uppercase hash", func(e *chain.Event) { e.Hash = strings.ToUpper(e.Hash) }, "hash"},
		{"bad previous hash", func(e *chain.Event) { e.PreviousHash = "xyz" }, "previousHash"},
		{"no chain", func(e *chain.Event) { e.ChainID = "" }, "chainId"},
		{"sequence 0", func(e *chain.Event) { e.Sequence = 0 }, "sequence"},
		{"before 1970", func(e *chain.Event) { e.Timestamp = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := append([]chain.Event(nil), good...)
			tc.mutate(&batch[1])
			err := s.Write(ctxT(t), batch)
			if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want a permanent error about %s", err, tc.want)
			}
		})
	}
	// Nothing of a rejected batch was stored.
	h, err := s.Head(ctxT(t), "chain-invalid")
	if err != nil || h.Found {
		t.Fatalf("Head after rejected batches = %+v, %v; want not found", h, err)
	}
}

// TestStringLiterals round-trips awkward strings through the SQL text the sink renders.
func TestStringLiterals(t *testing.T) {
	srv := server(t)
	s := openSink(t, srv, newDatabase("literals"), Options{}, nil)
	evs := sinktest.GenerateChain("chain 'quoted' \\ \x00 ünï", 6, sinktest.GenOptions{Seed: 11})
	odd := []string{`it's`, `back\slash`, "nul\x00byte", "\xff\xfe invalid utf8", `\'; DROP TABLE x; --`, "tab\tnew\nline"}
	for i := range evs {
		evs[i].ResourceID = odd[i]
		evs[i].EventType = odd[len(odd)-1-i]
		if i > 0 {
			evs[i].PreviousHash = evs[i-1].Hash
		}
		evs[i].Seal()
	}
	ctx := ctxT(t)
	if err := s.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for i, v := range odd {
		p, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ResourceID: v}, Limit: 10})
		if err != nil {
			t.Fatalf("resourceId %q: %v", v, err)
		}
		if len(p.Events) != 1 || !sameEvent(&p.Events[0], &evs[i]) {
			t.Fatalf("resourceId %q: got %d events", v, len(p.Events))
		}
		p, err = s.Search(ctx, sink.Query{Filter: sink.Filter{EventType: v}, Limit: 10})
		if err != nil {
			t.Fatalf("eventType %q: %v", v, err)
		}
		if len(p.Events) != 1 || p.Events[0].Sequence != uint64(len(odd)-i) {
			t.Fatalf("eventType %q: got %+v", v, p.Events)
		}
	}
	p, err := s.Search(ctx, sink.Query{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	pos := sink.PositionOf(&p.Events[1])
	if p, err = s.Search(ctx, sink.Query{Limit: 10, After: &pos}); err != nil || len(p.Events) != 4 {
		t.Fatalf("page after a cursor with an odd chain id: %d events, %v", len(p.Events), err)
	}
	checkStored(t, s, evs)
}

// TestSearchWideWindows spreads events over months so that Search goes through every window
// step (including the two-phase ones and the unbounded last step) and compares every page with a
// brute-force answer.
func TestSearchWideWindows(t *testing.T) {
	t.Parallel()
	srv := server(t)
	s := openSink(t, srv, newDatabase("windows"), Options{}, nil)
	start := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	a := sinktest.GenerateChain("chain-a", 300, sinktest.GenOptions{Seed: 12, Start: start, MeanGap: 9 * time.Hour})
	b := sinktest.GenerateChain("chain-b", 200, sinktest.GenOptions{Seed: 12, Start: start, MeanGap: 11 * time.Hour})
	// A burst at the end, and a gap of three months before it.
	c := sinktest.GenerateChain("chain-c", 40, sinktest.GenOptions{Seed: 12, Start: start.AddDate(0, 7, 0), MeanGap: time.Minute})
	ctx := ctxT(t)
	for _, evs := range [][]chain.Event{a, b, c} {
		if err := s.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	all := append(append(append([]chain.Event(nil), a...), b...), c...)
	sort.Slice(all, func(i, j int) bool { return sink.PositionOf(&all[i]).Less(sink.PositionOf(&all[j])) })
	rare := a[17].EventType
	for _, f := range []sink.Filter{
		{},
		{EventType: rare},
		{Result: chain.ResultFailed},
		{From: start.AddDate(0, 1, 0), To: start.AddDate(0, 2, 0)},
		{From: start.AddDate(0, 1, 0)},
		{To: start.AddDate(0, 1, 0)},
		{To: start.AddDate(5, 0, 0)}, // a To far in the future
		{ResourceID: a[5].ResourceID},
		{ResourceID: a[5].ResourceID, EventType: a[5].EventType},
	} {
		for _, order := range []sink.Order{sink.Desc, sink.Asc} {
			for _, limit := range []int{1, 9, 60} {
				name := fmt.Sprintf("%+v/%v/limit %d", f, order, limit)
				var want []chain.Event
				for _, e := range all {
					if f.Matches(&e) {
						want = append(want, e)
					}
				}
				if order == sink.Desc {
					for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
						want[i], want[j] = want[j], want[i]
					}
				}
				var got []chain.Event
				q := sink.Query{Filter: f, Order: order, Limit: limit}
				maxPages := len(want) + 1
				if limit == 1 {
					maxPages = 4 // single-event pages: check the start only (thousands of queries otherwise)
					want = want[:min(len(want), maxPages)]
				}
				for page := 0; ; page++ {
					if page > len(want)+1 {
						t.Fatalf("%s: paging does not end", name)
					}
					p, err := s.Search(ctx, q)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got = append(got, p.Events...)
					if limit == 1 && page+1 == maxPages {
						break
					}
					if p.More != (len(got) < len(want)) {
						t.Fatalf("%s: page %d More = %v with %d of %d events", name, page, p.More, len(got), len(want))
					}
					if !p.More {
						break
					}
					pos := sink.PositionOf(&p.Events[len(p.Events)-1])
					q.After = &pos
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d events, want %d", name, len(got), len(want))
				}
				for i := range want {
					if !sameEvent(&got[i], &want[i]) {
						t.Fatalf("%s: event %d is %s/%d, want %s/%d", name, i, got[i].ChainID, got[i].Sequence, want[i].ChainID, want[i].Sequence)
					}
				}
			}
		}
	}
}

func TestSearchLimit(t *testing.T) {
	s := openSink(t, server(t), newDatabase("limit"), Options{}, nil)
	for _, n := range []int{0, -1, MaxLimit + 1} {
		if _, err := s.Search(ctxT(t), sink.Query{Limit: n}); err == nil {
			t.Errorf("Search with limit %d succeeded", n)
		}
	}
}

func TestGetUnknown(t *testing.T) {
	s := openSink(t, server(t), newDatabase("get"), Options{}, nil)
	for _, id := range []string{"not-a-uuid", "00000000-0000-4000-8000-000000000000", ""} {
		if _, err := s.Get(ctxT(t), id); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// TestReadChainAcrossBlocks reads a chain longer than one block, written in uneven batches, and
// sub-ranges that start and end inside blocks.
func TestReadChainAcrossBlocks(t *testing.T) {
	t.Parallel()
	srv := server(t)
	s := openSink(t, srv, newDatabase("blocks"), Options{}, nil)
	n := BlockSize + 300
	evs := sinktest.GenerateChain("chain-long", n, sinktest.GenOptions{Seed: 13, MeanGap: time.Second})
	ctx := ctxT(t)
	for i := 0; i < n; i += 7000 {
		if err := s.Write(ctx, evs[i:min(i+7000, n)]); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct{ from, to uint64 }{{1, 0}, {BlockSize - 5, BlockSize + 5}, {BlockSize, BlockSize + 200}, {BlockSize + 100, 0}, {2, BlockSize - 1}} {
		var prev string
		if r.from > 1 {
			prev = evs[r.from-2].Hash
		}
		v := chain.NewVerifier("chain-long", r.from, prev)
		err := s.ReadChain(ctx, "chain-long", r.from, r.to, func(e *chain.Event) error { return v.Add(e) })
		if err != nil {
			t.Fatalf("ReadChain(%d, %d): %v", r.from, r.to, err)
		}
		last := uint64(n)
		if r.to != 0 {
			last = r.to
		}
		if got := v.Checked(); got != last-r.from+1 {
			t.Fatalf("ReadChain(%d, %d): %d events, want %d", r.from, r.to, got, last-r.from+1)
		}
	}

	// A gap at a block boundary: the last event of the first block is deleted from the events
	// table (the summary still claims it). Reading block by block, verification must stop at the
	// missing sequence with a gap, not skip silently across the windows.
	query(t, srv, fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE chain_id = 'chain-long' AND seq = %d", s.cfg.Database, TableEvents, BlockSize-1))
	deadline := time.Now().Add(time.Minute)
	for query(t, srv, fmt.Sprintf("SELECT count() FROM system.mutations WHERE database = '%s' AND table = '%s' AND is_done = 0", s.cfg.Database, TableEvents)) != "0" {
		if time.Now().After(deadline) {
			t.Fatal("mutation not done after a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	v := chain.NewVerifier("chain-long", 1, "")
	err := s.ReadChain(ctx, "chain-long", 1, 0, func(e *chain.Event) error { return v.Add(e) })
	if p := v.Problem(); p == nil || p.Reason != chain.ReasonGap || p.Sequence != BlockSize-1 || !errors.Is(err, p) {
		t.Fatalf("after deleting sequence %d: problem %v, ReadChain error %v; want a gap there", BlockSize-1, p, err)
	}
}

// TestConflictingDuplicateReads: a second row at a stored sequence, inserted with its own valid
// hash (same timestamp, then another one), never stands in for the genuine event: Search (both
// orders, a resource filter) and Get (by either id) all answer with the row that links, flagged;
// the forged row is listed nowhere.
func TestConflictingDuplicateReads(t *testing.T) {
	srv := server(t)
	for _, tc := range []struct {
		name  string
		shift time.Duration
	}{{"same timestamp", 0}, {"another timestamp", 90 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			db := newDatabase("dupreads")
			s := openSink(t, srv, db, Options{}, nil)
			evs := sinktest.GenerateChain("chain-dr", 40, sinktest.GenOptions{Seed: 6})
			if err := s.Write(ctxT(t), evs); err != nil {
				t.Fatal(err)
			}
			genuine := evs[20]
			forged := genuine
			forged.EventID = "00000000-0000-4000-8000-000000000021"
			forged.ResourceID = "forged-" + genuine.ResourceID
			forged.Timestamp = genuine.Timestamp.Add(tc.shift)
			forged.Seal()
			insertRaw(t, rawConn(t, srv), db, []chain.Event{forged})

			check := func(what string, e chain.Event) {
				t.Helper()
				if e.EventID != genuine.EventID || e.Hash != genuine.Hash || !e.ConflictingDuplicate {
					t.Fatalf("%s: got event %s (hash %s, flagged %v), want the genuine one flagged", what, e.EventID, e.Hash, e.ConflictingDuplicate)
				}
			}
			for _, id := range []string{genuine.EventID, forged.EventID} {
				e, err := s.Get(ctxT(t), id)
				if err != nil {
					t.Fatalf("Get(%s): %v", id, err)
				}
				check("Get("+id+")", e)
			}
			for _, q := range []sink.Query{{Limit: 100, Order: sink.Desc}, {Limit: 100, Order: sink.Asc},
				{Limit: 100, Filter: sink.Filter{ResourceID: genuine.ResourceID}}} {
				p, err := s.Search(ctxT(t), q)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, e := range p.Events {
					if e.Sequence == 21 {
						n++
						check(fmt.Sprintf("Search %+v", q), e)
					}
					if e.EventID == forged.EventID {
						t.Fatalf("Search %+v lists the forged row", q)
					}
				}
				if q.Filter.ResourceID == "" && (n != 1 || len(p.Events) != 40) {
					t.Fatalf("Search %+v: %d events, sequence 21 %d times", q, len(p.Events), n)
				}
			}
		})
	}
}
