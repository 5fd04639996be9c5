package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

var (
	_ sink.CheckpointWriter = (*Sink)(nil)
	_ sink.CheckpointReader = (*Sink)(nil)
)

// WriteCheckpoints stores signed checkpoints beside the events (idempotent: a checkpoint already
// stored is skipped). They are only as good as their signature: verifiers check it with the
// sidecar's public key, so rows written by someone else without the key are refused there.
func (s *Sink) WriteCheckpoints(ctx context.Context, cps []sink.Checkpoint) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite sink: begin checkpoint transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, c := range cps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (chain_id, seq, hash, time_us, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, c.ChainID, int64(c.Sequence), c.Hash, c.Time.UnixMicro(), c.KeyID, c.Signature); err != nil {
			return fmt.Errorf("sqlite sink: store checkpoint of chain %s sequence %d: %w", c.ChainID, c.Sequence, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite sink: commit checkpoints: %w", err)
	}
	return nil
}

// ReadCheckpoints returns the stored checkpoints of chainID in sequence order.
func (s *Sink) ReadCheckpoints(ctx context.Context, chainID string) ([]sink.Checkpoint, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	rows, err := st.r.QueryContext(ctx, `SELECT seq, hash, time_us, key_id, signature FROM checkpoints WHERE chain_id = ? ORDER BY seq, time_us`, chainID)
	if err != nil {
		return nil, fmt.Errorf("sqlite sink: read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []sink.Checkpoint
	for rows.Next() {
		c := sink.Checkpoint{ChainID: chainID}
		var seq, us int64
		if err := rows.Scan(&seq, &c.Hash, &us, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("sqlite sink: read checkpoints: %w", err)
		}
		c.Sequence, c.Time = uint64(seq), time.UnixMicro(us).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite sink: read checkpoints: %w", err)
	}
	return out, nil
}
