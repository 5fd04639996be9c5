package flowkerimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/pgtest"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/sink"
)

// flowkerDB starts PostgreSQL 15, creates database name and applies Flowker's migration to it.
func flowkerDB(t *testing.T, srv *pgtest.Server, name string) *pgx.Conn {
	t.Helper()
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	migration, err := os.ReadFile(filepath.Join("testdata", "000001_audit_events.up.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(migration)); err != nil {
		t.Fatalf("apply Flowker's migration: %v", err)
	}
	return conn
}

// row is one INSERT as Flowker's repository does it (hash and previous_hash by the trigger).
type row struct {
	EventID, EventType, Action, Result, ResourceID, ResourceType, ActorType, ActorID, ActorIP, Context, Metadata string
	CreatedAt                                                                                                    *time.Time // nil: NOW(), as Flowker
}

func insert(t *testing.T, conn *pgx.Conn, r row) string {
	t.Helper()
	var hash string
	err := conn.QueryRow(t.Context(), `INSERT INTO audit_events (event_id, event_type, action, result, resource_id, resource_type,
		actor_type, actor_id, actor_ip, context, metadata, created_at)
		VALUES ($1, $2::audit_event_type, $3::audit_action, $4::audit_result, $5, $6::audit_resource_type, $7::audit_actor_type,
		$8, $9, $10::jsonb, $11::jsonb, COALESCE($12, NOW())) RETURNING hash`,
		r.EventID, r.EventType, r.Action, r.Result, r.ResourceID, r.ResourceType, r.ActorType, r.ActorID, r.ActorIP,
		r.Context, r.Metadata, r.CreatedAt).Scan(&hash)
	if err != nil {
		t.Fatalf("insert %s: %v", r.EventID, err)
	}
	return hash
}

// flowkerRows inserts n rows the way Flowker does (NOW(), one transaction each), some with a
// backslash, which Flowker's bytea cast decodes before hashing.
func flowkerRows(t *testing.T, conn *pgx.Conn, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		name := fmt.Sprintf("flow %d", i)
		if i%7 == 0 {
			name = fmt.Sprintf(`C:\\temp\\flow %d é`, i) // JSON escape: the name holds single backslashes
		}
		insert(t, conn, row{
			EventID: fmt.Sprintf("%08d-0000-4000-8000-%012d", i, i), EventType: "WORKFLOW_UPDATED", Action: "UPDATE", Result: "SUCCESS",
			ResourceID: fmt.Sprintf("aaaaaaaa-aaaa-4aaa-8aaa-%012d", i%5), ResourceType: "workflow", ActorType: "system", ActorID: "flowker",
			ActorIP: "0.0.0.0", Context: "{}", Metadata: fmt.Sprintf(`{"workflow.name": "%s"}`, name),
		})
	}
}

// TestMigrationReproducesFlowkerVectors: the migration text used by these tests makes the same
// hashes as Flowker's real trigger did (the 60 golden rows, and the contract's 4 rows with a
// backslash).
func TestMigrationReproducesFlowkerVectors(t *testing.T) {
	srv := pgtest.Start(t)
	conn := flowkerDB(t, srv, "vectors")
	b, err := os.ReadFile(filepath.Join("..", "..", "chain", "testdata", "flowker-chain-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			EventID, EventType, Action, Result, ResourceID, ResourceType, ActorType, ActorID, ActorIP string
			Context, Metadata, Timestamp, Hash, PreviousHash                                          string
		} `json:"vectors"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range file.Vectors {
		ts, err := time.Parse(time.RFC3339Nano, v.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		got := insert(t, conn, row{EventID: v.EventID, EventType: v.EventType, Action: v.Action, Result: v.Result, ResourceID: v.ResourceID,
			ResourceType: v.ResourceType, ActorType: v.ActorType, ActorID: v.ActorID, ActorIP: v.ActorIP, Context: v.Context, Metadata: v.Metadata, CreatedAt: &ts})
		if got != v.Hash {
			t.Fatalf("vector %d (%s): the migration's trigger gives %s, Flowker's gave %s", i, v.EventID, got, v.Hash)
		}
	}
	// Section 5.5 of the contract: a separate chain, row 4 with a backslash.
	conn2 := flowkerDB(t, srv, "vectors55")
	at := func(s string) *time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return &v }
	for _, c := range []struct {
		r    row
		hash string
	}{
		{row{"11111111-1111-4111-8111-111111111111", "WORKFLOW_CREATED", "CREATE", "SUCCESS", "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "workflow", "system", "flowker", "0.0.0.0", "{}", `{"workflow.name": "Payments KYC"}`, at("2026-01-02T03:04:05.123456Z")},
			"17cd125cb90ebd8d6409014795cf510cbfcd5f90003fb0e36125644fa664e051"},
		{row{"22222222-2222-4222-8222-222222222222", "PROVIDER_CONFIG_CREATED", "CREATE", "SUCCESS", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "provider_config", "system", "flowker", "0.0.0.0", "{}", `{"provider_config.name": "Tracer prod", "provider_config.provider_id": "tracer"}`, at("2026-01-02T03:04:06.000000Z")},
			"d60f1526630e1632e82ae007e801bde6287e48c487fab2983a86dc4099d6f2ea"},
		{row{"33333333-3333-4333-8333-333333333333", "EXECUTION_FAILED", "EXECUTE", "FAILED", "cccccccc-cccc-4ccc-8ccc-cccccccccccc", "execution", "system", "flowker", "0.0.0.0", "{}", `{"error": "FLK-0504", "workflow.id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}`, at("2026-01-02T03:04:07.000001Z")},
			"db144f1787bdd9ea1e8df8bb86072aa51993d29c83b96d6e32164a9e2a4299dd"},
		{row{"44444444-4444-4444-8444-444444444444", "WORKFLOW_UPDATED", "UPDATE", "SUCCESS", "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "workflow", "system", "flowker", "0.0.0.0", "{}", `{"workflow.name": "C:\\temp é"}`, at("2026-01-02T03:04:08.500000Z")},
			"715a08cd6095e0c0ba522689e44e57f5aa000d14257cfa32d1fd9bca24acca1d"},
	} {
		if got := insert(t, conn2, c.r); got != c.hash {
			t.Fatalf("contract 5.5 row %s: %s, want %s", c.r.EventID, got, c.hash)
		}
	}
}

// sqliteTarget is the SQLite sink plugin in process.
func sqliteTarget(t *testing.T, path string) *sqlite.Sink {
	t.Helper()
	s := sqlite.New(sqlite.Options{})
	cfg, _ := json.Marshal(map[string]string{"path": path, "synchronous": "normal"})
	if err := s.Configure(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// failAfter fails every Write after n successful ones (a crash mid-import).
type failAfter struct {
	Target
	n int
}

func (f *failAfter) Write(ctx context.Context, evs []chain.Event) error {
	if f.n == 0 {
		return errors.New("sink went away")
	}
	f.n--
	return f.Target.Write(ctx, evs)
}

// storedChain reads the imported chain back from the sink.
func storedChain(t *testing.T, s *sqlite.Sink) []chain.Event {
	t.Helper()
	var out []chain.Event
	if err := s.ReadChain(t.Context(), DefaultChainID, 1, 0, func(e *chain.Event) error { out = append(out, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportFromPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	conn := flowkerDB(t, srv, "flowker")
	flowkerRows(t, conn, 1, 120)
	url := srv.URL("flowker")
	dbPath := filepath.Join(t.TempDir(), "audit.db")
	s := sqliteTarget(t, dbPath)
	targets := []NamedTarget{{Name: "store", Target: s}}
	ctx := t.Context()

	t.Run("a crash mid-import, then a re-run resumes", func(t *testing.T) {
		crashing := []NamedTarget{{Name: "store", Target: &failAfter{Target: s, n: 2}}}
		if _, err := Import(ctx, Options{PostgresURL: url, Targets: crashing, Batch: 25}); err == nil || !strings.Contains(err.Error(), "sink went away") {
			t.Fatalf("err %v", err)
		}
		if got := len(storedChain(t, s)); got != 50 {
			t.Fatalf("%d rows stored before the crash, want 50", got)
		}
		rep, err := Import(ctx, Options{PostgresURL: url, Targets: targets, Batch: 25})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resumed != 50 || rep.Read != 70 || rep.Last != 120 || len(rep.Flagged) != 0 {
			t.Fatalf("report %+v", rep)
		}
	})
	t.Run("stored as Flowker wrote them, every row verifying under Flowker's rules", func(t *testing.T) {
		got := storedChain(t, s)
		rows, err := conn.Query(ctx, `SELECT event_id::text, hash, COALESCE(previous_hash, ''), metadata::text, created_at FROM audit_events ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		i := 0
		for rows.Next() {
			var id, hash, prev, meta string
			var at time.Time
			if err := rows.Scan(&id, &hash, &prev, &meta, &at); err != nil {
				t.Fatal(err)
			}
			e := got[i]
			if e.EventID != id || e.Hash != hash || e.PreviousHash != prev || string(e.Metadata) != meta || !e.Timestamp.Equal(at) ||
				e.Sequence != uint64(i+1) || e.ChainID != DefaultChainID {
				t.Fatalf("row %d: stored %+v, PostgreSQL %s %s %s %s %s", i+1, e, id, hash, prev, meta, at)
			}
			if h, err := e.FlowkerHash(); err != nil || h != hash {
				t.Fatalf("row %d does not verify under Flowker's rules: %v %s", i+1, err, h)
			}
			i++
		}
		if i != 120 || len(got) != 120 {
			t.Fatalf("%d rows in PostgreSQL, %d stored", i, len(got))
		}
		// Rows with a backslash: the sidecar's plain hash differs, Flowker's matches (imported as is).
		if got[6].ComputeHash() == got[6].Hash {
			t.Fatal("row 7 was expected to differ under the plain hash (it holds a backslash)")
		}
	})
	t.Run("search shows them beside the sidecar's events", func(t *testing.T) {
		p, err := s.Search(ctx, sink.Query{Filter: sink.Filter{ActorType: "system", ActorID: "flowker"}, Limit: 1000})
		if err != nil || len(p.Events) != 120 || p.Events[0].ChainID != DefaultChainID {
			t.Fatalf("%v: %d events", err, len(p.Events))
		}
	})
	t.Run("a re-run is idempotent", func(t *testing.T) {
		rep, err := Import(ctx, Options{PostgresURL: url, Targets: targets})
		if err != nil || rep.Read != 0 || rep.Resumed != 120 || rep.Last != 120 {
			t.Fatalf("%v %+v", err, rep)
		}
		if got := len(storedChain(t, s)); got != 120 {
			t.Fatalf("%d stored", got)
		}
	})
	t.Run("rows that do not verify are imported and flagged", func(t *testing.T) {
		flowkerRows(t, conn, 121, 10)
		// An intruder with superuser rights edits row 125 behind the immutability triggers, and a
		// fork: row 128 is inserted linking to an older row (as concurrent inserts do).
		for _, q := range []string{
			`ALTER TABLE audit_events DISABLE TRIGGER USER`,
			`UPDATE audit_events SET metadata = '{"workflow.name": "edited"}' WHERE event_id = '00000125-0000-4000-8000-000000000125'`,
			`UPDATE audit_events SET previous_hash = (SELECT hash FROM audit_events WHERE event_id = '00000126-0000-4000-8000-000000000126') WHERE event_id = '00000128-0000-4000-8000-000000000128'`,
			`ALTER TABLE audit_events ENABLE TRIGGER USER`,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		var flags []Flag
		rep, err := Import(ctx, Options{PostgresURL: url, Targets: targets, OnFlag: func(f Flag) { flags = append(flags, f) }})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Read != 10 || rep.Last != 130 || len(rep.Flagged) != 2 || len(flags) != 2 {
			t.Fatalf("report %+v", rep)
		}
		if f := rep.Flagged[0]; f.Sequence != 125 || f.Reason != "hash mismatch" || f.EventID != "00000125-0000-4000-8000-000000000125" {
			t.Fatalf("first flag %+v", f)
		}
		// Row 128's stored hash still covers its original previous hash: both checks fail, the
		// hash is reported first.
		if f := rep.Flagged[1]; f.Sequence != 128 || f.Reason != "hash mismatch" {
			t.Fatalf("second flag %+v", f)
		}
		got := storedChain(t, s)
		if len(got) != 130 || string(got[124].Metadata) != `{"workflow.name": "edited"}` {
			t.Fatalf("flagged row not imported as it is: %d rows, %s", len(got), got[124].Metadata)
		}
	})
	t.Run("a changed source stops the import", func(t *testing.T) {
		for _, q := range []string{
			`ALTER TABLE audit_events DISABLE TRIGGER USER`,
			`UPDATE audit_events SET hash = repeat('0', 64) WHERE event_id = '00000130-0000-4000-8000-000000000130'`,
			`ALTER TABLE audit_events ENABLE TRIGGER USER`,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Import(ctx, Options{PostgresURL: url, Targets: targets})
		if err == nil || !strings.Contains(err.Error(), "the source changed") {
			t.Fatalf("err %v", err)
		}
	})
}
