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

// tables lists the tables the sink needs, in creation order.
var tables = []string{TableEvents, TableByID, TableByResource, TableChainBlocks, TableSchemaVersion, TableByActor, TableCheckpoints}

// insertColumns is the explicit column list of every insert (18.16 needs one; the MATERIALIZED
// column ts must not be listed). selectColumns reads the same columns back.
const insertColumns = "chain_id, " + chainReadColumns

// chainReadColumns is insertColumns without chain_id, for reads of one chain.
const chainReadColumns = "seq, event_id, ts_us, event_type, action, result, resource_type, resource_id, actor_type, actor_id, actor_ip, context, metadata, hash, previous_hash"

// DDL returns the statements that create the schema in database for a server of version v. Every
// statement is idempotent (IF NOT EXISTS). Servers older than Modern get the portable variant,
// which also runs unchanged on current servers; modern servers additionally get LowCardinality
// columns, codecs, bloom-filter skip indexes, a DateTime64 alias column and a deduplication window
// for retried inserts.
func DDL(v Version, database string) []string {
	db := quoteIdent(database)
	modern := v.IsModern()
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
		// Retried inserts carry insert_deduplication_token and
		// deduplicate_blocks_in_dependent_materialized_views: the views' tables deduplicate too.
		dedup = "non_replicated_deduplication_window = 1000"
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
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", db),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s.%[2]s
(
    chain_id       %[3]s,
    seq            UInt64%[4]s,
    event_id       UUID,
    ts_us          Int64%[5]s,
    ts             DateTime('UTC') MATERIALIZED toDateTime(intDiv(ts_us, 1000000), 'UTC'),
    event_type     %[3]s,
    action         %[3]s,
    result         %[3]s,
    resource_type  %[3]s,
    resource_id    String,
    actor_type     %[3]s,
    actor_id       String,
    actor_ip       String,
    context        String%[6]s,
    metadata       String%[6]s,
    hash           FixedString(32),
    previous_hash  FixedString(32)%[7]s
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts_us, chain_id, seq)%[8]s`, db, TableEvents, lc("String"), codec("Delta, ZSTD(1)"), codec("DoubleDelta, ZSTD(1)"),
			codec("ZSTD(3)"), extra, settingsClause("index_granularity = 1024")),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s.%[2]s
(
    event_id  UUID,
    ts_us     Int64,
    chain_id  %[3]s,
    seq       UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY event_id%[4]s`, db, TableByID, lc("String"), settingsClause("index_granularity = 8192")),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s_mv TO %[1]s.%[2]s
AS SELECT event_id, ts_us, chain_id, seq FROM %[1]s.%[3]s`, db, TableByID, TableEvents),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s.%[2]s
(
    resource_id    String,
    ts_us          Int64,
    chain_id       %[3]s,
    seq            UInt64,
    resource_type  %[3]s,
    event_type     %[3]s,
    action         %[3]s,
    result         %[3]s
)
ENGINE = ReplacingMergeTree
ORDER BY (resource_id, ts_us, chain_id, seq)%[4]s`, db, TableByResource, lc("String"), settingsClause("index_granularity = 8192")),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s_mv TO %[1]s.%[2]s
AS SELECT resource_id, ts_us, chain_id, seq, resource_type, event_type, action, result FROM %[1]s.%[3]s`,
			db, TableByResource, TableEvents),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s.%[2]s
(
    chain_id   %[3]s,
    block      UInt64,
    min_seq    AggregateFunction(min, UInt64),
    max_seq    AggregateFunction(max, UInt64),
    min_ts     AggregateFunction(min, Int64),
    max_ts     AggregateFunction(max, Int64),
    rows       AggregateFunction(count),
    last_hash  AggregateFunction(argMax, FixedString(32), UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (chain_id, block)%[4]s`, db, TableChainBlocks, lc("String"), settingsClause("")),

		fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s_mv TO %[1]s.%[2]s
AS SELECT chain_id, intDiv(seq, %[4]d) AS block, minState(seq) AS min_seq, maxState(seq) AS max_seq,
    minState(ts_us) AS min_ts, maxState(ts_us) AS max_ts, countState() AS rows, argMaxState(hash, seq) AS last_hash
FROM %[1]s.%[3]s
GROUP BY chain_id, block`, db, TableChainBlocks, TableEvents, BlockSize),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s.%[2]s
(
    chain_id   String,
    seq        UInt64,
    hash       String,
    time_us    Int64,
    key_id     String,
    signature  String
)
ENGINE = ReplacingMergeTree
ORDER BY (chain_id, seq, key_id, signature)`, db, TableCheckpoints),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s.%[2]s
(
    version         UInt32,
    variant         String,
    server_version  String,
    applied_at      DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY version`, db, TableSchemaVersion),
	}
	// Schema version 2: the actor lookup (actor.go).
	stmts = append(stmts, actorDDL(db, lc("String"), settingsClause("index_granularity = 8192"))...)
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
