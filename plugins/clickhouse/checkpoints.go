package clickhouse

import (
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/flowker-audit/flowker-audit/sink"
)

var (
	_ sink.CheckpointWriter = (*Sink)(nil)
	_ sink.CheckpointReader = (*Sink)(nil)
)

// WriteCheckpoints stores signed checkpoints in audit_checkpoints (a ReplacingMergeTree keyed by
// chain, sequence, key and signature: a repeated write adds nothing once merged, and reads are
// DISTINCT meanwhile). Someone with INSERT rights can add rows, but not a valid signature.
func (s *Sink) WriteCheckpoints(ctx context.Context, cps []sink.Checkpoint) error {
	if len(cps) == 0 {
		return nil
	}
	st, err := s.ensureReady(ctx)
	if err != nil {
		return err
	}
	q := fmt.Sprintf("INSERT INTO %s.%s (chain_id, seq, hash, time_us, key_id, signature)", quoteIdent(st.db), st.l.Checkpoints())
	s.observe("checkpoints_insert", q)
	if st.l.Cluster != "" { // through the Distributed table, acknowledged once a replica has them
		ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
	}
	batch, err := st.conn.PrepareBatch(ctx, q)
	if err != nil {
		return classify(fmt.Errorf("prepare insert of %d checkpoints: %w", len(cps), err))
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	for _, c := range cps {
		if err := batch.Append(c.ChainID, c.Sequence, c.Hash, c.Time.UnixMicro(), c.KeyID, c.Signature); err != nil {
			return sink.Permanent(fmt.Errorf("append checkpoint of chain %q sequence %d: %w", c.ChainID, c.Sequence, err))
		}
	}
	if err := batch.Send(); err != nil {
		return classify(fmt.Errorf("insert %d checkpoints: %w", len(cps), err))
	}
	return nil
}

// ReadCheckpoints returns the stored checkpoints of chainID in sequence order.
func (s *Sink) ReadCheckpoints(ctx context.Context, chainID string) ([]sink.Checkpoint, error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf("SELECT DISTINCT seq, hash, time_us, key_id, signature FROM %s.%s WHERE chain_id = %s ORDER BY seq, time_us, key_id, signature",
		quoteIdent(st.db), st.l.Checkpoints(), quoteString(chainID))
	s.observe("checkpoints_read", q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("read checkpoints of chain %q: %w", chainID, err))
	}
	defer rows.Close()
	var out []sink.Checkpoint
	for rows.Next() {
		c := sink.Checkpoint{ChainID: chainID}
		var us int64
		if err := rows.Scan(&c.Sequence, &c.Hash, &us, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("scan checkpoint: %w", err)
		}
		c.Time = time.UnixMicro(us).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read checkpoints of chain %q: %w", chainID, err))
	}
	return out, nil
}
