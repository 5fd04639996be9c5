package auditapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/sink"
)

// openSQLite stores events in a fresh database of the sqlite plugin (in batches) and returns it
// as a Querier, with the database path for direct SQL.
func openSQLite(t testing.TB, events []chain.Event) (sink.Querier, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s := sqlite.New(sqlite.Options{})
	cfg, _ := json.Marshal(map[string]string{"path": path, "synchronous": "normal"})
	if err := s.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	for i := 0; i < len(events); i += 2000 {
		if err := s.Write(ctx, events[i:min(i+2000, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

// TestSQLitePaging runs the paging and filter suite over the real sqlite plugin.
func TestSQLitePaging(t *testing.T) {
	events := testEvents(3000)
	q, _ := openSQLite(t, events)
	pagingSuite(t, q, events, 12)
}

// TestSQLiteVerify verifies a chain stored by the sqlite plugin, then tampers one row with SQL.
func TestSQLiteVerify(t *testing.T) {
	events := testEvents(300)
	q, path := openSQLite(t, events)
	env := newTestAPI(t, q, nil)
	a := chainEvents(events, "chain-b")
	target := a[70]
	v, _ := decodeVerify(t, env.get(t, "/v1/audit-events/"+target.EventID+"/verify"))
	if !v.IsValid || v.TotalChecked != target.Sequence || v.ChainID != "chain-b" {
		t.Fatalf("got %+v", v)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA busy_timeout = 5000`); err != nil {
		t.Fatal(err)
	}
	victim := a[33]
	res, err := db.Exec(`UPDATE events SET actor_id = 'intruder' WHERE event_id = ?`, victim.EventID)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("tamper: %v, %d rows", err, n)
	}
	v, _ = decodeVerify(t, env.get(t, "/v1/audit-events/"+target.EventID+"/verify"))
	if v.IsValid || *v.FirstInvalidID != victim.Sequence || v.Reason != string(chain.ReasonHashMismatch) {
		t.Fatalf("after tampering sequence %d: %+v", victim.Sequence, v)
	}
	var got chain.Event
	w := env.get(t, "/v1/audit-events/"+victim.EventID)
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Actor.ID != "intruder" || got.ComputeHash() == got.Hash {
		t.Fatalf("tampered event as served: %v %+v", err, got.Actor)
	}
}
