package checkpoint

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func signAnchor(t testing.TB, s *Signer, chainID string, seq uint64, hash string, cutoff, at time.Time) Anchor {
	t.Helper()
	a, err := s.SignAnchor(chainID, seq, hash, cutoff, at)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestVerifyFromRetentionAnchor: after retention the chain verifies from the newest valid anchor
// and says so; an anchor nobody with the key signed (forged, unsigned, another key, a checkpoint
// passed off as one) never hides the missing events, and events missing after a valid anchor are
// still a gap.
func TestVerifyFromRetentionAnchor(t *testing.T) {
	const id = "chain-r"
	evs := sinktest.GenerateChain(id, 40, sinktest.GenOptions{Seed: 3})
	s := testSigner()
	other := NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cutoff := at.Add(-time.Hour)
	cp30 := sign(t, s, id, 30, evs[29].Hash, at)
	cp10 := sign(t, s, id, 10, evs[9].Hash, at.Add(-2*time.Hour))
	good := signAnchor(t, s, id, 15, evs[14].Hash, cutoff, at)
	older := signAnchor(t, s, id, 5, evs[4].Hash, cutoff.Add(-time.Hour), at.Add(-time.Hour))
	forged := good
	forged.Sequence = 20 // claims more than was signed
	unsigned := good
	unsigned.Signature = ""
	byOther := signAnchor(t, other, id, 15, evs[14].Hash, cutoff, at)
	fromCheckpoint := Anchor{ChainID: id, Sequence: cp30.Sequence, Hash: cp30.Hash, Cutoff: cp30.Time, Time: cp30.Time, KeyID: cp30.KeyID, Signature: cp30.Signature}
	wrongHash := signAnchor(t, s, id, 10, evs[11].Hash, cutoff, at) // disagrees with cp10

	after := func(n int) []chain.Event { return evs[n:] } // events 1..n removed
	tests := []struct {
		name       string
		events     []chain.Event
		anchors    []Anchor
		wantFrom   uint64
		wantAnchor uint64 // 0: none used
		wantReason chain.Reason
	}{
		{"before retention", evs, nil, 1, 0, ""},
		{"anchor stored, events not yet removed", evs, []Anchor{good}, 16, 15, ""},
		{"after retention", after(15), []Anchor{older, good}, 16, 15, ""},
		{"everything removed up to the anchor", nil, []Anchor{signAnchor(t, s, id, 40, evs[39].Hash, cutoff, at)}, 41, 40, ""},
		{"removed without an anchor", after(15), nil, 1, 0, chain.ReasonGap},
		{"only the older anchor left", after(15), []Anchor{older}, 6, 5, chain.ReasonGap},
		{"more removed than the anchor says", after(20), []Anchor{good}, 16, 15, chain.ReasonGap},
		{"forged anchor", after(20), []Anchor{forged}, 1, 0, chain.ReasonGap},
		{"forged anchor beside a valid one", after(15), []Anchor{good, forged}, 16, 15, chain.ReasonRetentionAnchor},
		{"unsigned anchor", after(15), []Anchor{unsigned}, 1, 0, chain.ReasonGap},
		{"anchor by an unknown key", after(15), []Anchor{byOther}, 1, 0, chain.ReasonGap},
		{"checkpoint passed off as an anchor", after(30), []Anchor{fromCheckpoint}, 1, 0, chain.ReasonGap},
		{"anchor disagreeing with a checkpoint", after(10), []Anchor{wrongHash}, 11, 10, chain.ReasonBrokenLink},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Evidence{Checkpoints: []Checkpoint{cp10, cp30}, Keys: []ed25519.PublicKey{s.Public()}}
			ev.AddAnchors(tc.anchors...)
			r, err := Verify(t.Context(), reader(tc.events), Request{ChainID: id, Evidence: ev})
			if err != nil {
				t.Fatal(err)
			}
			if r.From != tc.wantFrom {
				t.Errorf("From = %d, want %d", r.From, tc.wantFrom)
			}
			switch {
			case tc.wantAnchor == 0 && r.Anchor != nil:
				t.Errorf("anchor %d used, want none", r.Anchor.Sequence)
			case tc.wantAnchor != 0 && (r.Anchor == nil || r.Anchor.Sequence != tc.wantAnchor):
				t.Errorf("anchor used = %v, want sequence %d", r.Anchor, tc.wantAnchor)
			}
			var got chain.Reason
			if r.Problem != nil {
				got = r.Problem.Reason
			}
			if got != tc.wantReason {
				t.Fatalf("problem = %v, want reason %q", r.Problem, tc.wantReason)
			}
			sum := r.Summary()
			if strings.Contains(strings.ToLower(sum), "truncat") {
				t.Errorf("summary calls retention truncation: %s", sum)
			}
			if tc.wantAnchor != 0 && !strings.Contains(sum, "retention anchor of sequence") {
				t.Errorf("summary does not say where verification started: %s", sum)
			}
		})
	}
}

// TestVerifyWindowAfterAnchor: a bounded verification (From above 1) that starts inside the
// removed range starts from the anchor; one that ends before the anchor ignores it.
func TestVerifyWindowAfterAnchor(t *testing.T) {
	const id = "chain-w"
	evs := sinktest.GenerateChain(id, 20, sinktest.GenOptions{Seed: 4})
	s := testSigner()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ev := &Evidence{Keys: []ed25519.PublicKey{s.Public()}}
	ev.AddAnchors(signAnchor(t, s, id, 8, evs[7].Hash, at, at))
	if !ev.StartsAfterAnchor(id, 5) || ev.StartsAfterAnchor(id, 12) {
		t.Fatal("StartsAfterAnchor disagrees with the anchor at 8")
	}
	r, err := Verify(t.Context(), reader(evs[8:]), Request{ChainID: id, From: 5, PrevHash: "x", To: 15, Evidence: ev})
	if err != nil || r.Problem != nil || r.From != 9 || r.Checked != 7 {
		t.Fatalf("window 5..15 = %+v, %v; want 9..15 from the anchor", r, err)
	}
	r, err = Verify(t.Context(), reader(evs), Request{ChainID: id, To: 6, Evidence: ev})
	if err != nil || r.Problem != nil || r.Anchor != nil || r.Checked != 6 {
		t.Fatalf("range 1..6 = %+v, %v; want verified from the genesis", r, err)
	}
}

func TestAnchorSignatureCoversEveryField(t *testing.T) {
	s := testSigner()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := signAnchor(t, s, "c", 3, strings.Repeat("ab", 32), at.Add(-time.Hour), at)
	if err := a.Verify(s.Public()); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Anchor){
		"chain":    func(a *Anchor) { a.ChainID = "d" },
		"sequence": func(a *Anchor) { a.Sequence++ },
		"hash":     func(a *Anchor) { a.Hash = strings.Repeat("cd", 32) },
		"cutoff":   func(a *Anchor) { a.Cutoff = a.Cutoff.Add(time.Microsecond) },
		"time":     func(a *Anchor) { a.Time = a.Time.Add(time.Second) },
	} {
		b := a
		edit(&b)
		if b.Verify(s.Public()) == nil {
			t.Errorf("editing the %s keeps the signature valid", name)
		}
	}
}
