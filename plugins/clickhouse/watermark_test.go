package clickhouse

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// TestReadHorizon: two writers (chains A and B) share one table with the read horizon on.
// Searches serve exactly the events at or below the lowest live watermark, which is a prefix of
// the final trail in either order; a heartbeat advances an idle chain; a chain whose watermark is
// older than horizon_staleness no longer holds the others back, a live lagging one does.
func TestReadHorizon(t *testing.T) {
	t.Parallel()
	srv := server(t)
	db := newDatabase("horizon")
	cfg := map[string]any{"read_horizon": "on", "horizon_staleness": "1h", "watermark_interval": "15m"}
	a := openSink(t, srv, db, Options{}, cfg)
	b := openSink(t, srv, db, Options{}, cfg)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ea := sinktest.GenerateChain("chain-a", 60, sinktest.GenOptions{Seed: 61, Start: start})
	eb := sinktest.GenerateChain("chain-b", 60, sinktest.GenOptions{Seed: 62, Start: start})
	final := append(append([]chain.Event(nil), ea...), eb...)
	sort.Slice(final, func(i, j int) bool { return sink.PositionOf(&final[i]).Less(sink.PositionOf(&final[j])) })

	// Nothing published yet: no horizon, the table is empty anyway.
	if _, ok, err := a.Horizon(ctxT(t)); err != nil || ok {
		t.Fatalf("Horizon before any write = %v, %v; want none", ok, err)
	}
	// The first Write of each sink publishes (in the background; then at most every 15 minutes).
	if err := a.Write(ctxT(t), ea[:40]); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctxT(t), eb[:20]); err != nil {
		t.Fatal(err)
	}
	h := min(ea[39].Timestamp.UnixMicro(), eb[19].Timestamp.UnixMicro())
	checkHorizon(t, a, h, final)
	// B's next batch is stored but not published (within watermark_interval): the horizon stays,
	// and so does what searches serve.
	if err := b.Write(ctxT(t), eb[20:50]); err != nil {
		t.Fatal(err)
	}
	checkHorizon(t, b, h, final)
	// A heartbeat (the host's, while B's delivery is caught up) publishes at once.
	if err := b.WriteWatermark(ctxT(t), "chain-b", eb[49].Timestamp); err != nil {
		t.Fatal(err)
	}
	h = min(ea[39].Timestamp.UnixMicro(), eb[49].Timestamp.UnixMicro())
	checkHorizon(t, a, h, final)

	// A live chain far behind holds the horizon back; one silent for longer than
	// horizon_staleness does not.
	now := time.Now().UnixMicro()
	query(t, srv, fmt.Sprintf("INSERT INTO %s.audit_events_watermarks (chain_id, up_to_us, written_us) VALUES ('chain-gone', 0, %d)", db, now-2*time.Hour.Microseconds()))
	checkHorizon(t, a, h, final)
	query(t, srv, fmt.Sprintf("INSERT INTO %s.audit_events_watermarks (chain_id, up_to_us, written_us) VALUES ('chain-slow', %d, %d)", db, ea[10].Timestamp.UnixMicro(), now))
	checkHorizon(t, a, ea[10].Timestamp.UnixMicro(), final)
	query(t, srv, fmt.Sprintf("INSERT INTO %s.audit_events_watermarks (chain_id, up_to_us, written_us) VALUES ('chain-slow', %d, %d)", db, time.Now().UnixMicro(), now+1))

	// Both chains complete and idle: heartbeats at "now" show everything.
	if err := a.Write(ctxT(t), ea[40:]); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctxT(t), eb[50:]); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		s  *Sink
		id string
	}{{a, "chain-a"}, {b, "chain-b"}} {
		if err := w.s.WriteWatermark(ctxT(t), w.id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	checkHorizon(t, b, final[len(final)-1].Timestamp.UnixMicro(), final)

	// Off (a single sidecar's default): no watermarks are published and nothing is held back.
	off := openSink(t, srv, newDatabase("horizon_off"), Options{}, nil)
	if err := off.Write(ctxT(t), ea[:5]); err != nil {
		t.Fatal(err)
	}
	if err := off.WriteWatermark(ctxT(t), "chain-a", time.Now()); !errors.Is(err, sink.ErrUnsupported) {
		t.Fatalf("WriteWatermark with read_horizon off: %v, want sink.ErrUnsupported (the host then stops its heartbeats)", err)
	}
	if _, ok, err := off.Horizon(ctxT(t)); err != nil || ok {
		t.Fatalf("Horizon with read_horizon off = %v, %v; want none", ok, err)
	}
}

// checkHorizon asserts that s's horizon is h (at least h when h is the last event of final:
// heartbeats at "now"), that paging ascending (pages of 7) gives the prefix of final at or below
// it, and that the first page descending starts where that prefix ends.
func checkHorizon(t *testing.T, s *Sink, h int64, final []chain.Event) {
	t.Helper()
	// Publications after a Write run in the background: wait (bounded) until this one is in.
	var (
		got int64
		ok  bool
		err error
	)
	atLeast := h == final[len(final)-1].Timestamp.UnixMicro()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, ok, err = s.Horizon(ctxT(t))
		if err != nil || (ok && (got == h || (atLeast && got > h))) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !ok || got < h || (!atLeast && got != h) {
		t.Fatalf("Horizon = %d, %v, %v; want %d", got, ok, err, h)
	}
	var want []string
	for i := range final {
		if final[i].Timestamp.UnixMicro() <= got {
			want = append(want, fmt.Sprintf("%s/%d", final[i].ChainID, final[i].Sequence))
		}
	}
	var asc []string
	q := sink.Query{Order: sink.Asc, Limit: 7}
	for {
		p, err := s.Search(ctxT(t), q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Events {
			asc = append(asc, fmt.Sprintf("%s/%d", p.Events[i].ChainID, p.Events[i].Sequence))
		}
		if !p.More {
			break
		}
		pos := sink.PositionOf(&p.Events[len(p.Events)-1])
		q.After = &pos
	}
	if fmt.Sprint(asc) != fmt.Sprint(want) {
		t.Fatalf("paging ascending under horizon %d gave\n%v\nwant\n%v", got, asc, want)
	}
	if len(want) == 0 {
		return
	}
	p, err := s.Search(ctxT(t), sink.Query{Order: sink.Desc, Limit: 5})
	if err != nil || len(p.Events) == 0 {
		t.Fatalf("first page descending: %d events, %v", len(p.Events), err)
	}
	if top := fmt.Sprintf("%s/%d", p.Events[0].ChainID, p.Events[0].Sequence); top != want[len(want)-1] {
		t.Fatalf("first page descending starts at %s, want %s (the newest event at or below the horizon)", top, want[len(want)-1])
	}
}
