package clickhouse

import (
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/flowker-audit/flowker-audit/sink"
)

// The read horizon.
//
// Several sidecars write their chains into one table, each delivering its journal in sequence
// order, and the journal stamps each chain's events with strictly increasing timestamps. A search
// that pages in timestamp order would otherwise miss an event that reaches ClickHouse after a
// cursor passed its timestamp (its sidecar's delivery lagged behind another's). So each sink
// publishes per chain a watermark, "every event of this chain with a timestamp at or below
// up_to is stored", into <table>_watermarks:
//   - after each stored batch, up_to is the batch's newest timestamp of the chain (everything
//     below it was stored before: delivery is in sequence order);
//   - while delivery is caught up with the journal, the host sends the time of its check
//     (sink.WatermarkWriter, every second), so an idle chain does not hold the horizon back.
//
// Searches serve only events with a timestamp at or below the horizon, the lowest up_to of the
// live chains: those whose newest watermark was written within horizon_staleness. Below the
// horizon the trail no longer changes, so paging in either order gives the same sequence with no
// duplicates or gaps while writes continue, and cursors stay valid (the horizon only bounds the
// newest end).
//
// Limits, said plainly:
//   - a chain that publishes nothing for horizon_staleness (its sidecar is down, or cannot reach
//     ClickHouse) is left out, so the others' newest events show; when it comes back, the events
//     it had journaled but not delivered carry older timestamps, and a reader who had paged past
//     them does not see them on later pages (a new search does);
//   - likewise a new sidecar's events stamped before its first watermark;
//   - staleness compares the writer's clock (written_us) with the reader's; skew between sidecar
//     hosts shortens or lengthens it;
//   - the horizon is exact against delivery lag, not against replication lag: with several
//     replicas it holds when readers and writers reach the same replica of a shard (the sink
//     connects to addr in order, and Distributed queries prefer the local replica); a reader
//     that fails over to a replica that has not yet fetched a part can miss its events.
//
// The horizon is on by default with a cluster (read_horizon: auto) and can be switched on for
// several sidecars sharing one server.

var _ sink.WatermarkWriter = (*Sink)(nil)

// watermarks holds what this sink has to publish.
type watermarks struct {
	pending map[string]int64 // chain -> newest up_to (µs) not yet published
	last    time.Time        // last publication
}

// publishAfterWrite publishes the pending watermarks in the background, one publication at a
// time, so that a Write does not wait for the extra insert (through a replicated table it costs
// ZooKeeper round trips of its own). A failure leaves them pending for the next batch or heartbeat.
func (s *Sink) publishAfterWrite() {
	s.mu.Lock()
	due := len(s.wm.pending) > 0 && time.Since(s.wm.last) >= time.Duration(s.cfg.WatermarkInterval)
	s.mu.Unlock()
	if !due || !s.wmBusy.CompareAndSwap(false, true) {
		return // one is running; the next Write or heartbeat publishes what it leaves
	}
	go func() {
		defer s.wmBusy.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.readTimeout()))
		defer cancel()
		if err := s.publishWatermarks(ctx, false); err != nil {
			s.log.Debug("publishing delivery watermarks", "error", err)
		}
	}()
}

func (s *Sink) readTimeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.cfg.ReadTimeout)
}

// noteWritten records the newest timestamp of each chain in a stored batch.
func (s *Sink) noteWritten(rows []row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.horizon() || s.wmMissing {
		return
	}
	for i := range rows {
		if rows[i].tsUs > s.wm.pending[rows[i].chainID] {
			s.wm.pending[rows[i].chainID] = rows[i].tsUs
		}
	}
}

// WriteWatermark records that every event of chainID stamped at or before upTo is stored (the
// host's heartbeat of a caught-up delivery) and publishes it. With the read horizon off it
// answers sink.ErrUnsupported, so that the host stops sending them.
func (s *Sink) WriteWatermark(ctx context.Context, chainID string, upTo time.Time) error {
	if chainID == "" {
		return sink.Permanentf("watermark without a chain id")
	}
	s.mu.Lock()
	on := s.cfg.horizon() && !s.wmMissing
	if on && upTo.UnixMicro() > s.wm.pending[chainID] {
		s.wm.pending[chainID] = upTo.UnixMicro()
	}
	s.mu.Unlock()
	if !on {
		// The host then stops sending heartbeats (and their journal transactions).
		return fmt.Errorf("clickhouse sink: the read horizon is off: %w", sink.ErrUnsupported)
	}
	// An idle chain's heartbeat also finishes restoring lookups a retried insert skipped
	// (heal.go), e.g. once the replica that held the rows is back.
	if st, err := s.ensureReady(ctx); err != nil {
		return err
	} else if err := s.healPending(ctx, st); err != nil {
		return err
	}
	return s.publishWatermarks(ctx, true)
}

// publishWatermarks inserts the pending watermarks when watermark_interval has passed since the
// last publication (or always, with force). A failure keeps them pending.
func (s *Sink) publishWatermarks(ctx context.Context, force bool) error {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if len(s.wm.pending) == 0 || (!force && time.Since(s.wm.last) < time.Duration(s.cfg.WatermarkInterval)) {
		s.mu.Unlock()
		return nil
	}
	pending := s.wm.pending
	s.wm.pending = map[string]int64{}
	s.wm.last = time.Now()
	s.mu.Unlock()

	err = s.insertWatermarks(ctx, st, pending)
	if err != nil {
		s.mu.Lock()
		for c, v := range pending { // keep them for the next try, unless superseded meanwhile
			if v > s.wm.pending[c] {
				s.wm.pending[c] = v
			}
		}
		s.mu.Unlock()
	}
	return err
}

func (s *Sink) insertWatermarks(ctx context.Context, st state, pending map[string]int64) error {
	q := fmt.Sprintf("INSERT INTO %s.%s (chain_id, up_to_us, written_us)", quoteIdent(st.db), st.l.Watermarks())
	s.observe("watermarks_insert", q)
	if st.l.Cluster != "" { // acknowledged once a replica of the chain's shard has it
		ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
	}
	batch, err := st.conn.PrepareBatch(ctx, q)
	if err != nil {
		return classify(fmt.Errorf("prepare insert of watermarks: %w", err))
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	now := time.Now().UnixMicro()
	for c, v := range pending {
		if err := batch.Append(c, v, now); err != nil {
			return sink.Permanent(fmt.Errorf("append watermark of chain %q: %w", c, err))
		}
	}
	if err := batch.Send(); err != nil {
		return classify(fmt.Errorf("insert watermarks: %w", err))
	}
	return nil
}

// Horizon returns the read horizon in Unix microseconds: the lowest watermark of the chains
// that published one within horizon_staleness. ok is false when the horizon is off or no chain
// is live (then nothing is held back).
func (s *Sink) Horizon(ctx context.Context) (h int64, ok bool, err error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return 0, false, err
	}
	return s.horizon(ctx, st)
}

func (s *Sink) horizon(ctx context.Context, st state) (int64, bool, error) {
	if !st.horizon {
		return 0, false, nil
	}
	since := time.Now().Add(-st.staleness).UnixMicro()
	q := fmt.Sprintf("SELECT min(up_to), count() FROM (SELECT argMax(up_to_us, written_us) AS up_to FROM %s.%s GROUP BY chain_id HAVING max(written_us) >= %s)",
		quoteIdent(st.db), st.l.Watermarks(), i64(since))
	s.observe("horizon", q)
	var (
		h int64
		n uint64
	)
	if err := st.conn.QueryRow(st.readCtx(ctx), q).Scan(&h, &n); err != nil {
		return 0, false, classify(fmt.Errorf("read the watermarks: %w", err))
	}
	return h, n > 0, nil
}
