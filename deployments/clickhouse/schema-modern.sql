-- flowker-audit ClickHouse schema, modern variant (schema version 2), for ClickHouse 23.1 and later:
-- LowCardinality columns, codecs, bloom_filter skip indexes, a DateTime64 alias column and a
-- deduplication window for retried inserts. Queries are the same as with schema.sql.
-- Generated from plugins/clickhouse (DDL, Grants) by `go test ./plugins/clickhouse -run TestDeploymentFiles -update`.
-- Do not edit: a test compares this file with the code.

CREATE DATABASE IF NOT EXISTS audit;

CREATE TABLE IF NOT EXISTS audit.audit_events
(
    chain_id       LowCardinality(String),
    seq            UInt64 CODEC(Delta, ZSTD(1)),
    event_id       UUID,
    ts_us          Int64 CODEC(DoubleDelta, ZSTD(1)),
    ts             DateTime('UTC') MATERIALIZED toDateTime(intDiv(ts_us, 1000000), 'UTC'),
    event_type     LowCardinality(String),
    action         LowCardinality(String),
    result         LowCardinality(String),
    resource_type  LowCardinality(String),
    resource_id    String,
    actor_type     LowCardinality(String),
    actor_id       String,
    actor_ip       String,
    context        String CODEC(ZSTD(3)),
    metadata       String CODEC(ZSTD(3)),
    hash           FixedString(32),
    previous_hash  FixedString(32),
    ts64           DateTime64(6, 'UTC') ALIAS fromUnixTimestamp64Micro(ts_us, 'UTC'),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_resource_id resource_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts_us, chain_id, seq)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_id
(
    event_id  UUID,
    ts_us     Int64,
    chain_id  LowCardinality(String),
    seq       UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY event_id
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_id_mv TO audit.audit_events_by_id
AS SELECT event_id, ts_us, chain_id, seq FROM audit.audit_events;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_resource
(
    resource_id    String,
    ts_us          Int64,
    chain_id       LowCardinality(String),
    seq            UInt64,
    resource_type  LowCardinality(String),
    event_type     LowCardinality(String),
    action         LowCardinality(String),
    result         LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (resource_id, ts_us, chain_id, seq)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_resource_mv TO audit.audit_events_by_resource
AS SELECT resource_id, ts_us, chain_id, seq, resource_type, event_type, action, result FROM audit.audit_events;

CREATE TABLE IF NOT EXISTS audit.audit_chain_blocks
(
    chain_id   LowCardinality(String),
    block      UInt64,
    min_seq    AggregateFunction(min, UInt64),
    max_seq    AggregateFunction(max, UInt64),
    min_ts     AggregateFunction(min, Int64),
    max_ts     AggregateFunction(max, Int64),
    rows       AggregateFunction(count),
    last_hash  AggregateFunction(argMax, FixedString(32), UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (chain_id, block)
SETTINGS non_replicated_deduplication_window = 1000;

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
    chain_id       LowCardinality(String),
    seq            UInt64,
    actor_type     LowCardinality(String),
    resource_id    String,
    resource_type  LowCardinality(String),
    event_type     LowCardinality(String),
    action         LowCardinality(String),
    result         LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (actor_id, ts_us, chain_id, seq)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

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
