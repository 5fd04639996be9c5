package checkpoint

import (
	"crypto/ed25519"
	"fmt"
	"sort"
	"strings"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Checker checks one chain, read in sequence order, against its signed checkpoints: the event at
// each checkpoint's sequence must carry the checkpoint's hash, and the chain must reach the
// newest checkpoint. Use it beside a chain.Verifier, which checks the links in between.
type Checker struct {
	chainID string
	bySeq   map[uint64]Checkpoint
	newest  Checkpoint
	matched int
}

// NewChecker returns a checker for chainID from cps (checkpoints of other chains are ignored).
// Every checkpoint of the chain must carry a valid signature by one of keys (several when the
// signing key was replaced): a checkpoint that does not is an error, because the log itself has
// then been altered, or a key is missing.
func NewChecker(chainID string, cps []Checkpoint, keys ...ed25519.PublicKey) (*Checker, error) {
	byID := map[string]ed25519.PublicKey{}
	var ids []string
	for _, k := range keys {
		byID[KeyID(k)] = k
		ids = append(ids, KeyID(k))
	}
	c := &Checker{chainID: chainID, bySeq: map[uint64]Checkpoint{}}
	for i, cp := range cps {
		if cp.ChainID != chainID {
			continue
		}
		pub, ok := byID[cp.KeyID]
		if !ok {
			return nil, fmt.Errorf("checkpoint %d (chain %s, sequence %d) is signed by key %s, not by any given key (%s): give its public key too",
				i+1, cp.ChainID, cp.Sequence, cp.KeyID, strings.Join(ids, ", "))
		}
		if err := cp.Verify(pub); err != nil {
			return nil, fmt.Errorf("checkpoint %d (chain %s, sequence %d): %w", i+1, cp.ChainID, cp.Sequence, err)
		}
		if prev, ok := c.bySeq[cp.Sequence]; ok && prev.Hash != cp.Hash {
			return nil, fmt.Errorf("checkpoints disagree on the hash of chain %s at sequence %d", chainID, cp.Sequence)
		}
		c.bySeq[cp.Sequence] = cp
		if cp.Sequence > c.newest.Sequence {
			c.newest = cp
		}
	}
	return c, nil
}

// Range returns the lowest and highest checkpointed sequence of the chain (0, 0 when none).
func (c *Checker) Range() (lo, hi uint64) {
	for seq := range c.bySeq {
		if lo == 0 || seq < lo {
			lo = seq
		}
	}
	return lo, c.newest.Sequence
}

// Count is the number of distinct checkpointed sequences of the chain.
func (c *Checker) Count() int { return len(c.bySeq) }

// Matched is the number of checkpoints whose event was seen with the signed hash.
func (c *Checker) Matched() int { return c.matched }

// Observe checks e against the checkpoint at its sequence, if there is one.
func (c *Checker) Observe(e *chain.Event) error {
	cp, ok := c.bySeq[e.Sequence]
	if !ok {
		return nil
	}
	if e.Hash != cp.Hash {
		return &chain.Problem{ChainID: c.chainID, Sequence: e.Sequence, EventID: e.EventID, Reason: chain.ReasonCheckpointMismatch,
			Detail: fmt.Sprintf("hash %s, but the checkpoint signed at %s says %s", e.Hash, cp.Time.Format("2006-01-02T15:04:05Z07:00"), cp.Hash)}
	}
	c.matched++
	return nil
}

// Finish is called once the whole chain was read; last is the highest sequence seen. It reports
// a chain that ends before its newest checkpoint.
func (c *Checker) Finish(last uint64) error {
	if c.newest.Sequence <= last {
		return nil
	}
	return &chain.Problem{ChainID: c.chainID, Sequence: last + 1, Reason: chain.ReasonTruncated,
		Detail: fmt.Sprintf("the chain ends at sequence %d, but a checkpoint signed at %s covers sequence %d",
			last, c.newest.Time.Format("2006-01-02T15:04:05Z07:00"), c.newest.Sequence)}
}

// Chains returns the chain ids that cps mention, sorted.
func Chains(cps []Checkpoint) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cps {
		if !seen[c.ChainID] {
			seen[c.ChainID] = true
			out = append(out, c.ChainID)
		}
	}
	sort.Strings(out)
	return out
}
