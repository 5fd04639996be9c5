package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// eventColumns is the column list every read selects, in scanEvent order.
const eventColumns = `chain_id, seq, event_id, event_type, action, result, resource_id, resource_type,
	actor_type, actor_id, actor_ip, context, metadata, ts_us, hash, previous_hash`

// insertSQL is idempotent on (chain_id, seq) only: a conflict on the event_id index is an error,
// so a reused event id is reported instead of silently dropped (INSERT OR IGNORE would drop it).
const insertSQL = `INSERT INTO events (` + eventColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (chain_id, seq) DO NOTHING`

const upsertChainSQL = `INSERT INTO chains (chain_id, event_count, first_seq, last_seq) VALUES (?, ?, ?, ?)
	ON CONFLICT (chain_id) DO UPDATE SET
		event_count = event_count + excluded.event_count,
		first_seq = min(first_seq, excluded.first_seq),
		last_seq = max(last_seq, excluded.last_seq)`

// checkEvery is how many rows Write inserts between checks of its context. Rows are inserted
// with a context that is never cancelled (the driver starts a watcher goroutine per statement for
// a cancellable one), so cancellation is noticed at this granularity and rolls the batch back.
const checkEvery = 256

// validate rejects events that can never be stored.
func validate(i int, e *chain.Event) error {
	switch {
	case e.ChainID == "":
		return sink.Permanentf("sqlite sink: event %d of the batch (eventId %q) has no chainId", i, e.EventID)
	case e.Sequence == 0 || e.Sequence > math.MaxInt64:
		return sink.Permanentf("sqlite sink: event %d of the batch (chain %s) has sequence %d, want 1..%d", i, e.ChainID, e.Sequence, int64(math.MaxInt64))
	case e.EventID == "":
		return sink.Permanentf("sqlite sink: event %d of the batch (chain %s sequence %d) has no eventId", i, e.ChainID, e.Sequence)
	case e.Hash == "":
		return sink.Permanentf("sqlite sink: event %d of the batch (chain %s sequence %d) has no hash", i, e.ChainID, e.Sequence)
	}
	return nil
}

type chainSummary struct {
	count       int64
	first, last uint64
}

func (st *store) write(ctx context.Context, events []chain.Event) (err error) {
	if len(events) == 0 {
		return nil
	}
	for i := range events {
		if err := validate(i, &events[i]); err != nil {
			return err
		}
	}
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite sink: begin write transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	bg := context.WithoutCancel(ctx)
	ins := tx.StmtContext(bg, st.insert)
	var existing *sql.Stmt
	sums := map[string]*chainSummary{}
	for i := range events {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sqlite sink: write batch: %w", err)
			}
		}
		e := &events[i]
		res, err := ins.ExecContext(bg,
			e.ChainID, int64(e.Sequence), e.EventID, e.EventType, e.Action, e.Result, e.ResourceID, e.ResourceType,
			e.Actor.Type, e.Actor.ID, e.Actor.IPAddress, string(e.Context), string(e.Metadata),
			e.Timestamp.UnixMicro(), e.Hash, e.PreviousHash)
		if err != nil {
			var se *sqlitedrv.Error
			if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
				return sink.Permanentf("sqlite sink: event %s (chain %s sequence %d): its eventId is already stored at another position: %w", e.EventID, e.ChainID, e.Sequence, err)
			}
			return fmt.Errorf("sqlite sink: insert event %s (chain %s sequence %d): %w", e.EventID, e.ChainID, e.Sequence, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite sink: insert event %s: %w", e.EventID, err)
		}
		if n == 0 {
			// (chain_id, seq) is already stored: a replay, which must be the very same event.
			if existing == nil {
				existing = tx.StmtContext(bg, st.existing)
			}
			var h string
			if err := existing.QueryRowContext(bg, e.ChainID, int64(e.Sequence)).Scan(&h); err != nil {
				return fmt.Errorf("sqlite sink: read stored hash of chain %s sequence %d: %w", e.ChainID, e.Sequence, err)
			}
			if h != e.Hash {
				return sink.Conflictf("sqlite sink: chain %s sequence %d is already stored with hash %s; the batch has %s (a fork or a rewritten event)", e.ChainID, e.Sequence, h, e.Hash)
			}
			continue
		}
		s := sums[e.ChainID]
		if s == nil {
			s = &chainSummary{first: e.Sequence, last: e.Sequence}
			sums[e.ChainID] = s
		}
		s.count++
		s.first, s.last = min(s.first, e.Sequence), max(s.last, e.Sequence)
	}
	if len(sums) > 0 {
		up := tx.StmtContext(bg, st.upsertChain)
		for id, s := range sums {
			if _, err := up.ExecContext(bg, id, s.count, int64(s.first), int64(s.last)); err != nil {
				return fmt.Errorf("sqlite sink: update summary of chain %s: %w", id, err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite sink: write batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite sink: commit batch of %d events: %w", len(events), err)
	}
	return nil
}
