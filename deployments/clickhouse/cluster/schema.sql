-- flowker-audit ClickHouse schema for a replicated cluster, portable variant (schema version 2).
-- For the sink configuration: cluster: audit_cluster, database: audit, table: audit_events.
-- Every statement runs ON CLUSTER: each table is a Replicated engine named <name>_local (ZooKeeper
-- path /clickhouse/tables/{shard}/audit/<name>_local, replica {replica}: set the macros on every
-- server, see macros.xml), and <name> is a Distributed table over it. The events are sharded by
-- cityHash64(chain_id): one chain's rows stay on one shard; and partitioned by month and chain,
-- so that each part holds one chain and verifying a chain reads its rows only. The sink writes and
-- reads the Distributed tables. Print another layout with:
--   flowker-audit schema clickhouse --cluster NAME [--database DB] [--table TABLE] [--server-version V]
-- Generated from plugins/clickhouse (DDL, Grants) by `go test ./plugins/clickhouse -run TestDeploymentFiles -update`.
-- Do not edit: a test compares this file with the code.

CREATE DATABASE IF NOT EXISTS audit ON CLUSTER audit_cluster;

CREATE TABLE IF NOT EXISTS audit.audit_events_local ON CLUSTER audit_cluster
(
    chain_id       String,
    seq            UInt64,
    event_id       UUID,
    ts_us          Int64,
    ts             DateTime('UTC') DEFAULT toDateTime(intDiv(ts_us, 1000000), 'UTC'),
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/audit/audit_events_local', '{replica}')
PARTITION BY (toYYYYMM(ts), chain_id)
ORDER BY (ts_us, chain_id, seq)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_id_local ON CLUSTER audit_cluster
(
    event_id  UUID,
    ts_us     Int64,
    chain_id  String,
    seq       UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit/audit_events_by_id_local', '{replica}')
ORDER BY event_id
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_id_mv ON CLUSTER audit_cluster TO audit.audit_events_by_id_local
AS SELECT event_id, ts_us, chain_id, seq FROM audit.audit_events_local;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_resource_local ON CLUSTER audit_cluster
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit/audit_events_by_resource_local', '{replica}')
ORDER BY (resource_id, ts_us, chain_id, seq)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_resource_mv ON CLUSTER audit_cluster TO audit.audit_events_by_resource_local
AS SELECT resource_id, ts_us, chain_id, seq, resource_type, event_type, action, result FROM audit.audit_events_local;

CREATE TABLE IF NOT EXISTS audit.audit_chain_blocks_local ON CLUSTER audit_cluster
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/audit/audit_chain_blocks_local', '{replica}')
ORDER BY (chain_id, block);

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_chain_blocks_mv ON CLUSTER audit_cluster TO audit.audit_chain_blocks_local
AS SELECT chain_id, intDiv(seq, 16384) AS block, minState(seq) AS min_seq, maxState(seq) AS max_seq,
    minState(ts_us) AS min_ts, maxState(ts_us) AS max_ts, countState() AS rows, argMaxState(hash, seq) AS last_hash
FROM audit.audit_events_local
GROUP BY chain_id, block;

CREATE TABLE IF NOT EXISTS audit.audit_checkpoints_local ON CLUSTER audit_cluster
(
    chain_id   String,
    seq        UInt64,
    hash       String,
    time_us    Int64,
    key_id     String,
    signature  String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit/audit_checkpoints_local', '{replica}')
ORDER BY (chain_id, seq, key_id, signature);

CREATE TABLE IF NOT EXISTS audit.audit_schema_version_local ON CLUSTER audit_cluster
(
    version         UInt32,
    variant         String,
    server_version  String,
    applied_at      DateTime('UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/audit/audit_schema_version_local', '{replica}')
ORDER BY version;

CREATE TABLE IF NOT EXISTS audit.audit_events_by_actor_local ON CLUSTER audit_cluster
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit/audit_events_by_actor_local', '{replica}')
ORDER BY (actor_id, ts_us, chain_id, seq)
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS audit.audit_events_by_actor_mv ON CLUSTER audit_cluster TO audit.audit_events_by_actor_local
AS SELECT actor_id, ts_us, chain_id, seq, actor_type, resource_id, resource_type, event_type, action, result FROM audit.audit_events_local;

CREATE TABLE IF NOT EXISTS audit.audit_events_watermarks_local ON CLUSTER audit_cluster
(
    chain_id    String,
    up_to_us    Int64,
    written_us  Int64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit/audit_events_watermarks_local', '{replica}', written_us)
ORDER BY chain_id;

CREATE TABLE IF NOT EXISTS audit.audit_events ON CLUSTER audit_cluster AS audit.audit_events_local
ENGINE = Distributed(audit_cluster, audit, audit_events_local, cityHash64(chain_id));

CREATE TABLE IF NOT EXISTS audit.audit_events_by_id ON CLUSTER audit_cluster AS audit.audit_events_by_id_local
ENGINE = Distributed(audit_cluster, audit, audit_events_by_id_local, cityHash64(chain_id));

CREATE TABLE IF NOT EXISTS audit.audit_events_by_resource ON CLUSTER audit_cluster AS audit.audit_events_by_resource_local
ENGINE = Distributed(audit_cluster, audit, audit_events_by_resource_local, cityHash64(chain_id));

CREATE TABLE IF NOT EXISTS audit.audit_chain_blocks ON CLUSTER audit_cluster AS audit.audit_chain_blocks_local
ENGINE = Distributed(audit_cluster, audit, audit_chain_blocks_local, cityHash64(chain_id));

CREATE TABLE IF NOT EXISTS audit.audit_schema_version ON CLUSTER audit_cluster AS audit.audit_schema_version_local
ENGINE = Distributed(audit_cluster, audit, audit_schema_version_local, version);

CREATE TABLE IF NOT EXISTS audit.audit_events_by_actor ON CLUSTER audit_cluster AS audit.audit_events_by_actor_local
ENGINE = Distributed(audit_cluster, audit, audit_events_by_actor_local, cityHash64(chain_id));

CREATE TABLE IF NOT EXISTS audit.audit_checkpoints ON CLUSTER audit_cluster AS audit.audit_checkpoints_local
ENGINE = Distributed(audit_cluster, audit, audit_checkpoints_local, cityHash64(chain_id));

CREATE TABLE IF NOT EXISTS audit.audit_events_watermarks ON CLUSTER audit_cluster AS audit.audit_events_watermarks_local
ENGINE = Distributed(audit_cluster, audit, audit_events_watermarks_local, cityHash64(chain_id));
