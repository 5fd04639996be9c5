package clickhouse

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flowker-audit/flowker-audit/sink"
)

// replicaSchema is what one server of the cluster holds of the layout's local tables.
type replicaSchema struct {
	addr    string
	err     error             // the server did not answer (skipped: a replica may be down)
	version uint32            // highest schema version in its local schema-version table, 0 if none
	tables  map[string]string // local table -> its columns ("name type, ...")
	names   []string          // "table.column" of every column of those tables
}

// expectedColumns returns, per local table of l, the column names this plugin's DDL gives it
// for servers of version v (parsed from SchemaDDL: the lines of a CREATE TABLE's column list).
func expectedColumns(l Layout, v Version) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	prefix := "CREATE TABLE IF NOT EXISTS " + quoteIdent(l.Database) + "."
	for _, stmt := range SchemaDDL(v, l) {
		if !strings.HasPrefix(stmt, prefix) {
			continue
		}
		lines := strings.Split(stmt, "\n")
		table := strings.Fields(strings.TrimPrefix(lines[0], prefix))[0]
		if len(lines) < 2 || strings.TrimSpace(lines[1]) != "(" {
			continue // a Distributed table: AS the local one
		}
		cols := map[string]bool{}
		for _, line := range lines[2:] {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] == ")" {
				break
			}
			if f[0] != "INDEX" {
				cols[f[0]] = true
			}
		}
		out[table] = cols
	}
	return out
}

// checkReplicas compares, before any DDL runs, the schema every server of the cluster holds
// (through remote(), as Distributed queries reach them): a server whose local tables differ
// from the others' (other columns, another schema version) or record a schema version newer than
// this plugin's is refused with the fix, so nothing is written to a half-created or mixed schema.
// A server that does not answer is skipped (a replica may be down; it catches up by replication).
// With create_schema false, a server that lacks tables the others have is refused too (with
// create_schema true, the ON CLUSTER DDL creates them there).
func (s *Sink) checkReplicas(ctx context.Context, conn driver.Conn) error {
	l := s.cfg.layout()
	q := fmt.Sprintf("SELECT host_address, toUInt16(port) FROM system.clusters WHERE cluster = %s ORDER BY shard_num, replica_num", quoteString(l.Cluster))
	s.observe("cluster_check", q)
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return classify(fmt.Errorf("read the servers of cluster %q: %w", l.Cluster, err))
	}
	var addrs []string
	for rows.Next() {
		var host string
		var port uint16
		if err := rows.Scan(&host, &port); err != nil {
			rows.Close()
			return fmt.Errorf("scan system.clusters: %w", err)
		}
		addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return classify(fmt.Errorf("read the servers of cluster %q: %w", l.Cluster, err))
	}
	var locals []string
	for _, t := range l.Tables() {
		if strings.HasSuffix(t, "_local") {
			locals = append(locals, t)
		}
	}
	var reps []replicaSchema
	for _, a := range addrs {
		r := s.replicaSchema(ctx, conn, a, l, locals)
		if r.err != nil {
			s.log.Warn("a server of the cluster did not answer the schema check; skipped (a replica may be down)", "server", a, "error", r.err)
		}
		reps = append(reps, r)
	}
	return compareReplicas(l, s.cfg.CreateSchema, locals, reps)
}

// remoteTable is the remote() table function over db.table on addr, with the sink's credentials.
func (s *Sink) remoteTable(addr, db, table string) string {
	return fmt.Sprintf("remote(%s, %s.%s, %s, %s)", quoteString(addr), quoteIdent(db), table, quoteString(s.cfg.User), quoteString(s.cfg.password()))
}

func (s *Sink) replicaSchema(ctx context.Context, conn driver.Conn, addr string, l Layout, locals []string) replicaSchema {
	r := replicaSchema{addr: addr, tables: map[string]string{}}
	quoted := make([]string, len(locals))
	for i, t := range locals {
		quoted[i] = quoteString(t)
	}
	q := fmt.Sprintf("SELECT table, name, type FROM %s WHERE database = %s AND table IN (%s) ORDER BY table, name",
		s.remoteTable(addr, "system", "columns"), quoteString(l.Database), strings.Join(quoted, ", "))
	s.observe("cluster_check", strings.Replace(q, quoteString(s.cfg.password()), "'***'", 1))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		r.err = err
		return r
	}
	cols := map[string][]string{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			rows.Close()
			r.err = err
			return r
		}
		cols[table] = append(cols[table], name+" "+typ)
		r.names = append(r.names, table+"."+name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		r.err = err
		return r
	}
	for t, c := range cols {
		r.tables[t] = strings.Join(c, ", ")
	}
	if _, ok := r.tables[local(l.SchemaVersionTable())]; ok {
		q := fmt.Sprintf("SELECT max(version) FROM %s", s.remoteTable(addr, l.Database, local(l.SchemaVersionTable())))
		s.observe("cluster_check", strings.Replace(q, quoteString(s.cfg.password()), "'***'", 1))
		if err := conn.QueryRow(ctx, q).Scan(&r.version); err != nil {
			r.err = err
		}
	}
	return r
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// compareReplicas applies the rules of checkReplicas to what the servers hold.
func compareReplicas(l Layout, createSchema bool, locals []string, reps []replicaSchema) error {
	fix := fmt.Sprintf("on that server, drop the audit tables (DROP TABLE %s.<name>_local for each) and start the sink again to recreate them ON CLUSTER, or apply `flowker-audit schema clickhouse --cluster %s --database %s --table %s` there as an administrator; nothing was written",
		l.Database, l.Cluster, l.Database, l.Events())
	var up []replicaSchema
	for _, r := range reps {
		if r.err == nil {
			up = append(up, r)
		}
	}
	for _, r := range up {
		if r.version > SchemaVersion {
			return sink.Permanentf("clickhouse sink: the server %s of cluster %q has schema version %d of %s, newer than this plugin's %d; upgrade the plugin",
				r.addr, l.Cluster, r.version, l.Database, SchemaVersion)
		}
	}
	var problems []string
	// Columns: every existing local table has the columns this plugin creates (either variant).
	portable, modern := expectedColumns(l, Legacy), expectedColumns(l, Modern)
	for _, r := range up {
		have := map[string]map[string]bool{}
		for _, tc := range r.names {
			t, c, _ := strings.Cut(tc, ".")
			if have[t] == nil {
				have[t] = map[string]bool{}
			}
			have[t][c] = true
		}
		for _, t := range locals {
			cols, ok := have[t]
			if !ok {
				continue
			}
			if sameSet(cols, portable[t]) || sameSet(cols, modern[t]) {
				continue
			}
			var missing, extra []string
			for c := range portable[t] {
				if !cols[c] {
					missing = append(missing, c)
				}
			}
			for c := range cols {
				if !portable[t][c] && !modern[t][c] {
					extra = append(extra, c)
				}
			}
			sort.Strings(missing)
			sort.Strings(extra)
			problems = append(problems, fmt.Sprintf("%s.%s on %s is not this plugin's (schema version %d) table: columns missing [%s], unknown [%s]",
				l.Database, t, r.addr, SchemaVersion, strings.Join(missing, " "), strings.Join(extra, " ")))
		}
	}
	// Versions: every server that records one must record the same. (A server whose table has
	// no row yet is still fetching it by replication.)
	versions := map[uint32][]string{}
	for _, r := range up {
		if _, ok := r.tables[local(l.SchemaVersionTable())]; ok && r.version > 0 {
			versions[r.version] = append(versions[r.version], r.addr)
		}
	}
	if len(versions) > 1 {
		var parts []string
		for v, as := range versions {
			parts = append(parts, fmt.Sprintf("version %d on %s", v, strings.Join(as, ", ")))
		}
		sort.Strings(parts)
		problems = append(problems, fmt.Sprintf("the servers record different schema versions of %s (%s)", l.Database, strings.Join(parts, "; ")))
	}
	// Columns: a table must have the same columns wherever it exists.
	for _, t := range locals {
		shapes := map[string][]string{}
		for _, r := range up {
			if c, ok := r.tables[t]; ok {
				shapes[c] = append(shapes[c], r.addr)
			}
		}
		if len(shapes) > 1 {
			var parts []string
			for c, as := range shapes {
				parts = append(parts, fmt.Sprintf("%s has (%s)", strings.Join(as, ", "), c))
			}
			sort.Strings(parts)
			problems = append(problems, fmt.Sprintf("%s.%s has different columns on different servers: %s", l.Database, t, strings.Join(parts, "; ")))
		}
		if !createSchema && len(shapes) > 0 {
			for _, r := range up {
				if _, ok := r.tables[t]; !ok {
					problems = append(problems, fmt.Sprintf("%s.%s is missing on %s (create_schema is false)", l.Database, t, r.addr))
				}
			}
		}
	}
	if len(problems) > 0 {
		return sink.Permanentf("clickhouse sink: the replicas of cluster %q do not hold the same schema: %s; %s",
			l.Cluster, strings.Join(problems, "; "), fix)
	}
	return nil
}
