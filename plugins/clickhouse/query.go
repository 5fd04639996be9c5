package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// MaxLimit is the largest page Search returns.
const MaxLimit = 1000

// searchWindows are the widths of the progressively widened time windows of Search: 18.16 cannot
// read a sorting key in order, so "ORDER BY ts_us DESC LIMIT 20" over the whole table reads and
// sorts every row (2.5 s at 10 M events); the same page inside a one-hour window takes ~15 ms.
// Each step reads only the slab the previous one did not cover, and the last step is unbounded,
// so results are exact.
var searchWindows = []int64{
	int64(time.Hour / time.Microsecond),
	int64(24 * time.Hour / time.Microsecond),
	int64(7 * 24 * time.Hour / time.Microsecond),
	int64(31 * 24 * time.Hour / time.Microsecond),
}

// twoPhaseFrom is the first window step read in two phases (sort keys first, then the rows by
// primary key): wide slabs would otherwise sort every matching row with all its columns. In a
// cluster every step is: the Distributed table moves whole rows between servers, and several
// sidecars' chains make each window denser (at four chains, a first page read the one-hour
// window's rows with all their columns: 175-438 ms against 20-86 ms in two phases, 80,000 events,
// one run on a machine loaded ~14x).
func twoPhaseFrom(st state) int {
	if st.l.Cluster != "" {
		return 0
	}
	return 2
}

// bound is an optional inclusive bound on ts_us.
type bound struct {
	set bool
	v   int64
}

// key is the sort key of an event.
type key struct {
	ts    int64
	chain string
	seq   uint64
}

// Search returns one page of events matching q, ordered by (timestamp, chainId, sequence).
func (s *Sink) Search(ctx context.Context, q sink.Query) (sink.Page, error) {
	if q.Limit < 1 || q.Limit > MaxLimit {
		return sink.Page{}, fmt.Errorf("search limit %d is outside 1..%d", q.Limit, MaxLimit)
	}
	st, err := s.ensureReady(ctx)
	if err != nil {
		return sink.Page{}, err
	}
	p := newPlan(q)
	// Only what every live writer has delivered (watermark.go).
	if h, ok, err := s.horizon(ctx, st); err != nil {
		return sink.Page{}, err
	} else if ok && (!p.hi.set || h < p.hi.v) {
		p.hi = bound{true, h}
	}
	if p.empty() {
		return sink.Page{}, nil
	}
	var events []chain.Event
	switch {
	case q.Filter.ActorID != "":
		events, err = s.searchByActor(ctx, st, p, &q.Filter)
	case q.Filter.ResourceID != "" && len(p.actor) == 0:
		events, err = s.searchByResource(ctx, st, p)
	default:
		events, err = s.searchWindowed(ctx, st, p)
	}
	if err != nil {
		return sink.Page{}, err
	}
	page := sink.Page{Events: events}
	if len(events) > q.Limit {
		page.Events, page.More = events[:q.Limit], true
	}
	// A sequence held by conflicting rows shows the one that links, flagged (duplicates.go).
	if page.Events, err = s.resolveDuplicates(ctx, st, page.Events); err != nil {
		return sink.Page{}, err
	}
	return page, nil
}

// plan is a search translated into SQL pieces.
type plan struct {
	desc    bool
	need    int // limit + 1, to learn whether more follow
	lo, hi  bound
	after   *sink.Position
	filters where // equality filters on columns present in both the events and the resource table
	actor   where // actor filters: columns of the events table only
	rid     string
}

func newPlan(q sink.Query) plan {
	p := plan{desc: q.Order != sink.Asc, need: q.Limit + 1, after: q.After, rid: q.Filter.ResourceID}
	if !q.Filter.From.IsZero() {
		// Inclusive: the first whole microsecond at or after From.
		v := q.Filter.From.UnixMicro()
		if time.UnixMicro(v).Before(q.Filter.From) {
			v++
		}
		p.lo = bound{true, v}
	}
	if !q.Filter.To.IsZero() {
		p.hi = bound{true, q.Filter.To.UnixMicro()}
	}
	if a := q.After; a != nil {
		if p.desc && (!p.hi.set || a.TimeMicros < p.hi.v) {
			p.hi = bound{true, a.TimeMicros}
		}
		if !p.desc && (!p.lo.set || a.TimeMicros > p.lo.v) {
			p.lo = bound{true, a.TimeMicros}
		}
	}
	for _, f := range []struct{ col, v string }{
		{"event_type", q.Filter.EventType}, {"action", q.Filter.Action}, {"result", q.Filter.Result},
		{"resource_type", q.Filter.ResourceType},
	} {
		if f.v != "" {
			p.filters.add(f.col + " = " + quoteString(f.v))
		}
	}
	for _, f := range []struct{ col, v string }{{"actor_type", q.Filter.ActorType}, {"actor_id", q.Filter.ActorID}} {
		if f.v != "" {
			p.actor.add(f.col + " = " + quoteString(f.v))
		}
	}
	if len(p.actor) > 0 && p.rid != "" {
		// audit_events_by_resource has no actor columns: search the events table.
		p.actor.add("resource_id = " + quoteString(p.rid))
	}
	return p
}

func (p plan) empty() bool { return p.lo.set && p.hi.set && p.lo.v > p.hi.v }

// keyset is the condition "strictly after the cursor" in the OR form, which 18.16 can use with
// the primary key (a tuple comparison alone cannot); the plain ts_us bound is in p.lo/p.hi.
func (p plan) keyset() string {
	a := p.after
	if a == nil {
		return ""
	}
	op := ">"
	if p.desc {
		op = "<"
	}
	x, c := i64(a.TimeMicros), quoteString(a.ChainID)
	return fmt.Sprintf("(ts_us %[1]s %[2]s OR (ts_us = %[2]s AND (chain_id %[1]s %[3]s OR (chain_id = %[3]s AND seq %[1]s %[4]s))))",
		op, x, c, u64(a.Sequence))
}

func (p plan) orderBy() string {
	if p.desc {
		return " ORDER BY ts_us DESC, chain_id DESC, seq DESC"
	}
	return " ORDER BY ts_us, chain_id, seq"
}

// timeConds bounds ts_us to [lo, hi] and adds the same bounds on the partition column ts, so
// that whole partitions are skipped.
func timeConds(w *where, lo, hi bound) {
	if lo.set {
		w.add("ts_us >= " + i64(lo.v))
		if lo.v >= 0 {
			w.add(fmt.Sprintf("ts >= toDateTime(%d)", lo.v/1_000_000))
		}
	}
	if hi.set {
		w.add("ts_us <= " + i64(hi.v))
		if hi.v >= 0 {
			w.add(fmt.Sprintf("ts <= toDateTime(%d)", hi.v/1_000_000))
		}
	}
}

// firstWindowAnchor is where the first window of a search starts: anchor (the cursor's or the
// requested range's bound on the side the order starts from), or, on a first page, the newest
// (oldest, ascending) stored event when that is nearer. empty: the table holds no event.
func (s *Sink) firstWindowAnchor(ctx context.Context, st state, p plan, anchor bound) (bound, bool, error) {
	if p.after != nil {
		return anchor, false, nil
	}
	n, minTs, maxTs, err := s.timeRange(ctx, st)
	if err != nil || n == 0 {
		return anchor, err == nil, err
	}
	if p.desc && (!anchor.set || maxTs < anchor.v) {
		anchor = bound{true, maxTs}
	}
	if !p.desc && (!anchor.set || minTs > anchor.v) {
		anchor = bound{true, minTs}
	}
	return anchor, false, nil
}

// searchWindowed pages through audit_events inside progressively wider time windows, starting at
// the cursor, the To bound, or the newest (oldest, for ascending order) stored event.
func (s *Sink) searchWindowed(ctx context.Context, st state, p plan) ([]chain.Event, error) {
	// Windows start at the cursor or, on a first page, at the newest (oldest) stored event within
	// the requested range: a range that ends in the future must not widen through empty windows.
	anchor := p.hi
	if !p.desc {
		anchor = p.lo
	}
	anchor, empty, err := s.firstWindowAnchor(ctx, st, p, anchor)
	if err != nil || empty {
		return nil, err
	}
	var events []chain.Event
	// The first slab keeps the query's own outer bound (none when unset), so that rows newer than
	// the anchor taken from the summary table are never missed.
	near := p.hi
	if !p.desc {
		near = p.lo
	}
	for step := 0; ; step++ {
		var far bound
		last := step >= len(searchWindows)
		if !last {
			if p.desc {
				far = bound{true, anchor.v - searchWindows[step] + 1}
			} else {
				far = bound{true, anchor.v + searchWindows[step] - 1}
			}
		}
		outer := p.lo
		if !p.desc {
			outer = p.hi
		}
		if outer.set && (last || (p.desc && far.v <= outer.v) || (!p.desc && far.v >= outer.v)) {
			far, last = outer, true
		}
		lo, hi := far, near
		if !p.desc {
			lo, hi = near, far
		}
		got, err := s.searchSlab(ctx, st, p, lo, hi, p.need-len(events), step >= twoPhaseFrom(st))
		if err != nil {
			return nil, err
		}
		events = append(events, got...)
		if len(events) >= p.need || last {
			return events, nil
		}
		if p.desc {
			near = bound{true, far.v - 1}
		} else {
			near = bound{true, far.v + 1}
		}
	}
}

// searchSlab reads up to n matching events with ts_us in [lo, hi].
func (s *Sink) searchSlab(ctx context.Context, st state, p plan, lo, hi bound, n int, twoPhase bool) ([]chain.Event, error) {
	var w where
	timeConds(&w, lo, hi)
	if k := p.keyset(); k != "" {
		w.add(k)
	}
	w = append(w, p.filters...)
	w = append(w, p.actor...)
	table := quoteIdent(st.db) + "." + st.l.Events()
	if !twoPhase {
		q := fmt.Sprintf("SELECT %s FROM %s%s%s LIMIT 1 BY ts_us, chain_id, seq LIMIT %d", insertColumns, table, w, p.orderBy(), n)
		return s.queryEvents(ctx, st, "search_window", q, "", n)
	}
	q := fmt.Sprintf("SELECT ts_us, chain_id, seq FROM %s%s%s LIMIT 1 BY ts_us, chain_id, seq LIMIT %d", table, w, p.orderBy(), n)
	keys, err := s.queryKeys(ctx, st, "search_window_keys", q)
	if err != nil {
		return nil, err
	}
	return s.fetchByKeys(ctx, st, p, keys)
}

// searchByResource finds the sort keys in audit_events_by_resource (which carries every filter
// column), then fetches the rows by primary key.
func (s *Sink) searchByResource(ctx context.Context, st state, p plan) ([]chain.Event, error) {
	var w where
	w.add("resource_id = " + quoteString(p.rid))
	if p.lo.set {
		w.add("ts_us >= " + i64(p.lo.v))
	}
	if p.hi.set {
		w.add("ts_us <= " + i64(p.hi.v))
	}
	if k := p.keyset(); k != "" {
		w.add(k)
	}
	w = append(w, p.filters...)
	q := fmt.Sprintf("SELECT ts_us, chain_id, seq FROM %s.%s%s%s LIMIT 1 BY ts_us, chain_id, seq LIMIT %d",
		quoteIdent(st.db), st.l.ByResource(), w, p.orderBy(), p.need)
	keys, err := s.queryKeys(ctx, st, "search_resource_keys", q)
	if err != nil {
		return nil, err
	}
	return s.fetchByKeys(ctx, st, p, keys)
}

// fetchByKeys reads the events with the given sort keys; (ts_us, chain_id, seq) IN (...) uses the
// primary key on every version, however far apart the keys are (on 18.16, a rare actor's 5 keys
// spread over 1 M events select 7 of 980 marks, with or without the time range).
func (s *Sink) fetchByKeys(ctx context.Context, st state, p plan, keys []key) ([]chain.Event, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	lo, hi := keys[0].ts, keys[0].ts
	var list strings.Builder
	for i, k := range keys {
		lo, hi = min(lo, k.ts), max(hi, k.ts)
		if i > 0 {
			list.WriteString(", ")
		}
		fmt.Fprintf(&list, "(%d, %s, %d)", k.ts, quoteString(k.chain), k.seq)
	}
	var w where
	timeConds(&w, bound{true, lo}, bound{true, hi})
	w.add("(ts_us, chain_id, seq) IN (" + list.String() + ")")
	q := fmt.Sprintf("SELECT %s FROM %s.%s%s%s LIMIT 1 BY ts_us, chain_id, seq", insertColumns, quoteIdent(st.db), st.l.Events(), w, p.orderBy())
	return s.queryEvents(ctx, st, "fetch_by_keys", q, "", len(keys))
}

// timeRange returns the number of summary rows and the oldest and newest stored timestamps.
func (s *Sink) timeRange(ctx context.Context, st state) (n uint64, minTs, maxTs int64, err error) {
	q := fmt.Sprintf("SELECT count(), minMerge(min_ts), maxMerge(max_ts) FROM %s.%s", quoteIdent(st.db), st.l.ChainBlocks())
	s.observe("time_range", q)
	if err := st.conn.QueryRow(st.readCtx(ctx), q).Scan(&n, &minTs, &maxTs); err != nil {
		return 0, 0, 0, classify(fmt.Errorf("read stored time range: %w", err))
	}
	return n, minTs, maxTs, nil
}

// Get returns the event with eventID, or sink.ErrNotFound.
func (s *Sink) Get(ctx context.Context, eventID string) (chain.Event, error) {
	id, err := uuid.Parse(eventID)
	if err != nil {
		return chain.Event{}, fmt.Errorf("event %q: %w", eventID, sink.ErrNotFound)
	}
	st, err := s.ensureReady(ctx)
	if err != nil {
		return chain.Event{}, err
	}
	q := fmt.Sprintf("SELECT ts_us, chain_id, seq FROM %s.%s WHERE event_id = toUUID(%s) LIMIT 1",
		quoteIdent(st.db), st.l.ByID(), quoteString(id.String()))
	keys, err := s.queryKeys(ctx, st, "get_key", q)
	if err != nil {
		return chain.Event{}, err
	}
	if len(keys) == 0 {
		return chain.Event{}, fmt.Errorf("event %s: %w", id, sink.ErrNotFound)
	}
	k := keys[0]
	q = fmt.Sprintf("SELECT %s FROM %s.%s WHERE ts_us = %d AND chain_id = %s AND seq = %d AND event_id = toUUID(%s) LIMIT 1",
		insertColumns, quoteIdent(st.db), st.l.Events(), k.ts, quoteString(k.chain), k.seq, quoteString(id.String()))
	events, err := s.queryEvents(ctx, st, "get_event", q, "", 1)
	if err != nil {
		return chain.Event{}, err
	}
	if len(events) == 0 || events[0].EventID != id.String() {
		return chain.Event{}, fmt.Errorf("event %s: %w", id, sink.ErrNotFound)
	}
	// Another row at the same sequence: answer with the one that links, flagged, so that every
	// read path shows the same event for a sequence.
	dups, err := s.dupBlocks(ctx, st, events)
	if err != nil || len(dups) == 0 {
		return events[0], err
	}
	best, several, err := s.linking(ctx, k.chain, k.seq)
	if err != nil {
		return chain.Event{}, err
	}
	if several {
		return best, nil
	}
	return events[0], nil
}

// blockInfo is one audit_chain_blocks summary.
type blockInfo struct {
	block          uint64
	minSeq, maxSeq uint64
	minTs, maxTs   int64
	rows           uint64
}

// blocksPage is how many block summaries ReadChain lists per query.
const blocksPage = 256

// readAhead is how many block windows ReadChain fetches concurrently ahead of the one being
// delivered: scanning rows is the client's main cost, and two fetches keep both cores busy.
const readAhead = 2

// ReadChain calls fn for every stored event of chainID with from <= sequence <= to (to == 0: no
// upper bound), in sequence order. It reads one block of 16384 sequences per query (bounded by
// that block's time range, so the primary key applies), orders it in memory and fetches the next
// blocks while fn runs: client memory stays bounded by a few blocks. Identical duplicate rows (a
// retried insert on 18.16) are delivered once; rows that share a sequence but differ are all
// delivered, so a verifier reports them.
func (s *Sink) ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return err
	}
	if to != 0 && to < from {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The producer lists blocks and starts one fetch per block, at most readAhead ahead of the
	// consumer; results come back in block order through per-block channels.
	type window struct {
		events []chain.Event
		err    error
	}
	pending := make(chan chan window, readAhead)
	var wg sync.WaitGroup
	var listErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(pending)
		listErr = s.listBlocks(ctx, st, chainID, from, to, func(b blockInfo) bool {
			res := make(chan window, 1)
			select {
			case pending <- res:
			case <-ctx.Done():
				return false
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				evs, err := s.readBlock(ctx, st, chainID, b, from, to)
				res <- window{evs, err}
			}()
			return true
		})
	}()

	var firstErr error
	for res := range pending {
		w := <-res
		if firstErr != nil {
			continue // drain, so that every fetch finishes
		}
		if w.err != nil {
			firstErr = w.err
			cancel()
			continue
		}
		for i := range w.events {
			e := &w.events[i]
			if i > 0 && e.Sequence == w.events[i-1].Sequence && sameEvent(e, &w.events[i-1]) {
				continue
			}
			if err := fn(e); err != nil {
				firstErr = err
				cancel()
				break
			}
		}
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return listErr
}

// listBlocks calls next for each summary block of the chain that may hold sequences in
// [from, to], in order, reading the summaries page by page. It stops when next returns false.
func (s *Sink) listBlocks(ctx context.Context, st state, chainID string, from, to uint64, next func(blockInfo) bool) error {
	first := from / BlockSize
	for {
		var w where
		w.add("chain_id = " + quoteString(chainID))
		w.add("block >= " + u64(first))
		if to != 0 {
			w.add("block <= " + u64(to/BlockSize))
		}
		q := fmt.Sprintf("SELECT block, minMerge(min_seq), maxMerge(max_seq), minMerge(min_ts), maxMerge(max_ts), countMerge(rows) FROM %s.%s%s GROUP BY block ORDER BY block LIMIT %d",
			quoteIdent(st.db), st.l.ChainBlocks(), w, blocksPage)
		blocks, err := s.queryBlocks(ctx, st, "chain_blocks", q)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			lo, hi := max(b.minSeq, from), b.maxSeq
			if to != 0 {
				hi = min(hi, to)
			}
			if lo > hi {
				continue
			}
			if !next(b) {
				return ctx.Err()
			}
		}
		if len(blocks) < blocksPage {
			return nil
		}
		first = blocks[len(blocks)-1].block + 1
	}
}

// readBlock reads the events of one summary block within [from, to], sorted by sequence.
func (s *Sink) readBlock(ctx context.Context, st state, chainID string, b blockInfo, from, to uint64) ([]chain.Event, error) {
	q := blockQuery(st, chainID, b, from, to)
	events, err := s.queryEvents(ctx, st, "chain_window", q, chainID, int(min(b.rows, 2*BlockSize)))
	if err != nil {
		return nil, err
	}
	bySeq := func(i, j int) bool { return events[i].Sequence < events[j].Sequence }
	if !sort.SliceIsSorted(events, bySeq) { // one part per block once merged: already in order
		sort.SliceStable(events, bySeq)
	}
	return events, nil
}

// blockQuery selects the events of one summary block within [from, to].
func blockQuery(st state, chainID string, b blockInfo, from, to uint64) string {
	lo, hi := max(b.minSeq, from), b.maxSeq
	if to != 0 {
		hi = min(hi, to)
	}
	var w where
	timeConds(&w, bound{true, b.minTs}, bound{true, b.maxTs})
	w.add("chain_id = " + quoteString(chainID))
	w.add("seq >= " + u64(lo))
	w.add("seq <= " + u64(hi))
	// The chain is known: its column is not read (one string less to decode per event).
	return fmt.Sprintf("SELECT %s FROM %s.%s%s", chainReadColumns, quoteIdent(st.db), st.l.Events(), w)
}

func sameEvent(a, b *chain.Event) bool {
	return a.EventID == b.EventID && a.EventType == b.EventType && a.Action == b.Action && a.Result == b.Result &&
		a.ResourceID == b.ResourceID && a.ResourceType == b.ResourceType && a.Actor == b.Actor &&
		bytes.Equal(a.Context, b.Context) && bytes.Equal(a.Metadata, b.Metadata) && a.Timestamp.Equal(b.Timestamp) &&
		a.Hash == b.Hash && a.PreviousHash == b.PreviousHash && a.ChainID == b.ChainID && a.Sequence == b.Sequence
}

// Chains lists the stored chains from the summary table. Count is the number of distinct stored
// sequences: where a block holds more rows than its sequence span (duplicates from a retried
// insert), that block is counted exactly from the events.
func (s *Sink) Chains(ctx context.Context) ([]sink.ChainInfo, error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return nil, err
	}
	db := quoteIdent(st.db)
	q := fmt.Sprintf("SELECT chain_id, minMerge(min_seq), maxMerge(max_seq), countMerge(rows) FROM %s.%s GROUP BY chain_id ORDER BY chain_id",
		db, st.l.ChainBlocks())
	s.observe("chains", q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("list chains: %w", err))
	}
	var out []sink.ChainInfo
	index := map[string]int{}
	for rows.Next() {
		var c sink.ChainInfo
		if err := rows.Scan(&c.ChainID, &c.First, &c.Last, &c.Count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan chain summary: %w", err)
		}
		index[c.ChainID] = len(out)
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("list chains: %w", err))
	}

	q = fmt.Sprintf("SELECT chain_id, block, minMerge(min_seq) AS lo, maxMerge(max_seq) AS hi, minMerge(min_ts), maxMerge(max_ts), countMerge(rows) AS n FROM %s.%s GROUP BY chain_id, block HAVING n > hi - lo + 1",
		db, st.l.ChainBlocks())
	s.observe("chains_duplicates", q)
	dupRows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("find duplicate rows: %w", err))
	}
	type dupBlock struct {
		chain string
		b     blockInfo
	}
	var dups []dupBlock
	for dupRows.Next() {
		var d dupBlock
		if err := dupRows.Scan(&d.chain, &d.b.block, &d.b.minSeq, &d.b.maxSeq, &d.b.minTs, &d.b.maxTs, &d.b.rows); err != nil {
			dupRows.Close()
			return nil, fmt.Errorf("scan block summary: %w", err)
		}
		dups = append(dups, d)
	}
	dupRows.Close()
	if err := dupRows.Err(); err != nil {
		return nil, classify(fmt.Errorf("find duplicate rows: %w", err))
	}
	for _, d := range dups {
		var w where
		timeConds(&w, bound{true, d.b.minTs}, bound{true, d.b.maxTs})
		w.add("chain_id = " + quoteString(d.chain))
		w.add("seq >= " + u64(d.b.minSeq))
		w.add("seq <= " + u64(d.b.maxSeq))
		q := fmt.Sprintf("SELECT uniqExact(seq) FROM %s.%s%s", db, st.l.Events(), w)
		s.observe("chains_exact_count", q)
		var exact uint64
		if err := st.conn.QueryRow(st.readCtx(ctx), q).Scan(&exact); err != nil {
			return nil, classify(fmt.Errorf("count distinct sequences: %w", err))
		}
		if i, ok := index[d.chain]; ok {
			out[i].Count = out[i].Count - d.b.rows + exact
		}
	}
	if err := s.clampToAnchors(ctx, st, out); err != nil { // retention.go
		return nil, err
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------------
// Scanning

// queryEvents runs q and scans every row; sizeHint preallocates the result.
// queryEvents runs q, which selects insertColumns, or chainReadColumns when chainID is not
// empty: the events then all belong to chainID.
func (s *Sink) queryEvents(ctx context.Context, st state, name, q, chainID string, sizeHint int) ([]chain.Event, error) {
	s.observe(name, q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("query events (%s): %w", name, err))
	}
	defer rows.Close()
	out := make([]chain.Event, 0, sizeHint)
	var sc eventScanner
	for rows.Next() {
		e, err := sc.scan(rows, chainID)
		if err != nil {
			return nil, fmt.Errorf("scan event (%s): %w", name, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read events (%s): %w", name, err))
	}
	return out, nil
}

// eventScanner scans event rows. The hashes are read as the driver's bytes (no string copy) and
// rendered in hex once: a row's previous hash is, in a chain read in order, the hash of the row
// before, whose rendering is reused.
type eventScanner struct {
	hash, prev []byte
	lastHash   [32]byte
	lastHex    string
}

func (sc *eventScanner) scan(rows driver.Rows, chainID string) (chain.Event, error) {
	var (
		e  chain.Event
		id uuid.UUID
		ts int64
	)
	// Context and metadata scan straight into json.RawMessage: the driver hands over the bytes
	// of its own string copy, so they are copied once.
	dest := [...]any{&e.ChainID, &e.Sequence, &id, &ts, &e.EventType, &e.Action, &e.Result, &e.ResourceType,
		&e.ResourceID, &e.Actor.Type, &e.Actor.ID, &e.Actor.IPAddress, &e.Context, &e.Metadata, &sc.hash, &sc.prev}
	scan := dest[:]
	if chainID != "" {
		e.ChainID, scan = chainID, dest[1:]
	}
	if err := rows.Scan(scan...); err != nil {
		return chain.Event{}, err
	}
	e.EventID = id.String()
	e.Timestamp = time.UnixMicro(ts).UTC()
	if len(e.Context) == 0 {
		e.Context = nil
	}
	if len(e.Metadata) == 0 {
		e.Metadata = nil
	}
	e.PreviousHash = sc.hex(sc.prev)
	e.Hash = sc.hex(sc.hash)
	return e, nil
}

// hex renders a stored hash like hashHex, reusing the last rendering for the same bytes.
func (sc *eventScanner) hex(b []byte) string {
	if len(b) != 32 {
		return hashHex(string(b))
	}
	if sc.lastHex != "" && [32]byte(b) == sc.lastHash {
		return sc.lastHex
	}
	h := hashHex(string(b)) // the conversion does not allocate: hashHex only reads it
	if h != "" {
		sc.lastHash, sc.lastHex = [32]byte(b), h
	}
	return h
}

func (s *Sink) queryKeys(ctx context.Context, st state, name, q string) ([]key, error) {
	s.observe(name, q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("query keys (%s): %w", name, err))
	}
	defer rows.Close()
	var out []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.ts, &k.chain, &k.seq); err != nil {
			return nil, fmt.Errorf("scan key (%s): %w", name, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read keys (%s): %w", name, err))
	}
	return out, nil
}

func (s *Sink) queryBlocks(ctx context.Context, st state, name, q string) ([]blockInfo, error) {
	s.observe(name, q)
	rows, err := st.conn.Query(st.readCtx(ctx), q)
	if err != nil {
		return nil, classify(fmt.Errorf("query chain blocks: %w", err))
	}
	defer rows.Close()
	var out []blockInfo
	for rows.Next() {
		var b blockInfo
		if err := rows.Scan(&b.block, &b.minSeq, &b.maxSeq, &b.minTs, &b.maxTs, &b.rows); err != nil {
			return nil, fmt.Errorf("scan chain block: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("read chain blocks: %w", err))
	}
	return out, nil
}
