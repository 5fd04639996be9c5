package checkpoint

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Evidence is a checkpoint log read for verification, with the public keys that verify it. Every
// verifier (the audit API's /verify, the Audit Trail page through it, and `flowker-audit verify`)
// checks chains with Verify against an Evidence, so they all say the same thing.
type Evidence struct {
	Path        string
	Checkpoints []Checkpoint // every checkpoint read, whatever its signature
	Keys        []ed25519.PublicKey
	// Anchors are signed retention anchors read from the store (anchor.go): verification starts
	// after the newest valid one.
	Anchors []Anchor
	// Warnings say what about the log itself weakens the verification: it is missing or empty,
	// its last line was torn, it lost checkpoints the running sidecar wrote.
	Warnings []string
}

// LoadEvidence reads the checkpoint log at path for verification with keys. A missing or empty
// log, or a torn last line, is not an error: it is reported in Warnings (the chain is then only
// checked for hashes and links, and a chain cut short at its end would pass). Damage before the
// last line is an error.
func LoadEvidence(path string, keys ...ed25519.PublicKey) (*Evidence, error) {
	ev := &Evidence{Path: path, Keys: keys}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		ev.Warnings = append(ev.Warnings, fmt.Sprintf("no checkpoint log at %s: unless the store keeps checkpoints, only hashes and links are checked (a chain cut short at its end, or re-linked, would pass)", path))
		return ev, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	cps, good, _, err := read(f, path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	ev.Checkpoints = cps
	if fi.Size() > good {
		ev.Warnings = append(ev.Warnings, fmt.Sprintf("the last line of the checkpoint log %s is torn (%d bytes ignored): a crash mid-write, or an edit", path, fi.Size()-good))
	}
	if len(cps) == 0 {
		ev.Warnings = append(ev.Warnings, fmt.Sprintf("the checkpoint log %s is empty: unless the store keeps checkpoints, only hashes and links are checked", path))
	}
	return ev, nil
}

// ReadChainFunc reads the stored events of a chain with from <= sequence <= to (to 0: no upper
// bound) in sequence order (sink.Querier.ReadChain has this shape).
type ReadChainFunc func(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error

// Request says what Verify checks.
type Request struct {
	ChainID string
	// From is the first sequence verified (0 or 1: from the genesis). When it is above 1, PrevHash
	// is the hash of From-1, trusted as the link into the range.
	From     uint64
	PrevHash string
	// To is the last sequence verified (0: whatever read returns).
	To uint64
	// StoredLast is the highest sequence the store claims to hold (its summary), 0 when unknown.
	// A claim beyond the events read is reported, and truncation is judged against it.
	StoredLast uint64
	// Evidence holds the checkpoints; nil verifies hashes and links only.
	Evidence *Evidence
}

// Report is what Verify checked and found.
type Report struct {
	ChainID  string
	From, To uint64 // the range verified (To: the last sequence read when no problem stopped it)
	// Checked is the number of events verified before the first problem (all when none).
	Checked uint64
	Problem *chain.Problem // nil when the chain is valid

	// Against the checkpoint log (all zero without Evidence):
	Checkpoints int         // valid signed checkpoints of the chain in the log
	Matched     int         // of them, the ones whose event was read with the signed hash
	Newest      *Checkpoint // the newest valid checkpoint of the chain, anywhere
	// Used is the newest checkpoint inside the verified range that matched (nil: none).
	Used *Checkpoint
	// NotYetCovered counts the verified events after Used (after From-1 when none matched):
	// their links were checked, but no signed checkpoint proves them yet.
	NotYetCovered uint64
	// DepartsAfter, on a checkpoint mismatch, is the highest sequence still proved by a matching
	// checkpoint (From-1 when none): the stored chain departs from the signed one somewhere in
	// DepartsAfter+1..Problem.Sequence. The checkpoints hold no more detail than that.
	DepartsAfter uint64
	// Anchor is the signed retention anchor verification started from (nil: none): the events up
	// to Anchor.Sequence were removed by retention, and From is Anchor.Sequence+1.
	Anchor   *Anchor
	Warnings []string
}

// errStop ends a chain read at the first problem.
var errStop = errors.New("stop")

// Verify reads a chain through read and checks it: every hash recomputed, every link, no gap or
// duplicate, and, with Evidence, every signed checkpoint in the range matched, the chain reaching
// its newest checkpoint (otherwise it was truncated), and a checkpoint log whose every line of this
// chain carries a valid signature by one of the keys. It returns an error only when read fails.
func Verify(ctx context.Context, read ReadChainFunc, req Request) (Report, error) {
	from := max(req.From, 1)
	r := Report{ChainID: req.ChainID, From: from, To: req.To}
	prev := ""
	if from > 1 {
		prev = req.PrevHash
	}
	var (
		bySeq   map[uint64]Checkpoint
		logProb *chain.Problem
		used    *Checkpoint
	)
	anchor, anchorProb := startAnchor(req, from)
	if anchor != nil {
		from, prev = anchor.Sequence+1, anchor.Hash
		r.From, r.Anchor = from, anchor
	}
	v := chain.NewVerifier(req.ChainID, from, prev)
	if ev := req.Evidence; ev != nil {
		r.Warnings = append(r.Warnings, ev.Warnings...)
		bySeq, r.Newest, logProb = validCheckpoints(req.ChainID, ev)
		r.Checkpoints = len(bySeq)
		if len(ev.Checkpoints) > 0 && r.Checkpoints == 0 && logProb == nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("the checkpoint log holds no checkpoint of chain %s", req.ChainID))
		}
	}
	var problem *chain.Problem
	err := read(ctx, req.ChainID, from, req.To, func(e *chain.Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := v.Add(e); err != nil {
			problem = v.Problem()
			return errStop
		}
		cp, ok := bySeq[e.Sequence]
		if !ok {
			return nil
		}
		if e.Hash != cp.Hash {
			problem = &chain.Problem{ChainID: req.ChainID, Sequence: e.Sequence, EventID: e.EventID, Reason: chain.ReasonCheckpointMismatch,
				Detail: fmt.Sprintf("hash %s, but the checkpoint signed at %s says %s", e.Hash, cp.Time.Format(chain.TimestampLayout), cp.Hash)}
			return errStop
		}
		r.Matched++
		c := cp
		used = &c
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Report{}, err
	}
	last, _ := v.Last()
	r.Checked = v.Checked()
	if problem != nil && problem.Sequence >= from && problem.Sequence-from < r.Checked {
		r.Checked = problem.Sequence - from // the failing event is not counted as verified
	}
	// Where the stored chain ends: known from the read when it went to the end, else from the
	// store's claim (0: unknown, and truncation is not judged).
	endKnown := req.To == 0 || req.StoredLast > 0
	storedEnd := max(last, req.StoredLast)
	switch {
	case problem != nil:
	case req.To != 0 && last < req.To:
		problem = &chain.Problem{ChainID: req.ChainID, Sequence: last + 1, Reason: chain.ReasonGap,
			Detail: fmt.Sprintf("sequence %d..%d missing", last+1, req.To)}
	case req.StoredLast > last && req.To == 0:
		problem = &chain.Problem{ChainID: req.ChainID, Sequence: last + 1, Reason: chain.ReasonGap,
			Detail: fmt.Sprintf("the store claims the chain reaches sequence %d, but its events end at %d", req.StoredLast, last)}
	case r.Newest != nil && endKnown && r.Newest.Sequence > storedEnd:
		problem = &chain.Problem{ChainID: req.ChainID, Sequence: storedEnd + 1, Reason: chain.ReasonTruncated,
			Detail: fmt.Sprintf("the chain ends at sequence %d, but a checkpoint signed at %s covers sequence %d",
				storedEnd, r.Newest.Time.Format(chain.TimestampLayout), r.Newest.Sequence)}
	case logProb != nil:
		problem = logProb
	case anchorProb != nil:
		problem = anchorProb
	}
	if anchor != nil && problem == nil {
		if cp, ok := bySeq[anchor.Sequence]; ok && cp.Hash != anchor.Hash {
			problem = &chain.Problem{ChainID: req.ChainID, Sequence: anchor.Sequence, Reason: chain.ReasonRetentionAnchor,
				Detail: fmt.Sprintf("the retention anchor says sequence %d had hash %s, but the checkpoint signed at %s says %s",
					anchor.Sequence, anchor.Hash, cp.Time.Format(chain.TimestampLayout), cp.Hash)}
		}
	}
	r.Problem = problem
	if req.To == 0 {
		r.To = last
	}
	r.Used = used
	verifiedTo := from + r.Checked - 1
	switch {
	case r.Checked == 0:
	case used != nil:
		r.NotYetCovered = verifiedTo - used.Sequence
	default:
		r.NotYetCovered = r.Checked
	}
	if problem != nil && problem.Reason == chain.ReasonCheckpointMismatch {
		r.DepartsAfter = from - 1
		if used != nil {
			r.DepartsAfter = used.Sequence
		}
		p := *problem
		p.Detail += fmt.Sprintf("; the stored chain departs from the signed one somewhere in sequences %d..%d (the checkpoints prove no finer location)",
			r.DepartsAfter+1, p.Sequence)
		r.Problem = &p
	}
	return r, nil
}

// validCheckpoints returns the chain's checkpoints with a valid signature by one of the keys, the
// newest of them, and a problem when a checkpoint of the chain does not verify (the log was
// edited, or a key is missing) or two disagree at one sequence.
func validCheckpoints(chainID string, ev *Evidence) (map[uint64]Checkpoint, *Checkpoint, *chain.Problem) {
	byID := map[string]ed25519.PublicKey{}
	var ids []string
	for _, k := range ev.Keys {
		byID[KeyID(k)] = k
		ids = append(ids, KeyID(k))
	}
	out := map[uint64]Checkpoint{}
	var newest *Checkpoint
	var prob *chain.Problem
	bad := func(seq uint64, format string, args ...any) {
		if prob == nil {
			prob = &chain.Problem{ChainID: chainID, Sequence: seq, Reason: chain.ReasonCheckpointLog, Detail: fmt.Sprintf(format, args...)}
		}
	}
	for i, cp := range ev.Checkpoints {
		if cp.ChainID != chainID {
			continue
		}
		pub, ok := byID[cp.KeyID]
		if !ok {
			bad(cp.Sequence, "%s: checkpoint %d (sequence %d) is signed by key %s, not by any given key (%s): give its public key too (after a key rotation, every earlier key)",
				ev.Path, i+1, cp.Sequence, cp.KeyID, strings.Join(ids, ", "))
			continue
		}
		if err := cp.Verify(pub); err != nil {
			bad(cp.Sequence, "%s: checkpoint %d (sequence %d) does not verify: %v (the log was edited)", ev.Path, i+1, cp.Sequence, err)
			continue
		}
		if prev, ok := out[cp.Sequence]; ok && prev.Hash != cp.Hash {
			bad(cp.Sequence, "%s: two validly signed checkpoints disagree on the hash of sequence %d (the chain was rewritten between them, or sequence numbers were reused)",
				ev.Path, cp.Sequence)
			continue
		}
		out[cp.Sequence] = cp
		if newest == nil || cp.Sequence > newest.Sequence {
			c := cp
			newest = &c
		}
	}
	return out, newest, prob
}

// Summary says in one sentence what a report covered, for people (CLI output, logs).
func (r Report) Summary() string {
	var b strings.Builder
	if r.Checked > 0 {
		fmt.Fprintf(&b, "sequences %d..%d", r.From, r.From+r.Checked-1)
	} else {
		fmt.Fprintf(&b, "no event verified from sequence %d", r.From)
	}
	switch {
	case r.Used != nil:
		fmt.Fprintf(&b, "; newest checkpoint used: sequence %d signed at %s (%d of %d signed checkpoints matched)",
			r.Used.Sequence, r.Used.Time.Format(chain.TimestampLayout), r.Matched, r.Checkpoints)
	case r.Checkpoints > 0:
		fmt.Fprintf(&b, "; none of the chain's %d signed checkpoints falls in the verified range", r.Checkpoints)
	default:
		b.WriteString("; no signed checkpoint of this chain")
	}
	switch {
	case r.NotYetCovered > 0 && r.Used != nil:
		fmt.Fprintf(&b, "; %d events after it not yet covered by a checkpoint", r.NotYetCovered)
	case r.NotYetCovered > 0:
		fmt.Fprintf(&b, "; %d events not yet covered by a checkpoint", r.NotYetCovered)
	}
	switch {
	case r.Anchor != nil:
		fmt.Fprintf(&b, "; verified from sequence %d, linked to the signed retention anchor of sequence %d (events up to it removed by retention, cutoff %s, signed at %s)",
			r.From, r.Anchor.Sequence, r.Anchor.Cutoff.Format(chain.TimestampLayout), r.Anchor.Time.Format(chain.TimestampLayout))
	case r.From > 1:
		fmt.Fprintf(&b, "; the link into sequence %d is trusted", r.From)
	}
	return b.String()
}

// Add adds checkpoints from another copy (a query sink, a forwarded file) that the evidence does
// not hold yet, and returns how many were new. Signatures are checked by Verify as for the log's
// own lines: a copy cannot add a checkpoint nobody with the key signed.
func (ev *Evidence) Add(cps ...Checkpoint) int {
	have := map[string]bool{}
	for _, c := range ev.Checkpoints {
		have[c.ChainID+"\x00"+c.Signature] = true
	}
	n := 0
	for _, c := range cps {
		if k := c.ChainID + "\x00" + c.Signature; !have[k] {
			have[k] = true
			ev.Checkpoints = append(ev.Checkpoints, c)
			n++
		}
	}
	return n
}
