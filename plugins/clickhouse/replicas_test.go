package clickhouse

import (
	"errors"
	"strings"
	"testing"
)

// TestCompareReplicas: the rules of the cluster schema check on what the servers hold.
func TestCompareReplicas(t *testing.T) {
	l := Layout{Database: "audit", Table: TableEvents, Cluster: "audit"}
	var locals []string
	for _, tb := range l.Tables() {
		if strings.HasSuffix(tb, "_local") {
			locals = append(locals, tb)
		}
	}
	// full is a server holding this plugin's tables, recording version v.
	full := func(addr string, v uint32) replicaSchema {
		r := replicaSchema{addr: addr, version: v, tables: map[string]string{}}
		for tb, cols := range expectedColumns(l, Legacy) {
			r.tables[tb] = "x"
			for c := range cols {
				r.names = append(r.names, tb+"."+c)
			}
		}
		return r
	}
	empty := replicaSchema{addr: "h3:9000", tables: map[string]string{}}
	down := replicaSchema{addr: "h4:9000", err: errors.New("connection refused")}
	for _, tc := range []struct {
		name   string
		create bool
		reps   []replicaSchema
		want   string // "" = accepted
	}{
		{"all alike", true, []replicaSchema{full("h1:9000", 2), full("h2:9000", 2)}, ""},
		{"a new empty replica, create_schema", true, []replicaSchema{full("h1:9000", 2), empty}, ""},
		{"a new empty replica, no create_schema", false, []replicaSchema{full("h1:9000", 2), empty}, "is missing on h3:9000 (create_schema is false)"},
		{"a replica down", false, []replicaSchema{full("h1:9000", 2), down}, ""},
		{"versions differ", true, []replicaSchema{full("h1:9000", 2), full("h2:9000", 1)}, "version 1 on h2:9000; version 2 on h1:9000"},
		{"a newer version", true, []replicaSchema{full("h1:9000", 2), full("h2:9000", 3)}, "has schema version 3 of audit, newer than this plugin's 2; upgrade the plugin"},
		{"a version not yet replicated", true, []replicaSchema{full("h1:9000", 2), full("h2:9000", 0)}, ""},
		{"nothing yet", true, []replicaSchema{empty, down}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := compareReplicas(l, tc.create, locals, tc.reps)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
