package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// tamperStore is a query store as someone with write access to it (and the hash algorithm)
// sees it: SQL against the tables, with the sidecar stopped or running.
type tamperStore interface {
	name() string
	// sink is the query sink's configuration for data directory dir.
	sink(dir string) config.Sink
	// cliYAML is the sinks: block of a configuration for `flowker-audit verify`.
	cliYAML(dir string) string
	// replace overwrites the stored row at e's (chain, sequence) with e's resourceId, hash and
	// previousHash.
	replace(t *testing.T, dir string, e chain.Event)
	// delete removes the rows from..to.
	delete(t *testing.T, dir, chainID string, from, to uint64)
	// fixSummary makes the chain summary agree with the rows that are left.
	fixSummary(t *testing.T, dir, chainID string)
	// insert adds rows with INSERT only (no update or delete rights); it returns the store's error.
	insert(t *testing.T, dir string, evs ...chain.Event) error
	// claimHead makes the chain summary claim sequence seq (a forged summary).
	claimHead(t *testing.T, dir, chainID string, seq uint64)
}

// sqliteStore is the bundled SQLite store, edited through its file.
type sqliteStore struct{}

func (sqliteStore) name() string { return "sqlite" }
func (sqliteStore) sink(dir string) config.Sink {
	return config.Sink{Name: "store", Plugin: "sqlite", Query: true, Config: map[string]any{"path": filepath.Join(dir, "audit.db")}}
}
func (sqliteStore) cliYAML(dir string) string {
	return fmt.Sprintf("sinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    config: {path: %q}\n", filepath.Join(dir, "audit.db"))
}

func (sqliteStore) exec(t *testing.T, dir string, q string, args ...any) error {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "audit.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(q, args...)
	return err
}

func (s sqliteStore) must(t *testing.T, dir string, q string, args ...any) {
	t.Helper()
	if err := s.exec(t, dir, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (s sqliteStore) replace(t *testing.T, dir string, e chain.Event) {
	s.must(t, dir, `UPDATE events SET resource_id = ?, hash = ?, previous_hash = ? WHERE chain_id = ? AND seq = ?`,
		e.ResourceID, e.Hash, e.PreviousHash, e.ChainID, int64(e.Sequence))
}

func (s sqliteStore) delete(t *testing.T, dir, chainID string, from, to uint64) {
	s.must(t, dir, `DELETE FROM events WHERE chain_id = ? AND seq BETWEEN ? AND ?`, chainID, int64(from), int64(to))
}

func (s sqliteStore) fixSummary(t *testing.T, dir, chainID string) {
	s.must(t, dir, `UPDATE chains SET event_count = (SELECT count(*) FROM events WHERE chain_id = ?1),
		last_seq = (SELECT max(seq) FROM events WHERE chain_id = ?1) WHERE chain_id = ?1`, chainID)
}

func (s sqliteStore) insert(t *testing.T, dir string, evs ...chain.Event) error {
	for _, e := range evs {
		err := s.exec(t, dir, `INSERT INTO events (chain_id, seq, event_id, event_type, action, result, resource_id, resource_type,
			actor_type, actor_id, actor_ip, context, metadata, ts_us, hash, previous_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ChainID, int64(e.Sequence), e.EventID, e.EventType, e.Action, e.Result, e.ResourceID, e.ResourceType,
			e.Actor.Type, e.Actor.ID, e.Actor.IPAddress, string(e.Context), string(e.Metadata), e.Timestamp.UnixMicro(), e.Hash, e.PreviousHash)
		if err != nil {
			return err
		}
	}
	return nil
}

func (s sqliteStore) claimHead(t *testing.T, dir, chainID string, seq uint64) {
	s.must(t, dir, `UPDATE chains SET last_seq = ? WHERE chain_id = ?`, int64(seq), chainID)
}

// clickhouseStore is a database on a real clickhouse-server 18.16, edited with SQL (ALTER ...
// UPDATE/DELETE where the scenario needs ALTER rights, INSERT only otherwise).
type clickhouseStore struct {
	ch *chtest.Server
	db string
}

func (c clickhouseStore) name() string { return "clickhouse" }
func (c clickhouseStore) sink(string) config.Sink {
	return config.Sink{Name: "store", Plugin: "clickhouse", Query: true,
		Config:        map[string]any{"addr": []any{c.ch.Addr}, "database": c.db},
		BatchInterval: config.Duration(20 * time.Millisecond)}
}
func (c clickhouseStore) cliYAML(string) string {
	return fmt.Sprintf("sinks:\n  - name: store\n    plugin: clickhouse\n    query: true\n    config: {addr: [%q], database: %q}\n", c.ch.Addr, c.db)
}

func (c clickhouseStore) q(t *testing.T, q string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.ch.Query(ctx, q)
}

func (c clickhouseStore) must(t *testing.T, q string) string {
	t.Helper()
	out, err := c.q(t, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// waitMutations waits until every ALTER UPDATE/DELETE of the database finished.
func (c clickhouseStore) waitMutations(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, time.Minute, "mutations to finish", func() bool {
		out, err := c.q(t, fmt.Sprintf("SELECT count() FROM system.mutations WHERE database = '%s' AND is_done = 0", c.db))
		return err == nil && strings.TrimSpace(out) == "0"
	})
}

func chStr(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func chHash(h string) string {
	if h == "" {
		return "toFixedString(unhex(repeat('00', 32)), 32)"
	}
	return "toFixedString(unhex('" + h + "'), 32)"
}

func (c clickhouseStore) replace(t *testing.T, _ string, e chain.Event) {
	c.must(t, fmt.Sprintf("ALTER TABLE %s.audit_events UPDATE resource_id = %s, hash = %s, previous_hash = %s WHERE chain_id = %s AND seq = %d",
		c.db, chStr(e.ResourceID), chHash(e.Hash), chHash(e.PreviousHash), chStr(e.ChainID), e.Sequence))
	c.waitMutations(t)
}

func (c clickhouseStore) delete(t *testing.T, _ string, chainID string, from, to uint64) {
	c.must(t, fmt.Sprintf("ALTER TABLE %s.audit_events DELETE WHERE chain_id = %s AND seq BETWEEN %d AND %d", c.db, chStr(chainID), from, to))
	c.waitMutations(t)
}

// fixSummary rebuilds the chain's rows of audit_chain_blocks from the events (the statement
// docs/OPERATIONS.md gives operators after repairing a store).
func (c clickhouseStore) fixSummary(t *testing.T, _ string, chainID string) {
	c.must(t, fmt.Sprintf("ALTER TABLE %s.audit_chain_blocks DELETE WHERE chain_id = %s", c.db, chStr(chainID)))
	c.waitMutations(t)
	c.must(t, fmt.Sprintf(`INSERT INTO %[1]s.audit_chain_blocks SELECT chain_id, intDiv(seq, 16384) AS block, minState(seq), maxState(seq),
		minState(ts_us), maxState(ts_us), countState(), argMaxState(hash, seq) FROM %[1]s.audit_events WHERE chain_id = %[2]s GROUP BY chain_id, block`,
		c.db, chStr(chainID)))
}

func (c clickhouseStore) insert(t *testing.T, _ string, evs ...chain.Event) error {
	var rows []string
	for _, e := range evs {
		rows = append(rows, fmt.Sprintf("SELECT %s, toUInt64(%d), toUUID(%s), toInt64(%d), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s",
			chStr(e.ChainID), e.Sequence, chStr(e.EventID), e.Timestamp.UnixMicro(), chStr(e.EventType), chStr(e.Action), chStr(e.Result),
			chStr(e.ResourceType), chStr(e.ResourceID), chStr(e.Actor.Type), chStr(e.Actor.ID), chStr(e.Actor.IPAddress),
			chStr(string(e.Context)), chStr(string(e.Metadata)), chHash(e.Hash), chHash(e.PreviousHash)))
	}
	_, err := c.q(t, fmt.Sprintf("INSERT INTO %s.audit_events (chain_id, seq, event_id, ts_us, event_type, action, result, resource_type, resource_id, actor_type, actor_id, actor_ip, context, metadata, hash, previous_hash) %s",
		c.db, strings.Join(rows, " UNION ALL ")))
	return err
}

func (c clickhouseStore) claimHead(t *testing.T, _ string, chainID string, seq uint64) {
	c.must(t, fmt.Sprintf(`INSERT INTO %s.audit_chain_blocks SELECT %s, intDiv(toUInt64(%d), 16384), minState(toUInt64(%d)), maxState(toUInt64(%d)),
		minState(toInt64(0)), maxState(toInt64(0)), countState(), argMaxState(%s, toUInt64(%d)) FROM system.one`,
		c.db, chStr(chainID), seq, seq, seq, chHash(strings.Repeat("ab", 32)), seq))
}
