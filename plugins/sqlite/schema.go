package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/flowker-audit/flowker-audit/sink"
)

// migrations[i] moves the schema from version i to i+1. Append only; never edit a released one.
//
// Index design (sort key = ts_us, chain_id, seq; every Search orders by it, both directions):
//   - events_ts serves unfiltered and date-range pages, newest first or oldest first;
//   - events_<column> (column, ts_us, chain_id, seq) serves an equality filter on that column: the
//     equality fixes the prefix, so the rest of the index is already in sort order and the keyset
//     condition (ts_us, chain_id, seq) < (?, ?, ?) becomes a range seek, never a sort;
//   - the other filter columns trail each equality index, so when several filters are combined the
//     ones not leading the index are checked on index entries alone: rows that fail them are never
//     read from the table (a combination matching nothing costs an index-only walk of the group);
//   - the primary key (chain_id, seq) serves Write idempotency, Head and ReadChain;
//   - events_event_id serves Get and makes a reused event id an error instead of a second copy.
var migrations = [][]string{
	// 0 -> 1: the initial schema.
	{
		`CREATE TABLE events (
			chain_id      TEXT    NOT NULL,
			seq           INTEGER NOT NULL CHECK (seq > 0),
			event_id      TEXT    NOT NULL,
			event_type    TEXT    NOT NULL,
			action        TEXT    NOT NULL,
			result        TEXT    NOT NULL,
			resource_id   TEXT    NOT NULL,
			resource_type TEXT    NOT NULL,
			actor_type    TEXT    NOT NULL,
			actor_id      TEXT    NOT NULL,
			actor_ip      TEXT    NOT NULL,
			context       TEXT    NOT NULL,
			metadata      TEXT    NOT NULL,
			ts_us         INTEGER NOT NULL,
			hash          TEXT    NOT NULL,
			previous_hash TEXT    NOT NULL,
			PRIMARY KEY (chain_id, seq)
		) STRICT`,
		`CREATE UNIQUE INDEX events_event_id ON events (event_id)`,
		`CREATE INDEX events_ts ON events (ts_us, chain_id, seq)`,
		`CREATE INDEX events_event_type ON events (event_type, ts_us, chain_id, seq, action, result, resource_type)`,
		`CREATE INDEX events_action ON events (action, ts_us, chain_id, seq, event_type, result, resource_type)`,
		`CREATE INDEX events_result ON events (result, ts_us, chain_id, seq, event_type, action, resource_type)`,
		`CREATE INDEX events_resource_type ON events (resource_type, ts_us, chain_id, seq, event_type, action, result)`,
		`CREATE INDEX events_resource_id ON events (resource_id, ts_us, chain_id, seq, event_type, action, result, resource_type)`,
		`CREATE TABLE chains (
			chain_id    TEXT    NOT NULL PRIMARY KEY,
			event_count INTEGER NOT NULL,
			first_seq   INTEGER NOT NULL,
			last_seq    INTEGER NOT NULL
		) STRICT, WITHOUT ROWID`,
	},
	// 1 -> 2: the actor filters (actorType, actorId) get their own equality indexes, and "what
	// did this actor do of this type" its own (an actor's events of a rare type would otherwise
	// be found by walking all of that actor's index entries).
	{
		`CREATE INDEX events_actor_id ON events (actor_id, ts_us, chain_id, seq, actor_type, event_type, action, result, resource_type)`,
		`CREATE INDEX events_actor_id_type ON events (actor_id, event_type, ts_us, chain_id, seq, actor_type, action, result, resource_type)`,
		`CREATE INDEX events_actor_type ON events (actor_type, ts_us, chain_id, seq, event_type, action, result, resource_type)`,
	},
	// 2 -> 3: signed checkpoints of chain heads, kept beside the events (sink.CheckpointWriter).
	{
		`CREATE TABLE checkpoints (
			chain_id  TEXT    NOT NULL,
			seq       INTEGER NOT NULL,
			hash      TEXT    NOT NULL,
			time_us   INTEGER NOT NULL,
			key_id    TEXT    NOT NULL,
			signature TEXT    NOT NULL,
			PRIMARY KEY (chain_id, seq, key_id, signature)
		) STRICT, WITHOUT ROWID`,
	},
	// 3 -> 4: signed retention anchors (sink.Retainer): the last event removed by retention,
	// stored before the events are deleted so that verification starts after it.
	{
		`CREATE TABLE retention_anchors (
			chain_id  TEXT    NOT NULL,
			seq       INTEGER NOT NULL,
			hash      TEXT    NOT NULL,
			cutoff_us INTEGER NOT NULL,
			time_us   INTEGER NOT NULL,
			key_id    TEXT    NOT NULL,
			signature TEXT    NOT NULL,
			PRIMARY KEY (chain_id, seq, key_id, signature)
		) STRICT, WITHOUT ROWID`,
	},
}

// SchemaVersion is the schema version this package creates and reads.
func SchemaVersion() int { return len(migrations) }

// migrate brings the database to SchemaVersion inside one IMMEDIATE transaction (the writer pool
// begins transactions that way), so concurrent openers of the same file serialise and a failed
// migration leaves the previous version intact. It returns the version found before migrating.
func migrate(ctx context.Context, db *sql.DB) (from int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin schema transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) STRICT`); err != nil {
		return 0, fmt.Errorf("create meta table: %w", err)
	}
	var v string
	switch err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		v = "0"
	case err != nil:
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	from, err = strconv.Atoi(v)
	if err != nil || from < 0 {
		return 0, sink.Permanentf("meta.schema_version is %q, not a version number", v)
	}
	if from > len(migrations) {
		return from, sink.Permanentf("database schema version %d is newer than this plugin supports (%d); upgrade the plugin", from, len(migrations))
	}
	for i := from; i < len(migrations); i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return from, fmt.Errorf("migrate schema to version %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(len(migrations))); err != nil {
		return from, fmt.Errorf("record schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return from, fmt.Errorf("commit schema: %w", err)
	}
	return from, nil
}
