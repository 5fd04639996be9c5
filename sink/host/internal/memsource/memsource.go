// Package memsource is an in-memory host.Source for tests: a journal of sealed, linked events of
// one chain, with per-sink cursors and a record of every Ack.
package memsource

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Source is an in-memory journal. The zero value is not usable; call New.
type Source struct {
	chainID string

	mu       sync.Mutex
	events   []chain.Event // events[i].Sequence == i+1
	appended []time.Time
	notify   chan struct{} // closed and replaced on every append
	cursors  map[string]uint64
	acks     map[string][]uint64
}

// New returns an empty journal of chainID.
func New(chainID string) *Source {
	return &Source{chainID: chainID, notify: make(chan struct{}), cursors: map[string]uint64{}, acks: map[string][]uint64{}}
}

// ChainID implements host.Source.
func (s *Source) ChainID() string { return s.chainID }

// Append adds n sealed events whose context is padded to about contextBytes bytes, and returns
// the last sequence.
func (s *Source) Append(n, contextBytes int) uint64 {
	pad := strings.Repeat("x", max(contextBytes-40, 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		seq := uint64(len(s.events) + 1)
		prev := ""
		if seq > 1 {
			prev = s.events[seq-2].Hash
		}
		e := chain.Event{
			EventID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", seq),
			EventType:    chain.WorkflowUpdated,
			Action:       chain.ActionUpdate,
			Result:       chain.ResultSuccess,
			ResourceID:   fmt.Sprintf("wf-%d", seq%97),
			ResourceType: chain.ResourceWorkflow,
			Actor:        chain.Actor{Type: chain.ActorAPIKey, ID: "fp-1", IPAddress: "127.0.0.1"},
			Context:      json.RawMessage(fmt.Sprintf(`{"pad": "%s", "status": 200}`, pad)),
			Metadata:     json.RawMessage(`{"workflow.name": "w"}`),
			Timestamp:    chain.Now(time.Now()),
			PreviousHash: prev,
			ChainID:      s.chainID,
			Sequence:     seq,
		}
		e.Seal()
		s.events = append(s.events, e)
		s.appended = append(s.appended, time.Now())
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return uint64(len(s.events))
}

// Events returns a copy of events from..to (inclusive, 1-based).
func (s *Source) Events(from, to uint64) []chain.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]chain.Event(nil), s.events[from-1:to]...)
}

// Last implements host.Source.
func (s *Source) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.events))
}

// Wait implements host.Source.
func (s *Source) Wait(ctx context.Context, after uint64) error {
	for {
		s.mu.Lock()
		last, ch := uint64(len(s.events)), s.notify
		s.mu.Unlock()
		if last > after {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// EncodedSize is the size Read counts against maxBytes.
func EncodedSize(e *chain.Event) int {
	return 200 + len(e.Context) + len(e.Metadata) + len(e.EventID) + len(e.ResourceID) + len(e.Hash) + len(e.PreviousHash)
}

// Read implements host.Source.
func (s *Source) Read(ctx context.Context, from uint64, maxEvents, maxBytes int) ([]chain.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if from == 0 {
		return nil, fmt.Errorf("read from sequence 0: sequences start at 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chain.Event
	size := 0
	for seq := from; seq <= uint64(len(s.events)) && len(out) < maxEvents; seq++ {
		e := s.events[seq-1]
		n := EncodedSize(&e)
		if len(out) > 0 && size+n > maxBytes {
			break
		}
		size += n
		out = append(out, e)
	}
	return out, nil
}

// Cursor implements host.Source.
func (s *Source) Cursor(name string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[name], nil
}

// SetCursor sets a sink's cursor, as if it had been acknowledged before.
func (s *Source) SetCursor(name string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursors[name] = seq
}

// Ack implements host.Source. It fails when seq is beyond the journal or goes backwards.
func (s *Source) Ack(ctx context.Context, name string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > uint64(len(s.events)) {
		return fmt.Errorf("ack %d beyond the last sequence %d", seq, len(s.events))
	}
	if seq < s.cursors[name] {
		return fmt.Errorf("ack %d below the cursor %d of %s", seq, s.cursors[name], name)
	}
	s.cursors[name] = seq
	s.acks[name] = append(s.acks[name], seq)
	return nil
}

// Acks returns every sequence acknowledged for name, in order.
func (s *Source) Acks(name string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.acks[name]...)
}

// AppendedAt implements host.Source.
func (s *Source) AppendedAt(seq uint64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == 0 || seq > uint64(len(s.appended)) {
		return time.Time{}, false
	}
	return s.appended[seq-1], true
}
