package e2e

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

type verifyOut struct {
	IsValid        bool   `json:"isValid"`
	FirstInvalidID uint64 `json:"firstInvalidId"`
	TotalChecked   uint64 `json:"totalChecked"`
	Message        string `json:"message"`
	ChainID        string `json:"chainId"`
	Reason         string `json:"reason"`
}

// TestTamperingWithTheSQLiteFileIsNamed: fake Flowker -> sidecar -> SQLite; the API shows the
// events and /verify is valid; editing one stored event in the database file makes /verify name
// its sequence.
func TestTamperingWithTheSQLiteFileIsNamed(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for i := 0; i < 12; i++ {
		r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": "tamper-me"})
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	env.WaitDelivered(30 * time.Second)
	events := env.AllEvents()
	if len(events) != 12 {
		t.Fatalf("%d events, want 12", len(events))
	}
	last := events[len(events)-1]
	var v verifyOut
	env.Audit("/v1/audit-events/"+last.EventID+"/verify").JSON(t, &v)
	if !v.IsValid || v.TotalChecked != 12 || v.ChainID != last.ChainID {
		t.Fatalf("verify before tampering: %+v", v)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.DataDir, "audit.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE events SET context = '{"tampered": true}' WHERE chain_id = ? AND seq = 7`, last.ChainID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered %d rows", n)
	}
	env.Audit("/v1/audit-events/"+last.EventID+"/verify").JSON(t, &v)
	if v.IsValid || v.FirstInvalidID != 7 || v.TotalChecked != 6 {
		t.Fatalf("verify after tampering with sequence 7: %+v", v)
	}
	t.Logf("tampered sequence 7 reported: %s", v.Message)
	// Deleting a later row is a gap at its sequence (checked up to an event before the edit).
	if _, err := db.Exec(`DELETE FROM events WHERE chain_id = ? AND seq = 4`, last.ChainID); err != nil {
		t.Fatal(err)
	}
	env.Audit("/v1/audit-events/"+events[5].EventID+"/verify").JSON(t, &v)
	if v.IsValid || v.FirstInvalidID != 4 {
		t.Fatalf("verify after deleting sequence 4: %+v", v)
	}
}
