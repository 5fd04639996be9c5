// Package forward holds what the forwarding sinks (syslog, otlp) share: the in-memory heads that
// keep their writes idempotent within a plugin process, strict decoding of their configuration
// with key paths, and the client TLS options.
//
// A forwarding sink cannot read back what it sent, so its Head reports what this plugin process
// delivered: after a plugin restart it reports nothing, and the host then delivers from its
// own cursor (the last acknowledged event), which is exactly right — nothing acknowledged is
// sent again, nothing unacknowledged is skipped.
package forward

import (
	"sync"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Heads tracks the last delivered event of each chain. The zero value is ready to use.
type Heads struct {
	mu    sync.Mutex
	heads map[string]sink.Head
}

// Fresh returns the events of batch that lie past their chain's head, in order, without
// changing the heads: a batch the host sends again after a failure is not forwarded twice.
func (h *Heads) Fresh(batch []chain.Event) []chain.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chain.Event
	last := map[string]uint64{}
	for i := range batch {
		e := &batch[i]
		seen, ok := last[e.ChainID]
		if !ok {
			seen = h.heads[e.ChainID].Sequence
		}
		if e.Sequence <= seen {
			if out == nil {
				out = make([]chain.Event, 0, len(batch))
				out = append(out, batch[:i]...)
			}
			continue
		}
		last[e.ChainID] = e.Sequence
		if out != nil {
			out = append(out, *e)
		}
	}
	if out == nil {
		return batch
	}
	return out
}

// Delivered records that events (returned by Fresh) were delivered.
func (h *Heads) Delivered(events []chain.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.heads == nil {
		h.heads = map[string]sink.Head{}
	}
	for i := range events {
		e := &events[i]
		if e.Sequence > h.heads[e.ChainID].Sequence {
			h.heads[e.ChainID] = sink.Head{Found: true, Sequence: e.Sequence, Hash: e.Hash}
		}
	}
}

// Head returns the last delivered event of chainID.
func (h *Heads) Head(chainID string) sink.Head {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.heads[chainID]
}
