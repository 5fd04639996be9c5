package sinktest

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// dataset is the shared test data: three chains generated with the same start, so they interleave
// in time and share some timestamps, written as mixed multi-chain batches.
type dataset struct {
	chains  [][]chain.Event
	batches [][]chain.Event
	model   *model
}

func newDataset() *dataset {
	opts := GenOptions{Seed: 7, Workflows: 40}
	ds := &dataset{chains: [][]chain.Event{
		GenerateChain("chain-a", 500, opts),
		GenerateChain("chain-b", 400, opts),
		GenerateChain("chain-c", 150, opts),
	}}
	// Batches of varying sizes, each holding the next slice of every chain in chain order.
	pos := make([]int, len(ds.chains))
	for i := 0; ; i++ {
		var b []chain.Event
		for c, evs := range ds.chains {
			n := min(len(evs)-pos[c], 1+(i*37+c*11)%90)
			b = append(b, evs[pos[c]:pos[c]+n]...)
			pos[c] += n
		}
		if len(b) == 0 {
			break
		}
		ds.batches = append(ds.batches, b)
	}
	ds.model = newModel(ds.chains...)
	return ds
}

func (ds *dataset) chainInfos() []sink.ChainInfo {
	var out []sink.ChainInfo
	for _, c := range ds.chains {
		out = append(out, sink.ChainInfo{ChainID: c[0].ChainID, Count: uint64(len(c)), First: 1, Last: c[len(c)-1].Sequence})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out
}

// searchCase is a filter and a starting position; checkPaging runs it in one order and limit.
type searchCase struct {
	name   string
	filter sink.Filter
	after  *sink.Position
}

// checkPaging pages through c from its start position until More is false and checks every page
// against the model (events, order, More) and the concatenation against the whole result: each
// matching event exactly once, in order.
func checkPaging(t *testing.T, q sink.Querier, m *model, c searchCase, order sink.Order, limit int) {
	t.Helper()
	label := fmt.Sprintf("case %q, order %s, limit %d", c.name, order, limit)
	query := sink.Query{Filter: c.filter, Order: order, After: c.after, Limit: limit}
	all, _ := m.search(query, -1)
	var got []chain.Event
	maxPages := len(all)/limit + 2
	for page := 1; ; page++ {
		if page > maxPages {
			t.Fatalf("%s: still More after %d pages for %d matching events", label, page-1, len(all))
		}
		p, err := q.Search(t.Context(), query)
		if err != nil {
			t.Fatalf("%s, page %d (after %s): Search: %v", label, page, fmtPos(query.After), err)
		}
		want, wantMore := m.search(query, limit)
		if d := diffEvents(want, p.Events); d != "" {
			t.Fatalf("%s, page %d (after %s): %s", label, page, fmtPos(query.After), d)
		}
		if p.More != wantMore {
			t.Fatalf("%s, page %d (after %s): More is %v, want %v", label, page, fmtPos(query.After), p.More, wantMore)
		}
		got = append(got, p.Events...)
		if !p.More {
			break
		}
		last := sink.PositionOf(&p.Events[len(p.Events)-1])
		query.After = &last
	}
	if d := diffEvents(all, got); d != "" {
		t.Fatalf("%s: pages put together: %s", label, d)
	}
}

// crossChainTies returns the timestamps (µs) shared by events of more than one chain, ascending.
func crossChainTies(m *model) []int64 {
	chains := map[int64]map[string]bool{}
	for i := range m.asc {
		ts := m.asc[i].Timestamp.UnixMicro()
		if chains[ts] == nil {
			chains[ts] = map[string]bool{}
		}
		chains[ts][m.asc[i].ChainID] = true
	}
	var out []int64
	for ts, c := range chains {
		if len(c) > 1 {
			out = append(out, ts)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func searchCases(t *testing.T, ds *dataset) []searchCase {
	m := ds.model
	ties := crossChainTies(m)
	if len(ties) < 3 {
		t.Fatalf("the dataset has %d cross-chain equal timestamps; the tie-break needs some", len(ties))
	}
	t1, t2 := ties[len(ties)/3], ties[2*len(ties)/3]
	at := func(us int64) time.Time { return time.UnixMicro(us).UTC() }

	count := func(key func(*chain.Event) string) map[string]int {
		out := map[string]int{}
		for i := range m.asc {
			out[key(&m.asc[i])]++
		}
		return out
	}
	byResource := count(func(e *chain.Event) string { return e.ResourceID })
	popular, rare := "", ""
	for id, n := range byResource {
		if id == "" {
			continue
		}
		if n > byResource[popular] || n == byResource[popular] && id < popular {
			popular = id
		}
		if n == 1 && (rare == "" || id < rare) {
			rare = id
		}
	}
	byType := count(func(e *chain.Event) string { return e.EventType })
	rareType := ""
	for typ, n := range byType {
		if rareType == "" || n < byType[rareType] || n == byType[rareType] && typ < rareType {
			rareType = typ
		}
	}
	byActor := count(func(e *chain.Event) string { return e.Actor.Type + "\x00" + e.Actor.ID })
	popularUser, rareKey := "", ""
	for k, n := range byActor {
		typ, id, _ := strings.Cut(k, "\x00")
		switch typ {
		case chain.ActorUser:
			if popularUser == "" || n > byActor[chain.ActorUser+"\x00"+popularUser] {
				popularUser = id
			}
		case chain.ActorAPIKey:
			if rareKey == "" || n < byActor[chain.ActorAPIKey+"\x00"+rareKey] {
				rareKey = id
			}
		}
	}
	if popularUser == "" || rareKey == "" {
		t.Fatalf("the dataset has no user (%q) or API key (%q) actor", popularUser, rareKey)
	}
	mid := &m.asc[len(m.asc)/2]
	q1, q3 := &m.asc[len(m.asc)/4], &m.asc[3*len(m.asc)/4]

	var tieChain *chain.Event // an event of chain-b at t1
	for i := range m.asc {
		if m.asc[i].Timestamp.UnixMicro() == t1 && m.asc[i].ChainID == "chain-b" {
			tieChain = &m.asc[i]
		}
	}
	first, last := m.asc[0].Timestamp.UnixMicro(), m.asc[len(m.asc)-1].Timestamp.UnixMicro()
	pos := func(ts int64, chainID string, seq uint64) *sink.Position {
		return &sink.Position{TimeMicros: ts, ChainID: chainID, Sequence: seq}
	}

	cases := []searchCase{
		{name: "no filter"},
		{name: "eventType popular", filter: sink.Filter{EventType: chain.ExecutionStarted}},
		{name: "eventType rare", filter: sink.Filter{EventType: rareType}},
		{name: "eventType never stored", filter: sink.Filter{EventType: chain.ProviderCallStarted}},
		{name: "action", filter: sink.Filter{Action: chain.ActionUpdate}},
		{name: "result FAILED", filter: sink.Filter{Result: chain.ResultFailed}},
		{name: "resourceType", filter: sink.Filter{ResourceType: chain.ResourceProviderConfig}},
		{name: "resourceId popular", filter: sink.Filter{ResourceID: popular}},
		{name: "resourceId seen once", filter: sink.Filter{ResourceID: rare}},
		{name: "resourceId unknown", filter: sink.Filter{ResourceID: "00000000-0000-4000-8000-000000000000"}},
		{name: "From at a tie", filter: sink.Filter{From: at(t1)}},
		{name: "To at a tie", filter: sink.Filter{To: at(t2)}},
		{name: "From..To at ties", filter: sink.Filter{From: at(t1), To: at(t2)}},
		{name: "From==To at a tie", filter: sink.Filter{From: at(t1), To: at(t1)}},
		{name: "From..To one microsecond inside ties", filter: sink.Filter{From: at(t1 + 1), To: at(t2 - 1)}},
		{name: "From..To sub-microsecond", filter: sink.Filter{From: q1.Timestamp.Add(500 * time.Nanosecond), To: q3.Timestamp.Add(-500 * time.Nanosecond)}},
		{name: "From after To", filter: sink.Filter{From: at(t2), To: at(t1)}},
		{name: "before all events", filter: sink.Filter{To: at(first - 1)}},
		{name: "eventType+result", filter: sink.Filter{EventType: chain.WorkflowUpdated, Result: chain.ResultFailed}},
		{name: "resourceType+action+From..To", filter: sink.Filter{ResourceType: chain.ResourceWorkflow, Action: chain.ActionActivate, From: at(t1), To: at(t2)}},
		{name: "resourceId+eventType", filter: sink.Filter{ResourceID: popular, EventType: chain.WorkflowUpdated}},
		{name: "resourceId+From", filter: sink.Filter{ResourceID: popular, From: at(t1)}},
		{name: "eventType+To", filter: sink.Filter{EventType: chain.ExecutionCompleted, To: at(t2)}},
		{name: "eventType+resourceType contradict", filter: sink.Filter{EventType: chain.WorkflowCreated, ResourceType: chain.ResourceExecution}},
		{name: "actorType api_key", filter: sink.Filter{ActorType: chain.ActorAPIKey}},
		{name: "actorType system", filter: sink.Filter{ActorType: chain.ActorSystem}},
		{name: "actorId popular user", filter: sink.Filter{ActorID: popularUser}},
		{name: "actorId rarest key", filter: sink.Filter{ActorID: rareKey}},
		{name: "actorId unknown", filter: sink.Filter{ActorID: "key:000000000000"}},
		{name: "actorType+actorId", filter: sink.Filter{ActorType: chain.ActorUser, ActorID: popularUser}},
		{name: "actorType+actorId contradict", filter: sink.Filter{ActorType: chain.ActorSystem, ActorID: popularUser}},
		{name: "actorId+eventType+From..To", filter: sink.Filter{ActorID: popularUser, EventType: chain.WorkflowUpdated, From: at(t1), To: at(t2)}},
		{name: "actorType+result", filter: sink.Filter{ActorType: chain.ActorAPIKey, Result: chain.ResultFailed}},
		{name: "resourceId+actorId", filter: sink.Filter{ResourceID: popular, ActorID: popularUser}},
		{name: "every filter, one event", filter: sink.Filter{EventType: mid.EventType, Action: mid.Action, Result: mid.Result,
			ResourceType: mid.ResourceType, ResourceID: mid.ResourceID, ActorType: mid.Actor.Type, ActorID: mid.Actor.ID,
			From: mid.Timestamp, To: mid.Timestamp}},

		{name: "after: before every event", after: pos(first-1, "", 0)},
		{name: "after: past every event", after: pos(last+1, "", 0)},
		{name: "after: tie, before all chains", after: pos(t1, "", 0)},
		{name: "after: tie, between chain-a and chain-b", after: pos(t1, "chain-aa", 0)},
		{name: "after: tie, past all chains", after: pos(t1, "zzzz", 0)},
		{name: "after: tie, chain-b max sequence", after: pos(t1, "chain-b", math.MaxUint64)},
		{name: "after: between events of one chain", after: pos(mid.Timestamp.UnixMicro(), mid.ChainID, mid.Sequence-1)},
		{name: "after: one microsecond past an event", after: pos(mid.Timestamp.UnixMicro()+1, "", 0)},
		{name: "after: exact event", after: pos(mid.Timestamp.UnixMicro(), mid.ChainID, mid.Sequence)},
		{name: "after: between, eventType filter", filter: sink.Filter{EventType: chain.ExecutionStarted}, after: pos(t1, "chain-aa", 0)},
		{name: "after: between, actorType filter", filter: sink.Filter{ActorType: chain.ActorUser}, after: pos(t1, "chain-aa", 0)},
		{name: "after: between, From..To", filter: sink.Filter{From: at(t1), To: at(t2)}, after: pos(mid.Timestamp.UnixMicro(), mid.ChainID, mid.Sequence-1)},
	}
	if tieChain != nil && tieChain.Sequence > 1 {
		cases = append(cases, searchCase{name: "after: tie, chain-b lower sequence", after: pos(t1, "chain-b", tieChain.Sequence-1)})
	}
	return cases
}

func testSearch(t *testing.T, q sink.Querier, ds *dataset) {
	m := ds.model
	for _, c := range searchCases(t, ds) {
		t.Run(c.name, func(t *testing.T) {
			n, _ := m.search(sink.Query{Filter: c.filter, After: c.after}, -1)
			limits := []int{7, 1000}
			if len(n) <= 40 {
				limits = append(limits, 1)
			}
			for _, order := range []sink.Order{sink.Desc, sink.Asc} {
				for _, limit := range limits {
					checkPaging(t, q, m, c, order, limit)
				}
			}
		})
	}
	t.Run("limit 1 first pages", func(t *testing.T) {
		for _, order := range []sink.Order{sink.Desc, sink.Asc} {
			query := sink.Query{Order: order, Limit: 1}
			for page := 1; page <= 5; page++ {
				p, err := q.Search(t.Context(), query)
				if err != nil {
					t.Fatalf("order %s, limit 1, page %d: %v", order, page, err)
				}
				want, wantMore := m.search(query, 1)
				if d := diffEvents(want, p.Events); d != "" || p.More != wantMore {
					t.Fatalf("order %s, limit 1, page %d: %s (More %v, want %v)", order, page, d, p.More, wantMore)
				}
				last := sink.PositionOf(&p.Events[0])
				query.After = &last
			}
		}
	})
	t.Run("zero Order is newest first", func(t *testing.T) {
		p, err := q.Search(t.Context(), sink.Query{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := m.search(sink.Query{Order: sink.Desc}, 3)
		if d := diffEvents(want, p.Events); d != "" {
			t.Fatalf("Query{Limit: 3}: %s", d)
		}
	})
}
