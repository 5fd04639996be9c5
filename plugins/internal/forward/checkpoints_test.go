package forward

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

func cp(chainID string, seq uint64) sink.Checkpoint {
	return sink.Checkpoint{ChainID: chainID, Sequence: seq, Hash: fmt.Sprintf("%064x", seq),
		Time: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600)), KeyID: "k", Signature: fmt.Sprint("sig-", chainID, seq)}
}

func TestForwarded(t *testing.T) {
	var f Forwarded
	for _, step := range []struct {
		in, want []sink.Checkpoint
	}{
		{[]sink.Checkpoint{cp("a", 1), cp("b", 1), cp("a", 1)}, []sink.Checkpoint{cp("a", 1), cp("b", 1)}},
		{[]sink.Checkpoint{cp("a", 1), cp("b", 1), cp("a", 2)}, []sink.Checkpoint{cp("a", 2)}},
		{[]sink.Checkpoint{cp("a", 2)}, nil},
	} {
		got := f.Fresh(step.in)
		if fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Fatalf("Fresh(%v) = %v, want %v", step.in, got, step.want)
		}
		f.Done(got)
	}
	// Only the last seenLimit are remembered.
	var many []sink.Checkpoint
	for i := range seenLimit + 10 {
		many = append(many, cp("c", uint64(i+1)))
	}
	f.Done(many)
	if got := f.Fresh(many); len(got) != 10 {
		t.Fatalf("after %d more, %d of them are fresh again, want the 10 oldest", len(many), len(got))
	}
	if len(f.seen) != seenLimit || len(f.order) != seenLimit {
		t.Fatalf("remembering %d/%d checkpoints, want %d", len(f.seen), len(f.order), seenLimit)
	}
}

func TestCheckpointLine(t *testing.T) {
	b, err := NewCheckpointLine(cp("a", 7)).JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"chainId":"a","sequence":7,"hash":"` + fmt.Sprintf("%064x", 7) + `","time":"2026-01-02T02:04:05.123456Z","keyId":"k","signature":"sig-a7"}`
	if string(b) != want {
		t.Fatalf("line\n got %s\nwant %s", b, want)
	}
}
