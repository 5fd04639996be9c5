package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// MaxLimit is the largest page Search returns.
const MaxLimit = 1000

// readChainChunk is how many events ReadChain holds in memory at a time.
const readChainChunk = 256

type scanner interface{ Scan(dest ...any) error }

func scanEvent(r scanner, e *chain.Event) error {
	var seq, ts int64
	var ctxText, metaText []byte
	if err := r.Scan(&e.ChainID, &seq, &e.EventID, &e.EventType, &e.Action, &e.Result, &e.ResourceID, &e.ResourceType,
		&e.Actor.Type, &e.Actor.ID, &e.Actor.IPAddress, &ctxText, &metaText, &ts, &e.Hash, &e.PreviousHash); err != nil {
		return err
	}
	e.Sequence = uint64(seq)
	e.Timestamp = time.UnixMicro(ts).UTC()
	e.Context, e.Metadata = nil, nil
	if len(ctxText) > 0 {
		e.Context = ctxText
	}
	if len(metaText) > 0 {
		e.Metadata = metaText
	}
	return nil
}

func (st *store) head(ctx context.Context, chainID string) (sink.Head, error) {
	var seq int64
	var hash string
	switch err := st.headStmt.QueryRowContext(ctx, chainID).Scan(&seq, &hash); {
	case errors.Is(err, sql.ErrNoRows):
		return st.anchorHead(ctx, chainID) // retention removed every event: the anchor is the head
	case err != nil:
		return sink.Head{}, fmt.Errorf("sqlite sink: head of chain %s: %w", chainID, err)
	}
	return sink.Head{Found: true, Sequence: uint64(seq), Hash: hash}, nil
}

func (st *store) get(ctx context.Context, eventID string) (chain.Event, error) {
	var e chain.Event
	switch err := scanEvent(st.getStmt.QueryRowContext(ctx, eventID), &e); {
	case errors.Is(err, sql.ErrNoRows):
		return chain.Event{}, fmt.Errorf("sqlite sink: event %s: %w", eventID, sink.ErrNotFound)
	case err != nil:
		return chain.Event{}, fmt.Errorf("sqlite sink: get event %s: %w", eventID, err)
	}
	return e, nil
}

func (st *store) readChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	if to == 0 || to > math.MaxInt64 {
		to = math.MaxInt64
	}
	from = max(from, 1)
	buf := make([]chain.Event, 0, readChainChunk)
	for from <= to {
		buf = buf[:0]
		rows, err := st.readChainStmt.QueryContext(ctx, chainID, int64(from), int64(to), readChainChunk)
		if err != nil {
			return fmt.Errorf("sqlite sink: read chain %s from %d: %w", chainID, from, err)
		}
		for rows.Next() {
			buf = append(buf, chain.Event{})
			if err := scanEvent(rows, &buf[len(buf)-1]); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite sink: read chain %s from %d: %w", chainID, from, err)
			}
		}
		err = errors.Join(rows.Err(), rows.Close())
		if err != nil {
			return fmt.Errorf("sqlite sink: read chain %s from %d: %w", chainID, from, err)
		}
		for i := range buf {
			if err := fn(&buf[i]); err != nil {
				return err
			}
		}
		if len(buf) < readChainChunk {
			return nil
		}
		last := buf[len(buf)-1].Sequence
		if last >= to {
			return nil
		}
		from = last + 1
	}
	return nil
}

func (st *store) chains(ctx context.Context) ([]sink.ChainInfo, error) {
	rows, err := st.chainsStmt.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite sink: list chains: %w", err)
	}
	defer rows.Close()
	var out []sink.ChainInfo
	for rows.Next() {
		var c sink.ChainInfo
		var n, first, last int64
		if err := rows.Scan(&c.ChainID, &n, &first, &last); err != nil {
			return nil, fmt.Errorf("sqlite sink: list chains: %w", err)
		}
		c.Count, c.First, c.Last = uint64(n), uint64(first), uint64(last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite sink: list chains: %w", err)
	}
	return out, nil
}

// searchSQL is one Search compiled to SQL.
type searchSQL struct {
	text  string
	args  []any
	index string // the index the query is pinned to
	empty bool   // the filter can match nothing; no query needed
}

// floorMicros and ceilMicros convert an inclusive bound to whole microseconds.
func floorMicros(t time.Time) int64 { return t.UnixMicro() }

func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// buildSearch compiles q. The query is pinned (INDEXED BY) to the index of the most selective
// equality filter — resourceId, then actorId, eventType, action, resourceType, actorType, result —
// or to events_ts.
// Every one of those indexes is (filter column, ts_us, chain_id, seq), so the equality leaves the
// rows in sort order; the keyset condition is a row-value comparison on (ts_us, chain_id, seq)
// that SQLite turns into an index seek; and only one bound is kept on each side (a cursor inside
// the date range replaces that end of the range) so the seek always starts at the cursor.
func buildSearch(q sink.Query) searchSQL {
	f := &q.Filter
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	index := "events_ts"
	for _, c := range []struct{ col, v, index string }{
		{"result", f.Result, "events_result"},
		{"actor_type", f.ActorType, "events_actor_type"},
		{"resource_type", f.ResourceType, "events_resource_type"},
		{"action", f.Action, "events_action"},
		{"event_type", f.EventType, "events_event_type"},
		{"actor_id", f.ActorID, "events_actor_id"},
		{"resource_id", f.ResourceID, "events_resource_id"},
	} {
		if c.v != "" {
			index = c.index // later entries are more selective and win
		}
	}
	if f.ActorID != "" && f.EventType != "" && f.ResourceID == "" {
		index = "events_actor_id_type" // both equalities fix the prefix
	}
	eq("resource_id", f.ResourceID)
	eq("event_type", f.EventType)
	eq("action", f.Action)
	eq("resource_type", f.ResourceType)
	eq("result", f.Result)
	eq("actor_type", f.ActorType)
	eq("actor_id", f.ActorID)

	var lo, hi *int64 // inclusive time bounds
	if !f.From.IsZero() {
		v := ceilMicros(f.From)
		lo = &v
	}
	if !f.To.IsZero() {
		v := floorMicros(f.To)
		hi = &v
	}
	if lo != nil && hi != nil && *lo > *hi {
		return searchSQL{empty: true}
	}

	desc := q.Order == sink.Desc
	// The cursor bounds the side the scan starts from: the upper side newest first, the lower
	// side oldest first. When the cursor lies inside the range it makes the range's bound on that
	// side redundant; when it lies beyond it, the cursor is the redundant one.
	after := q.After
	if after != nil {
		if desc && hi != nil && after.TimeMicros > *hi {
			after = nil
		} else if !desc && lo != nil && after.TimeMicros < *lo {
			after = nil
		}
	}
	if after != nil {
		if desc {
			hi = nil
		} else {
			lo = nil
		}
		op, seq := "<", after.Sequence
		if !desc {
			op = ">"
		}
		if seq > math.MaxInt64 { // stored sequences never exceed MaxInt64
			seq = math.MaxInt64
			if desc {
				op = "<="
			}
		}
		where = append(where, "(ts_us, chain_id, seq) "+op+" (?, ?, ?)")
		args = append(args, after.TimeMicros, after.ChainID, int64(seq))
	}
	if lo != nil {
		where = append(where, "ts_us >= ?")
		args = append(args, *lo)
	}
	if hi != nil {
		where = append(where, "ts_us <= ?")
		args = append(args, *hi)
	}

	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(eventColumns)
	b.WriteString(" FROM events INDEXED BY ")
	b.WriteString(index)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	if desc {
		b.WriteString(" ORDER BY ts_us DESC, chain_id DESC, seq DESC LIMIT ?")
	} else {
		b.WriteString(" ORDER BY ts_us, chain_id, seq LIMIT ?")
	}
	args = append(args, q.Limit+1)
	return searchSQL{text: b.String(), args: args, index: index}
}

func (st *store) search(ctx context.Context, q sink.Query) (sink.Page, error) {
	if q.Limit < 1 || q.Limit > MaxLimit {
		return sink.Page{}, sink.Permanentf("sqlite sink: search limit %d is outside 1..%d", q.Limit, MaxLimit)
	}
	if q.Order != sink.Desc && q.Order != sink.Asc {
		return sink.Page{}, sink.Permanentf("sqlite sink: unknown sort order %d", q.Order)
	}
	s := buildSearch(q)
	if s.empty {
		return sink.Page{Events: []chain.Event{}}, nil
	}
	stmt, err := st.searches.get(ctx, st.r, s.text)
	if err != nil {
		return sink.Page{}, fmt.Errorf("sqlite sink: prepare search: %w", err)
	}
	rows, err := stmt.QueryContext(ctx, s.args...)
	if err != nil {
		return sink.Page{}, fmt.Errorf("sqlite sink: search: %w", err)
	}
	defer rows.Close()
	page := sink.Page{Events: make([]chain.Event, 0, min(q.Limit, 64))}
	for rows.Next() {
		if len(page.Events) == q.Limit {
			page.More = true
			break
		}
		page.Events = append(page.Events, chain.Event{})
		if err := scanEvent(rows, &page.Events[len(page.Events)-1]); err != nil {
			return sink.Page{}, fmt.Errorf("sqlite sink: search: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return sink.Page{}, fmt.Errorf("sqlite sink: search: %w", err)
	}
	return page, nil
}

// stmtCache keeps prepared search statements by SQL text. The number of distinct texts is
// bounded by construction (7 optional filters × 2 orders × a handful of bound shapes: a few
// hundred at most), so every shape is kept for the life of the store.
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// get returns a prepared statement for text. The caller must not close it.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, text string) (*sql.Stmt, error) {
	c.mu.Lock()
	stmt := c.stmts[text]
	c.mu.Unlock()
	if stmt != nil {
		return stmt, nil
	}
	stmt, err := db.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.stmts[text]; prev != nil {
		_ = stmt.Close()
		return prev, nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[text] = stmt
	return stmt, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for k, s := range c.stmts {
		errs = append(errs, s.Close())
		delete(c.stmts, k)
	}
	return errors.Join(errs...)
}
