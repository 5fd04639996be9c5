package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"os"
	"path/filepath"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// TestUsers1816 checks deployments/clickhouse/users.d/flowker-audit.xml on 18.16: the application
// user can run the sink (schema applied by an administrator) and is refused ALTER, DROP and
// TRUNCATE; the reader is read-only. It also pins the 18.16 limitation README.md documents.
func TestUsers1816(t *testing.T) {
	xml, err := os.ReadFile(filepath.Join(deploymentDir, "users.d", "flowker-audit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	hash := func(pw string) string { s := sha256.Sum256([]byte(pw)); return hex.EncodeToString(s[:]) }
	xml = []byte(strings.NewReplacer(
		"REPLACE_WITH_SHA256_HEX_OF_THE_PASSWORD", hash("app-pw"),
		"REPLACE_WITH_SHA256_HEX_OF_THE_READER_PASSWORD", hash("reader-pw"),
	).Replace(string(xml)))
	srv := chtest.Start(t, chtest.WithUsersD("flowker-audit.xml", xml))
	ctx := ctxT(t)

	// The administrator applies schema.sql.
	script, err := os.ReadFile(filepath.Join(deploymentDir, "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	stmts := splitScript(string(script))
	if _, err := srv.Query(ctx, stmts[0]); err != nil { // CREATE DATABASE
		t.Fatal(err)
	}
	// Before the tables exist, the application user cannot create them: a permanent error.
	bad := New(Options{Logger: testLogger(t)})
	defer bad.Close(ctx)
	err = bad.Configure(ctx, testConfig(srv, "audit", map[string]any{"user": "flowker_audit", "password": "app-pw"}))
	if err == nil || !sink.IsPermanent(err) {
		t.Fatalf("Configure without DDL rights on an empty database: %v, want a permanent error", err)
	}
	for _, stmt := range stmts[1:] {
		if _, err := srv.Query(ctx, stmt); err != nil {
			t.Fatalf("apply schema.sql: %v", err)
		}
	}

	// The sink runs as flowker_audit, with the default create_schema: no DDL is needed.
	s := openSink(t, srv, "audit", Options{}, map[string]any{"user": "flowker_audit", "password": "app-pw"})
	evs := sinktest.GenerateChain("chain-app", 50, sinktest.GenOptions{Seed: 21})
	if err := s.Write(ctx, evs); err != nil {
		t.Fatalf("Write as flowker_audit: %v", err)
	}
	checkStored(t, s, evs)

	app, err := ch.Open(&ch.Options{Addr: []string{srv.Addr}, Auth: ch.Auth{Database: "audit", Username: "flowker_audit", Password: "app-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	for _, q := range []string{
		"ALTER TABLE audit.audit_events UPDATE context = '{}' WHERE seq = 1",
		"ALTER TABLE audit.audit_events DELETE WHERE seq = 1",
		"ALTER TABLE audit.audit_events DROP PARTITION 202603",
		"DROP TABLE audit.audit_events",
		"TRUNCATE TABLE audit.audit_events",
		"CREATE TABLE audit.x (a UInt8) ENGINE = Memory",
		"RENAME TABLE audit.audit_events TO audit.y",
		"DETACH TABLE audit.audit_events",
		"OPTIMIZE TABLE audit.audit_events FINAL",
	} {
		if err := app.Exec(ctx, q); exceptionCode(err) != codeQueryProhibited {
			t.Errorf("%s as flowker_audit: %v, want code %d", q, err, codeQueryProhibited)
		}
	}
	if err := app.Exec(ctx, "SELECT 1 FROM system.one"); err != nil {
		t.Errorf("flowker_audit cannot read system.one: %v", err)
	}
	query(t, srv, "CREATE TABLE default.other (x UInt8) ENGINE = Memory")
	if err := app.Exec(ctx, "SELECT 1 FROM default.other"); exceptionCode(err) != codeDatabaseAccessDenied {
		t.Errorf("flowker_audit reading another database: %v, want code %d", err, codeDatabaseAccessDenied)
	}
	// Documented limitation: 18.16 lets a client override allow_ddl per query.
	bypass := ch.Context(ctx, ch.WithSettings(ch.Settings{"allow_ddl": 1}))
	if err := app.Exec(bypass, "ALTER TABLE audit.audit_events DELETE WHERE 0"); err != nil {
		t.Errorf("18.16 no longer lets a query override allow_ddl (%v): update deployments/clickhouse/README.md", err)
	}

	reader := func(settings ch.Settings, q string) error {
		c, err := ch.Open(&ch.Options{Addr: []string{srv.Addr}, Auth: ch.Auth{Database: "audit", Username: "flowker_audit_reader", Password: "reader-pw"}})
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Exec(ch.Context(context.Background(), ch.WithSettings(settings)), q)
	}
	if err := reader(nil, "SELECT count() FROM audit.audit_events"); err != nil {
		t.Errorf("reader SELECT: %v", err)
	}
	for _, settings := range []ch.Settings{nil, {"readonly": 0}} {
		if err := reader(settings, "ALTER TABLE audit.audit_events DELETE WHERE 0"); exceptionCode(err) != codeReadonly {
			t.Errorf("reader ALTER with settings %v: %v, want code %d", settings, err, codeReadonly)
		}
	}
}

// splitScript splits a deployments/clickhouse SQL file into statements.
func splitScript(script string) []string {
	var out []string
	for _, part := range strings.Split(script, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if stmt := strings.TrimSpace(strings.Join(lines, "\n")); stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}
