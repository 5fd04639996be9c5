package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

// Retention in ClickHouse removes whole monthly partitions of the events table (PARTITION BY
// toYYYYMM(ts)) with ALTER TABLE ... DROP PARTITION, which every version since 18.16 runs as a
// cheap metadata operation: no rows are rewritten. A partition goes only when every row in it
// belongs to the chain being retained, is older than the cutoff, lies at or below the bound every
// sink acknowledged, and its sequences continue the partition before it without gap or
// duplicate; so retention lags the cutoff by up to a month, and a partition shared with another
// chain (an imported one) is kept.
//
// The derived tables follow with ALTER TABLE ... DELETE mutations (sound there: they are lookups
// and summaries, rebuilt from nothing but the events, and readers already tolerate a lookup row
// whose event is gone): the by_id, by_resource and by_actor lookups lose the removed sequences,
// the chain summary its blocks that lie wholly at or below the anchor. Mutations run in the
// background; until they finish, Chains clamps the summary to the anchor.
//
// TTL is not used, on any version: a TTL removes rows by age alone, so it could neither wait
// for the other sinks' acknowledgement nor store the signed anchor before the rows go, and the
// chain would no longer verify. Nor are ALTER DELETE mutations used on the events table: they
// rewrite whole parts, and a partition drop does the same job whole.
//
// Retention needs a user allowed to ALTER the database's tables (on 18.16 a profile with
// allow_ddl=1) and is refused on a cluster layout (Distributed tables), where partitions live
// on every shard's local table.

var _ sink.Retainer = (*Sink)(nil)

// anchorsTable names the table of retention anchors (created on first use).
func (l Layout) anchorsTable() string {
	if l.table() == TableEvents {
		return "audit_retention_anchors"
	}
	return l.table() + "_retention_anchors"
}

// partitionInfo summarises one partition of the events table.
type partitionInfo struct {
	id                  string
	rows, uniq, others  uint64
	minSeq, maxSeq      uint64
	maxTs               int64
	lastHash, firstPrev string
}

func (s *Sink) retentionState(ctx context.Context) (state, error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return st, err
	}
	if st.l.Cluster != "" {
		return st, sink.Permanentf("clickhouse sink: retention is not supported on a cluster layout (partitions live on each shard's local table); remove retention from this sink")
	}
	return st, nil
}

// partitions returns the active partitions of the events table, oldest first.
func (s *Sink) partitions(ctx context.Context, st state) ([]string, error) {
	q := fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active ORDER BY partition",
		quoteString(st.db), quoteString(st.l.Events()))
	s.observe("retention_partitions", q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("list partitions: %w", err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("scan partition: %w", err)
		}
		out = append(out, p)
	}
	return out, classify(rows.Err())
}

// partition reads what retention needs to know about partition id (the partition key is
// toYYYYMM(ts), so the WHERE clause prunes to that partition).
func (s *Sink) partition(ctx context.Context, st state, id, chainID string) (partitionInfo, error) {
	p := partitionInfo{id: id}
	c := quoteString(chainID)
	q := fmt.Sprintf(`SELECT count(), uniqExact(seq), countIf(chain_id != %[3]s), min(seq), max(seq), max(ts_us),
    lower(hex(argMax(hash, seq))), lower(hex(argMin(previous_hash, seq)))
FROM %[1]s.%[2]s WHERE toYYYYMM(ts) = %[4]s`, quoteIdent(st.db), st.l.Events(), c, id)
	s.observe("retention_partition", q)
	if err := st.conn.QueryRow(st.readCtx(ctx), q).Scan(&p.rows, &p.uniq, &p.others, &p.minSeq, &p.maxSeq, &p.maxTs, &p.lastHash, &p.firstPrev); err != nil {
		return p, classify(fmt.Errorf("summarise partition %s: %w", id, err))
	}
	if p.firstPrev == zeroHex {
		p.firstPrev = ""
	}
	return p, nil
}

// zeroHex is an empty previous_hash as stored (FixedString(32) of zero bytes), in hex.
var zeroHex = fmt.Sprintf("%064d", 0)

// removable returns the oldest partitions retention may drop, in order (see the package comment
// above for the rules).
func (s *Sink) removable(ctx context.Context, st state, chainID string, cutoff time.Time, upTo uint64) ([]partitionInfo, error) {
	ids, err := s.partitions(ctx, st)
	if err != nil {
		return nil, err
	}
	prev, err := s.newestAnchor(ctx, st, chainID)
	if err != nil {
		return nil, err
	}
	var out []partitionInfo
	for _, id := range ids {
		p, err := s.partition(ctx, st, id, chainID)
		if err != nil {
			return nil, err
		}
		if p.rows == 0 {
			continue
		}
		if p.others > 0 || p.maxTs >= cutoff.UnixMicro() || p.maxSeq > upTo {
			break
		}
		if p.rows != p.uniq || p.maxSeq-p.minSeq+1 != p.uniq {
			return nil, sink.Conflictf("clickhouse sink: retention of chain %s: partition %s holds %d rows for sequences %d..%d (a gap or a duplicate); not dropping it",
				chainID, id, p.rows, p.minSeq, p.maxSeq)
		}
		var link string
		switch {
		case len(out) > 0:
			link = out[len(out)-1].lastHash
			if p.minSeq != out[len(out)-1].maxSeq+1 {
				return nil, sink.Conflictf("clickhouse sink: retention of chain %s: partition %s starts at sequence %d, not after %d", chainID, id, p.minSeq, out[len(out)-1].maxSeq)
			}
		case prev.Found && p.minSeq == prev.Sequence+1:
			link = prev.Hash
		case p.minSeq == 1:
			link = ""
		default:
			link = p.firstPrev // nothing to compare with (the sink started mid-chain)
		}
		if p.firstPrev != link {
			return nil, sink.Conflictf("clickhouse sink: retention of chain %s: partition %s does not link to the events before it; not dropping it", chainID, id)
		}
		out = append(out, p)
	}
	return out, nil
}

// PlanRetention implements sink.Retainer: the last event of the newest partition that can be
// dropped with every partition before it.
func (s *Sink) PlanRetention(ctx context.Context, chainID string, cutoff time.Time, upTo uint64) (sink.Head, error) {
	st, err := s.retentionState(ctx)
	if err != nil {
		return sink.Head{}, err
	}
	ps, err := s.removable(ctx, st, chainID, cutoff, upTo)
	if err != nil || len(ps) == 0 {
		return sink.Head{}, err
	}
	last := ps[len(ps)-1]
	return sink.Head{Found: true, Sequence: last.maxSeq, Hash: last.lastHash}, nil
}

func (s *Sink) ensureAnchorsTable(ctx context.Context, st state) error {
	q := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s
(
    chain_id   String,
    seq        UInt64,
    hash       String,
    cutoff_us  Int64,
    time_us    Int64,
    key_id     String,
    signature  String
)
ENGINE = ReplacingMergeTree
ORDER BY (chain_id, seq, key_id, signature)`, quoteIdent(st.db), st.l.anchorsTable())
	s.observe("retention_anchors_table", q)
	if err := st.conn.Exec(ctx, q); err != nil {
		return classify(fmt.Errorf("create %s: %w", st.l.anchorsTable(), err))
	}
	return nil
}

// Retain implements sink.Retainer: it stores the anchor, drops the partitions wholly at or
// below it, then starts the mutations that clean the derived tables.
func (s *Sink) Retain(ctx context.Context, a sink.RetentionAnchor) (sink.RetentionResult, error) {
	var res sink.RetentionResult
	if a.ChainID == "" || a.Sequence == 0 || a.Hash == "" || a.Signature == "" {
		return res, sink.Permanentf("clickhouse sink: retention anchor %+v is incomplete", a)
	}
	st, err := s.retentionState(ctx)
	if err != nil {
		return res, err
	}
	if err := s.ensureAnchorsTable(ctx, st); err != nil {
		return res, err
	}
	db := quoteIdent(st.db)
	q := fmt.Sprintf("INSERT INTO %s.%s (chain_id, seq, hash, cutoff_us, time_us, key_id, signature)", db, st.l.anchorsTable())
	s.observe("retention_anchor_insert", q)
	batch, err := st.conn.PrepareBatch(ctx, q)
	if err != nil {
		return res, classify(fmt.Errorf("prepare insert of the retention anchor: %w", err))
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	if err := batch.Append(a.ChainID, a.Sequence, a.Hash, a.Cutoff.UnixMicro(), a.Time.UnixMicro(), a.KeyID, a.Signature); err != nil {
		return res, sink.Permanent(fmt.Errorf("append retention anchor: %w", err))
	}
	if err := batch.Send(); err != nil {
		return res, classify(fmt.Errorf("store retention anchor: %w", err))
	}
	ps, err := s.removable(ctx, st, a.ChainID, a.Cutoff, a.Sequence)
	if err != nil {
		return res, err
	}
	for _, p := range ps {
		q := fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %s", db, st.l.Events(), p.id)
		s.observe("retention_drop_partition", q)
		if err := st.conn.Exec(ctx, q); err != nil {
			return res, classify(fmt.Errorf("drop partition %s: %w", p.id, err))
		}
		res.Events += p.rows
		res.Blocks++
		s.log.Info("retention dropped a partition", "partition", p.id, "events", p.rows, "sequences", fmt.Sprintf("%d..%d", p.minSeq, p.maxSeq))
	}
	if res.Blocks == 0 {
		return res, nil
	}
	c := quoteString(a.ChainID)
	for _, t := range []string{st.l.ByID(), st.l.ByResource(), st.l.ByActor()} {
		q := fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE chain_id = %s AND seq <= %d", db, t, c, a.Sequence)
		s.observe("retention_delete_lookup", q)
		if err := st.conn.Exec(ctx, q); err != nil {
			return res, classify(fmt.Errorf("clean %s: %w", t, err))
		}
	}
	q = fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE chain_id = %s AND block < %d", db, st.l.ChainBlocks(), c, (a.Sequence+1)/BlockSize)
	s.observe("retention_delete_blocks", q)
	if err := st.conn.Exec(ctx, q); err != nil {
		return res, classify(fmt.Errorf("clean %s: %w", st.l.ChainBlocks(), err))
	}
	s.forgetHeads([]row{{chainID: a.ChainID}})
	return res, nil
}

// ReadAnchors implements sink.Retainer.
func (s *Sink) ReadAnchors(ctx context.Context, chainID string) ([]sink.RetentionAnchor, error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return nil, err
	}
	return s.readAnchors(ctx, st, chainID)
}

func (s *Sink) readAnchors(ctx context.Context, st state, chainID string) ([]sink.RetentionAnchor, error) {
	if ok, err := s.tableExists(ctx, st, st.l.anchorsTable()); err != nil || !ok {
		return nil, err
	}
	q := fmt.Sprintf("SELECT DISTINCT seq, hash, cutoff_us, time_us, key_id, signature FROM %s.%s WHERE chain_id = %s ORDER BY seq, time_us, key_id, signature",
		quoteIdent(st.db), st.l.anchorsTable(), quoteString(chainID))
	s.observe("retention_anchors_read", q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("read retention anchors of chain %q: %w", chainID, err))
	}
	defer rows.Close()
	var out []sink.RetentionAnchor
	for rows.Next() {
		a := sink.RetentionAnchor{ChainID: chainID}
		var cut, at int64
		if err := rows.Scan(&a.Sequence, &a.Hash, &cut, &at, &a.KeyID, &a.Signature); err != nil {
			return nil, fmt.Errorf("scan retention anchor: %w", err)
		}
		a.Cutoff, a.Time = time.UnixMicro(cut).UTC(), time.UnixMicro(at).UTC()
		out = append(out, a)
	}
	return out, classify(rows.Err())
}

// newestAnchor returns the newest anchor of chainID as a head (Found false: none).
func (s *Sink) newestAnchor(ctx context.Context, st state, chainID string) (sink.Head, error) {
	as, err := s.readAnchors(ctx, st, chainID)
	if err != nil {
		return sink.Head{}, err
	}
	return sink.NewestAnchor(as), nil
}

// clampToAnchors corrects chain summaries after retention: blocks straddling the newest anchor,
// and blocks whose delete mutation has not run yet, still count removed events. A chain's first
// stored sequence is then the one after its newest anchor, and it holds at most Last-anchor
// events (verification checks every link of what is left).
func (s *Sink) clampToAnchors(ctx context.Context, st state, out []sink.ChainInfo) error {
	for i := range out {
		h, err := s.newestAnchor(ctx, st, out[i].ChainID)
		if err != nil {
			return err
		}
		if !h.Found || out[i].First > h.Sequence {
			continue
		}
		out[i].First = h.Sequence + 1
		if out[i].Last >= h.Sequence {
			out[i].Count = min(out[i].Count, out[i].Last-h.Sequence)
		}
	}
	return nil
}
