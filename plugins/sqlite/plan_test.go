package sqlite

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

// TestSearchPlansUseIndexesWithoutSorting checks with EXPLAIN QUERY PLAN that every search shape
// walks its index in order (no "USE TEMP B-TREE FOR ORDER BY"), and that a cursor is an index
// seek on (ts_us, chain_id, seq) rather than a filter applied while scanning from the start.
func TestSearchPlansUseIndexesWithoutSorting(t *testing.T) {
	s := newSink(t)
	st, err := s.store()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	after := &sink.Position{TimeMicros: t0.Add(time.Hour).UnixMicro(), ChainID: "chain-a", Sequence: 42}
	filters := map[string]sink.Filter{
		"none":                     {},
		"eventType":                {EventType: "WORKFLOW_CREATED"},
		"action":                   {Action: "UPDATE"},
		"result":                   {Result: "FAILED"},
		"resourceType":             {ResourceType: "workflow"},
		"resourceId":               {ResourceID: "6f1c8a52-1111-4111-8111-111111111111"},
		"eventType+result":         {EventType: "EXECUTION_FAILED", Result: "FAILED"},
		"resourceId+eventType":     {ResourceID: "6f1c8a52-1111-4111-8111-111111111111", EventType: "WORKFLOW_UPDATED"},
		"resourceType+action":      {ResourceType: "provider_config", Action: "DELETE"},
		"actorType":                {ActorType: "api_key"},
		"actorId":                  {ActorID: "key:cfd1ee4c07e8"},
		"actorType+actorId":        {ActorType: "user", ActorID: "alice"},
		"actorId+eventType+From":   {ActorID: "alice", EventType: "WORKFLOW_UPDATED", From: t0},
		"actorType+eventType":      {ActorType: "user", EventType: "WORKFLOW_UPDATED"},
		"actorId+eventType":        {ActorID: "alice", EventType: "WORKFLOW_DELETED"},
		"From":                     {From: t0},
		"To":                       {To: t0.Add(2 * time.Hour)},
		"From..To":                 {From: t0, To: t0.Add(2 * time.Hour)},
		"eventType+From..To":       {EventType: "WORKFLOW_CREATED", From: t0, To: t0.Add(2 * time.Hour)},
		"resourceId+From..To":      {ResourceID: "6f1c8a52-1111-4111-8111-111111111111", From: t0, To: t0.Add(2 * time.Hour)},
		"every filter":             {EventType: "WORKFLOW_CREATED", Action: "CREATE", Result: "SUCCESS", ResourceType: "workflow", ResourceID: "6f1c8a52-1111-4111-8111-111111111111", From: t0, To: t0.Add(2 * time.Hour)},
		"cursor past To (ignored)": {To: t0},
	}
	for name, f := range filters {
		for _, order := range []sink.Order{sink.Desc, sink.Asc} {
			for _, cursor := range []*sink.Position{nil, after} {
				label := fmt.Sprintf("%s/%s/cursor=%v", name, order, cursor != nil)
				q := buildSearch(sink.Query{Filter: f, Order: order, After: cursor, Limit: 20})
				rows, err := st.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q.text, q.args...)
				if err != nil {
					t.Fatalf("%s: EXPLAIN QUERY PLAN %s: %v", label, q.text, err)
				}
				var plan []string
				for rows.Next() {
					var id, parent, notused int
					var detail string
					if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				rows.Close()
				text := strings.Join(plan, "; ")
				if strings.Contains(text, "TEMP B-TREE") {
					t.Errorf("%s: plan sorts: %s\n  query: %s", label, text, q.text)
				}
				if !strings.Contains(text, "USING INDEX "+q.index) {
					t.Errorf("%s: plan does not use %s: %s", label, q.index, text)
				}
				seek := cursor != nil && !(name == "cursor past To (ignored)" && order == sink.Desc)
				if seek && !strings.Contains(text, "(ts_us,chain_id,seq)") {
					t.Errorf("%s: the cursor is not an index seek: %s\n  query: %s", label, text, q.text)
				}
				if testing.Verbose() {
					t.Logf("%s: %s", label, text)
				}
			}
		}
	}
}

func TestBuildSearchBounds(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		q     sink.Query
		where []string // fragments that must appear
		not   []string // fragments that must not
		empty bool
	}{
		{name: "From after To", q: sink.Query{Filter: sink.Filter{From: t0.Add(time.Second), To: t0}}, empty: true},
		{name: "sub-microsecond From rounds up", q: sink.Query{Filter: sink.Filter{From: t0.Add(1500 * time.Nanosecond), To: t0.Add(1700 * time.Nanosecond)}}, empty: true},
		{name: "cursor inside range replaces To (DESC)", q: sink.Query{Filter: sink.Filter{From: t0, To: t0.Add(time.Hour)}, After: &sink.Position{TimeMicros: t0.Add(time.Minute).UnixMicro()}},
			where: []string{"(ts_us, chain_id, seq) < (?, ?, ?)", "ts_us >= ?"}, not: []string{"ts_us <= ?"}},
		{name: "cursor inside range replaces From (ASC)", q: sink.Query{Order: sink.Asc, Filter: sink.Filter{From: t0, To: t0.Add(time.Hour)}, After: &sink.Position{TimeMicros: t0.Add(time.Minute).UnixMicro()}},
			where: []string{"(ts_us, chain_id, seq) > (?, ?, ?)", "ts_us <= ?"}, not: []string{"ts_us >= ?"}},
		{name: "cursor past To is dropped (DESC)", q: sink.Query{Filter: sink.Filter{To: t0}, After: &sink.Position{TimeMicros: t0.Add(time.Minute).UnixMicro()}},
			where: []string{"ts_us <= ?"}, not: []string{"(ts_us, chain_id, seq)"}},
		{name: "max sequence cursor (DESC)", q: sink.Query{After: &sink.Position{TimeMicros: 1, ChainID: "c", Sequence: 1<<64 - 1}},
			where: []string{"(ts_us, chain_id, seq) <= (?, ?, ?)"}},
		{name: "resourceId wins the index", q: sink.Query{Filter: sink.Filter{EventType: "X", Result: "FAILED", ResourceID: "r"}},
			where: []string{"INDEXED BY events_resource_id", "event_type = ?", "result = ?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Limit = 10
			got := buildSearch(tc.q)
			if got.empty != tc.empty {
				t.Fatalf("empty = %v, want %v (%s)", got.empty, tc.empty, got.text)
			}
			for _, w := range tc.where {
				if !strings.Contains(got.text, w) {
					t.Errorf("query lacks %q: %s", w, got.text)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got.text, w) {
					t.Errorf("query has %q: %s", w, got.text)
				}
			}
		})
	}
}
