package forward

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// evs builds events from (chain, sequence) pairs; their hash is derived from both.
func evs(spec ...any) []chain.Event {
	var out []chain.Event
	for i := 0; i+1 < len(spec); i += 2 {
		c, n := spec[i].(string), spec[i+1].(int)
		sum := sha256.Sum256([]byte(fmt.Sprint(c, n)))
		out = append(out, chain.Event{ChainID: c, Sequence: uint64(n), Hash: hex.EncodeToString(sum[:])})
	}
	return out
}

func seqs(es []chain.Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ChainID+":"+string(rune('0'+e.Sequence)))
	}
	return out
}

func TestHeadsFresh(t *testing.T) {
	var h Heads
	h.Delivered(evs("a", 1, "a", 2, "a", 3, "b", 1))
	for _, tc := range []struct {
		name  string
		batch []chain.Event
		want  []chain.Event
	}{
		{"all new", evs("a", 4, "a", 5), evs("a", 4, "a", 5)},
		{"all old", evs("a", 1, "a", 2, "a", 3, "b", 1), nil},
		{"overlap", evs("a", 2, "a", 3, "a", 4), evs("a", 4)},
		{"two chains mixed", evs("b", 1, "a", 4, "b", 2, "c", 1), evs("a", 4, "b", 2, "c", 1)},
		{"repeat within the batch", evs("a", 4, "a", 4, "a", 5), evs("a", 4, "a", 5)},
		{"empty", nil, nil},
	} {
		got, err := h.Fresh(tc.batch)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(seqs(got), seqs(tc.want)) {
			t.Errorf("%s: Fresh = %v, want %v", tc.name, seqs(got), seqs(tc.want))
		}
	}
	// Another hash at a delivered sequence: a conflict, and nothing of the batch is fresh.
	forged := evs("a", 2)
	forged[0].Hash = evs("z", 2)[0].Hash
	if got, err := h.Fresh(append(evs("a", 4), forged...)); !errors.Is(err, sink.ErrConflict) || !sink.IsPermanent(err) || got != nil {
		t.Fatalf("forged event below the head: %v, %v; want a permanent conflict", seqs(got), err)
	}
	h.Delivered(evs("a", 5, "a", 4))
	if hd := h.Head("a"); !hd.Found || hd.Sequence != 5 {
		t.Fatalf("Head(a) = %+v, want sequence 5", hd)
	}
	if hd := h.Head("z"); hd.Found {
		t.Fatalf("Head(z) = %+v, want not found", hd)
	}
}
