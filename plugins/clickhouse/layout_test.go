package clickhouse

// Shorthands of the tests for the default layout on one server.

// DefaultLayout is database with the default table names on one server.
func DefaultLayout(database string) Layout { return Layout{Database: database, Table: TableEvents} }

// DDL returns the statements that create the schema in database for a server of version v, on one
// server with the default table names. See SchemaDDL.
func DDL(v Version, database string) []string { return SchemaDDL(v, DefaultLayout(database)) }

// BackfillByActor returns the statement that fills audit_events_by_actor from the events stored
// before the table existed (an upgrade from schema version 1). Run it after the view exists: an
// event inserted meanwhile may then be in the table twice, which the lookup tolerates (LIMIT 1 BY
// and ReplacingMergeTree).
func BackfillByActor(database string) string { return backfillByActorSQL(DefaultLayout(database)) }
