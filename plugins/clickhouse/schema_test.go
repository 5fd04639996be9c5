package clickhouse

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the shipped deployment files from DDL()")

// deploymentDir holds the schema and grants shipped for administrators.
var deploymentDir = filepath.Join("..", "..", "deployments", "clickhouse")

// deploymentFiles renders every generated file of deployments/clickhouse.
func deploymentFiles() map[string]string {
	const note = "Generated from plugins/clickhouse (DDL, Grants) by `go test ./plugins/clickhouse -run TestDeploymentFiles -update`.\nDo not edit: a test compares this file with the code."
	return map[string]string{
		"schema.sql": SQLScript(`flowker-audit ClickHouse schema, portable variant (schema version 2).
Runs unchanged on ClickHouse 18.16 (Debian) and on current releases; the sink applies it itself
unless create_schema is false. Replace "audit" to use another database.
Upgrading a database of schema version 1 by hand: run this file, then once
`+BackfillByActor("audit")+`
`+note, DDL(Legacy, "audit")),
		"schema-modern.sql": SQLScript(`flowker-audit ClickHouse schema, modern variant (schema version 2), for ClickHouse 23.1 and later:
LowCardinality columns, codecs, bloom_filter skip indexes, a DateTime64 alias column and a
deduplication window for retried inserts. Queries are the same as with schema.sql.
`+note, DDL(Modern, "audit")),
		filepath.Join("cluster", "schema.sql"): SQLScript(`flowker-audit ClickHouse schema for a replicated cluster, portable variant (schema version 2).
For the sink configuration: cluster: audit_cluster, database: audit, table: audit_events.
Every statement runs ON CLUSTER: each table is a Replicated engine named <name>_local (ZooKeeper
path /clickhouse/tables/{shard}/audit/<name>_local, replica {replica}: set the macros on every
server, see macros.xml), and <name> is a Distributed table over it. The events are sharded by
cityHash64(chain_id): one chain's rows stay on one shard; and partitioned by month and chain,
so that each part holds one chain and verifying a chain reads its rows only. The sink writes and
reads the Distributed tables. Print another layout with:
  flowker-audit schema clickhouse --cluster NAME [--database DB] [--table TABLE] [--server-version V]
`+note, SchemaDDL(Legacy, Layout{Database: "audit", Table: TableEvents, Cluster: "audit_cluster"})),
		"grants.sql": SQLScript(`Application user for ClickHouse 20.5 and later (SQL access control): SELECT and INSERT on the audit
database only, so it cannot ALTER (no UPDATE/DELETE mutations), DROP, TRUNCATE or CREATE.
Run as an administrator after schema.sql or schema-modern.sql, then start the sink with
create_schema: false. Replace the placeholder with: echo -n 'the password' | sha256sum
ClickHouse 18.16 has no SQL GRANT: use users.d/flowker-audit.xml instead (see README.md).
`+note, Grants("audit", "flowker_audit")),
	}
}

func TestDeploymentFiles(t *testing.T) {
	for name, want := range deploymentFiles() {
		path := filepath.Join(deploymentDir, name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run: go test ./plugins/clickhouse -run TestDeploymentFiles -update)", err)
		}
		if string(got) != want {
			t.Errorf("%s differs from DDL(); run: go test ./plugins/clickhouse -run TestDeploymentFiles -update", path)
		}
	}
}

func TestDDLVariants(t *testing.T) {
	portable := strings.Join(DDL(Legacy, "audit"), "\n")
	modern := strings.Join(DDL(Modern, "audit"), "\n")
	for _, old := range []string{"LowCardinality", "CODEC", "INDEX", "DateTime64", "deduplication"} {
		if strings.Contains(portable, old) {
			t.Errorf("portable DDL uses %s, which 18.16 rejects", old)
		}
		if !strings.Contains(modern, old) {
			t.Errorf("modern DDL lacks %s", old)
		}
	}
	for _, want := range []string{"ORDER BY (ts_us, chain_id, seq)", "PARTITION BY toYYYYMM(ts)", "index_granularity = 1024", "FixedString(32)"} {
		if !strings.Contains(portable, want) || !strings.Contains(modern, want) {
			t.Errorf("DDL lacks %q", want)
		}
	}
	if got := DDL(Version{22, 8, 0}, "x"); strings.Contains(strings.Join(got, ""), "LowCardinality") {
		t.Error("22.8 gets the modern variant")
	}
	if got := DDL(Version{24, 3, 1}, "x"); !strings.Contains(strings.Join(got, ""), "LowCardinality") {
		t.Error("24.3 does not get the modern variant")
	}
	if got := DDL(Legacy, "weird-name")[0]; got != "CREATE DATABASE IF NOT EXISTS `weird-name`" {
		t.Errorf("quoted database: %s", got)
	}
}

// TestClusterDDL checks the cluster variants (portable and modern, renamed table) statement by
// statement; the portable one is also compared in full with deployments/clickhouse/cluster/schema.sql.
func TestClusterDDL(t *testing.T) {
	for _, v := range []Version{Legacy, Modern} {
		l := Layout{Database: "db1", Table: "trail", Cluster: "c1"}
		stmts := SchemaDDL(v, l)
		all := strings.Join(stmts, "\n")
		for _, q := range stmts {
			if !strings.Contains(q, " ON CLUSTER c1") {
				t.Errorf("%v: statement without ON CLUSTER: %s", v, firstLine(q))
			}
			if strings.Contains(q, "audit_") {
				t.Errorf("%v: statement names a default table although table is trail: %s", v, firstLine(q))
			}
		}
		for _, want := range []string{
			"CREATE TABLE IF NOT EXISTS db1.trail_local ON CLUSTER c1",
			"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db1/trail_local', '{replica}')",
			"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/trail_by_id_local', '{replica}')",
			"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/db1/trail_chain_blocks_local', '{replica}')",
			"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/trail_by_actor_local', '{replica}')",
			"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db1/trail_schema_version_local', '{replica}')",
			"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/trail_checkpoints_local', '{replica}')",
			"CREATE TABLE IF NOT EXISTS db1.trail_checkpoints ON CLUSTER c1 AS db1.trail_checkpoints_local\nENGINE = Distributed(c1, db1, trail_checkpoints_local, cityHash64(chain_id))",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS db1.trail_by_id_mv ON CLUSTER c1 TO db1.trail_by_id_local\nAS SELECT event_id, ts_us, chain_id, seq FROM db1.trail_local",
			"CREATE TABLE IF NOT EXISTS db1.trail ON CLUSTER c1 AS db1.trail_local\nENGINE = Distributed(c1, db1, trail_local, cityHash64(chain_id))",
			"CREATE TABLE IF NOT EXISTS db1.trail_chain_blocks ON CLUSTER c1 AS db1.trail_chain_blocks_local\nENGINE = Distributed(c1, db1, trail_chain_blocks_local, cityHash64(chain_id))",
			"ts             DateTime('UTC') DEFAULT toDateTime(intDiv(ts_us, 1000000), 'UTC')",
			"PARTITION BY (toYYYYMM(ts), chain_id)\nORDER BY (ts_us, chain_id, seq)",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("%v: cluster DDL lacks %q", v, want)
			}
		}
		if strings.Contains(all, "non_replicated_deduplication_window") || strings.Contains(all, "MATERIALIZED toDateTime") {
			t.Errorf("%v: cluster DDL has a single-node setting or a MATERIALIZED ts", v)
		}
		if got := len(stmts); got != len(DDL(v, "db1"))+8 {
			t.Errorf("%v: %d statements, want the single-node ones plus 8 Distributed tables", v, got)
		}
		if got, want := l.Tables(), []string{"trail_local", "trail", "trail_by_id_local", "trail_by_id", "trail_by_resource_local", "trail_by_resource",
			"trail_chain_blocks_local", "trail_chain_blocks", "trail_schema_version_local", "trail_schema_version", "trail_by_actor_local", "trail_by_actor", "trail_checkpoints_local", "trail_checkpoints",
			"trail_watermarks_local", "trail_watermarks"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Tables() = %v", got)
		}
	}
	// Another table on one server: renamed tables, no cluster clauses.
	single := strings.Join(SchemaDDL(Legacy, Layout{Database: "audit", Table: "trail"}), "\n")
	for _, bad := range []string{"ON CLUSTER", "Replicated", "Distributed", "audit_chain_blocks", "audit_events"} {
		if strings.Contains(single, bad) {
			t.Errorf("single-node DDL for table trail contains %q", bad)
		}
	}
	if !strings.Contains(single, "PARTITION BY toYYYYMM(ts)\nORDER BY") {
		t.Error("single-node DDL is not partitioned by month alone (retention drops whole months)")
	}
	if !strings.Contains(single, "audit.trail_chain_blocks_mv TO audit.trail_chain_blocks") {
		t.Error("single-node DDL for table trail lacks its chain blocks view")
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		ok   bool
	}{
		{"18.16.1", Version{18, 16, 1}, true},
		{"26.7.2.1", Version{26, 7, 2}, true},
		{"23.1", Version{23, 1, 0}, true},
		{"23", Version{}, false},
		{"a.b", Version{}, false},
	} {
		got, err := ParseVersion(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseVersion(%q) = %v, %v", tc.in, got, err)
		}
	}
	if !(Version{26, 7, 2}).IsModern() || (Version{18, 16, 1}).IsModern() || (Version{22, 12, 9}).IsModern() {
		t.Error("IsModern")
	}
}

// unquote parses a literal produced by quoteString (a test oracle for FuzzQuoteString).
func unquote(t *testing.T, lit string) string {
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		t.Fatalf("not a quoted literal: %q", lit)
	}
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\':
			i++
			if i == len(body) {
				t.Fatalf("dangling backslash in %q", lit)
			}
			switch body[i] {
			case '\\', '\'':
				b.WriteByte(body[i])
			case '0':
				b.WriteByte(0)
			default:
				t.Fatalf("unexpected escape \\%c in %q", body[i], lit)
			}
		case c == '\'':
			t.Fatalf("unescaped quote in %q", lit)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzQuoteString(f *testing.F) {
	for _, s := range []string{"", "plain", "it's", `a\b`, "nul\x00", "\xff", `\'`, `'; DROP TABLE t; --`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unquote(t, quoteString(s)); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}
