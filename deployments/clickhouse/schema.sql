-- flowker-audit ClickHouse schema, portable variant (schema version 2).
-- Runs unchanged on ClickHouse 18.16 (Debian) and on current releases; the sink applies it itself
-- unless create_schema is false. Replace "audit" to use another database.
-- Upgrading a database of schema version 1 by hand: run this file, then once
-- INSERT INTO audit.audit_events_by_actor (actor_id, ts_us, chain_id, seq, actor_type, resource_id, resource_type, event_type, action, result) SELECT actor_id, ts_us, chain_id, seq, actor_type, resource_id, resource_type, event_type, action, result FROM audit.audit_events
-- Generated from plugins/clickhouse (DDL, Grants) by `go test ./plugins/clickhouse -run TestDeploymentFiles -update`.
-- Do not edit: a test compares this file with the code.

CREATE DATABASE IF NOT EXISTS audit;

CREATE TABLE IF NOT EXISTS audit.audit_events
(
    chain_id       String,
    seq            UInt64,
    event_id       UUID,
    ts_us          Int64,
    ts             DateTime('UTC') MATERIALIZED toDateTime(intDiv(ts_us, 1000000), 'UTC'),
    event_type     String,
    action         String,
    result         String,
    resource_type  String,
    resource_id    String,
    actor_type     String,
    actor_id       String,
    actor_ip       String,
    context        String,
    metadata       String,
    hash           FixedString(32),
    previous_hash  FixedString(32)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts_us, chain_id, seq)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_id
(
    event_id  UUID,
    ts_us     Int64,
    chain_id  String,
    seq       UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY event_id
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_id_mv TO audit.audit_events_by_id
AS SELECT event_id, ts_us, chain_id, seq FROM audit.audit_events;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_resource
(
    resource_id    String,
    ts_us          Int64,
    chain_id       String,
    seq            UInt64,
    resource_type  String,
    event_type     String,
    action         String,
    result         String
)
ENGINE = ReplacingMergeTree
ORDER BY (resource_id, ts_us, chain_id, seq)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_resource_mv TO audit.audit_events_by_resource
AS SELECT resource_id, ts_us, chain_id, seq, resource_type, event_type, action, result FROM audit.audit_events;

CREATE TABLE IF NOT EXISTS audit.audit_chain_blocks
(
    chain_id   String,
    block      UInt64,
    min_seq    AggregateFunction(min, UInt64),
    max_seq    AggregateFunction(max, UInt64),
    min_ts     AggregateFunction(min, Int64),
    max_ts     AggregateFunction(max, Int64),
    rows       AggregateFunction(count),
    last_hash  AggregateFunction(argMax, FixedString(32), UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (chain_id, block);

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_chain_blocks_mv TO audit.audit_chain_blocks
AS SELECT chain_id, intDiv(seq, 16384) AS block, minState(seq) AS min_seq, maxState(seq) AS max_seq,
    minState(ts_us) AS min_ts, maxState(ts_us) AS max_ts, countState() AS rows, argMaxState(hash, seq) AS last_hash
FROM audit.audit_events
GROUP BY chain_id, block;

CREATE TABLE IF NOT EXISTS audit.audit_checkpoints
(
    chain_id   String,
    seq        UInt64,
    hash       String,
    time_us    Int64,
    key_id     String,
    signature  String
)
ENGINE = ReplacingMergeTree
ORDER BY (chain_id, seq, key_id, signature);

CREATE TABLE IF NOT EXISTS audit.audit_schema_version
(
    version         UInt32,
    variant         String,
    server_version  String,
    applied_at      DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY version;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_actor
(
    actor_id       String,
    ts_us          Int64,
    chain_id       String,
    seq            UInt64,
    actor_type     String,
    resource_id    String,
    resource_type  String,
    event_type     String,
    action         String,
    result         String
)
ENGINE = ReplacingMergeTree
ORDER BY (actor_id, ts_us, chain_id, seq)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_actor_mv TO audit.audit_events_by_actor
AS SELECT actor_id, ts_us, chain_id, seq, actor_type, resource_id, resource_type, event_type, action, result FROM audit.audit_events;

CREATE TABLE IF NOT EXISTS audit.audit_events_watermarks
(
    chain_id    String,
    up_to_us    Int64,
    written_us  Int64
)
ENGINE = ReplacingMergeTree(written_us)
ORDER BY chain_id;
