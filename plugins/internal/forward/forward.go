// Package forward holds what the forwarding sinks (syslog, otlp) share: the in-memory heads that
// keep their writes idempotent within a plugin process, and the client TLS options.
//
// A forwarding sink cannot read back what it sent, so its Head reports what this plugin process
// delivered: after a plugin restart it reports nothing, and the host then delivers from its
// own cursor (the last acknowledged event), which is exactly right — nothing acknowledged is
// sent again, nothing unacknowledged is skipped.
package forward

import (
	"encoding/hex"
	"sync"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Window is how many of the last delivered sequences of each chain keep their hash in memory,
// so that an event sent again with another hash is refused as a conflict (about 40 bytes each).
const Window = 16384

// chainState is what is remembered of one chain.
type chainState struct {
	head   sink.Head
	hashes [Window]remembered // by sequence % Window
}

type remembered struct {
	seq  uint64
	hash [32]byte
	ok   bool // hash held a valid hex SHA-256
}

func (c *chainState) lookup(seq uint64) (remembered, bool) {
	r := c.hashes[seq%Window]
	return r, r.seq == seq && seq != 0
}

func digest(h string) ([32]byte, bool) {
	var d [32]byte
	if len(h) != 64 {
		return d, false
	}
	_, err := hex.Decode(d[:], []byte(h))
	return d, err == nil
}

// Heads tracks the last delivered event of each chain, and the hashes of the last Window
// delivered sequences. The zero value is ready to use.
type Heads struct {
	mu     sync.Mutex
	chains map[string]*chainState
}

// Fresh returns the events of batch that lie past their chain's head, in order, without
// changing the heads: a batch the host sends again after a failure is not forwarded twice.
// An event at or below the head whose hash differs from the one delivered at that sequence
// (when still remembered) fails the whole batch with a conflict (sink.ErrConflict) and
// nothing of it is to be sent: the receiver already holds another event at that place.
func (h *Heads) Fresh(batch []chain.Event) ([]chain.Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []chain.Event
	last := map[string]uint64{}
	for i := range batch {
		e := &batch[i]
		seen, ok := last[e.ChainID]
		cs := h.chains[e.ChainID]
		if !ok && cs != nil {
			seen = cs.head.Sequence
		}
		if e.Sequence <= seen {
			if cs != nil {
				if r, known := cs.lookup(e.Sequence); known {
					if d, valid := digest(e.Hash); r.ok != valid || (valid && d != r.hash) {
						return nil, sink.Conflictf("chain %s sequence %d: hash %s differs from the event this sink already forwarded at that sequence",
							e.ChainID, e.Sequence, e.Hash)
					}
				}
			}
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
		return batch, nil
	}
	return out, nil
}

// Delivered records that events (returned by Fresh) were delivered.
func (h *Heads) Delivered(events []chain.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.chains == nil {
		h.chains = map[string]*chainState{}
	}
	for i := range events {
		e := &events[i]
		cs := h.chains[e.ChainID]
		if cs == nil {
			cs = &chainState{}
			h.chains[e.ChainID] = cs
		}
		d, ok := digest(e.Hash)
		cs.hashes[e.Sequence%Window] = remembered{seq: e.Sequence, hash: d, ok: ok}
		if e.Sequence > cs.head.Sequence {
			cs.head = sink.Head{Found: true, Sequence: e.Sequence, Hash: e.Hash}
		}
	}
}

// Head returns the last delivered event of chainID.
func (h *Heads) Head(chainID string) sink.Head {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cs := h.chains[chainID]; cs != nil {
		return cs.head
	}
	return sink.Head{}
}
