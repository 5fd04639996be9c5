package sinktest

import (
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// testRetention checks a sink that implements sink.Retainer: a plan never goes past the bound
// nor reaches an event at or after the cutoff, names the stored hash, Retain stores the anchor
// and removes exactly the events up to it (a repeated call removes nothing more), and the head
// stays. Signatures are the host's business: the kit uses a placeholder one.
func testRetention(t *testing.T, s sink.Sink) {
	r, ok := s.(sink.Retainer)
	if !ok {
		t.Skip("sink does not apply retention (no sink.Retainer)")
	}
	const id = "ret-a"
	evs := GenerateChain(id, 30, GenOptions{Seed: 41, MeanGap: time.Minute})
	write(t, s, "the chain", evs)
	ctx := t.Context()
	if p, err := r.PlanRetention(ctx, id, evs[0].Timestamp, 29); err != nil || p.Found {
		t.Fatalf("PlanRetention with the cutoff at the first event = %+v, %v; want nothing", p, err)
	}
	if p, err := r.PlanRetention(ctx, "ret-none", evs[29].Timestamp, 29); err != nil || p.Found {
		t.Fatalf("PlanRetention of an unknown chain = %+v, %v; want nothing", p, err)
	}
	cutoff := evs[20].Timestamp
	p, err := r.PlanRetention(ctx, id, cutoff, 15)
	if err != nil {
		t.Fatalf("PlanRetention: %v", err)
	}
	if !p.Found {
		t.Skip("no whole block of the sink fits below sequence 15 (blocks larger than 15 events)")
	}
	if p.Sequence > 15 || p.Hash != evs[p.Sequence-1].Hash {
		t.Fatalf("PlanRetention(cutoff at 21, bound 15) = %+v; want at most 15, with the stored hash", p)
	}
	a := sink.RetentionAnchor{ChainID: id, Sequence: p.Sequence, Hash: p.Hash, Cutoff: cutoff, Time: cutoff.Add(time.Hour),
		KeyID: "0123456789abcdef", Signature: "placeholder"}
	res, err := r.Retain(ctx, a)
	if err != nil || res.Events != p.Sequence || res.Blocks == 0 {
		t.Fatalf("Retain = %+v, %v; want %d events removed in whole blocks", res, err, p.Sequence)
	}
	if res, err := r.Retain(ctx, a); err != nil || res.Events != 0 {
		t.Fatalf("Retain again = %+v, %v; want nothing more removed", res, err)
	}
	as, err := r.ReadAnchors(ctx, id)
	if err != nil || len(as) == 0 || as[len(as)-1].Sequence != a.Sequence || as[len(as)-1].Hash != a.Hash || as[len(as)-1].Signature != a.Signature {
		t.Fatalf("ReadAnchors = %+v, %v; want the anchor stored", as, err)
	}
	checkHead(t, s, "after retention", id, &evs[29])
	if q, ok := s.(sink.Querier); ok {
		checkReadChain(t, q, "after retention", evs, p.Sequence+1, 0)
		n := 0
		if err := q.ReadChain(ctx, id, 1, p.Sequence, func(*chain.Event) error { n++; return nil }); err != nil || n != 0 {
			t.Fatalf("ReadChain(1, %d) after retention: %d events, %v; want none", p.Sequence, n, err)
		}
	}
}
