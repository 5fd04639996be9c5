package forward

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// CheckpointLine is a signed checkpoint in the JSON of the sidecar's checkpoint log
// (chain/checkpoint), one object per checkpoint: a forwarded checkpoint's message, so that a
// witness can hand it to `flowker-audit verify --checkpoints` or check its Ed25519 signature
// with the public key.
type CheckpointLine struct {
	ChainID   string `json:"chainId"`
	Sequence  uint64 `json:"sequence"`
	Hash      string `json:"hash"`
	Time      string `json:"time"` // UTC, microseconds (chain.TimestampLayout)
	KeyID     string `json:"keyId"`
	Signature string `json:"signature"`
}

// NewCheckpointLine returns c as a CheckpointLine.
func NewCheckpointLine(c sink.Checkpoint) CheckpointLine {
	return CheckpointLine{ChainID: c.ChainID, Sequence: c.Sequence, Hash: c.Hash,
		Time: c.Time.UTC().Format(chain.TimestampLayout), KeyID: c.KeyID, Signature: c.Signature}
}

// JSON returns the line's JSON (without a newline).
func (l CheckpointLine) JSON() ([]byte, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encoding the checkpoint of chain %s at %d: %w", l.ChainID, l.Sequence, err)
	}
	return b, nil
}

// seenLimit bounds the checkpoints Forwarded remembers (the host hands each one over once,
// and again only after a failed call, so only the recent ones matter).
const seenLimit = 4096

// Forwarded remembers which checkpoints this plugin process forwarded, so that a batch the
// host hands over again after a failure is not forwarded twice. The zero value is ready.
type Forwarded struct {
	mu    sync.Mutex
	seen  map[string]bool
	order []string // keys in seen, oldest first
}

func checkpointKey(c sink.Checkpoint) string { return c.ChainID + "\x00" + c.Signature }

// Fresh returns the checkpoints of cps not forwarded yet (each once, in order).
func (f *Forwarded) Fresh(cps []sink.Checkpoint) []sink.Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sink.Checkpoint
	inBatch := map[string]bool{}
	for _, c := range cps {
		k := checkpointKey(c)
		if f.seen[k] || inBatch[k] {
			continue
		}
		inBatch[k] = true
		out = append(out, c)
	}
	return out
}

// Done records that cps were forwarded.
func (f *Forwarded) Done(cps []sink.Checkpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	for _, c := range cps {
		k := checkpointKey(c)
		if f.seen[k] {
			continue
		}
		f.seen[k] = true
		f.order = append(f.order, k)
	}
	if drop := len(f.order) - seenLimit; drop > 0 {
		for _, k := range f.order[:drop] {
			delete(f.seen, k)
		}
		f.order = append(f.order[:0:0], f.order[drop:]...)
	}
}
