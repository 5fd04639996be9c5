package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// growingData is an initial set of events plus batches appended later, each batch later in time
// than everything before it (as live traffic is).
type growingData struct {
	initial [][]chain.Event
	appends [][]chain.Event
}

func newGrowingData(batches, perBatch int) *growingData {
	opts := GenOptions{Seed: 303, Workflows: 30}
	g := &growingData{initial: [][]chain.Event{
		GenerateChain("chain-live-a", 120, opts),
		GenerateChain("chain-live-b", 90, opts),
	}}
	last := []chain.Event{g.initial[0][119], g.initial[1][89]}
	maxTS := last[0].Timestamp
	if last[1].Timestamp.After(maxTS) {
		maxTS = last[1].Timestamp
	}
	for i := range batches {
		c := i % 2
		o := opts
		o.After = &last[c]
		o.Start = maxTS.Add(time.Millisecond)
		b := GenerateChain(last[c].ChainID, perBatch, o)
		g.appends = append(g.appends, b)
		last[c] = b[len(b)-1]
		maxTS = last[c].Timestamp
	}
	return g
}

func (g *growingData) all() *model {
	return newModel(append(append([][]chain.Event{}, g.initial...), g.appends...)...)
}

func (g *growingData) start(t *testing.T, newSink func(t *testing.T) sink.Sink) (sink.Sink, sink.Querier) {
	t.Helper()
	s := newSink(t)
	q := querier(t, s)
	for _, c := range g.initial {
		write(t, s, "initial events", c)
	}
	return s, q
}

func testSearchWhileWriting(t *testing.T, newSink func(t *testing.T) sink.Sink) {
	for _, tc := range []struct {
		name   string
		order  sink.Order
		filter sink.Filter
	}{
		{"interleaved ASC", sink.Asc, sink.Filter{}},
		{"interleaved DESC", sink.Desc, sink.Filter{}},
		{"interleaved ASC eventType", sink.Asc, sink.Filter{EventType: chain.ExecutionStarted}},
		{"interleaved DESC eventType", sink.Desc, sink.Filter{EventType: chain.ExecutionStarted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrowingData(12, 20)
			s, q := g.start(t, newSink)
			initial := newModel(g.initial...)
			// Write one appended batch after every page fetched. Oldest-first paging starts near
			// the end of the initial events, so it keeps reaching the end (More false) while
			// batches are still arriving, and must pick them up from the same position.
			query := sink.Query{Filter: tc.filter, Order: tc.order, Limit: 10}
			if tc.order == sink.Asc {
				start := sink.PositionOf(&initial.asc[len(initial.asc)-15])
				query.After = &start
			}
			startAfter := query.After
			var got []chain.Event
			next := 0
			for page := 1; ; page++ {
				if page > 1000 {
					t.Fatalf("%s: More never became false", tc.name)
				}
				p, err := q.Search(t.Context(), query)
				if err != nil {
					t.Fatalf("%s, page %d (after %s): %v", tc.name, page, fmtPos(query.After), err)
				}
				got = append(got, p.Events...)
				if len(p.Events) > 0 {
					last := sink.PositionOf(&p.Events[len(p.Events)-1])
					query.After = &last
				}
				if next < len(g.appends) {
					write(t, s, fmt.Sprintf("%s, appended batch %d", tc.name, next), g.appends[next])
					next++
				} else if !p.More {
					break
				}
				if !p.More && tc.order == sink.Desc {
					break
				}
			}
			// Newest first: later events are all newer than page 1, so the pages hold exactly what
			// was stored when paging began. Oldest first: they all come after the last position,
			// so the pages end up holding everything.
			want := initial
			if tc.order == sink.Asc {
				want = g.all()
			}
			wantEvents, _ := want.search(sink.Query{Filter: tc.filter, Order: tc.order, After: startAfter}, -1)
			if d := diffEvents(wantEvents, got); d != "" {
				t.Fatalf("%s: pages put together: %s", tc.name, d)
			}
		})
	}

	for _, order := range []sink.Order{sink.Asc, sink.Desc} {
		t.Run("concurrent "+order.String(), func(t *testing.T) {
			g := newGrowingData(30, 25)
			s, q := g.start(t, newSink)
			progress := make(chan struct{}, 1)
			done := make(chan error, 1)
			finished := make(chan struct{})
			t.Cleanup(func() { <-finished }) // runs before the sink's own cleanup closes it
			go func() {
				defer close(finished)
				for i, b := range g.appends {
					if err := s.Write(t.Context(), b); err != nil {
						done <- fmt.Errorf("concurrent writer, batch %d: %w", i, err)
						return
					}
					select {
					case progress <- struct{}{}:
					default:
					}
				}
				done <- nil
			}()
			query := sink.Query{Order: order, Limit: 10}
			var got []chain.Event
			writerDone := false
			for page := 1; ; page++ {
				if page > 10000 {
					t.Fatalf("concurrent %s: More never became false", order)
				}
				p, err := q.Search(t.Context(), query)
				if err != nil {
					t.Fatalf("concurrent %s, page %d (after %s): %v", order, page, fmtPos(query.After), err)
				}
				got = append(got, p.Events...)
				if len(p.Events) > 0 {
					last := sink.PositionOf(&p.Events[len(p.Events)-1])
					query.After = &last
				}
				if p.More {
					continue
				}
				if writerDone || order == sink.Desc {
					break
				}
				select {
				case <-progress:
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					writerDone = true
				}
			}
			if !writerDone {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			all := g.all()
			wantEvents, _ := all.search(sink.Query{Order: order}, -1)
			if order == sink.Desc {
				if len(got) == 0 {
					t.Fatalf("concurrent DESC: no events returned")
				}
				// Exactly the events at or before the first one returned.
				top := sink.PositionOf(&got[0])
				wantEvents, _ = all.search(sink.Query{Order: order, After: &sink.Position{TimeMicros: top.TimeMicros, ChainID: top.ChainID, Sequence: top.Sequence + 1}}, -1)
				init := newModel(g.initial...)
				if newest := sink.PositionOf(&init.asc[len(init.asc)-1]); top.Less(newest) {
					t.Fatalf("concurrent DESC: first event %s is older than the newest initial event", fmtEvent(&got[0]))
				}
			}
			if d := diffEvents(wantEvents, got); d != "" {
				t.Fatalf("concurrent %s: pages put together: %s", order, d)
			}
		})
	}
}
