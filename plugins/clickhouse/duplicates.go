package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Duplicate rows: plain MergeTree cannot refuse a second row with the same (chain_id, seq), so a
// user with INSERT rights can add one with other content (and its own valid hash). Reads must not
// let such a row stand in for the genuine event, nor show different events for one sequence
// depending on which part a query happens to read first. Every read path therefore resolves a
// sequence held by several different rows to the one that links into the chain, flags it
// (chain.Event.ConflictingDuplicate; the audit API reports and counts it) and drops the others.
//
// Finding them is cheap: a summary block whose row count exceeds its sequence span holds a
// duplicate (or a retried identical insert); only events in such blocks are looked at further.

// dupBlocks returns the (chain, block) pairs among keys whose summary counts more rows than
// sequences.
func (s *Sink) dupBlocks(ctx context.Context, st state, events []chain.Event) (map[dupKey]bool, error) {
	if len(events) == 0 {
		return nil, nil
	}
	chains := map[string]bool{}
	blocks := map[uint64]bool{}
	for i := range events {
		chains[events[i].ChainID] = true
		blocks[events[i].Sequence/BlockSize] = true
	}
	var cl, bl []string
	for c := range chains {
		cl = append(cl, quoteString(c))
	}
	for b := range blocks {
		bl = append(bl, u64(b))
	}
	sort.Strings(cl)
	sort.Strings(bl)
	q := fmt.Sprintf("SELECT chain_id, block, minMerge(min_seq) AS lo, maxMerge(max_seq) AS hi, minMerge(min_ts), maxMerge(max_ts), countMerge(rows) AS n FROM %s.%s WHERE chain_id IN (%s) AND block IN (%s) GROUP BY chain_id, block HAVING n > hi - lo + 1",
		quoteIdent(st.db), st.l.ChainBlocks(), strings.Join(cl, ", "), strings.Join(bl, ", "))
	s.observe("duplicate_blocks", q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("find blocks with duplicate rows: %w", err))
	}
	defer rows.Close()
	out := map[dupKey]bool{}
	for rows.Next() {
		var (
			c      string
			b      blockInfo
			lo, hi uint64
		)
		if err := rows.Scan(&c, &b.block, &lo, &hi, &b.minTs, &b.maxTs, &b.rows); err != nil {
			return nil, fmt.Errorf("scan block summary: %w", err)
		}
		out[dupKey{c, b.block}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("find blocks with duplicate rows: %w", err))
	}
	return out, nil
}

type dupKey struct {
	chain string
	block uint64
}

// linking returns the row that links into the chain at seq among its distinct rows, and whether
// there are several different ones. Neighbours come from the sequences around it.
func (s *Sink) linking(ctx context.Context, chainID string, seq uint64) (chain.Event, bool, error) {
	var prev, at, next []chain.Event
	from := seq
	if seq > 1 {
		from = seq - 1
	}
	err := s.ReadChain(ctx, chainID, from, seq+1, func(e *chain.Event) error {
		switch e.Sequence {
		case seq - 1:
			prev = append(prev, *e)
		case seq:
			at = append(at, *e)
		case seq + 1:
			next = append(next, *e)
		}
		return nil
	})
	if err != nil || len(at) == 0 {
		return chain.Event{}, false, err
	}
	if len(at) == 1 {
		return at[0], false, nil
	}
	score := func(e *chain.Event) int {
		n := 0
		if e.ComputeHash() == e.Hash {
			n += 4
		}
		if seq == 1 && e.PreviousHash == "" {
			n += 2
		}
		for i := range prev {
			if prev[i].Hash == e.PreviousHash {
				n += 2
				break
			}
		}
		for i := range next {
			if next[i].PreviousHash == e.Hash {
				n++
				break
			}
		}
		return n
	}
	sort.SliceStable(at, func(i, j int) bool {
		si, sj := score(&at[i]), score(&at[j])
		if si != sj {
			return si > sj
		}
		return at[i].Hash < at[j].Hash // deterministic among equals
	})
	best := at[0]
	best.ConflictingDuplicate = true
	return best, true, nil
}

// resolveDuplicates replaces every event of events that shares its sequence with a conflicting
// row by the row that links (flagged), or drops it when that row sorts elsewhere (another
// timestamp: it is listed at its own position). Each sequence appears at most once.
func (s *Sink) resolveDuplicates(ctx context.Context, st state, events []chain.Event) ([]chain.Event, error) {
	dups, err := s.dupBlocks(ctx, st, events)
	if err != nil || len(dups) == 0 {
		return events, err
	}
	type seqKey struct {
		chain string
		seq   uint64
	}
	seen := map[seqKey]bool{}
	out := events[:0]
	for _, e := range events {
		k := seqKey{e.ChainID, e.Sequence}
		if seen[k] {
			continue
		}
		if dups[dupKey{e.ChainID, e.Sequence / BlockSize}] {
			best, several, err := s.linking(ctx, e.ChainID, e.Sequence)
			if err != nil {
				return nil, err
			}
			if several {
				if !best.Timestamp.Equal(e.Timestamp) {
					s.log.Warn("dropping a conflicting duplicate row from a read", "chain_id", e.ChainID, "sequence", e.Sequence,
						"event_id", e.EventID, "hash", e.Hash, "linking_hash", best.Hash)
					continue // the linking row is listed at its own position
				}
				e = best
			}
		}
		seen[k] = true
		out = append(out, e)
	}
	return out, nil
}
