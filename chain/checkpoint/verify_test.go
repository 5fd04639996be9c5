package checkpoint

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// reader serves events as a store would (sequence order, within from..to).
func reader(evs []chain.Event) ReadChainFunc {
	return func(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
		for i := range evs {
			e := &evs[i]
			if e.ChainID != chainID || e.Sequence < from || (to != 0 && e.Sequence > to) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// relink rewrites events from index k on as someone who knows the algorithm would: the edit at k,
// then every later event re-linked and re-hashed.
func relink(evs []chain.Event, k int) []chain.Event {
	out := append([]chain.Event(nil), evs...)
	out[k].ResourceID = "rewritten"
	for i := k; i < len(out); i++ {
		if i > 0 {
			out[i].PreviousHash = out[i-1].Hash
		}
		out[i].Seal()
	}
	return out
}

// TestVerifyAgainstCheckpoints: the one verifier every path uses names each kind of tampering
// with what the checkpoints prove, and says what it covered.
func TestVerifyAgainstCheckpoints(t *testing.T) {
	const id = "chain-v"
	evs := sinktest.GenerateChain(id, 40, sinktest.GenOptions{Seed: 9})
	s := testSigner()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cps := []Checkpoint{sign(t, s, id, 10, evs[9].Hash, at), sign(t, s, id, 20, evs[19].Hash, at.Add(time.Minute)),
		sign(t, s, id, 30, evs[29].Hash, at.Add(2*time.Minute))}
	ev := &Evidence{Path: "cp.ndjson", Checkpoints: cps, Keys: []ed25519.PublicKey{s.Public()}}

	edited := append([]chain.Event(nil), evs...)
	edited[14].ResourceID = "edited"
	ownHash := append([]chain.Event(nil), evs...)
	ownHash[14].ResourceID = "edited"
	ownHash[14].Seal()
	forged := append([]chain.Event(nil), evs[:30]...)
	forged = append(forged, relink(evs, 30)[30:]...)
	tampered := *ev
	bad := cps[1]
	bad.Hash = evs[18].Hash
	tampered.Checkpoints = []Checkpoint{cps[0], bad, cps[2]}

	for _, tc := range []struct {
		name     string
		evs      []chain.Event
		req      Request
		reason   chain.Reason
		seq      uint64
		checked  uint64
		used     uint64 // sequence of the checkpoint used (0: none)
		notYet   uint64
		departs  uint64
		inDetail string
	}{
		{name: "valid", evs: evs, req: Request{Evidence: ev}, checked: 40, used: 30, notYet: 10},
		{name: "valid up to an event", evs: evs, req: Request{To: 25, StoredLast: 40, Evidence: ev}, checked: 25, used: 20, notYet: 5},
		{name: "without checkpoints", evs: evs, req: Request{}, checked: 40, notYet: 40},
		{name: "field edit", evs: edited, req: Request{Evidence: ev}, reason: chain.ReasonHashMismatch, seq: 15, checked: 14, used: 10, notYet: 4},
		{name: "edit with its own hash", evs: ownHash, req: Request{Evidence: ev}, reason: chain.ReasonBrokenLink, seq: 16, checked: 15, used: 10, notYet: 5},
		{name: "re-link from 15", evs: relink(evs, 14), req: Request{Evidence: ev}, reason: chain.ReasonCheckpointMismatch, seq: 20, checked: 19, used: 10, notYet: 9, departs: 10, inDetail: "somewhere in sequences 11..20"},
		{name: "re-link from 3", evs: relink(evs, 2), req: Request{Evidence: ev}, reason: chain.ReasonCheckpointMismatch, seq: 10, checked: 9, notYet: 9, departs: 0, inDetail: "somewhere in sequences 1..10"},
		{name: "tail truncation", evs: evs[:27], req: Request{Evidence: ev}, reason: chain.ReasonTruncated, seq: 28, checked: 27, used: 20, notYet: 7, inDetail: "covers sequence 30"},
		{name: "summary claims more", evs: evs[:35], req: Request{StoredLast: 40, Evidence: ev}, reason: chain.ReasonGap, seq: 36, checked: 35, used: 30, notYet: 5},
		{name: "middle deletion", evs: append(append([]chain.Event(nil), evs[:11]...), evs[12:]...), req: Request{Evidence: ev}, reason: chain.ReasonGap, seq: 12, checked: 11, used: 10, notYet: 1},
		{name: "forged appends after the newest checkpoint", evs: forged, req: Request{Evidence: ev}, checked: 40, used: 30, notYet: 10},
		{name: "edited checkpoint line", evs: evs, req: Request{Evidence: &tampered}, reason: chain.ReasonCheckpointLog, seq: 20, checked: 40, used: 30, notYet: 10, inDetail: "does not verify"},
		{name: "duplicate row", evs: append(append(append([]chain.Event(nil), evs[:5]...), ownHash[4]), evs[5:]...), req: Request{Evidence: ev}, reason: chain.ReasonDuplicate, seq: 5, checked: 4, notYet: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.ChainID = id
			r, err := Verify(context.Background(), reader(tc.evs), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.reason == "" && r.Problem != nil:
				t.Fatalf("problem %v, want none", r.Problem)
			case tc.reason != "" && (r.Problem == nil || r.Problem.Reason != tc.reason || r.Problem.Sequence != tc.seq):
				t.Fatalf("problem %+v, want %s at %d", r.Problem, tc.reason, tc.seq)
			case tc.inDetail != "" && !strings.Contains(r.Problem.Detail, tc.inDetail):
				t.Fatalf("detail %q lacks %q", r.Problem.Detail, tc.inDetail)
			}
			used := uint64(0)
			if r.Used != nil {
				used = r.Used.Sequence
			}
			if r.Checked != tc.checked || used != tc.used || r.NotYetCovered != tc.notYet || r.DepartsAfter != tc.departs {
				t.Fatalf("checked %d used %d notYet %d departsAfter %d; want %d %d %d %d (%s)",
					r.Checked, used, r.NotYetCovered, r.DepartsAfter, tc.checked, tc.used, tc.notYet, tc.departs, r.Summary())
			}
		})
	}
}

func TestLoadEvidenceWarns(t *testing.T) {
	dir := t.TempDir()
	s := testSigner()
	line := func(seq uint64) string {
		c := sign(t, s, "c", seq, strings.Repeat("ab", 32), testTime)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	for _, tc := range []struct {
		name, content string
		missing       bool
		n             int
		warn          string
	}{
		{name: "missing", missing: true, warn: "no checkpoint log"},
		{name: "empty", content: "", warn: "is empty"},
		{name: "torn", content: line(1) + line(2)[:40], n: 1, warn: "is torn"},
		{name: "whole", content: line(1) + line(2), n: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".ndjson")
			if !tc.missing {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ev, err := LoadEvidence(path, s.Public())
			if err != nil {
				t.Fatal(err)
			}
			if len(ev.Checkpoints) != tc.n {
				t.Fatalf("%d checkpoints, want %d", len(ev.Checkpoints), tc.n)
			}
			got := strings.Join(ev.Warnings, "; ")
			if (tc.warn == "") != (got == "") || !strings.Contains(got, tc.warn) {
				t.Fatalf("warnings %q, want %q", got, tc.warn)
			}
		})
	}
}
