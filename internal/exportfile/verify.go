package exportfile

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
)

// ChainResult is what Verify found for one chain.
type ChainResult struct {
	ChainID string
	Events  uint64 // event lines of this chain
	First   uint64 // lowest sequence present
	Last    uint64 // highest sequence present
	// Hashed is the number of events whose hash was recomputed and matched.
	Hashed uint64
	// Links is the number of previousHash links checked (both ends present).
	Links uint64
	// Contiguous is true when every sequence First..Last is present.
	Contiguous bool
	// Problem is the first defect, nil when none.
	Problem *chain.Problem
	// Checkpoint says what the chain's signed checkpoint proved ("" when the file carries none).
	Checkpoint string
}

// Result is the outcome of Verify.
type Result struct {
	Header Header
	Chains []ChainResult
	// Problem is a defect of the file as a whole (cut short, summary lines that disagree with
	// the events); "" when none.
	Problem string
}

// Valid reports whether nothing was found wrong.
func (r *Result) Valid() bool {
	if r.Problem != "" {
		return false
	}
	for i := range r.Chains {
		if r.Chains[i].Problem != nil {
			return false
		}
	}
	return true
}

// IsExport reports whether the first line of a file is an export header.
func IsExport(firstLine []byte) bool {
	var l line
	return json.Unmarshal(firstLine, &l) == nil && l.Header != nil && l.Header.Format == Format
}

// scanLines calls fn for every non-empty line of path with its 1-based number.
func scanLines(path string, fn func(n int, b []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	n := 0
	for {
		b, rerr := br.ReadBytes('\n')
		n++
		if len(bytes.TrimSpace(b)) > 0 {
			if err := fn(n, b); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%s: %w", path, rerr)
		}
	}
}

// isMeta reports whether a line is a header, chain or end line rather than an event.
func isMeta(b []byte) bool { return bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"export`)) }

// chainState is the constant-size state Verify keeps per chain.
type chainState struct {
	res                ChainResult
	lastSeq            uint64
	lastHash, lastPrev string
	cp                 *checkpoint.Checkpoint
	cpSeen             bool
	cpMatched          bool
	trailer            *ChainRange
	hashBuf            []byte
}

// Verify checks the export at path: it reads the file twice (the summary lines come after the
// events), holding a few values per chain, so files of any size verify in constant memory.
// keys are the checkpoint public keys; with none, signatures are not checked (and the result
// says so). only, when not empty, restricts the check to one chain. The error is for a file that
// cannot be read or is not an export; defects are reported in the Result.
func Verify(path string, keys []ed25519.PublicKey, only string) (*Result, error) {
	res := &Result{}
	var end *End
	trailers := map[string]*ChainRange{}
	seenHeader := false
	err := scanLines(path, func(n int, b []byte) error {
		if !isMeta(b) {
			if !seenHeader {
				return fmt.Errorf("%s:%d: not an export of the audit API (no exportHeader line first)", path, n)
			}
			return nil
		}
		var l line
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		switch {
		case l.Header != nil:
			if seenHeader {
				return fmt.Errorf("%s:%d: a second exportHeader", path, n)
			}
			if l.Header.Format != Format || l.Header.Version != Version {
				return fmt.Errorf("%s:%d: format %q version %d, want %q version %d", path, n, l.Header.Format, l.Header.Version, Format, Version)
			}
			res.Header, seenHeader = *l.Header, true
		case l.Chain != nil:
			c := *l.Chain
			trailers[c.ChainID] = &c
		case l.End != nil:
			e := *l.End
			end = &e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !seenHeader {
		return nil, fmt.Errorf("%s: empty, or not an export of the audit API", path)
	}
	asc := res.Header.SortOrder == "ASC"
	states := map[string]*chainState{}
	var total uint64
	err = scanLines(path, func(n int, b []byte) error {
		if isMeta(b) {
			return nil
		}
		var e chain.Event
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		total++
		if only != "" && e.ChainID != only {
			return nil
		}
		st := states[e.ChainID]
		if st == nil {
			st = &chainState{res: ChainResult{ChainID: e.ChainID, First: e.Sequence, Last: e.Sequence}, trailer: trailers[e.ChainID]}
			if st.trailer != nil {
				st.cp = st.trailer.Checkpoint
			}
			states[e.ChainID] = st
		}
		st.add(&e, asc, res.Header.Contiguous)
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case end == nil:
		res.Problem = "the export has no exportEnd line: it was cut short (download interrupted?)"
	case only == "" && end.Events != total:
		res.Problem = fmt.Sprintf("the exportEnd line counts %d events, the file holds %d", end.Events, total)
	case only == "" && end.Chains != len(trailers):
		res.Problem = fmt.Sprintf("the exportEnd line counts %d chains, the file has %d exportChain lines", end.Chains, len(trailers))
	}
	for id := range trailers {
		if only != "" && id != only {
			continue
		}
		if _, ok := states[id]; !ok && res.Problem == "" {
			res.Problem = fmt.Sprintf("an exportChain line names chain %s, which has no events in the file", id)
		}
	}
	for _, st := range states {
		st.finish(keys, res)
		res.Chains = append(res.Chains, st.res)
	}
	sort.Slice(res.Chains, func(i, j int) bool { return res.Chains[i].ChainID < res.Chains[j].ChainID })
	return res, nil
}

func (st *chainState) fail(e *chain.Event, seq uint64, r chain.Reason, format string, args ...any) {
	if st.res.Problem == nil {
		st.res.Problem = &chain.Problem{ChainID: st.res.ChainID, Sequence: seq, EventID: e.EventID, Reason: r, Detail: fmt.Sprintf(format, args...)}
	}
}

// add checks one event: its hash, its order, and its link to the previous line of its chain
// when the two are adjacent sequences.
func (st *chainState) add(e *chain.Event, asc, contiguous bool) {
	r := &st.res
	st.hashBuf = e.AppendCanonicalInput(st.hashBuf[:0])
	sum := sha256.Sum256(st.hashBuf)
	if got := hex.EncodeToString(sum[:]); got != e.Hash {
		st.fail(e, e.Sequence, chain.ReasonHashMismatch, "stored %s, recomputed %s", e.Hash, got)
	} else {
		r.Hashed++
	}
	if e.Sequence == 1 && e.PreviousHash != "" {
		st.fail(e, e.Sequence, chain.ReasonBadGenesis, "first event links to %s", e.PreviousHash)
	}
	if st.cp != nil && e.Sequence == st.cp.Sequence {
		st.cpSeen = true
		st.cpMatched = e.Hash == st.cp.Hash
	}
	if r.Events > 0 {
		prev := st.lastSeq
		forward := e.Sequence > prev
		switch {
		case e.Sequence == prev:
			st.fail(e, e.Sequence, chain.ReasonDuplicate, "sequence %d appears more than once", e.Sequence)
		case forward != asc:
			st.fail(e, e.Sequence, chain.ReasonOutOfOrder, "sequence %d after %d in a %s export", e.Sequence, prev, map[bool]string{true: "ASC", false: "DESC"}[asc])
		case asc && e.Sequence == prev+1:
			r.Links++
			if e.PreviousHash != st.lastHash {
				st.fail(e, e.Sequence, chain.ReasonBrokenLink, "previousHash %s, previous event's hash %s", e.PreviousHash, st.lastHash)
			}
		case !asc && e.Sequence+1 == prev:
			r.Links++
			if st.lastPrev != e.Hash {
				st.fail(e, prev, chain.ReasonBrokenLink, "previousHash %s, previous event's hash %s", st.lastPrev, e.Hash)
			}
		case contiguous:
			lo, hi := min(prev, e.Sequence), max(prev, e.Sequence)
			st.fail(e, lo+1, chain.ReasonGap, "sequence %d..%d missing from an export that holds whole runs of the chain", lo+1, hi-1)
		}
	}
	r.Events++
	r.First, r.Last = min(r.First, e.Sequence), max(r.Last, e.Sequence)
	st.lastSeq, st.lastHash, st.lastPrev = e.Sequence, e.Hash, e.PreviousHash
}

// finish compares the chain with its summary line and its checkpoint.
func (st *chainState) finish(keys []ed25519.PublicKey, res *Result) {
	r := &st.res
	r.Contiguous = r.Last-r.First+1 == r.Events
	tr := st.trailer
	if tr == nil {
		if res.Problem == "" {
			res.Problem = fmt.Sprintf("chain %s has events but no exportChain line", r.ChainID)
		}
		return
	}
	if tr.Count != r.Events || tr.FirstSequence != r.First || tr.LastSequence != r.Last {
		if res.Problem == "" {
			res.Problem = fmt.Sprintf("the exportChain line of %s says %d events, sequences %d..%d; the file holds %d, %d..%d",
				r.ChainID, tr.Count, tr.FirstSequence, tr.LastSequence, r.Events, r.First, r.Last)
		}
	}
	cp := st.cp
	if cp == nil {
		r.Checkpoint = "no signed checkpoint in the export"
		return
	}
	if cp.ChainID != r.ChainID {
		st.res.Problem = firstProblem(r.Problem, &chain.Problem{ChainID: r.ChainID, Sequence: cp.Sequence, Reason: chain.ReasonCheckpointMismatch,
			Detail: fmt.Sprintf("the checkpoint given for this chain is of chain %s", cp.ChainID)})
		return
	}
	sig := "signature not checked (give --public-key)"
	if len(keys) > 0 {
		ok := false
		for _, k := range keys {
			if cp.Verify(k) == nil {
				ok = true
				break
			}
		}
		if !ok {
			r.Problem = firstProblem(r.Problem, &chain.Problem{ChainID: r.ChainID, Sequence: cp.Sequence, Reason: chain.ReasonCheckpointMismatch,
				Detail: fmt.Sprintf("the checkpoint at sequence %d does not verify under the given public key(s) (key id %s)", cp.Sequence, cp.KeyID)})
			return
		}
		sig = "signature valid"
	}
	at := cp.Time.UTC().Format(chain.TimestampLayout)
	switch {
	case st.cpSeen && !st.cpMatched:
		r.Problem = firstProblem(r.Problem, &chain.Problem{ChainID: r.ChainID, Sequence: cp.Sequence, Reason: chain.ReasonCheckpointMismatch,
			Detail: fmt.Sprintf("the event at sequence %d differs from the one signed at %s (hash %s)", cp.Sequence, at, cp.Hash)})
	case st.cpSeen && r.Contiguous:
		r.Checkpoint = fmt.Sprintf("checkpoint at sequence %d (signed %s, %s) matches: sequences %d..%d are the signed chain", cp.Sequence, at, sig, r.First, cp.Sequence)
	case st.cpSeen:
		r.Checkpoint = fmt.Sprintf("checkpoint at sequence %d (signed %s, %s) matches its event", cp.Sequence, at, sig)
	case cp.Sequence > r.Last:
		r.Checkpoint = fmt.Sprintf("checkpoint at sequence %d (signed %s, %s) is past this export's last sequence %d: not matched offline", cp.Sequence, at, sig, r.Last)
	default:
		r.Checkpoint = fmt.Sprintf("checkpoint at sequence %d (signed %s, %s): its event is not in this filtered export", cp.Sequence, at, sig)
	}
}

func firstProblem(have, p *chain.Problem) *chain.Problem {
	if have != nil {
		return have
	}
	return p
}
