package sinktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// memSink is an independent, straightforward in-memory sink used to check the kit itself. A
// mutant name makes it break one rule on purpose.
type memSink struct {
	mutant string
	mu     sync.Mutex
	chains map[string]map[uint64]chain.Event
	sorted []chain.Event // every event in ascending (timestamp, chainId, sequence); nil when stale
}

func newMemSink(mutant string) *memSink {
	return &memSink{mutant: mutant, chains: map[string]map[uint64]chain.Event{}}
}

func (m *memSink) Configure(context.Context, []byte) error { return nil }
func (m *memSink) Close(context.Context) error             { return nil }
func (m *memSink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true, Query: true}, nil
}

func (m *memSink) Write(_ context.Context, events []chain.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events { // all or nothing: check before storing
		if old, ok := m.chains[e.ChainID][e.Sequence]; ok && old.Hash != e.Hash && m.mutant != "skip-forged" {
			return sink.Conflictf("chain %s sequence %d is stored with another hash", e.ChainID, e.Sequence)
		}
	}
	for _, e := range events {
		c := m.chains[e.ChainID]
		if c == nil {
			c = map[uint64]chain.Event{}
			m.chains[e.ChainID] = c
		}
		if old, ok := c[e.Sequence]; ok && m.mutant != "overwrite-with-next" {
			if old.Hash != e.Hash && m.mutant != "skip-forged" {
				return sink.Conflictf("chain %s sequence %d is stored with another hash", e.ChainID, e.Sequence)
			}
			continue
		}
		if m.mutant == "overwrite-with-next" {
			if _, ok := c[e.Sequence]; ok {
				e.Sequence += 1000 // a careless sink that renumbers a replay
			}
		}
		c[e.Sequence] = e
		m.sorted = nil
	}
	return nil
}

func (m *memSink) Head(_ context.Context, chainID string) (sink.Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var h sink.Head
	for seq, e := range m.chains[chainID] {
		if !h.Found || seq > h.Sequence {
			h = sink.Head{Found: true, Sequence: seq, Hash: e.Hash}
		}
	}
	return h, nil
}

func (m *memSink) Get(_ context.Context, id string) (chain.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.chains {
		for _, e := range c {
			if e.EventID == id {
				return e, nil
			}
		}
	}
	return chain.Event{}, fmt.Errorf("event %s: %w", id, sink.ErrNotFound)
}

func (m *memSink) ReadChain(_ context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	m.mu.Lock()
	var evs []chain.Event
	for seq, e := range m.chains[chainID] {
		if seq >= from && (to == 0 || seq <= to) {
			evs = append(evs, e)
		}
	}
	m.mu.Unlock()
	sort.Slice(evs, func(i, j int) bool { return evs[i].Sequence < evs[j].Sequence })
	for i := range evs {
		if err := fn(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSink) Chains(context.Context) ([]sink.ChainInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sink.ChainInfo
	for id, c := range m.chains {
		info := sink.ChainInfo{ChainID: id, Count: uint64(len(c))}
		for seq := range c {
			if info.First == 0 || seq < info.First {
				info.First = seq
			}
			info.Last = max(info.Last, seq)
		}
		out = append(out, info)
	}
	return out, nil
}

func (m *memSink) Search(_ context.Context, q sink.Query) (sink.Page, error) {
	m.mu.Lock()
	if m.sorted == nil {
		for _, c := range m.chains {
			for _, e := range c {
				m.sorted = append(m.sorted, e)
			}
		}
		sort.Slice(m.sorted, func(i, j int) bool { return sink.PositionOf(&m.sorted[i]).Less(sink.PositionOf(&m.sorted[j])) })
	}
	all := m.sorted
	m.mu.Unlock()
	var evs []*chain.Event
	for i := range all {
		e := &all[i]
		{
			f := q.Filter
			from, to := f.From, f.To
			if m.mutant == "from-truncated" && !from.IsZero() {
				from = from.Truncate(1000)
			}
			if f.EventType != "" && f.EventType != e.EventType || f.Action != "" && f.Action != e.Action ||
				f.Result != "" && f.Result != e.Result || f.ResourceType != "" && f.ResourceType != e.ResourceType ||
				f.ResourceID != "" && f.ResourceID != e.ResourceID ||
				f.ActorType != "" && f.ActorType != e.Actor.Type || f.ActorID != "" && f.ActorID != e.Actor.ID ||
				!from.IsZero() && e.Timestamp.Before(from) || !to.IsZero() && e.Timestamp.After(to) ||
				m.mutant == "to-exclusive" && !to.IsZero() && e.Timestamp.Equal(to) {
				continue
			}
			evs = append(evs, e)
		}
	}
	key := func(e *chain.Event) sink.Position {
		p := sink.PositionOf(e)
		if m.mutant == "no-tiebreak" {
			p.ChainID, p.Sequence = "", 0
		}
		return p
	}
	if q.Order == sink.Desc {
		slices.Reverse(evs)
	}
	if m.mutant == "no-tiebreak" {
		// Sorted by timestamp only: ties come out in whatever order the chains were scanned.
		sort.SliceStable(evs, func(i, j int) bool {
			if q.Order == sink.Asc {
				return key(evs[i]).Less(key(evs[j]))
			}
			return key(evs[j]).Less(key(evs[i]))
		})
	}
	var page sink.Page
	for i := range evs {
		if q.After != nil {
			p, a := key(evs[i]), *q.After
			if m.mutant == "no-tiebreak" {
				a.ChainID, a.Sequence = "", 0
			}
			after := q.Order == sink.Asc && a.Less(p) || q.Order == sink.Desc && p.Less(a)
			if m.mutant == "after-inclusive" {
				after = after || p == a
			}
			if !after {
				continue
			}
		}
		if len(page.Events) == q.Limit {
			page.More = m.mutant != "more-false"
			break
		}
		page.Events = append(page.Events, *evs[i])
	}
	return page, nil
}

func TestMemSinkConformance(t *testing.T) {
	mutant := os.Getenv("SINKTEST_MUTANT")
	if mutant != "" && os.Getenv("SINKTEST_MUTANT_CHILD") != "1" {
		t.Skip("mutants only run in a child process")
	}
	Run(t, func(t *testing.T) sink.Sink { return newMemSink(mutant) })
}

// TestKitCatchesMutants runs the kit against deliberately broken sinks in a child process and
// checks that it fails, naming the broken rule.
func TestKitCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	for _, tc := range []struct{ mutant, want string }{
		{"more-false", "More is false, want true"},
		{"after-inclusive", "order DESC, limit 7, page 2"},
		{"no-tiebreak", `case "no filter"`},
		{"to-exclusive", "To"},
		{"from-truncated", "sub-microsecond"},
		{"overwrite-with-next", "WriteIdempotent"},
		{"skip-forged", "want an error wrapping sink.ErrConflict"},
	} {
		t.Run(tc.mutant, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMemSinkConformance$", "-test.count=1", "-test.failfast")
			cmd.Env = append(os.Environ(), "SINKTEST_MUTANT="+tc.mutant, "SINKTEST_MUTANT_CHILD=1")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the kit passed a sink with mutant %q (err %v); output:\n%s", tc.mutant, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("the kit failed mutant %q without mentioning %q; output:\n%s", tc.mutant, tc.want, out)
			}
		})
	}
}
