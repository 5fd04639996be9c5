package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

// byIDColumns and byResourceColumns are the columns of the id and resource lookups, as selected
// from the events table (their views' SELECT lists).
const (
	byIDColumns       = "event_id, ts_us, chain_id, seq"
	byResourceColumns = "resource_id, ts_us, chain_id, seq, resource_type, event_type, action, result"
)

// DropRows implements sink.Repairer for a single server (a cluster layout is refused: its
// tables are repaired on every shard with the statements in docs/OPERATIONS.md). It deletes the
// named rows from the events table (ALTER TABLE ... DELETE, waiting for the mutation), rebuilds
// the lookup rows of those sequences from the rows left, and rebuilds the chain's summary blocks
// from the events table, so Head and ReadChain see only real rows afterwards.
func (s *Sink) DropRows(ctx context.Context, chainID string, rows []sink.RowRef) (int, error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return 0, err
	}
	if st.l.Cluster != "" {
		return 0, sink.Permanentf("clickhouse sink: repairing a cluster layout (%s) is not supported: run the statements of docs/OPERATIONS.md on every shard", st.l.Cluster)
	}
	defer s.forgetHeads([]row{{chainID: chainID}})
	db, chainCond := quoteIdent(st.db), "chain_id = "+quoteString(chainID)
	dropped := 0
	if len(rows) > 0 {
		pairs := make([]string, 0, len(rows))
		seqs := make([]string, 0, len(rows))
		seen := map[uint64]bool{}
		for _, r := range rows {
			if _, ok := decodeHash(r.Hash); !ok {
				return 0, sink.Permanentf("clickhouse sink: drop rows: hash %q of sequence %d is not 64 lowercase hex digits", r.Hash, r.Sequence)
			}
			pairs = append(pairs, fmt.Sprintf("(%s, %s)", u64(r.Sequence), quoteString(r.Hash)))
			if !seen[r.Sequence] {
				seen[r.Sequence] = true
				seqs = append(seqs, u64(r.Sequence))
			}
		}
		match := fmt.Sprintf("%s AND (seq, lower(hex(hash))) IN (%s)", chainCond, strings.Join(pairs, ", "))
		var n uint64
		q := fmt.Sprintf("SELECT count() FROM %s.%s WHERE %s", db, st.l.Events(), match)
		if err := st.conn.QueryRow(st.readCtx(ctx), q).Scan(&n); err != nil {
			return 0, classify(fmt.Errorf("count the rows to drop: %w", err))
		}
		dropped = int(n)
		if err := s.mutate(ctx, st, st.l.Events(), match); err != nil {
			return 0, err
		}
		// The lookups of those sequences are rebuilt from the rows left (a genuine row at a
		// sequence that also held a forged duplicate keeps its entries).
		inSeqs := fmt.Sprintf("%s AND seq IN (%s)", chainCond, strings.Join(seqs, ", "))
		for _, lk := range []struct{ table, cols string }{{st.l.ByID(), byIDColumns}, {st.l.ByResource(), byResourceColumns}, {st.l.ByActor(), byActorColumns}} {
			if err := s.mutate(ctx, st, lk.table, inSeqs); err != nil {
				return 0, err
			}
			if err := s.exec(ctx, st, "repair_lookup", fmt.Sprintf("INSERT INTO %[1]s.%[2]s (%[3]s) SELECT %[3]s FROM %[1]s.%[4]s WHERE %[5]s",
				db, lk.table, lk.cols, st.l.Events(), inSeqs)); err != nil {
				return 0, err
			}
		}
	}
	// The summary blocks: rebuilt from the events, whatever they claimed (a forged summary row).
	if err := s.mutate(ctx, st, st.l.ChainBlocks(), chainCond); err != nil {
		return 0, err
	}
	err = s.exec(ctx, st, "repair_summary", fmt.Sprintf(`INSERT INTO %[1]s.%[2]s SELECT chain_id, intDiv(seq, %[4]d) AS block, minState(seq), maxState(seq),
    minState(ts_us), maxState(ts_us), countState(), argMaxState(hash, seq) FROM %[1]s.%[3]s WHERE %[5]s GROUP BY chain_id, block`,
		db, st.l.ChainBlocks(), st.l.Events(), BlockSize, chainCond))
	if err != nil {
		return 0, err
	}
	return dropped, nil
}

func (s *Sink) exec(ctx context.Context, st state, name, q string) error {
	s.observe(name, q)
	if err := st.conn.Exec(ctx, q); err != nil {
		return classify(fmt.Errorf("%s: %w", firstLine(q), err))
	}
	return nil
}

// mutate runs ALTER TABLE table DELETE WHERE cond and waits until the server finished every
// mutation of the table (18.16 has no synchronous mutations).
func (s *Sink) mutate(ctx context.Context, st state, table, cond string) error {
	if err := s.exec(ctx, st, "repair_delete", fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE %s", quoteIdent(st.db), table, cond)); err != nil {
		return err
	}
	q := fmt.Sprintf("SELECT count() FROM system.mutations WHERE database = %s AND table = %s AND is_done = 0", quoteString(st.db), quoteString(table))
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var n uint64
		if err := st.conn.QueryRow(ctx, q).Scan(&n); err != nil {
			return classify(fmt.Errorf("wait for the deletion from %s: %w", table, err))
		}
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for the deletion from %s: %w", table, ctx.Err())
		case <-t.C:
		}
	}
}
