package clickhouse

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// TestActorLookupUpgrade: a database of schema version 1 (no actor lookup) gets the table, its
// view and the events stored before, when a sink of version 2 starts; actorId searches then find
// old and new events alike, and the actorId path reads the lookup table.
func TestActorLookupUpgrade(t *testing.T) {
	t.Parallel()
	srv := server(t)
	db := newDatabase("actor")
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	events := sinktest.GenerateChain("chain-a", 400, sinktest.GenOptions{Seed: 11, Start: start})
	s := openSink(t, srv, db, Options{}, nil)
	if err := s.Write(ctxT(t), events[:300]); err != nil {
		t.Fatal(err)
	}
	// Back to version 1: the lookup and its view did not exist.
	conn := rawConn(t, srv)
	for _, q := range []string{"DROP TABLE " + db + "." + TableByActor + "_mv", "DROP TABLE " + db + "." + TableByActor} {
		if err := conn.Exec(ctxT(t), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var (
		mu      sync.Mutex
		queries []string
	)
	s2 := openSink(t, srv, db, Options{QueryHook: func(name, _ string) { mu.Lock(); queries = append(queries, name); mu.Unlock() }}, nil)
	if _, err := s2.Head(ctxT(t), "chain-a"); err != nil { // any call readies the sink
		t.Fatal(err)
	}
	if err := s2.Write(ctxT(t), events[300:]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	backfilled := false
	for _, q := range queries {
		backfilled = backfilled || q == "backfill_by_actor"
	}
	mu.Unlock()
	if !backfilled {
		t.Fatalf("no backfill ran: %v", queries)
	}
	actors := map[string]bool{}
	for _, e := range events {
		actors[e.Actor.ID] = true
	}
	for id := range actors {
		f := sink.Filter{ActorID: id}
		var want []chain.Event
		for i := len(events) - 1; i >= 0; i-- {
			if f.Matches(&events[i]) {
				want = append(want, events[i])
			}
		}
		var got []chain.Event
		q := sink.Query{Filter: f, Limit: 37}
		for {
			p, err := s2.Search(ctxT(t), q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Events...)
			if !p.More {
				break
			}
			last := sink.PositionOf(&p.Events[len(p.Events)-1])
			q.After = &last
		}
		if len(got) != len(want) {
			t.Fatalf("actor %s: %d events, want %d", id, len(got), len(want))
		}
		for i := range got {
			if got[i].EventID != want[i].EventID {
				t.Fatalf("actor %s, #%d: %s, want %s", id, i, got[i].EventID, want[i].EventID)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	used := false
	for _, q := range queries {
		used = used || q == "search_actor_keys"
	}
	if !used {
		t.Fatal(fmt.Sprint("actorId searches did not use the lookup: ", queries))
	}
}

// TestActorSearchAcrossWindows: the actor lookup is read window by window (actorWindows); over
// events spanning months, with busy and rare actors, every page of every actor in both orders,
// with and without date bounds, holds exactly the events a brute-force filter finds, each once.
func TestActorSearchAcrossWindows(t *testing.T) {
	t.Parallel()
	srv := server(t)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	// ~500 events 6 h apart: 125 days, far beyond the one-day window.
	events := sinktest.GenerateChain("chain-w", 500, sinktest.GenOptions{Seed: 23, Start: start, MeanGap: 6 * time.Hour})
	// Two rare actors: one event near each end, and one only in the middle.
	rare := func(i int, id string) {
		events[i].Actor = chain.Actor{Type: chain.ActorAPIKey, ID: id, IPAddress: "10.0.0.9"}
	}
	rare(3, "key:rare-ends")
	rare(496, "key:rare-ends")
	rare(250, "key:rare-middle")
	for i := range events {
		if i > 0 {
			events[i].PreviousHash = events[i-1].Hash
		}
		events[i].Seal()
	}
	s := openSink(t, srv, newDatabase("actorwin"), Options{}, nil)
	if err := s.Write(ctxT(t), events); err != nil {
		t.Fatal(err)
	}
	actors := map[string]bool{}
	for _, e := range events {
		actors[e.Actor.ID] = true
	}
	mid := events[250].Timestamp
	ranges := []struct{ from, to time.Time }{
		{},
		{from: mid.Add(-40 * 24 * time.Hour)},
		{to: mid.Add(20 * 24 * time.Hour)},
		{from: mid.Add(-3 * 24 * time.Hour), to: mid.Add(2 * 24 * time.Hour)},
	}
	for id := range actors {
		for _, r := range ranges {
			for _, order := range []sink.Order{sink.Desc, sink.Asc} {
				f := sink.Filter{ActorID: id, From: r.from, To: r.to}
				var want []chain.Event
				for i := range events {
					if f.Matches(&events[i]) {
						want = append(want, events[i])
					}
				}
				if order == sink.Desc {
					slices.Reverse(want)
				}
				var got []chain.Event
				q := sink.Query{Filter: f, Order: order, Limit: 7}
				for {
					p, err := s.Search(ctxT(t), q)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p.Events...)
					if !p.More {
						break
					}
					last := sink.PositionOf(&p.Events[len(p.Events)-1])
					q.After = &last
				}
				if len(got) != len(want) {
					t.Fatalf("actor %s %v order %v: %d events, want %d", id, r, order, len(got), len(want))
				}
				for i := range got {
					if got[i].EventID != want[i].EventID {
						t.Fatalf("actor %s %v order %v, #%d: %s, want %s", id, r, order, i, got[i].EventID, want[i].EventID)
					}
				}
			}
		}
	}
}
