package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Reason says why verification failed.
type Reason string

// Verification failure reasons.
const (
	ReasonHashMismatch Reason = "hash mismatch" // the stored hash is not the hash of the stored fields
	ReasonBrokenLink   Reason = "broken link"   // previousHash differs from the previous event's hash
	ReasonGap          Reason = "gap"           // a sequence number is missing
	ReasonDuplicate    Reason = "duplicate"     // a sequence number appears twice
	ReasonWrongChain   Reason = "wrong chain"   // an event of another chain was handed in
	ReasonOutOfOrder   Reason = "out of order"  // sequence went backwards
	ReasonBadGenesis   Reason = "bad genesis"   // the first event of a chain links to something

	// Found against signed checkpoints (package checkpoint).
	ReasonCheckpointMismatch Reason = "checkpoint mismatch" // the event at a checkpointed sequence has another hash
	ReasonTruncated          Reason = "truncated"           // the chain ends before a signed checkpoint
	ReasonCheckpointLog      Reason = "checkpoint log"      // a checkpoint of the chain does not verify (edited log, missing key)
	ReasonRetentionAnchor    Reason = "retention anchor"    // a retention anchor does not verify, or disagrees with the chain

	// Found in the journal: a record that fails on its own (checksum, decoding, hash).
	ReasonDamagedRecord Reason = "damaged record"
)

// Problem is the first defect a Verifier found.
type Problem struct {
	ChainID  string
	Sequence uint64
	EventID  string
	Reason   Reason
	Detail   string
}

func (p *Problem) Error() string {
	return fmt.Sprintf("chain %s broken at sequence %d (%s): %s", p.ChainID, p.Sequence, p.Reason, p.Detail)
}

// Verifier checks a stream of events of one chain, in sequence order, recomputing every hash and
// checking every link. It holds O(1) state, so chains of any length verify in a single pass.
// The zero value is not usable; call NewVerifier.
type Verifier struct {
	chainID  string
	next     uint64 // sequence expected next
	prevHash string // hash of the event before next ("" before the genesis)
	checked  uint64
	problem  *Problem
	buf      []byte
}

// NewVerifier returns a verifier for chainID that expects sequence from next, linked to prevHash
// (the hash of event next-1, or "" when next is 1, the genesis).
func NewVerifier(chainID string, next uint64, prevHash string) *Verifier {
	if next == 0 {
		next = 1
	}
	return &Verifier{chainID: chainID, next: next, prevHash: prevHash, buf: make([]byte, 0, 4096)}
}

// Add checks e. It returns the first Problem found (and keeps returning it afterwards).
func (v *Verifier) Add(e *Event) error {
	if v.problem != nil {
		return v.problem
	}
	fail := func(r Reason, format string, args ...any) error {
		v.problem = &Problem{ChainID: v.chainID, Sequence: e.Sequence, EventID: e.EventID, Reason: r, Detail: fmt.Sprintf(format, args...)}
		return v.problem
	}
	switch {
	case e.ChainID != v.chainID:
		return fail(ReasonWrongChain, "event belongs to chain %q", e.ChainID)
	case e.Sequence == v.next-1 && v.checked > 0:
		return fail(ReasonDuplicate, "sequence %d appears more than once", e.Sequence)
	case e.Sequence < v.next:
		return fail(ReasonOutOfOrder, "sequence %d after %d", e.Sequence, v.next-1)
	case e.Sequence > v.next:
		v.problem = &Problem{ChainID: v.chainID, Sequence: v.next, EventID: e.EventID, Reason: ReasonGap,
			Detail: fmt.Sprintf("sequence %d..%d missing (next present is %d)", v.next, e.Sequence-1, e.Sequence)}
		return v.problem
	}
	v.buf = e.AppendCanonicalInput(v.buf[:0])
	sum := sha256.Sum256(v.buf)
	var hx [64]byte
	hex.Encode(hx[:], sum[:])
	if string(hx[:]) != e.Hash { // compared without allocating
		return fail(ReasonHashMismatch, "stored %s, recomputed %s", e.Hash, string(hx[:]))
	}
	if e.Sequence == 1 && e.PreviousHash != "" {
		return fail(ReasonBadGenesis, "first event links to %s", e.PreviousHash)
	}
	if e.PreviousHash != v.prevHash {
		return fail(ReasonBrokenLink, "previousHash %s, previous event's hash %s", e.PreviousHash, v.prevHash)
	}
	v.prevHash = e.Hash
	v.next++
	v.checked++
	return nil
}

// Checked is the number of events verified successfully.
func (v *Verifier) Checked() uint64 { return v.checked }

// Problem returns the first problem found, or nil.
func (v *Verifier) Problem() *Problem { return v.problem }

// Last returns the sequence and hash of the last event verified (0, "" when none).
func (v *Verifier) Last() (uint64, string) { return v.next - 1, v.prevHash }
