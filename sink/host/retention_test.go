package host

import (
	"crypto/ed25519"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host/internal/memsource"
)

// testAnchorSigner signs anchors with a fixed test key.
func testAnchorSigner() (AnchorSigner, ed25519.PublicKey) {
	s := checkpoint.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	return func(chainID string, seq uint64, hash string, cutoff, now time.Time) (sink.RetentionAnchor, error) {
		a, err := s.SignAnchor(chainID, seq, hash, cutoff, now)
		return sink.RetentionAnchor(a), err
	}, s.Public()
}

// verifyStore runs the shared verifier over a query sink with its anchors, as /verify does.
func verifyStore(t *testing.T, q *sink.Client, chainID string, pub ed25519.PublicKey) checkpoint.Report {
	t.Helper()
	ev := &checkpoint.Evidence{Keys: []ed25519.PublicKey{pub}}
	as, err := q.ReadAnchors(t.Context(), chainID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		ev.AddAnchors(checkpoint.Anchor(a))
	}
	r, err := checkpoint.Verify(t.Context(), q.ReadChain, checkpoint.Request{ChainID: chainID, Evidence: ev})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lastBefore returns the highest sequence whose event and every earlier one is older than cutoff.
func lastBefore(evs []chain.Event, cutoff time.Time) uint64 {
	var n uint64
	for _, e := range evs {
		if !e.Timestamp.Before(cutoff) {
			break
		}
		n = e.Sequence
	}
	return n
}

// TestRetentionSQLite drives retention through the host into a real SQLite plugin: nothing
// another sink has not acknowledged is removed, nothing at or after the cutoff, removal goes in
// whole blocks behind a signed anchor, and the store verifies before and after (from the anchor),
// while a forged anchor hiding a real deletion is reported.
func TestRetentionSQLite(t *testing.T) {
	const id = "chain-ret"
	src := memsource.New(id)
	src.Append(300, 0)
	dbPath := filepath.Join(t.TempDir(), "audit.db")
	cfg := testConfig("a", selfLaunch(t, "sqlite"), map[string]any{"path": dbPath})
	cfg.Query, cfg.Retention = true, time.Hour
	h := start(t, cfg, src)
	h.waitDelivered(300)
	other := NewSupervisor(testConfig("b", selfLaunch(t, "applog"), nil), src, nil, nil) // never started
	src.SetCursor("b", 120)

	sign, pub := testAnchorSigner()
	evs := src.Events(1, 300)
	cutoff := evs[250].Timestamp // event 251 is the first not older than the cutoff
	ret := &Retention{Sinks: []*Supervisor{h.sup, other}, Source: src, Sign: sign, Metrics: NewRetentionMetrics(h.reg),
		Now: func() time.Time { return cutoff.Add(time.Hour) }}
	q, err := h.sup.Querier()
	if err != nil {
		t.Fatal(err)
	}
	qc := q.(*sink.Client)
	if r := verifyStore(t, qc, id, pub); r.Problem != nil || r.Checked != 300 || r.Anchor != nil {
		t.Fatalf("before retention: %+v", r)
	}

	// Sink b acknowledged 120: at most 119 may go (every sink keeps its head event).
	res, err := ret.ApplySink(t.Context(), h.sup)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 119 || res.Blocks != 3 {
		t.Fatalf("first pass removed %+v, want 119 events in 3 blocks of at most 50", res)
	}
	r := verifyStore(t, qc, id, pub)
	if r.Problem != nil || r.From != 120 || r.Anchor == nil || r.Anchor.Sequence != 119 || r.Checked != 181 {
		t.Fatalf("after the first pass: %+v (%v)", r, r.Problem)
	}
	if !strings.Contains(r.Summary(), "retention anchor of sequence 119") {
		t.Errorf("summary does not say where verification started: %s", r.Summary())
	}

	// Once b caught up, the cutoff bounds retention: event 251 and later stay.
	src.SetCursor("b", 300)
	ret.Apply(t.Context())
	want := lastBefore(evs, cutoff)
	if want > 250 || want < 120 {
		t.Fatalf("test events: %d older than the cutoff", want)
	}
	r = verifyStore(t, qc, id, pub)
	if r.Problem != nil || r.Anchor == nil || r.Anchor.Sequence != want || r.From != want+1 || r.To != 300 {
		t.Fatalf("after the second pass: %+v (%v), want verified from %d", r, r.Problem, want+1)
	}
	if got := testutil.ToFloat64(ret.Metrics.events.WithLabelValues("a")); got != float64(want) {
		t.Errorf("removed events metric = %v, want %d", got, want)
	}
	if got := testutil.ToFloat64(ret.Metrics.anchor.WithLabelValues("a")); got != float64(want) {
		t.Errorf("anchor sequence metric = %v, want %d", got, want)
	}
	if h, err := qc.Head(t.Context(), id); err != nil || h.Sequence != 300 {
		t.Fatalf("head after retention = %+v, %v", h, err)
	}
	// A second pass removes nothing more.
	if res, err := ret.ApplySink(t.Context(), h.sup); err != nil || res.Events != 0 {
		t.Fatalf("repeated pass removed %+v, %v", res, err)
	}

	// Someone with write access deletes more and stores a copy of the anchor claiming more: the
	// signature does not cover the edit, and the deletion shows.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM events WHERE chain_id = ? AND seq <= 280`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO retention_anchors SELECT chain_id, 280, hash, cutoff_us, time_us, key_id, signature FROM retention_anchors WHERE seq = ?`, want); err != nil {
		t.Fatal(err)
	}
	r = verifyStore(t, qc, id, pub)
	if r.Problem == nil || r.Problem.Reason != chain.ReasonRetentionAnchor && r.Problem.Reason != chain.ReasonGap {
		t.Fatalf("a forged anchor hid a deletion: %+v", r)
	}
}

// TestRetentionRefusedWithoutRetainer: a sink whose plugin cannot retain is reported, nothing
// else happens.
func TestRetentionRefusedWithoutRetainer(t *testing.T) {
	src := memsource.New("chain-n")
	src.Append(20, 0)
	cfg := testConfig("n", selfLaunch(t, "applog"), map[string]any{"path": filepath.Join(t.TempDir(), "log")})
	cfg.Retention = time.Hour
	h := start(t, cfg, src)
	h.waitDelivered(20)
	sign, _ := testAnchorSigner()
	ret := &Retention{Sinks: []*Supervisor{h.sup}, Source: src, Sign: sign, Metrics: NewRetentionMetrics(nil)}
	if _, err := ret.ApplySink(t.Context(), h.sup); !errors.Is(err, ErrNoRetention) {
		t.Fatalf("ApplySink = %v, want ErrNoRetention", err)
	}
	ret.Apply(t.Context())
	if got := testutil.ToFloat64(ret.Metrics.errors.WithLabelValues("n")); got != 1 {
		t.Errorf("errors metric = %v, want 1", got)
	}
}
