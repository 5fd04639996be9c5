package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
)

// SchemaVersion is the version of the table layout this package creates and reads. It is
// recorded in <database>.audit_schema_version.
const SchemaVersion = 2

// Version is a ClickHouse server version.
type Version struct {
	Major, Minor, Patch int
}

// Versions the DDL is known to work on.
var (
	// Legacy is Debian's ClickHouse, the oldest server supported.
	Legacy = Version{18, 16, 1}
	// Modern is the oldest version that gets the modern schema variant.
	Modern = Version{23, 1, 0}
)

// ParseVersion parses "major.minor[.patch[.build]]".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("parse clickhouse version %q: want major.minor[.patch]", s)
	}
	var v Version
	for i, dst := range []*int{&v.Major, &v.Minor, &v.Patch} {
		if i >= len(parts) {
			break
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("parse clickhouse version %q: %q is not a number", s, parts[i])
		}
		*dst = n
	}
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Less reports whether v is older than o.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// IsModern reports whether v gets the modern schema variant and insert deduplication tokens
// (23.1 and later). Older servers, 18.16 included, get the portable variant, which every
// version accepts.
func (v Version) IsModern() bool { return !v.Less(Modern) }

// Variant names the schema variant for v: "portable" or "modern".
func (v Version) Variant() string {
	if v.IsModern() {
		return "modern"
	}
	return "portable"
}

// Table names inside the configured database.
const (
	TableEvents        = "audit_events"             // the events, ORDER BY (ts_us, chain_id, seq)
	TableByID          = "audit_events_by_id"       // event_id -> sort key
	TableByResource    = "audit_events_by_resource" // resource_id (+ filters) -> sort key
	TableChainBlocks   = "audit_chain_blocks"       // per chain and 16384-sequence block: ranges, count, last hash
	TableSchemaVersion = "audit_schema_version"     // schema versions applied
	TableCheckpoints   = "audit_checkpoints"        // signed checkpoints of chain heads (optional)
)

// BlockSize is the number of sequences one audit_chain_blocks row summarises. ReadChain reads one
// block per query, so it also bounds the rows held in memory at once.
const BlockSize = 16384

// insertColumns is the explicit column list of every insert (18.16 needs one; the MATERIALIZED
// column ts must not be listed). selectColumns reads the same columns back.
const insertColumns = "chain_id, " + chainReadColumns

// chainReadColumns is insertColumns without chain_id, for reads of one chain.
const chainReadColumns = "seq, event_id, ts_us, event_type, action, result, resource_type, resource_id, actor_type, actor_id, actor_ip, context, metadata, hash, previous_hash"

// Layout names where the schema lives: the database, the events table (the other tables' names
// derive from it) and, for a replicated deployment, the cluster.
type Layout struct {
	// Database holds the tables.
	Database string
	// Table is the events table (default audit_events). The lookup tables are named after it:
	// <table>_by_id, <table>_by_resource, <table>_by_actor, <table>_chain_blocks and
	// <table>_checkpoints and <table>_schema_version, except that the default table keeps the
	// historical names audit_chain_blocks, audit_checkpoints and audit_schema_version.
	Table string
	// Cluster, when set, is a cluster of the servers' remote_servers: every statement runs ON
	// CLUSTER, each table is a Replicated engine named <name>_local (ZooKeeper path
	// /clickhouse/tables/{shard}/<database>/<name>_local, replica name {replica}), and <name>
	// itself is a Distributed table over it, which is what the sink reads and writes.
	Cluster string
}

func (l Layout) table() string {
	if l.Table == "" {
		return TableEvents
	}
	return l.Table
}

// Events, ByID, ByResource, ByActor, ChainBlocks, Checkpoints and SchemaVersionTable name the tables the sink
// reads and writes (the Distributed tables in a cluster).
func (l Layout) Events() string     { return l.table() }
func (l Layout) ByID() string       { return l.table() + "_by_id" }
func (l Layout) ByResource() string { return l.table() + "_by_resource" }
func (l Layout) ByActor() string    { return l.table() + "_by_actor" }
func (l Layout) ChainBlocks() string {
	if l.table() == TableEvents {
		return TableChainBlocks
	}
	return l.table() + "_chain_blocks"
}
func (l Layout) Checkpoints() string {
	if l.table() == TableEvents {
		return TableCheckpoints
	}
	return l.table() + "_checkpoints"
}

// Watermarks names the table of delivery watermarks, <table>_watermarks (watermark.go).
func (l Layout) Watermarks() string { return l.table() + "_watermarks" }

func (l Layout) SchemaVersionTable() string {
	if l.table() == TableEvents {
		return TableSchemaVersion
	}
	return l.table() + "_schema_version"
}

// Tables lists every table of the layout, in creation order: in a cluster, each local
// replicated table and then its Distributed table.
func (l Layout) Tables() []string {
	var out []string
	for _, t := range []string{l.Events(), l.ByID(), l.ByResource(), l.ChainBlocks(), l.SchemaVersionTable(), l.ByActor(), l.Checkpoints(), l.Watermarks()} {
		if l.Cluster != "" {
			out = append(out, local(t))
		}
		out = append(out, t)
	}
	return out
}

// local names the replicated table under a Distributed one.
func local(table string) string { return table + "_local" }

// ShardingKey is the sharding expression of the Distributed events table. Hashing the chain id
// sends every row of one chain to one shard: a chain's blocks stay together, so the per-chain
// summary (chain_blocks, kept by a view on each shard's local table) is complete on one shard and
// verifying a chain reads one shard in sequence order; the chains of many sidecars still spread
// over the shards. (Hashing the sequence or the time would scatter every chain over all shards.)
const ShardingKey = "cityHash64(chain_id)"

// PartitionKey is the partition expression of the events table: monthly partitions on one server,
// and monthly partitions per chain in a cluster layout.
//
// A cluster is where several sidecars write into one table, and their events interleave in time.
// With one partition per month, every part then holds all chains, ordered by time; a granule of
// 1,024 rows holds a little of each, and reading one chain's block (what verify does, 16,384
// events at a time) decompresses and filters every chain's rows in its time window: four chains,
// four times the rows read for the rows returned. With the chain in the partition key, every part
// holds one chain, the condition chain_id = X prunes the other chains' parts (the partition key's
// min/max index, on every version since 18.16), and a block is one contiguous range of one part.
// Searches over all chains read one part per active chain and month instead of one per month;
// within each part the order is the same (ts_us, chain_id, seq), so a time window is still a key
// range. A sidecar inserts its own chain only, so an insert still makes one part. The cost is a
// partition per chain and month: with many short-lived chains (sidecars without a kept journal
// volume, each starting a new chain) the partition count grows with them (ClickHouse's guidance:
// about a thousand; the benchmarks here went up to 28).
//
// On one server the partition stays the month: retention drops whole months (retention.go), and
// one server usually has one sidecar. Reads do not depend on the partition key, so a table created
// with the other key (an older cluster layout) is read and written unchanged.
func PartitionKey(cluster bool) string {
	if cluster {
		return "(toYYYYMM(ts), chain_id)"
	}
	return "toYYYYMM(ts)"
}

// SchemaDDL returns the statements that create the schema of layout l for a server of version v.
// Every statement is idempotent (IF NOT EXISTS). Servers older than Modern get the portable
// variant, which also runs unchanged on current servers; modern servers additionally get
// LowCardinality columns, codecs, bloom-filter skip indexes, a DateTime64 alias column and (on one
// server) a deduplication window for retried inserts; replicated tables deduplicate retried
// blocks through ZooKeeper on every version.
func SchemaDDL(v Version, l Layout) []string {
	db := quoteIdent(l.Database)
	modern := v.IsModern()
	cluster := l.Cluster != ""
	lc := func(t string) string { // low-cardinality strings
		if modern {
			return "LowCardinality(" + t + ")"
		}
		return t
	}
	codec := func(c string) string {
		if modern {
			return " CODEC(" + c + ")"
		}
		return ""
	}
	var extra, dedup string
	if modern {
		extra = `,
    ts64           DateTime64(6, 'UTC') ALIAS fromUnixTimestamp64Micro(ts_us, 'UTC'),
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_resource_id resource_id TYPE bloom_filter(0.01) GRANULARITY 1`
		if !cluster {
			// Retried inserts carry insert_deduplication_token and
			// deduplicate_blocks_in_dependent_materialized_views: the views' tables deduplicate
			// too. (Replicated tables have their own window, replicated_deduplication_window.)
			dedup = "non_replicated_deduplication_window = 1000"
		}
	}
	// settingsClause renders a SETTINGS clause of the given settings plus the modern dedup window.
	settingsClause := func(base string) string {
		parts := []string{}
		if base != "" {
			parts = append(parts, base)
		}
		if dedup != "" {
			parts = append(parts, dedup)
		}
		if len(parts) == 0 {
			return ""
		}
		return "\nSETTINGS " + strings.Join(parts, ", ")
	}
	on := ""
	if cluster {
		on = " ON CLUSTER " + quoteIdent(l.Cluster)
	}
	// name is the table a CREATE TABLE makes (the local one in a cluster), with ON CLUSTER.
	name := func(t string) string {
		if cluster {
			return db + "." + local(t) + on
		}
		return db + "." + t
	}
	// target is the table a view reads or writes: each server's local table in a cluster.
	target := func(t string) string {
		if cluster {
			return db + "." + local(t)
		}
		return db + "." + t
	}
	engine := func(kind, t string) string {
		if cluster {
			return fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s', '{replica}')", kind, l.Database, local(t))
		}
		return kind
	}
	// versioned is engine with a version column (ReplacingMergeTree(ver)).
	versioned := func(kind, t, ver string) string {
		if cluster {
			return fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s', '{replica}', %s)", kind, l.Database, local(t), ver)
		}
		return kind + "(" + ver + ")"
	}
	ev := l.Events()
	// ts (the partition key) is computed from ts_us. In a cluster it is a DEFAULT column, not a
	// MATERIALIZED one: 18.16's synchronous Distributed insert forwards every column, the
	// materialized one included, and the local table rejects that ("Cannot insert column ts").
	tsKind := "MATERIALIZED"
	if cluster {
		tsKind = "DEFAULT"
	}
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", db, on),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    chain_id       %[2]s,
    seq            UInt64%[3]s,
    event_id       UUID,
    ts_us          Int64%[4]s,
    ts             DateTime('UTC') %[9]s toDateTime(intDiv(ts_us, 1000000), 'UTC'),
    event_type     %[2]s,
    action         %[2]s,
    result         %[2]s,
    resource_type  %[2]s,
    resource_id    String,
    actor_type     %[2]s,
    actor_id       String,
    actor_ip       String,
    context        String%[5]s,
    metadata       String%[5]s,
    hash           FixedString(32),
    previous_hash  FixedString(32)%[6]s
)
ENGINE = %[8]s
PARTITION BY %[10]s
ORDER BY (ts_us, chain_id, seq)%[7]s`, name(ev), lc("String"), codec("Delta, ZSTD(1)"), codec("DoubleDelta, ZSTD(1)"),
			codec("ZSTD(3)"), extra, settingsClause("index_granularity = 1024"), engine("MergeTree", ev), tsKind,
			PartitionKey(cluster)),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    event_id  UUID,
    ts_us     Int64,
    chain_id  %[2]s,
    seq       UInt64
)
ENGINE = %[4]s
ORDER BY event_id%[3]s`, name(l.ByID()), lc("String"), settingsClause("index_granularity = 8192"), engine("ReplacingMergeTree", l.ByID())),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s_mv%[5]s TO %[3]s
AS SELECT event_id, ts_us, chain_id, seq FROM %[4]s`, db, l.ByID(), target(l.ByID()), target(ev), on),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    resource_id    String,
    ts_us          Int64,
    chain_id       %[2]s,
    seq            UInt64,
    resource_type  %[2]s,
    event_type     %[2]s,
    action         %[2]s,
    result         %[2]s
)
ENGINE = %[4]s
ORDER BY (resource_id, ts_us, chain_id, seq)%[3]s`, name(l.ByResource()), lc("String"), settingsClause("index_granularity = 8192"), engine("ReplacingMergeTree", l.ByResource())),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s_mv%[5]s TO %[3]s
AS SELECT resource_id, ts_us, chain_id, seq, resource_type, event_type, action, result FROM %[4]s`,
			db, l.ByResource(), target(l.ByResource()), target(ev), on),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    chain_id   %[2]s,
    block      UInt64,
    min_seq    AggregateFunction(min, UInt64),
    max_seq    AggregateFunction(max, UInt64),
    min_ts     AggregateFunction(min, Int64),
    max_ts     AggregateFunction(max, Int64),
    rows       AggregateFunction(count),
    last_hash  AggregateFunction(argMax, FixedString(32), UInt64)
)
ENGINE = %[4]s
ORDER BY (chain_id, block)%[3]s`, name(l.ChainBlocks()), lc("String"), settingsClause(""), engine("AggregatingMergeTree", l.ChainBlocks())),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s_mv%[6]s TO %[3]s
AS SELECT chain_id, intDiv(seq, %[5]d) AS block, minState(seq) AS min_seq, maxState(seq) AS max_seq,
    minState(ts_us) AS min_ts, maxState(ts_us) AS max_ts, countState() AS rows, argMaxState(hash, seq) AS last_hash
FROM %[4]s
GROUP BY chain_id, block`, db, l.ChainBlocks(), target(l.ChainBlocks()), target(ev), BlockSize, on),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    chain_id   String,
    seq        UInt64,
    hash       String,
    time_us    Int64,
    key_id     String,
    signature  String
)
ENGINE = %[2]s
ORDER BY (chain_id, seq, key_id, signature)`, name(l.Checkpoints()), engine("ReplacingMergeTree", l.Checkpoints())),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    version         UInt32,
    variant         String,
    server_version  String,
    applied_at      DateTime('UTC')
)
ENGINE = %[2]s
ORDER BY version`, name(l.SchemaVersionTable()), engine("MergeTree", l.SchemaVersionTable())),
	}
	// Schema version 2: the actor lookup (actor.go).
	stmts = append(stmts, actorDDL(db, name(l.ByActor()), db+"."+l.ByActor()+"_mv"+on, target(l.ByActor()), target(ev),
		engine("ReplacingMergeTree", l.ByActor()), lc("String"), settingsClause("index_granularity = 8192"))...)
	// The delivery watermarks of the read horizon (watermark.go): one row per publication, the
	// newest per chain wins (written_us), merged down to one row per chain.
	stmts = append(stmts, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s
(
    chain_id    String,
    up_to_us    Int64,
    written_us  Int64
)
ENGINE = %[2]s
ORDER BY chain_id`, name(l.Watermarks()), versioned("ReplacingMergeTree", l.Watermarks(), "written_us")))
	if cluster {
		// The Distributed tables the sink reads and writes. The events and checkpoints tables
		// are written through theirs (and the schema version, once); the others are filled by the
		// views on each server, so their sharding key only matters for manual inserts.
		for _, t := range []struct{ name, key string }{
			{ev, ShardingKey}, {l.ByID(), ShardingKey}, {l.ByResource(), ShardingKey}, {l.ChainBlocks(), ShardingKey},
			{l.SchemaVersionTable(), "version"}, {l.ByActor(), ShardingKey}, {l.Checkpoints(), ShardingKey},
			{l.Watermarks(), ShardingKey},
		} {
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s%[3]s AS %[1]s.%[4]s\nENGINE = Distributed(%[5]s, %[6]s, %[4]s, %[7]s)",
				db, t.name, on, local(t.name), quoteIdent(l.Cluster), db, t.key))
		}
	}
	return stmts
}

// Grants returns SQL that creates user (with a placeholder password hash to replace) and grants
// it SELECT and INSERT on database, and nothing else: no ALTER (so no UPDATE/DELETE mutations),
// no DROP, no TRUNCATE, no CREATE. It needs SQL access control (ClickHouse 20.5 and later);
// 18.16 uses users.xml instead (deployments/clickhouse/users.d/flowker-audit.xml).
func Grants(database, user string) []string {
	u := quoteIdent(user)
	return []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED WITH sha256_hash BY 'REPLACE_WITH_SHA256_HEX_OF_THE_PASSWORD'", u),
		fmt.Sprintf("GRANT SELECT, INSERT ON %s.* TO %s", quoteIdent(database), u),
	}
}

// quoteIdent quotes a ClickHouse identifier with backquotes when it is not a plain name.
func quoteIdent(s string) string {
	if identRe.MatchString(s) {
		return s
	}
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// SQLScript renders statements as a script (each ended by ";" and separated by a blank line),
// the format of the files in deployments/clickhouse.
func SQLScript(header string, stmts []string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(header), "\n") {
		b.WriteString(strings.TrimRight("-- "+line, " "))
		b.WriteString("\n")
	}
	for _, s := range stmts {
		b.WriteString("\n")
		b.WriteString(s)
		b.WriteString(";\n")
	}
	return b.String()
}
