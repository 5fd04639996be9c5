package file

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// dirReader reads a chain from every event file of dir, in name (= time) order.
func dirReader(t *testing.T, dir string) checkpoint.ReadChainFunc {
	return func(_ context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
		var evs []chain.Event
		for _, p := range eventFiles(t, dir) { // the event files only, not the anchor file
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var e chain.Event
				if err := json.Unmarshal(line, &e); err != nil {
					return err
				}
				evs = append(evs, e)
			}
		}
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

func verifyDir(t *testing.T, s *Sink, dir, chainID string, pub ed25519.PublicKey) checkpoint.Report {
	t.Helper()
	ev := &checkpoint.Evidence{Keys: []ed25519.PublicKey{pub}}
	as, err := s.ReadAnchors(t.Context(), chainID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		ev.AddAnchors(checkpoint.Anchor(a))
	}
	r, err := checkpoint.Verify(t.Context(), dirReader(t, dir), checkpoint.Request{ChainID: chainID, Evidence: ev})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func eventFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "audit-*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// TestRetentionRemovesRotatedFilesByAge: rotated files whose events are all older than the cutoff
// and within the acknowledged bound go, whole and oldest first, behind a signed anchor; the file
// being appended to, a file with an event at or after the cutoff and a file beyond the bound
// stay; the directory verifies before and after (from the anchor); a forged anchor covering a
// further removed file does not hide it.
func TestRetentionRemovesRotatedFilesByAge(t *testing.T) {
	const id = "chain-f"
	dir := t.TempDir()
	evs := sinktest.GenerateChain(id, 60, sinktest.GenOptions{Seed: 5, MeanGap: 10 * time.Minute})
	var clock time.Time
	s, _ := newSink(t, dir, `, "rotate_every": "1h"`, func(s *Sink) { s.now = func() time.Time { return clock } })
	for i := range evs { // one write per event at its own time: a file per hour
		clock = evs[i].Timestamp
		if err := s.Write(t.Context(), evs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	files := eventFiles(t, dir)
	if len(files) < 6 {
		t.Fatalf("%d files, want one per hour", len(files))
	}
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	pub := signer.Public()
	if r := verifyDir(t, s, dir, id, pub); r.Problem != nil || r.Checked != 60 {
		t.Fatalf("before retention: %+v", r)
	}
	retain := func(cutoff time.Time, upTo uint64) (sink.Head, sink.RetentionResult) {
		t.Helper()
		plan, err := s.PlanRetention(t.Context(), id, cutoff, upTo)
		if err != nil {
			t.Fatal(err)
		}
		if !plan.Found {
			return plan, sink.RetentionResult{}
		}
		a, err := signer.SignAnchor(id, plan.Sequence, plan.Hash, cutoff, cutoff.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Retain(t.Context(), sink.RetentionAnchor(a))
		if err != nil {
			t.Fatal(err)
		}
		return plan, res
	}

	// Bound by what every sink acknowledged: nothing above sequence 12 goes.
	plan, res := retain(evs[59].Timestamp, 12)
	if !plan.Found || plan.Sequence > 12 || res.Blocks == 0 || res.Events != plan.Sequence {
		t.Fatalf("bounded pass: plan %+v removed %+v", plan, res)
	}
	r := verifyDir(t, s, dir, id, pub)
	if r.Problem != nil || r.Anchor == nil || r.From != plan.Sequence+1 || r.To != 60 {
		t.Fatalf("after the bounded pass: %+v (%v)", r, r.Problem)
	}

	// Bound by age: event 40 and everything after it stay, and the file holding it.
	cutoff := evs[39].Timestamp
	plan2, res2 := retain(cutoff, 59)
	if !plan2.Found || plan2.Sequence >= 40 || plan2.Sequence <= plan.Sequence || res2.Events != plan2.Sequence-plan.Sequence {
		t.Fatalf("age pass: plan %+v removed %+v", plan2, res2)
	}
	var left []chain.Event
	_ = dirReader(t, dir)(t.Context(), id, 0, 0, func(e *chain.Event) error { left = append(left, *e); return nil })
	if left[0].Sequence != plan2.Sequence+1 {
		t.Fatalf("first event left: %d", left[0].Sequence)
	}
	r = verifyDir(t, s, dir, id, pub)
	if r.Problem != nil || r.Anchor == nil || r.Anchor.Sequence != plan2.Sequence || r.Checked != 60-plan2.Sequence {
		t.Fatalf("after the age pass: %+v (%v)", r, r.Problem)
	}
	if !strings.Contains(r.Summary(), "retention anchor") {
		t.Errorf("summary: %s", r.Summary())
	}
	// Nothing more qualifies; the newest file is never touched.
	if p, _ := retain(cutoff, 59); p.Found {
		t.Fatalf("a second pass planned %+v", p)
	}
	if p, _ := retain(evs[59].Timestamp.Add(time.Hour), 60); p.Found && p.Sequence >= 60 {
		t.Fatalf("the file being appended to was planned for removal: %+v", p)
	}

	// Someone removes the next file and forges an anchor claiming it: detected.
	files = eventFiles(t, dir)
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	as, _ := s.ReadAnchors(t.Context(), id)
	forged := as[len(as)-1]
	forged.Sequence += 10
	f, err := os.OpenFile(filepath.Join(dir, AnchorFile("audit")), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := `{"chainId":"` + id + `","sequence":` + strconv.FormatUint(forged.Sequence, 10) + `,"hash":"` + forged.Hash + `","cutoff":"` +
		forged.Cutoff.Format(chain.TimestampLayout) + `","time":"` + forged.Time.Format(chain.TimestampLayout) + `","keyId":"` + forged.KeyID + `","signature":"` + forged.Signature + "\"}\n"
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r = verifyDir(t, s, dir, id, pub)
	if r.Problem == nil || (r.Problem.Reason != chain.ReasonRetentionAnchor && r.Problem.Reason != chain.ReasonGap) {
		t.Fatalf("a forged anchor hid a removed file: %+v", r)
	}
}
