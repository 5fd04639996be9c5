// Package sinktest is a conformance kit for audit sink implementations.
//
// GenerateChain produces realistic, valid, deterministic hash chains. Run drives a sink through
// the contract of package sink — writes, idempotency, heads, several chains, Get, ReadChain,
// Chains and, for query-capable sinks, Search against a brute-force model — and reports every
// failure with the case that failed:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) sink.Sink {
//			s := mysink.New()
//			if err := s.Configure(t.Context(), cfg); err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close(context.Background()) })
//			return s
//		})
//	}
//
// newSink must return a configured sink holding no events; it is called once per group of
// subtests.
package sinktest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// forge returns e with another field value and a hash recomputed over it: what someone who
// knows the hash algorithm would write at e's sequence.
func forge(e chain.Event) chain.Event {
	e.ResourceID = "forged-" + e.ResourceID
	e.Seal()
	return e
}

// testConflicts checks that a sink never acknowledges what it did not store: an event whose
// (chainId, sequence) is already stored with another hash fails the Write with an error wrapping
// sink.ErrConflict (at the head; for query sinks also below it, alone or inside a batch that also
// holds new events), stores nothing of that batch, and leaves the stored events as they were.
func testConflicts(t *testing.T, s sink.Sink) {
	const id = "chain-conflict"
	evs := GenerateChain(id, 30, GenOptions{Seed: 303})
	write(t, s, "events 1..20", evs[:20])
	caps, err := s.Capabilities(t.Context())
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	cases := []struct {
		what  string
		batch []chain.Event
	}{
		{"a forged event at the head sequence 20", []chain.Event{forge(evs[19])}},
	}
	if caps.Query {
		// A sink that holds the events must compare any replayed one; a forwarder (write only)
		// knows its head alone, and the host checks the rest.
		cases = append(cases, []struct {
			what  string
			batch []chain.Event
		}{
			{"a forged event at sequence 10, below the head", []chain.Event{forge(evs[9])}},
			{"a batch 18..25 whose event 19 is forged", append(append(append([]chain.Event{}, evs[17]), forge(evs[18])), evs[19:25]...)},
		}...)
	}
	for _, tc := range cases {
		err := s.Write(t.Context(), tc.batch)
		if !errors.Is(err, sink.ErrConflict) {
			t.Fatalf("Write of %s: %v, want an error wrapping sink.ErrConflict (a sink must never acknowledge an event it does not hold)", tc.what, err)
		}
		if !sink.IsPermanent(err) {
			t.Errorf("Write of %s: the conflict is not permanent: %v", tc.what, err)
		}
		checkHead(t, s, "after "+tc.what, id, &evs[19])
	}
	write(t, s, "the genuine events 18..30", evs[17:])
	checkHead(t, s, "after the genuine events", id, &evs[29])
	if q, ok := s.(sink.Querier); caps.Query && ok {
		checkReadChain(t, q, "after refused forgeries", evs, 1, 0)
	}
}

// testCheckpoints checks a sink that keeps signed checkpoints: writes are idempotent, and a
// query sink returns exactly what it was given, per chain, in sequence order.
func testCheckpoints(t *testing.T, s sink.Sink) {
	w, ok := s.(sink.CheckpointWriter)
	if !ok {
		t.Skip("sink does not keep checkpoints (no sink.CheckpointWriter)")
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	mk := func(chainID string, seq uint64) sink.Checkpoint {
		return sink.Checkpoint{ChainID: chainID, Sequence: seq, Hash: fmt.Sprintf("%064x", seq), Time: at.Add(time.Duration(seq) * time.Minute),
			KeyID: "0123456789abcdef", Signature: fmt.Sprintf("sig-%s-%d", chainID, seq)}
	}
	batch := []sink.Checkpoint{mk("cp-a", 20), mk("cp-b", 5), mk("cp-a", 10)}
	for i := 0; i < 2; i++ {
		if err := w.WriteCheckpoints(t.Context(), batch); err != nil {
			t.Fatalf("WriteCheckpoints (call %d): %v", i+1, err)
		}
	}
	r, ok := s.(sink.CheckpointReader)
	if !ok {
		return
	}
	got, err := r.ReadCheckpoints(t.Context(), "cp-a")
	if err != nil {
		t.Fatalf("ReadCheckpoints: %v", err)
	}
	want := []sink.Checkpoint{mk("cp-a", 10), mk("cp-a", 20)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ReadCheckpoints(cp-a) = %v, want %v (written twice: stored once each, in sequence order)", got, want)
	}
	if got, err := r.ReadCheckpoints(t.Context(), "cp-none"); err != nil || len(got) != 0 {
		t.Fatalf("ReadCheckpoints of an unknown chain: %v %v", got, err)
	}
}

// Run runs the conformance suite against sinks made by newSink.
func Run(t *testing.T, newSink func(t *testing.T) sink.Sink) {
	t.Run("Capabilities", func(t *testing.T) { testCapabilities(t, newSink(t)) })
	t.Run("WriteHead", func(t *testing.T) { testWriteHead(t, newSink(t)) })
	t.Run("WriteIdempotent", func(t *testing.T) { testWriteIdempotent(t, newSink(t)) })
	t.Run("MultipleChains", func(t *testing.T) { testMultipleChains(t, newSink(t)) })
	t.Run("Conflicts", func(t *testing.T) { testConflicts(t, newSink(t)) })
	t.Run("Checkpoints", func(t *testing.T) { testCheckpoints(t, newSink(t)) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, newSink(t)) })
	t.Run("Query", func(t *testing.T) {
		s := newSink(t)
		q := querier(t, s)
		ds := newDataset()
		for i, b := range ds.batches {
			if err := s.Write(t.Context(), b); err != nil {
				t.Fatalf("writing dataset batch %d (%d events): %v", i, len(b), err)
			}
		}
		t.Run("Get", func(t *testing.T) { testGet(t, q, ds) })
		t.Run("ReadChain", func(t *testing.T) { testReadChain(t, q, ds) })
		t.Run("Chains", func(t *testing.T) { testChains(t, q, ds) })
		t.Run("Search", func(t *testing.T) { testSearch(t, q, ds) })
	})
	t.Run("SearchWhileWriting", func(t *testing.T) { testSearchWhileWriting(t, newSink) })
}

// querier returns s as a Querier, skipping the test when the sink does not answer queries.
func querier(t *testing.T, s sink.Sink) sink.Querier {
	t.Helper()
	caps, err := s.Capabilities(t.Context())
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	if !caps.Query {
		t.Skip("sink does not answer queries (Capabilities.Query is false)")
	}
	q, ok := s.(sink.Querier)
	if !ok {
		t.Fatalf("Capabilities.Query is true but %T does not implement sink.Querier", s)
	}
	return q
}

func testCapabilities(t *testing.T, s sink.Sink) {
	caps, err := s.Capabilities(t.Context())
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	if !caps.Write {
		t.Errorf("Capabilities.Write is false; every sink under this kit must accept writes")
	}
	if _, ok := s.(sink.Querier); caps.Query && !ok {
		t.Errorf("Capabilities.Query is true but %T does not implement sink.Querier", s)
	}
}

func write(t *testing.T, s sink.Sink, what string, events []chain.Event) {
	t.Helper()
	if err := s.Write(t.Context(), events); err != nil {
		t.Fatalf("%s: Write of %d events: %v", what, len(events), err)
	}
}

func checkHead(t *testing.T, s sink.Sink, what string, chainID string, want *chain.Event) {
	t.Helper()
	h, err := s.Head(t.Context(), chainID)
	if err != nil {
		t.Fatalf("%s: Head(%q): %v", what, chainID, err)
	}
	switch {
	case want == nil && h.Found:
		t.Fatalf("%s: Head(%q) = found sequence %d, want not found", what, chainID, h.Sequence)
	case want == nil:
	case !h.Found:
		t.Fatalf("%s: Head(%q) not found, want sequence %d", what, chainID, want.Sequence)
	case h.Sequence != want.Sequence || h.Hash != want.Hash:
		t.Fatalf("%s: Head(%q) = (%d, %s), want (%d, %s)", what, chainID, h.Sequence, h.Hash, want.Sequence, want.Hash)
	}
}

func testWriteHead(t *testing.T, s sink.Sink) {
	const id = "chain-head"
	evs := GenerateChain(id, 500, GenOptions{Seed: 101})
	checkHead(t, s, "empty sink", id, nil)
	write(t, s, "empty batch", nil)
	checkHead(t, s, "after an empty batch", id, nil)
	pos := 0
	for _, n := range []int{1, 2, 10, 100, 387} {
		write(t, s, fmt.Sprintf("batch %d..%d", pos+1, pos+n), evs[pos:pos+n])
		pos += n
		checkHead(t, s, fmt.Sprintf("after batch ending at %d", pos), id, &evs[pos-1])
	}
	checkHead(t, s, "other chain", "chain-never-written", nil)
}

func testWriteIdempotent(t *testing.T, s sink.Sink) {
	const id = "chain-idem"
	evs := GenerateChain(id, 600, GenOptions{Seed: 202})
	steps := []struct {
		what   string
		lo, hi int // events[lo:hi]
		head   int // expected head sequence afterwards
	}{
		{"first batch 1..200", 0, 200, 200},
		{"same batch again", 0, 200, 200},
		{"overlapping batch 151..400", 150, 400, 400},
		{"stale batch 1..100", 0, 100, 400},
		{"single stored event 400", 399, 400, 400},
		{"everything 1..600", 0, 600, 600},
		{"tail again 591..600", 590, 600, 600},
	}
	for _, st := range steps {
		write(t, s, st.what, evs[st.lo:st.hi])
		checkHead(t, s, "after "+st.what, id, &evs[st.head-1])
	}
	caps, err := s.Capabilities(t.Context())
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	q, ok := s.(sink.Querier)
	if !caps.Query || !ok {
		return
	}
	checkChains(t, q, "after repeated writes", []sink.ChainInfo{{ChainID: id, Count: 600, First: 1, Last: 600}})
	checkReadChain(t, q, "after repeated writes", evs, 1, 0)
	m := newModel(evs)
	checkPaging(t, q, m, searchCase{name: "all events after repeated writes"}, sink.Asc, 1000)
}

func testMultipleChains(t *testing.T, s sink.Sink) {
	ds := newDataset()
	for i, b := range ds.batches {
		write(t, s, fmt.Sprintf("mixed batch %d", i), b)
	}
	for _, c := range ds.chains {
		checkHead(t, s, "after mixed batches", c[0].ChainID, &c[len(c)-1])
	}
	caps, err := s.Capabilities(t.Context())
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	q, ok := s.(sink.Querier)
	if !caps.Query || !ok {
		return
	}
	checkChains(t, q, "after mixed batches", ds.chainInfos())
	for _, c := range ds.chains {
		checkReadChain(t, q, "after mixed batches", c, 1, 0)
	}
}

func testGet(t *testing.T, q sink.Querier, ds *dataset) {
	for _, c := range ds.chains {
		for _, i := range []int{0, 1, len(c) / 2, len(c) - 1} {
			want := &c[i]
			got, err := q.Get(t.Context(), want.EventID)
			if err != nil {
				t.Errorf("Get(%s) of %s: %v", want.EventID, fmtEvent(want), err)
				continue
			}
			if d := diffEvent(want, &got); d != "" {
				t.Errorf("Get(%s) of %s: %s", want.EventID, fmtEvent(want), d)
			}
		}
	}
	const unknown = "00000000-0000-4000-8000-000000000000"
	_, err := q.Get(t.Context(), unknown)
	if !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("Get(%s) of an unknown event: error %v, want one that errors.Is sink.ErrNotFound", unknown, err)
	}
}

// checkReadChain reads chain events[0].ChainID from..to and checks it returns exactly the stored
// events of that range, in order, and that they verify with chain.Verifier.
func checkReadChain(t *testing.T, q sink.Querier, what string, events []chain.Event, from, to uint64) {
	t.Helper()
	id := events[0].ChainID
	var want []chain.Event
	for _, e := range events {
		if e.Sequence >= from && (to == 0 || e.Sequence <= to) {
			want = append(want, e)
		}
	}
	label := fmt.Sprintf("%s: ReadChain(%q, %d, %d)", what, id, from, to)
	var got []chain.Event
	var v *chain.Verifier
	var verr error
	err := q.ReadChain(t.Context(), id, from, to, func(e *chain.Event) error {
		if v == nil {
			prev := ""
			if e.Sequence > 1 {
				for _, x := range events {
					if x.Sequence == e.Sequence-1 {
						prev = x.Hash
					}
				}
			}
			v = chain.NewVerifier(id, e.Sequence, prev)
		}
		if err := v.Add(e); err != nil && verr == nil {
			verr = err
		}
		got = append(got, *e)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if d := diffEvents(want, got); d != "" {
		t.Fatalf("%s: %s", label, d)
	}
	if verr != nil {
		t.Fatalf("%s: chain does not verify: %v", label, verr)
	}
}

func testReadChain(t *testing.T, q sink.Querier, ds *dataset) {
	c := ds.chains[0]
	n := uint64(len(c))
	for _, r := range []struct{ from, to uint64 }{
		{1, 0}, {1, n}, {0, 10}, {123, 0}, {123, 321}, {77, 77}, {n, 0}, {n - 100, n + 1000},
		{n + 1, 0}, {n + 1, n + 5}, {300, 200},
	} {
		checkReadChain(t, q, "dataset", c, r.from, r.to)
	}
	for _, other := range ds.chains[1:] {
		checkReadChain(t, q, "dataset", other, 1, 0)
	}

	calls := 0
	err := q.ReadChain(t.Context(), "chain-unknown", 1, 0, func(*chain.Event) error { calls++; return nil })
	if err != nil && !errors.Is(err, sink.ErrNotFound) || calls != 0 {
		t.Errorf("ReadChain of an unknown chain: %d calls, error %v; want no calls and nil or ErrNotFound", calls, err)
	}

	errStop := errors.New("stop here")
	calls = 0
	err = q.ReadChain(t.Context(), c[0].ChainID, 10, 0, func(*chain.Event) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 3 {
		t.Errorf("ReadChain whose callback fails on the 3rd event: %d calls, error %v; want 3 calls and the callback's error", calls, err)
	}
}

func checkChains(t *testing.T, q sink.Querier, what string, want []sink.ChainInfo) {
	t.Helper()
	got, err := q.Chains(t.Context())
	if err != nil {
		t.Fatalf("%s: Chains: %v", what, err)
	}
	got = slices.Clone(got)
	sort.Slice(got, func(i, j int) bool { return got[i].ChainID < got[j].ChainID })
	if !slices.Equal(got, want) {
		t.Fatalf("%s: Chains() = %+v, want %+v", what, got, want)
	}
}

func testChains(t *testing.T, q sink.Querier, ds *dataset) {
	checkChains(t, q, "dataset", ds.chainInfos())
}
