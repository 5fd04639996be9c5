// Package auditapitest provides test doubles for the audit API and the Audit Trail page: an
// in-memory sink.Querier (Store) that can fail on demand and be tampered with, a generator of
// valid hash-chained events (Generate), and the reference filter (Matches) that the query sinks
// must agree with.
package auditapitest

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Store is an in-memory sink.Querier. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	sorted []*chain.Event // ascending by sink.Position
	byID   map[string]*chain.Event
	chains map[string][]*chain.Event // by sequence
	keys   map[chainSeq]bool
	err    error
}

type chainSeq struct {
	chain string
	seq   uint64
}

var _ sink.Querier = (*Store)(nil)

// NewStore returns an empty store holding events.
func NewStore(events ...chain.Event) *Store {
	s := &Store{byID: map[string]*chain.Event{}, chains: map[string][]*chain.Event{}, keys: map[chainSeq]bool{}}
	s.Add(events...)
	return s
}

// Add stores events; an event whose (chainId, sequence) is already stored is skipped.
func (s *Store) Add(events ...chain.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range events {
		e := events[i]
		k := chainSeq{e.ChainID, e.Sequence}
		if s.keys[k] {
			continue
		}
		s.keys[k] = true
		p := sink.PositionOf(&e)
		if n := len(s.sorted); n == 0 || sink.PositionOf(s.sorted[n-1]).Less(p) {
			s.sorted = append(s.sorted, &e)
		} else {
			at := sort.Search(n, func(i int) bool { return p.Less(sink.PositionOf(s.sorted[i])) })
			s.sorted = append(s.sorted, nil)
			copy(s.sorted[at+1:], s.sorted[at:])
			s.sorted[at] = &e
		}
		s.byID[e.EventID] = &e
		c := s.chains[e.ChainID]
		if n := len(c); n == 0 || c[n-1].Sequence < e.Sequence {
			s.chains[e.ChainID] = append(c, &e)
		} else {
			at := sort.Search(n, func(i int) bool { return c[i].Sequence > e.Sequence })
			c = append(c, nil)
			copy(c[at+1:], c[at:])
			c[at] = &e
			s.chains[e.ChainID] = c
		}
	}
}

// Write implements the write half of sink.Sink, for code that feeds a store.
func (s *Store) Write(_ context.Context, events []chain.Event) error {
	if err := s.failure(); err != nil {
		return err
	}
	s.Add(events...)
	return nil
}

// Len is the number of stored events.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sorted)
}

// All returns a copy of every stored event, ascending by (timestamp, chainId, sequence).
func (s *Store) All() []chain.Event {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]chain.Event, len(s.sorted))
	for i, e := range s.sorted {
		out[i] = *e
	}
	return out
}

// SetErr makes every query method fail with err (nil restores normal operation).
func (s *Store) SetErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *Store) failure() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

// Tamper changes the stored event eventID in place with fn (its position in the sort order must
// not change). It reports whether the event exists.
func (s *Store) Tamper(eventID string, fn func(*chain.Event)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[eventID]
	if ok {
		fn(e)
	}
	return ok
}

// Delete removes the event eventID (to simulate a gap). It reports whether it existed.
func (s *Store) Delete(eventID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[eventID]
	if !ok {
		return false
	}
	delete(s.byID, eventID)
	delete(s.keys, chainSeq{e.ChainID, e.Sequence})
	s.sorted = deletePtr(s.sorted, e)
	s.chains[e.ChainID] = deletePtr(s.chains[e.ChainID], e)
	return true
}

func deletePtr(list []*chain.Event, e *chain.Event) []*chain.Event {
	for i, x := range list {
		if x == e {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// Search implements sink.Querier.
func (s *Store) Search(ctx context.Context, q sink.Query) (sink.Page, error) {
	if q.Limit < 1 || q.Limit > 1000 {
		return sink.Page{}, fmt.Errorf("search: limit %d outside 1..1000", q.Limit)
	}
	if err := ctx.Err(); err != nil {
		return sink.Page{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.err != nil {
		return sink.Page{}, s.err
	}
	n := len(s.sorted)
	out := make([]chain.Event, 0, q.Limit+1)
	if q.Order == sink.Asc {
		i := 0
		if q.After != nil {
			i = sort.Search(n, func(i int) bool { return q.After.Less(sink.PositionOf(s.sorted[i])) })
		}
		for ; i < n && len(out) <= q.Limit; i++ {
			if q.Filter.Matches(s.sorted[i]) {
				out = append(out, *s.sorted[i])
			}
		}
	} else {
		i := n - 1
		if q.After != nil {
			i = sort.Search(n, func(i int) bool { return !sink.PositionOf(s.sorted[i]).Less(*q.After) }) - 1
		}
		for ; i >= 0 && len(out) <= q.Limit; i-- {
			if q.Filter.Matches(s.sorted[i]) {
				out = append(out, *s.sorted[i])
			}
		}
	}
	more := len(out) > q.Limit
	if more {
		out = out[:q.Limit]
	}
	return sink.Page{Events: out, More: more}, nil
}

// Get implements sink.Querier.
func (s *Store) Get(_ context.Context, eventID string) (chain.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.err != nil {
		return chain.Event{}, s.err
	}
	e, ok := s.byID[eventID]
	if !ok {
		return chain.Event{}, sink.ErrNotFound
	}
	return *e, nil
}

// ReadChain implements sink.Querier.
func (s *Store) ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	s.mu.RLock()
	if s.err != nil {
		s.mu.RUnlock()
		return s.err
	}
	var evs []chain.Event
	for _, e := range s.chains[chainID] {
		if e.Sequence >= from && (to == 0 || e.Sequence <= to) {
			evs = append(evs, *e)
		}
	}
	s.mu.RUnlock()
	for i := range evs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Chains implements sink.Querier.
func (s *Store) Chains(context.Context) ([]sink.ChainInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.err != nil {
		return nil, s.err
	}
	out := make([]sink.ChainInfo, 0, len(s.chains))
	for id, c := range s.chains {
		if len(c) == 0 {
			continue
		}
		out = append(out, sink.ChainInfo{ChainID: id, Count: uint64(len(c)), First: c[0].Sequence, Last: c[len(c)-1].Sequence})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out, nil
}
