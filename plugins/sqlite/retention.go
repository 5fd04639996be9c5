package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

// DefaultRetentionBatch is how many events one retention block deletes: one transaction, which
// holds SQLite's single writer while every index entry of its rows is removed, so writes queued
// behind it wait for it (BenchmarkRetentionBlock, plan and remove: 5,000 events took 0.74 s at
// load 38 on two cores, 1,000 took 0.23 s at load 34).
const DefaultRetentionBatch = 1000

var _ sink.Retainer = (*Sink)(nil)

// PlanRetention returns the newest event of the oldest block of at most RetentionBatch stored
// events of chainID that are all older than cutoff and at or below upTo. The block's events must
// be contiguous and linked (a gap or broken link there is refused, so retention never removes
// the evidence of earlier tampering under a signed anchor).
func (s *Sink) PlanRetention(ctx context.Context, chainID string, cutoff time.Time, upTo uint64) (sink.Head, error) {
	st, err := s.store()
	if err != nil {
		return sink.Head{}, err
	}
	if upTo > math.MaxInt64 {
		upTo = math.MaxInt64
	}
	var first int64
	switch err := st.r.QueryRowContext(ctx, `SELECT seq FROM events WHERE chain_id = ? ORDER BY seq LIMIT 1`, chainID).Scan(&first); {
	case errors.Is(err, sql.ErrNoRows):
		return sink.Head{}, nil
	case err != nil:
		return sink.Head{}, fmt.Errorf("sqlite sink: plan retention of chain %s: %w", chainID, err)
	}
	if uint64(first) > upTo {
		return sink.Head{}, nil
	}
	prev, err := st.anchorHead(ctx, chainID)
	if err != nil {
		return sink.Head{}, err
	}
	hi := min(upTo, uint64(first)+uint64(s.batch)-1)
	rows, err := st.r.QueryContext(ctx, `SELECT seq, ts_us, hash, previous_hash FROM events WHERE chain_id = ? AND seq >= ? AND seq <= ? ORDER BY seq`,
		chainID, first, int64(hi))
	if err != nil {
		return sink.Head{}, fmt.Errorf("sqlite sink: plan retention of chain %s: %w", chainID, err)
	}
	defer rows.Close()
	var plan sink.Head
	next, link, checkLink := uint64(first), "", first == 1
	if prev.Found && prev.Sequence+1 == uint64(first) {
		link, checkLink = prev.Hash, true
	}
	cut := cutoff.UnixMicro()
	for rows.Next() {
		var seq, ts int64
		var hash, prevHash string
		if err := rows.Scan(&seq, &ts, &hash, &prevHash); err != nil {
			return sink.Head{}, fmt.Errorf("sqlite sink: plan retention of chain %s: %w", chainID, err)
		}
		if ts >= cut {
			break
		}
		switch {
		case uint64(seq) != next:
			return sink.Head{}, sink.Conflictf("sqlite sink: retention of chain %s: sequence %d missing before %d; not removing events around it", chainID, next, seq)
		case checkLink && prevHash != link:
			return sink.Head{}, sink.Conflictf("sqlite sink: retention of chain %s: sequence %d does not link to the event before it; not removing events around it", chainID, seq)
		}
		plan = sink.Head{Found: true, Sequence: uint64(seq), Hash: hash}
		next, link, checkLink = uint64(seq)+1, hash, true
	}
	if err := rows.Err(); err != nil {
		return sink.Head{}, fmt.Errorf("sqlite sink: plan retention of chain %s: %w", chainID, err)
	}
	return plan, nil
}

// Retain stores the anchor and deletes the chain's events up to it in one transaction, and
// brings the chain summary along. Freed pages are reused by later writes (the file does not
// shrink: VACUUM would block writes for its whole run).
func (s *Sink) Retain(ctx context.Context, a sink.RetentionAnchor) (sink.RetentionResult, error) {
	st, err := s.store()
	if err != nil {
		return sink.RetentionResult{}, err
	}
	if a.ChainID == "" || a.Sequence == 0 || a.Sequence > math.MaxInt64 || a.Hash == "" || a.Signature == "" {
		return sink.RetentionResult{}, sink.Permanentf("sqlite sink: retention anchor %+v is incomplete", a)
	}
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return sink.RetentionResult{}, fmt.Errorf("sqlite sink: begin retention transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO retention_anchors (chain_id, seq, hash, cutoff_us, time_us, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		a.ChainID, int64(a.Sequence), a.Hash, a.Cutoff.UnixMicro(), a.Time.UnixMicro(), a.KeyID, a.Signature); err != nil {
		return sink.RetentionResult{}, fmt.Errorf("sqlite sink: store retention anchor: %w", err)
	}
	// Only the newest anchor is needed to verify (older ones would pile up, one per block).
	if _, err := tx.ExecContext(ctx, `DELETE FROM retention_anchors WHERE chain_id = ? AND seq < ?`, a.ChainID, int64(a.Sequence)); err != nil {
		return sink.RetentionResult{}, fmt.Errorf("sqlite sink: prune older retention anchors: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE chain_id = ? AND seq <= ?`, a.ChainID, int64(a.Sequence))
	if err != nil {
		return sink.RetentionResult{}, fmt.Errorf("sqlite sink: delete events of chain %s up to %d: %w", a.ChainID, a.Sequence, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return sink.RetentionResult{}, fmt.Errorf("sqlite sink: delete events: %w", err)
	}
	if n > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE chains SET event_count = max(0, event_count - ?), first_seq = max(first_seq, ?) WHERE chain_id = ?`,
			n, int64(a.Sequence)+1, a.ChainID); err != nil {
			return sink.RetentionResult{}, fmt.Errorf("sqlite sink: update chain summary: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return sink.RetentionResult{}, fmt.Errorf("sqlite sink: commit retention: %w", err)
	}
	out := sink.RetentionResult{Events: uint64(n)}
	if n > 0 {
		out.Blocks = 1
	}
	return out, nil
}

// ReadAnchors returns the stored retention anchors of chainID in sequence order.
func (s *Sink) ReadAnchors(ctx context.Context, chainID string) ([]sink.RetentionAnchor, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	return st.anchors(ctx, chainID)
}

func (st *store) anchors(ctx context.Context, chainID string) ([]sink.RetentionAnchor, error) {
	rows, err := st.r.QueryContext(ctx, `SELECT seq, hash, cutoff_us, time_us, key_id, signature FROM retention_anchors WHERE chain_id = ? ORDER BY seq, time_us`, chainID)
	if err != nil {
		return nil, fmt.Errorf("sqlite sink: read retention anchors: %w", err)
	}
	defer rows.Close()
	var out []sink.RetentionAnchor
	for rows.Next() {
		a := sink.RetentionAnchor{ChainID: chainID}
		var seq, cut, at int64
		if err := rows.Scan(&seq, &a.Hash, &cut, &at, &a.KeyID, &a.Signature); err != nil {
			return nil, fmt.Errorf("sqlite sink: read retention anchors: %w", err)
		}
		a.Sequence, a.Cutoff, a.Time = uint64(seq), time.UnixMicro(cut).UTC(), time.UnixMicro(at).UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite sink: read retention anchors: %w", err)
	}
	return out, nil
}

// anchorHead returns the newest retention anchor of chainID as a head (Found false: none).
func (st *store) anchorHead(ctx context.Context, chainID string) (sink.Head, error) {
	var seq int64
	var hash string
	switch err := st.r.QueryRowContext(ctx, `SELECT seq, hash FROM retention_anchors WHERE chain_id = ? ORDER BY seq DESC LIMIT 1`, chainID).Scan(&seq, &hash); {
	case errors.Is(err, sql.ErrNoRows):
		return sink.Head{}, nil
	case err != nil:
		return sink.Head{}, fmt.Errorf("sqlite sink: newest retention anchor of chain %s: %w", chainID, err)
	}
	return sink.Head{Found: true, Sequence: uint64(seq), Hash: hash}, nil
}
