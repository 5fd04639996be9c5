package clickhouse

import (
	"context"
	"fmt"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Lookup rows lost to a retried insert (18.16, replicated tables).
//
// The lookup and summary tables are filled by materialized views as part of each insert into the
// events table. On 18.16 an insert whose part is stored but whose acknowledgement fails (with
// insert_quorum: a replica killed while its ZooKeeper session is alive, "Timeout while waiting for
// quorum", code 319) has not reached the views yet; the sink's retry of the same batch is then
// deduplicated by the replicated events table, and 18.16 skips the views for a deduplicated
// block. The events are stored once, but their id, resource and actor lookups and their chain
// summary (which Head, ReadChain and verification read) never are. Modern servers deduplicate the
// views' blocks themselves (deduplicate_blocks_in_dependent_materialized_views), so this applies
// to a legacy cluster only.
//
// The sink remembers, per chain, the rows of inserts that failed; after every later successful
// Write and with every heartbeat (WriteWatermark) it checks the remembered rows that the events
// table shows and inserts what each lookup lacks (from the rows' own values; the summary's
// aggregate states from the stored events). Rows the events table does not show yet stay
// remembered: a retry can be acknowledged through the block deduplication while the part it
// matched is only on a replica that is down, and its views may never have run there either. Checking first keeps this idempotent: a row the views did store is not added again,
// and a repeated repair insert is deduplicated like any other block. The check reads replicas
// that are at most a second behind; should it still see a row as missing that a lagging view
// part brings later, the lookups hold it twice (ReplacingMergeTree: merged away, and every read
// takes one row per key) and the summary counts it twice (min, max and last hash are unchanged;
// a block counting more rows than its sequence span is recounted exactly from the events, as
// for duplicates). Never counting too few is the point: the summary's ranges are what ReadChain
// and Head read. The memory is the plugin process's: a restart between the failure and the
// retry forgets it (docs/OPERATIONS.md).

// freshCtx is readCtx for the checks: read only replicas at most a second behind (18.16 knows
// both settings), so that a replica still fetching the parts of the views' tables does not make
// rows look missing; with no such replica the check fails as retryable and runs again with the
// host's retry.
func (st state) freshCtx(ctx context.Context) context.Context {
	settings := ch.Settings{"max_replica_delay_for_distributed_queries": 1, "fallback_to_stale_replicas_for_distributed_queries": 0}
	if st.maxExec > 0 {
		settings["max_execution_time"] = st.maxExec
	}
	return ch.Context(ctx, ch.WithSettings(settings))
}

// maxUnsure bounds the rows remembered per chain (the oldest are forgotten first).
const maxUnsure = 100_000

// healsLookups reports whether st's layout can lose lookup rows to a retried insert.
func healsLookups(st state) bool { return st.l.Cluster != "" && !st.version.IsModern() }

// noteUnsure remembers the rows of a failed insert.
func (s *Sink) noteUnsure(st state, rows []row) {
	if !healsLookups(st) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unsure == nil {
		s.unsure = map[string][]row{}
	}
	for _, r := range rows {
		s.unsure[r.chainID] = append(s.unsure[r.chainID], r)
	}
	for id, rs := range s.unsure {
		if len(rs) > maxUnsure {
			s.unsure[id] = append([]row(nil), rs[len(rs)-maxUnsure:]...)
		}
	}
}

// healPending checks the remembered rows of every chain, after a successful write or with a
// heartbeat. Rows the events table does not show yet (stored on a replica that is down, say, and
// acknowledged through the block deduplication of another) stay remembered and are checked
// again next time; the others are done.
func (s *Sink) healPending(ctx context.Context, st state) error {
	if !healsLookups(st) {
		return nil
	}
	s.mu.Lock()
	todo := s.unsure
	s.unsure = nil
	s.mu.Unlock()
	var firstErr error
	keep := map[string][]row{}
	for id, rs := range todo {
		if firstErr != nil {
			keep[id] = rs
			continue
		}
		pending, err := s.healLookups(ctx, st, id, dedupRows(rs))
		if err != nil {
			firstErr = err
			pending = rs
		}
		if len(pending) > 0 {
			keep[id] = pending
		}
	}
	if len(keep) > 0 {
		s.mu.Lock()
		if s.unsure == nil {
			s.unsure = map[string][]row{}
		}
		for id, rs := range keep {
			s.unsure[id] = append(rs, s.unsure[id]...)
		}
		s.mu.Unlock()
	}
	return firstErr
}

// dedupRows keeps the first row of each sequence.
func dedupRows(rs []row) []row {
	seen := make(map[uint64]bool, len(rs))
	out := rs[:0:0]
	for _, r := range rs {
		if !seen[r.seq] {
			seen[r.seq] = true
			out = append(out, r)
		}
	}
	return out
}

// healChunkRows bounds the rows one round of checks covers. The checks list the rows' event ids,
// sequences, resource and actor ids in their SQL, and a server refuses a statement longer than
// its max_query_size (256 KiB by default): 1,000 rows make at most ~60 KiB per statement, where a
// failed batch of 10,000 (and up to maxUnsure remembered rows) would not fit.
const healChunkRows = 1000

// healLookups inserts into each lookup table and the summary what they lack of the rows of
// chainID that the events table shows, and returns the rows it does not show yet, checking
// healChunkRows rows at a time. On an error nothing is returned as pending: the caller keeps all
// of them, and the chunks already restored are found complete next time.
func (s *Sink) healLookups(ctx context.Context, st state, chainID string, all []row) (pending []row, err error) {
	for lo := 0; lo < len(all); lo += healChunkRows {
		p, err := s.healChunk(ctx, st, chainID, all[lo:min(lo+healChunkRows, len(all))])
		if err != nil {
			return nil, err
		}
		pending = append(pending, p...)
	}
	return pending, nil
}

// healChunk is healLookups for at most healChunkRows rows.
func (s *Sink) healChunk(ctx context.Context, st state, chainID string, all []row) (pending []row, err error) {
	db := quoteIdent(st.db)
	// Only rows the events table shows are checked; the others are pending.
	lo, hi, allSeqs := rowSpan(all)
	var w where
	timeConds(&w, bound{true, lo}, bound{true, hi})
	w.add("chain_id = " + quoteString(chainID))
	w.add("seq IN (" + strings.Join(allSeqs, ", ") + ")")
	visible, err := s.seqSet(ctx, st, "heal_visible", fmt.Sprintf("SELECT seq FROM %s.%s%s", db, st.l.Events(), w))
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, r := range all {
		if visible[r.seq] {
			rows = append(rows, r)
		} else {
			pending = append(pending, r)
		}
	}
	if len(rows) == 0 {
		return pending, nil
	}
	seqs := make([]string, len(rows))
	ids := make([]string, len(rows))
	resources, actors := map[string]bool{}, map[string]bool{}
	for i, r := range rows {
		seqs[i] = u64(r.seq)
		ids[i] = "toUUID(" + quoteString(r.eventID.String()) + ")"
		resources[quoteString(r.resourceID)] = true
		actors[quoteString(r.actorID)] = true
	}
	seqList := strings.Join(seqs, ", ")
	chainCond := "chain_id = " + quoteString(chainID)
	keys := func(m map[string]bool) string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		return strings.Join(out, ", ")
	}
	healed := 0
	for _, lk := range []struct {
		table, columns, find string
		values               func(r *row) []any
	}{
		{st.l.ByID(), byIDColumns,
			fmt.Sprintf("SELECT seq FROM %s.%s WHERE event_id IN (%s) AND %s", db, st.l.ByID(), strings.Join(ids, ", "), chainCond),
			func(r *row) []any { return []any{r.eventID, r.tsUs, r.chainID, r.seq} }},
		{st.l.ByResource(), byResourceColumns,
			fmt.Sprintf("SELECT seq FROM %s.%s WHERE resource_id IN (%s) AND %s AND seq IN (%s)", db, st.l.ByResource(), keys(resources), chainCond, seqList),
			func(r *row) []any {
				return []any{r.resourceID, r.tsUs, r.chainID, r.seq, r.resourceType, r.eventType, r.action, r.result}
			}},
		{st.l.ByActor(), byActorColumns,
			fmt.Sprintf("SELECT seq FROM %s.%s WHERE actor_id IN (%s) AND %s AND seq IN (%s)", db, st.l.ByActor(), keys(actors), chainCond, seqList),
			func(r *row) []any {
				return []any{r.actorID, r.tsUs, r.chainID, r.seq, r.actorType, r.resourceID, r.resourceType, r.eventType, r.action, r.result}
			}},
	} {
		have, err := s.seqSet(ctx, st, "heal_find", lk.find)
		if err != nil {
			return nil, err
		}
		var missing []row
		for _, r := range rows {
			if !have[r.seq] {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if err := s.insertLookup(ctx, st, lk.table, lk.columns, missing, lk.values); err != nil {
			return nil, err
		}
		healed += len(missing)
	}
	n, err := s.healSummary(ctx, st, chainID, rows)
	if err != nil {
		return nil, err
	}
	if healed+n > 0 {
		s.log.Warn("restored lookup rows a deduplicated retry had skipped", "chain", chainID, "lookup_rows", healed, "summary_rows", n)
	}
	return pending, nil
}

// healSummary adds the aggregate states of rows to the chain summary, block by block, where the
// summary counts fewer rows than the events table holds (a block's rows are inserted together,
// so a block's share of one insert is either all counted or not at all).
func (s *Sink) healSummary(ctx context.Context, st state, chainID string, rows []row) (int, error) {
	db := quoteIdent(st.db)
	byBlock := map[uint64][]row{}
	for _, r := range rows {
		byBlock[r.seq/BlockSize] = append(byBlock[r.seq/BlockSize], r)
	}
	healed := 0
	for block, rs := range byBlock {
		lo, hi, seqs := rowSpan(rs)
		var counted uint64
		var sumLo, sumHi int64
		q := fmt.Sprintf("SELECT countMerge(rows), minMerge(min_ts), maxMerge(max_ts) FROM %s.%s WHERE chain_id = %s AND block = %d",
			db, st.l.ChainBlocks(), quoteString(chainID), block)
		s.observe("heal_summary", q)
		if err := st.conn.QueryRow(st.freshCtx(ctx), q).Scan(&counted, &sumLo, &sumHi); err != nil {
			return healed, classify(fmt.Errorf("read chain summary: %w", err))
		}
		if counted > 0 {
			lo, hi = min(lo, sumLo), max(hi, sumHi)
		}
		var w where
		timeConds(&w, bound{true, lo}, bound{true, hi})
		w.add("chain_id = " + quoteString(chainID))
		w.add(fmt.Sprintf("intDiv(seq, %d) = %d", BlockSize, block))
		var stored uint64
		q = fmt.Sprintf("SELECT uniqExact(seq) FROM %s.%s%s", db, st.l.Events(), w)
		s.observe("heal_summary", q)
		if err := st.conn.QueryRow(st.freshCtx(ctx), q).Scan(&stored); err != nil {
			return healed, classify(fmt.Errorf("count stored events: %w", err))
		}
		if stored < counted+uint64(len(rs)) {
			continue // the summary counts them already
		}
		var sel where
		timeConds(&sel, bound{true, lo}, bound{true, hi})
		sel.add("chain_id = " + quoteString(chainID))
		sel.add("seq IN (" + strings.Join(seqs, ", ") + ")")
		q = fmt.Sprintf(`INSERT INTO %[1]s.%[2]s (chain_id, block, min_seq, max_seq, min_ts, max_ts, rows, last_hash)
SELECT chain_id, intDiv(seq, %[3]d) AS block, minState(seq), maxState(seq), minState(ts_us), maxState(ts_us), countState(), argMaxState(hash, seq)
FROM (SELECT chain_id, seq, ts_us, hash FROM %[1]s.%[4]s%[5]s LIMIT 1 BY seq) GROUP BY chain_id, block`,
			db, st.l.ChainBlocks(), BlockSize, st.l.Events(), sel)
		s.observe("heal_summary_insert", q)
		if err := st.conn.Exec(ch.Context(ctx, ch.WithSettings(insertSettingsFor(st, rs))), q); err != nil {
			return healed, classify(fmt.Errorf("restore chain summary of chain %s block %d: %w", chainID, block, err))
		}
		healed += len(rs)
	}
	if healed > 0 {
		s.forgetHeads([]row{{chainID: chainID}})
	}
	return healed, nil
}

// insertLookup inserts rows into a lookup table through its Distributed table.
func (s *Sink) insertLookup(ctx context.Context, st state, table, columns string, rows []row, values func(r *row) []any) error {
	q := fmt.Sprintf("INSERT INTO %s.%s (%s)", quoteIdent(st.db), table, columns)
	s.observe("heal_insert", q)
	batch, err := st.conn.PrepareBatch(ch.Context(ctx, ch.WithSettings(insertSettingsFor(st, rows))), q)
	if err != nil {
		return classify(fmt.Errorf("prepare restoring %s: %w", table, err))
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	for i := range rows {
		if err := batch.Append(values(&rows[i])...); err != nil {
			return fmt.Errorf("append to %s: %w", table, err)
		}
	}
	if err := batch.Send(); err != nil {
		return classify(fmt.Errorf("restore %d rows of %s: %w", len(rows), table, err))
	}
	return nil
}

// seqSet runs q, which selects one UInt64 column, and returns its values.
func (s *Sink) seqSet(ctx context.Context, st state, name, q string) (map[uint64]bool, error) {
	s.observe(name, q)
	rows, err := st.conn.Query(st.freshCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("query %s: %w", name, err))
	}
	defer rows.Close()
	out := map[uint64]bool{}
	for rows.Next() {
		var v uint64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("scan %s: %w", name, err)
		}
		out[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read %s: %w", name, err))
	}
	return out, nil
}

// rowSpan returns the time range of rows (not empty) and their sequences as SQL literals.
func rowSpan(rows []row) (lo, hi int64, seqs []string) {
	lo, hi = rows[0].tsUs, rows[0].tsUs
	seqs = make([]string, len(rows))
	for i, r := range rows {
		lo, hi = min(lo, r.tsUs), max(hi, r.tsUs)
		seqs[i] = u64(r.seq)
	}
	return lo, hi, seqs
}
