package sinktest

import (
	"errors"
	"slices"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// testRepair checks a sink that implements sink.Repairer (what `flowker-audit sink repair`
// uses): DropRows removes exactly the rows named by sequence and hash (a hash that is not stored
// at that sequence removes nothing), the head and Chains follow the rows left, an empty call only
// rebuilds the summary, and a dropped sequence can be written again (the genuine event restored
// below the head, the tail delivered again).
func testRepair(t *testing.T, s sink.Sink) {
	r, ok := s.(sink.Repairer)
	if !ok {
		t.Skip("sink cannot be repaired (no sink.Repairer)")
	}
	q := querier(t, s)
	const id = "chain-repair"
	evs := GenerateChain(id, 20, GenOptions{Seed: 404})
	write(t, s, "events 1..20", evs)
	drop := func(what string, want int, rows ...sink.RowRef) {
		t.Helper()
		n, err := r.DropRows(t.Context(), id, rows)
		if err != nil {
			t.Fatalf("DropRows (%s): %v", what, err)
		}
		if n != want {
			t.Fatalf("DropRows (%s) dropped %d rows, want %d", what, n, want)
		}
	}
	ref := func(e chain.Event) sink.RowRef { return sink.RowRef{Sequence: e.Sequence, Hash: e.Hash} }
	stored := func(what string) []uint64 {
		t.Helper()
		var seqs []uint64
		if err := q.ReadChain(t.Context(), id, 1, 0, func(e *chain.Event) error {
			seqs = append(seqs, e.Sequence)
			return nil
		}); err != nil {
			t.Fatalf("%s: ReadChain: %v", what, err)
		}
		return seqs
	}
	seqRange := func(lo, hi uint64, skip ...uint64) []uint64 {
		var out []uint64
		for s := lo; s <= hi; s++ {
			if !slices.Contains(skip, s) {
				out = append(out, s)
			}
		}
		return out
	}

	drop("a hash that is not stored at sequence 20", 0, sink.RowRef{Sequence: 20, Hash: forge(evs[19]).Hash})
	checkHead(t, s, "after dropping nothing", id, &evs[19])
	drop("the tail 18..20", 3, ref(evs[17]), ref(evs[18]), ref(evs[19]))
	checkHead(t, s, "after dropping 18..20", id, &evs[16])
	checkChains(t, q, "after dropping 18..20", []sink.ChainInfo{{ChainID: id, Count: 17, First: 1, Last: 17}})
	drop("sequence 10 below the head", 1, ref(evs[9]))
	if got := stored("after dropping 10"); !slices.Equal(got, seqRange(1, 17, 10)) {
		t.Fatalf("after dropping 10: stored sequences %v", got)
	}
	checkHead(t, s, "after dropping 10", id, &evs[16])
	if _, err := q.Get(t.Context(), evs[9].EventID); !errors.Is(err, sink.ErrNotFound) {
		t.Fatalf("Get of the dropped event 10: %v, want sink.ErrNotFound", err)
	}
	checkChains(t, q, "after dropping 10", []sink.ChainInfo{{ChainID: id, Count: 16, First: 1, Last: 17}})
	drop("no row (the summary only)", 0)
	checkChains(t, q, "after an empty repair", []sink.ChainInfo{{ChainID: id, Count: 16, First: 1, Last: 17}})
	write(t, s, "the genuine event 10 written back below the head", evs[9:10])
	write(t, s, "the tail 18..20 delivered again", evs[17:])
	checkHead(t, s, "after the repair", id, &evs[19])
	checkReadChain(t, q, "after the repair", evs, 1, 0)
	for _, e := range []chain.Event{evs[9], evs[19]} {
		got, err := q.Get(t.Context(), e.EventID)
		if err != nil || got.Hash != e.Hash {
			t.Fatalf("Get of restored event %d: %v (hash %s, want %s)", e.Sequence, err, got.Hash, e.Hash)
		}
	}
	checkChains(t, q, "after the repair", []sink.ChainInfo{{ChainID: id, Count: 20, First: 1, Last: 20}})
}
