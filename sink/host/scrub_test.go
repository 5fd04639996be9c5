package host

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// memStore is a query store in memory whose rows a test edits behind the scrub's back.
type memStore struct {
	mu     sync.Mutex
	events []chain.Event // by sequence, from 1
}

func (m *memStore) set(e chain.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events[e.Sequence-1] = e
}

func (m *memStore) Search(context.Context, sink.Query) (sink.Page, error) {
	return sink.Page{}, sink.ErrUnsupported
}
func (m *memStore) Get(context.Context, string) (chain.Event, error) {
	return chain.Event{}, sink.ErrUnsupported
}

func (m *memStore) ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	m.mu.Lock()
	evs := append([]chain.Event(nil), m.events...)
	m.mu.Unlock()
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

func (m *memStore) Chains(context.Context) ([]sink.ChainInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := uint64(len(m.events))
	return []sink.ChainInfo{{ChainID: m.events[0].ChainID, Count: n, First: 1, Last: n}}, nil
}

// reseal returns e changed by someone who knows the hash algorithm.
func reseal(e chain.Event, prev string) chain.Event {
	e.ResourceID = "forged-" + e.ResourceID
	if prev != "" {
		e.PreviousHash = prev
	}
	e.Seal()
	return e
}

// TestScrubFindsEditsAcrossBatchesAndPasses: the scrub walks the acknowledged chain batch by
// batch (the link into each batch checked against the previous one), starts over at the end,
// names a problem by sequence in its gauge, readiness text and log, reports it once while it
// stays, clears it after a clean pass, and checks the signed checkpoints.
func TestScrubFindsEditsAcrossBatchesAndPasses(t *testing.T) {
	const id = "chain-scrub"
	genuine := sinktest.GenerateChain(id, 25, sinktest.GenOptions{Seed: 505})
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := checkpoint.NewSigner(priv)
	cp, err := signer.Sign(id, 20, genuine[19].Hash, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{events: append([]chain.Event(nil), genuine...)}
	reg := prometheus.NewRegistry()
	m := NewScrubMetrics(reg)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	sc := newScrubber(scrubTarget{name: "s", querier: func() (sink.Querier, error) { return store, nil },
		chainID: func() string { return id }, acked: func() uint64 { return 25 }},
		ScrubConfig{Interval: time.Hour, Batch: 10, Evidence: func(string) (*checkpoint.Evidence, error) {
			return &checkpoint.Evidence{Checkpoints: []checkpoint.Checkpoint{cp}, Keys: []ed25519.PublicKey{signer.Public()}}, nil
		}}, m, log)
	step := func() {
		t.Helper()
		if err := sc.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	gauge := func(g *prometheus.GaugeVec) float64 { return testutil.ToFloat64(g.WithLabelValues("s")) }
	pass := func() { // one full pass: 3 batches of at most 10 events
		t.Helper()
		for range 3 {
			step()
		}
	}

	pass()
	if sc.Problem() != "" || gauge(m.lastPass) == 0 || testutil.ToFloat64(m.events.WithLabelValues("s")) != 25 {
		t.Fatalf("clean pass: problem %q, last pass %v, verified %v", sc.Problem(), gauge(m.lastPass), testutil.ToFloat64(m.events.WithLabelValues("s")))
	}

	cases := []struct {
		name   string
		tamper func()
		seq    uint64
		reason string
	}{
		{"field edit in the second batch", func() { e := genuine[14]; e.ResourceID = "edited"; store.set(e) }, 15, "hash mismatch"},
		// Event 10 ends the first batch with a valid hash of its own: the link into the second
		// batch is what breaks.
		{"edit with its own hash at a batch boundary", func() { store.set(reseal(genuine[9], "")) }, 11, "broken link"},
		{"re-link from 12 (checkpoint at 20)", func() {
			prev := genuine[10].Hash
			for _, e := range genuine[11:] {
				f := reseal(e, prev)
				store.set(f)
				prev = f.Hash
			}
		}, 20, "checkpoint mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper()
			want := fmt.Sprintf("sequence %d (%s)", tc.seq, tc.reason)
			before := testutil.ToFloat64(m.problems.WithLabelValues("s"))
			for i := 0; i < 6 && sc.Problem() == ""; i++ {
				step()
			}
			if p := sc.Problem(); !strings.Contains(p, want) || gauge(m.problem) != 1 || gauge(m.problSeq) != float64(tc.seq) {
				t.Fatalf("problem %q (gauge %v, sequence %v), want %q", p, gauge(m.problem), gauge(m.problSeq), want)
			}
			pass() // found again: still one problem
			if n := testutil.ToFloat64(m.problems.WithLabelValues("s")); n != before+1 {
				t.Fatalf("problems_total %v, want %v", n, before+1)
			}
			l := logs.String()
			if !strings.Contains(l, "scrub: the query sink's stored chain is broken") || !strings.Contains(l, fmt.Sprintf("sequence=%d", tc.seq)) {
				t.Fatalf("log:\n%s", l)
			}
			for _, e := range genuine { // the operator restores the rows
				store.set(e)
			}
			for i := 0; i < 6 && sc.Problem() != ""; i++ {
				step()
			}
			if sc.Problem() != "" || gauge(m.problem) != 0 || gauge(m.problSeq) != 0 {
				t.Fatalf("not cleared after a clean pass: %q", sc.Problem())
			}
		})
	}
}

// lockedBuffer collects log output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
