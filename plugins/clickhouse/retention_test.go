package clickhouse

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// verifyCH runs the shared verifier over the sink with its anchors, as /verify does.
func verifyCH(t *testing.T, s *Sink, chainID string, pub ed25519.PublicKey) checkpoint.Report {
	t.Helper()
	ev := &checkpoint.Evidence{Keys: []ed25519.PublicKey{pub}}
	as, err := s.ReadAnchors(ctxT(t), chainID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		ev.AddAnchors(checkpoint.Anchor(a))
	}
	r, err := checkpoint.Verify(ctxT(t), s.ReadChain, checkpoint.Request{ChainID: chainID, Evidence: ev})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRetentionDropsWholePartitions: on the real server (18.16 unless told otherwise), retention
// drops whole monthly partitions behind a signed anchor: never past the acknowledged bound, never
// a month holding an event at or after the cutoff, never a month shared with another chain; the
// chain verifies before and after (from the anchor), Chains and Get agree, and a forged anchor
// covering a further dropped month is detected.
func TestRetentionDropsWholePartitions(t *testing.T) {
	srv := server(t)
	db := newDatabase("retention")
	rec := &recorder{}
	s := openSink(t, srv, db, Options{QueryHook: rec.hook}, nil)
	const id = "chain-ret"
	start := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	evs := sinktest.GenerateChain(id, 60, sinktest.GenOptions{Seed: 11, Start: start, MeanGap: 8 * 24 * time.Hour})
	if err := s.Write(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	// Another chain shares the sixth month onwards: that month is never dropped.
	var month []string // YYYYMM of each event
	for _, e := range evs {
		month = append(month, e.Timestamp.Format("200601"))
	}
	months := []string{month[0]}
	lastOf := map[string]uint64{}
	for i, m := range month {
		if m != months[len(months)-1] {
			months = append(months, m)
		}
		lastOf[m] = uint64(i + 1)
	}
	if len(months) < 6 {
		t.Fatalf("events span %d months, want at least 6", len(months))
	}
	sixth, _ := time.Parse("200601", months[5])
	other := sinktest.GenerateChain("chain-other", 3, sinktest.GenOptions{Seed: 12, Start: sixth.Add(24 * time.Hour), MeanGap: time.Hour})
	if err := s.Write(ctxT(t), other); err != nil {
		t.Fatal(err)
	}

	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	pub := signer.Public()
	if r := verifyCH(t, s, id, pub); r.Problem != nil || r.Checked != 60 || r.Anchor != nil {
		t.Fatalf("before retention: %+v", r)
	}
	retain := func(cutoff time.Time, upTo uint64) (sink.Head, sink.RetentionResult) {
		t.Helper()
		plan, err := s.PlanRetention(ctxT(t), id, cutoff, upTo)
		if err != nil {
			t.Fatal(err)
		}
		if !plan.Found {
			return plan, sink.RetentionResult{}
		}
		a, err := signer.SignAnchor(id, plan.Sequence, plan.Hash, cutoff, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Retain(ctxT(t), sink.RetentionAnchor(a))
		if err != nil {
			t.Fatal(err)
		}
		return plan, res
	}
	late := evs[59].Timestamp.Add(365 * 24 * time.Hour)

	// Bounded by the acknowledged sequence: only the first month (the second ends above it).
	plan, res := retain(late, lastOf[months[1]]-1)
	if !plan.Found || plan.Sequence != lastOf[months[0]] || plan.Hash != evs[plan.Sequence-1].Hash || res.Blocks != 1 || res.Events != plan.Sequence {
		t.Fatalf("bounded pass: plan %+v, removed %+v; want the first month (1..%d)", plan, res, lastOf[months[0]])
	}
	r := verifyCH(t, s, id, pub)
	if r.Problem != nil || r.From != plan.Sequence+1 || r.Anchor == nil || r.To != 60 {
		t.Fatalf("after the bounded pass: %+v (%v)", r, r.Problem)
	}

	// Bounded by age: the cutoff inside the fourth month keeps it and everything after.
	var cut uint64
	for i := range evs {
		if month[i] == months[3] {
			cut = uint64(i + 1)
			break
		}
	}
	cut++ // the fourth month's second event: the month holds events on both sides of the cutoff
	plan, res = retain(evs[cut-1].Timestamp, 59)
	if !plan.Found || plan.Sequence != lastOf[months[2]] || res.Blocks != 2 {
		t.Fatalf("age pass: plan %+v, removed %+v; want months 2-3 up to %d", plan, res, lastOf[months[2]])
	}
	r = verifyCH(t, s, id, pub)
	if r.Problem != nil || r.Anchor == nil || r.Anchor.Sequence != plan.Sequence || r.Checked != 60-plan.Sequence {
		t.Fatalf("after the age pass: %+v (%v)", r, r.Problem)
	}
	if !strings.Contains(r.Summary(), fmt.Sprintf("retention anchor of sequence %d", plan.Sequence)) {
		t.Errorf("summary: %s", r.Summary())
	}
	chains, err := s.Chains(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.ChainID == id && (c.First != plan.Sequence+1 || c.Last != 60 || c.Count != 60-plan.Sequence) {
			t.Errorf("Chains after retention: %+v, want %d..60", c, plan.Sequence+1)
		}
	}
	if _, err := s.Get(ctxT(t), evs[0].EventID); !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("Get of a removed event: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctxT(t), evs[59].EventID); err != nil {
		t.Errorf("Get of a kept event: %v", err)
	}

	// Even with every event past the cutoff, the month shared with another chain stays.
	plan, _ = retain(late, 59)
	if !plan.Found || plan.Sequence != lastOf[months[4]] {
		t.Fatalf("late pass planned %+v, want up to the fifth month (%d)", plan, lastOf[months[4]])
	}
	if h, err := s.Head(ctxT(t), id); err != nil || h.Sequence != 60 {
		t.Fatalf("head after retention: %+v, %v", h, err)
	}

	// Someone drops the next month too and stores a copy of the anchor claiming it: detected.
	query(t, srv, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", db, TableEvents, months[5]))
	as, err := s.ReadAnchors(ctxT(t), id)
	if err != nil || len(as) == 0 {
		t.Fatal(as, err)
	}
	a := as[len(as)-1]
	query(t, srv, fmt.Sprintf("INSERT INTO %s.audit_retention_anchors VALUES ('%s', %d, '%s', %d, %d, '%s', '%s')",
		db, id, lastOf[months[5]], evs[lastOf[months[5]]-1].Hash, a.Cutoff.UnixMicro(), a.Time.UnixMicro(), a.KeyID, a.Signature))
	r = verifyCH(t, s, id, pub)
	if r.Problem == nil || (r.Problem.Reason != chain.ReasonRetentionAnchor && r.Problem.Reason != chain.ReasonGap) {
		t.Fatalf("a forged anchor hid a dropped month: %+v", r)
	}

	// The same statements on the modern engine (chdb, embedded ClickHouse 26.x), after the modern
	// schema and the same events: every one must run.
	t.Run("modern engine", func(t *testing.T) {
		engine := chtest.RequireChdb(t)
		var insertSQL string
		stmts := append([]string(nil), DDL(Modern, db)...)
		var retention []string
		for _, c := range rec.all {
			switch {
			case c.name == "insert":
				insertSQL = c.sql
			case c.name == "retention_anchor_insert":
				retention = append(retention, c.sql+fmt.Sprintf(" VALUES ('%s', 1, 'h', 0, 0, 'k', 's')", id))
			case strings.HasPrefix(c.name, "retention_"):
				retention = append(retention, c.sql)
			}
		}
		stmts = append(stmts, insertSQL+" VALUES "+valuesOf(t, evs), insertSQL+" VALUES "+valuesOf(t, other))
		stmts = append(stmts, retention...)
		res, err := engine.Run(ctxT(t), "TSV", stmts)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != "" {
				t.Errorf("chdb rejected statement %d:\n%s\nerror: %s", i, r.SQL, r.Err)
			}
		}
		if len(retention) < 6 {
			t.Errorf("only %d retention statements recorded", len(retention))
		}
	})
}
