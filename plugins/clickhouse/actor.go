package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// TableByActor maps an actor id (+ every other filter column) to the sort key, like
// audit_events_by_resource for resources: the actorId filter reads one range of it.
const TableByActor = "audit_events_by_actor"

// actorDDL creates audit_events_by_actor (table, with its ON CLUSTER clause in a cluster) and
// the view mv (likewise) that fills target from events (schema version 2).
func actorDDL(db, table, mv, target, events, engine, lowCardinality, settings string) []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    actor_id       String,
    ts_us          Int64,
    chain_id       %[2]s,
    seq            UInt64,
    actor_type     %[2]s,
    resource_id    String,
    resource_type  %[2]s,
    event_type     %[2]s,
    action         %[2]s,
    result         %[2]s
)
ENGINE = %[4]s
ORDER BY (actor_id, ts_us, chain_id, seq)%[3]s`, table, lowCardinality, settings, engine),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s TO %[2]s
AS SELECT %[4]s FROM %[3]s`, mv, target, events, byActorColumns),
	}
}

// byActorColumns are the columns of audit_events_by_actor, as selected from audit_events.
const byActorColumns = "actor_id, ts_us, chain_id, seq, actor_type, resource_id, resource_type, event_type, action, result"

func backfillByActorSQL(l Layout) string {
	db := quoteIdent(l.Database)
	return fmt.Sprintf("INSERT INTO %[1]s.%[2]s (%[4]s) SELECT %[4]s FROM %[1]s.%[3]s", db, l.ByActor(), l.Events(), byActorColumns)
}

// backfillByActor fills the actor lookup when this start created it over existing events.
func (s *Sink) backfillByActor(ctx context.Context, st state, missing []string) error {
	createdActor, createdEvents := false, false
	for _, m := range missing {
		switch m {
		case st.db + "." + st.l.ByActor():
			createdActor = true
		case st.db + "." + st.l.Events():
			createdEvents = true
		}
	}
	if !createdActor || createdEvents || st.l.Cluster != "" { // a cluster schema starts at version 2
		return nil
	}
	q := backfillByActorSQL(st.l)
	s.observe("backfill_by_actor", q)
	s.log.Info("filling the actor lookup table from the stored events (upgrade to schema version 2)", "database", st.db)
	if err := st.conn.Exec(ctx, q); err != nil {
		return classify(fmt.Errorf("fill %s: %w", st.l.ByActor(), err))
	}
	return nil
}

// actorWindows are the widths of the time windows the actor lookup is read in before the last,
// unbounded read. 18.16 cannot read (actor_id, ts_us) in order: "actor_id = X ORDER BY ts_us DESC
// LIMIT 21" reads and sorts every row of X (the sidecar's own system actor: a quarter of all
// events). A day of a busy actor is a short primary-key range; an actor with fewer events in it
// costs one cheap read more, and the unbounded read of an actor that quiet is short anyway. (A
// 31-day step between them cost rare actors a round trip for no gain at 1 M events.)
var actorWindows = []int64{int64(24 * time.Hour / time.Microsecond)}

// searchByActor finds the sort keys in audit_events_by_actor (which carries every filter column),
// window by window from the cursor, the To bound or the newest (oldest, ascending) stored event,
// then fetches the rows by primary key.
func (s *Sink) searchByActor(ctx context.Context, st state, p plan, f *sink.Filter) ([]chain.Event, error) {
	var base where
	base.add("actor_id = " + quoteString(f.ActorID))
	if k := p.keyset(); k != "" {
		base.add(k)
	}
	base = append(base, p.filters...)
	if f.ActorType != "" {
		base.add("actor_type = " + quoteString(f.ActorType))
	}
	if f.ResourceID != "" {
		base.add("resource_id = " + quoteString(f.ResourceID))
	}
	near, outer := p.hi, p.lo // the window's bound at the anchor, and the query's other bound
	if !p.desc {
		near, outer = p.lo, p.hi
	}
	anchor, empty, err := s.firstWindowAnchor(ctx, st, p, near)
	if err != nil || empty {
		return nil, err
	}
	var keys []key
	for step := 0; ; step++ {
		var far bound
		last := step >= len(actorWindows)
		if !last {
			if p.desc {
				far = bound{true, anchor.v - actorWindows[step] + 1}
			} else {
				far = bound{true, anchor.v + actorWindows[step] - 1}
			}
		}
		if outer.set && (last || (p.desc && far.v <= outer.v) || (!p.desc && far.v >= outer.v)) {
			far, last = outer, true
		}
		lo, hi := far, near
		if !p.desc {
			lo, hi = near, far
		}
		w := append(where(nil), base...)
		if lo.set {
			w.add("ts_us >= " + i64(lo.v))
		}
		if hi.set {
			w.add("ts_us <= " + i64(hi.v))
		}
		q := fmt.Sprintf("SELECT ts_us, chain_id, seq FROM %s.%s%s%s LIMIT 1 BY ts_us, chain_id, seq LIMIT %d",
			quoteIdent(st.db), st.l.ByActor(), w, p.orderBy(), p.need-len(keys))
		got, err := s.queryKeys(ctx, st, "search_actor_keys", q)
		if err != nil {
			return nil, err
		}
		keys = append(keys, got...)
		if len(keys) >= p.need || last {
			break
		}
		if p.desc {
			near = bound{true, far.v - 1}
		} else {
			near = bound{true, far.v + 1}
		}
	}
	return s.fetchByKeys(ctx, st, p, keys)
}
