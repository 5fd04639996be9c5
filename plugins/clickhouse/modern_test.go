package clickhouse

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// queryNames are the names of every statement the sink sends (Options.QueryHook). The modern-
// engine test fails when its workload misses one, so a new query cannot escape the check.
var queryNames = []string{
	"ddl", "exists", "schema_version", "schema_version_insert", "insert", "head", "time_range",
	"search_window", "search_window_keys", "fetch_by_keys", "search_resource_keys", "get_key", "get_event",
	"chain_blocks", "chain_window", "chains", "chains_duplicates", "chains_exact_count",
	"horizon", "watermarks_insert",
}

type capturedSQL struct {
	name, sql string
}

// recorder collects the distinct statements a sink sends, in first-seen order.
type recorder struct {
	mu   sync.Mutex
	seen map[string]bool
	all  []capturedSQL
}

func (r *recorder) hook(name, sql string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[name+"\x00"+sql] {
		r.seen[name+"\x00"+sql] = true
		r.all = append(r.all, capturedSQL{name, sql})
	}
}

// TestModernEngine runs the modern (and the portable) schema and every statement the sink sent to
// 18.16 during a workload on chdb, an embedded ClickHouse 26.x, with the same data: any error fails
// the test, and every SELECT must return the same rows as on 18.16. chdb has no network protocol,
// so the sink's SQL is replayed as text: the sink renders its values into the SQL itself, so the
// text is exactly what the driver sent. It skips only with FLOWKER_AUDIT_SKIP_CHDB=1.
func TestModernEngine(t *testing.T) {
	engine := chtest.RequireChdb(t)
	srv := server(t)
	db := newDatabase("modern")
	rec := &recorder{}
	// With the read horizon on, so that its statements are checked too.
	s := openSink(t, srv, db, Options{QueryHook: rec.hook}, map[string]any{"read_horizon": "on"})
	ctx := ctxT(t)

	// Workload: two chains over ~7 weeks (so Search widens to its two-phase windows), written in
	// batches, plus rows duplicated behind the sink's back (so Chains counts exactly).
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	a := sinktest.GenerateChain("chain-a", 120, sinktest.GenOptions{Seed: 31, Start: start, MeanGap: 10 * time.Hour})
	b := sinktest.GenerateChain("chain-b", 60, sinktest.GenOptions{Seed: 31, Start: start, MeanGap: 20 * time.Hour})
	var batches [][]chain.Event
	for i := 0; i < 120; i += 40 {
		batches = append(batches, append(append([]chain.Event(nil), a[i:i+40]...), b[i/2:i/2+20]...))
	}
	for _, batch := range batches {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"chain-a", "chain-b"} { // heartbeats: the horizon holds nothing back
		if err := s.WriteWatermark(ctx, id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	dups := a[10:20]
	insertRaw(t, rawConn(t, srv), db, dups)

	for _, id := range []string{"chain-a", "chain-b", "chain-none"} {
		if _, err := s.Head(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := s.ReadChain(ctx, id, 1, 0, func(*chain.Event) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Chains(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, a[7].EventID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "00000000-0000-4000-8000-000000000000"); err == nil {
		t.Fatal("Get of an unknown event succeeded")
	}
	for _, f := range []sink.Filter{
		{}, {EventType: a[3].EventType}, {EventType: "NEVER"}, {ResourceID: a[3].ResourceID},
		{ResourceID: a[3].ResourceID, EventType: a[3].EventType, Result: a[3].Result},
		{From: start.AddDate(0, 0, 10), To: start.AddDate(0, 0, 20), Action: a[3].Action, ResourceType: a[3].ResourceType},
	} {
		for _, order := range []sink.Order{sink.Desc, sink.Asc} {
			q := sink.Query{Filter: f, Order: order, Limit: 25}
			for page := 0; page < 3; page++ {
				p, err := s.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if !p.More {
					break
				}
				pos := sink.PositionOf(&p.Events[len(p.Events)-1])
				q.After = &pos
			}
		}
	}

	openSink(t, srv, db, Options{QueryHook: rec.hook}, nil) // a restart: the schema is checked, not created

	seen := map[string]bool{}
	for _, c := range rec.all {
		seen[c.name] = true
	}
	for _, n := range queryNames {
		if !seen[n] {
			t.Errorf("the workload never sent a %q statement; extend it so chdb checks it", n)
		}
	}
	if t.Failed() {
		return
	}

	// The statements as chdb runs them: DDL, the inserts (the driver's INSERT text with the rows as
	// VALUES, and the same settings), then every SELECT with the read settings.
	var insertSQL string
	var selects []capturedSQL
	for _, c := range rec.all {
		switch c.name {
		case "insert":
			insertSQL = c.sql
		case "ddl", "watermarks_insert": // the watermarks are not replayed: the horizon is checked for syntax
		default:
			selects = append(selects, c)
		}
	}
	for _, variant := range []Version{Modern, Legacy} {
		t.Run("schema "+variant.Variant(), func(t *testing.T) {
			stmts := append([]string(nil), DDL(variant, db)...)
			for i, batch := range append(batches, dups) {
				token := dedupToken(rowsOf(t, batch))
				if i == len(batches) {
					token = "raw duplicates"
				}
				stmts = append(stmts, fmt.Sprintf("SET insert_deduplication_token = %s", quoteString(token)),
					insertSQL+" VALUES "+valuesOf(t, batch))
			}
			stmts = append(stmts, "SET max_execution_time = 30")
			firstSelect := len(stmts)
			for _, c := range selects {
				stmts = append(stmts, c.sql)
			}
			res, err := engine.Run(ctx, "TSV", stmts)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != "" {
					t.Errorf("chdb rejected statement %d:\n%s\nerror: %s", i, r.SQL, r.Err)
				}
			}
			if t.Failed() {
				return
			}
			for i, c := range selects {
				if c.name == "schema_version_insert" {
					continue
				}
				got := res[firstSelect+i].Output
				want, err := srv.Query(ctx, c.sql)
				if err != nil {
					t.Fatalf("18.16: %v", err)
				}
				if c.name == "schema_version" || c.name == "exists" || c.name == "horizon" {
					continue // state of the sink's own bookkeeping, not of the data
				}
				if !sameLines(got, []byte(want)) {
					t.Errorf("%s differs between chdb and 18.16:\n%s\nchdb:\n%q\n18.16:\n%q", c.name, c.sql, got, want)
				}
			}
		})
	}

	// chdb's embedded user cannot manage users, so grants.sql is checked by the parser only.
	t.Run("grants syntax", func(t *testing.T) {
		var stmts []string
		for _, g := range Grants("audit", "flowker_audit") {
			stmts = append(stmts, "EXPLAIN AST "+g)
		}
		res, err := engine.Run(ctx, "TSV", stmts)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != "" {
				t.Errorf("chdb cannot parse:\n%s\nerror: %s", r.SQL, r.Err)
			}
		}
	})

	// A retried batch carrying its deduplication token is stored once on modern servers (the
	// table setting non_replicated_deduplication_window is in the modern variant only).
	t.Run("deduplication token", func(t *testing.T) {
		var stmts []string
		stmts = append(stmts, DDL(Modern, db)...)
		for _, set := range insertSettings(Modern, rowsOf(t, batches[0])) {
			stmts = append(stmts, "SET "+set)
		}
		insert := insertSQL + " VALUES " + valuesOf(t, batches[0])
		stmts = append(stmts, insert, insert)
		for _, table := range []string{TableEvents, TableByID, TableByResource} {
			stmts = append(stmts, fmt.Sprintf("SELECT count() FROM %s.%s", db, table))
		}
		stmts = append(stmts, fmt.Sprintf("SELECT countMerge(rows) FROM %s.%s", db, TableChainBlocks))
		res, err := engine.Run(ctx, "TSV", stmts)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != "" {
				t.Fatalf("chdb rejected:\n%s\nerror: %s", r.SQL, r.Err)
			}
		}
		for _, r := range res[len(res)-4:] {
			got := string(r.Output)
			if strings.TrimSpace(got) != fmt.Sprint(len(batches[0])) {
				t.Errorf("%s after inserting a batch twice with its token: %s, want %d", r.SQL, strings.TrimSpace(got), len(batches[0]))
			}
		}
	})
}

func rowsOf(t *testing.T, events []chain.Event) []row {
	out := make([]row, len(events))
	for i := range events {
		r, err := toRow(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

// valuesOf renders events as the VALUES list of an insert with insertColumns.
func valuesOf(t *testing.T, events []chain.Event) string {
	var b strings.Builder
	for i, r := range rowsOf(t, events) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%s, %d, %s, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, unhex('%s'), unhex('%s'))",
			quoteString(r.chainID), r.seq, quoteString(r.eventID.String()), r.tsUs, quoteString(r.eventType),
			quoteString(r.action), quoteString(r.result), quoteString(r.resourceType), quoteString(r.resourceID),
			quoteString(r.actorType), quoteString(r.actorID), quoteString(r.actorIP), quoteString(r.context),
			quoteString(r.metadata), hex.EncodeToString([]byte(r.hash)), hex.EncodeToString([]byte(r.prevHash)))
	}
	return b.String()
}

// sameLines compares two TSV outputs as multisets of lines (a query without ORDER BY may return
// rows in another order on another engine).
func sameLines(a, b []byte) bool {
	split := func(x []byte) []string {
		lines := strings.Split(strings.TrimSuffix(string(x), "\n"), "\n")
		sort.Strings(lines)
		return lines
	}
	la, lb := split(a), split(b)
	if len(la) != len(lb) {
		return false
	}
	for i := range la {
		if la[i] != lb[i] {
			return false
		}
	}
	return true
}

// insertSettings renders insertSettingsFor as SQL "name = value" assignments (the modern-engine
// test replays inserts with them).
func insertSettings(v Version, rows []row) []string {
	settings := insertSettingsFor(state{version: v}, rows)
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, name := range names {
		switch val := settings[name].(type) {
		case string:
			out = append(out, name+" = "+quoteString(val))
		default:
			out = append(out, fmt.Sprintf("%s = %v", name, val))
		}
	}
	return out
}
