package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/flowker-audit/flowker-audit/sink"
)

// DropRows implements sink.Repairer: it deletes the rows of chainID with the given (sequence,
// hash) pairs and recomputes the chain's summary row from the rows left, in one transaction.
func (s *Sink) DropRows(ctx context.Context, chainID string, rows []sink.RowRef) (int, error) {
	st, err := s.store()
	if err != nil {
		return 0, err
	}
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite sink: begin repair transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	dropped := 0
	for _, r := range rows {
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE chain_id = ? AND seq = ? AND hash = ?`, chainID, int64(r.Sequence), r.Hash)
		if err != nil {
			return 0, fmt.Errorf("sqlite sink: drop chain %s sequence %d: %w", chainID, r.Sequence, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlite sink: drop chain %s sequence %d: %w", chainID, r.Sequence, err)
		}
		dropped += int(n)
	}
	var n, first, last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), min(seq), max(seq) FROM events WHERE chain_id = ?`, chainID).Scan(&n, &first, &last); err != nil {
		return 0, fmt.Errorf("sqlite sink: recount chain %s: %w", chainID, err)
	}
	if n.Int64 == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM chains WHERE chain_id = ?`, chainID)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO chains (chain_id, event_count, first_seq, last_seq) VALUES (?, ?, ?, ?)
			ON CONFLICT (chain_id) DO UPDATE SET event_count = excluded.event_count, first_seq = excluded.first_seq, last_seq = excluded.last_seq`,
			chainID, n.Int64, first.Int64, last.Int64)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite sink: rewrite the summary of chain %s: %w", chainID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite sink: commit repair of chain %s: %w", chainID, err)
	}
	return dropped, nil
}
