package chtest

import (
	"context"
	"strings"
	"testing"
)

// TestClusterReplicates starts ZooKeeper and two replicas, creates a replicated table ON CLUSTER
// through the first and reads on the second what was inserted into the first.
func TestClusterReplicates(t *testing.T) {
	c := StartCluster(t, "audit", 2)
	ctx := context.Background()
	r1, r2 := c.Replicas[0], c.Replicas[1]
	for _, q := range []string{
		"CREATE TABLE default.t ON CLUSTER audit (a String, s UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/default/t', '{replica}') ORDER BY s",
		"INSERT INTO default.t (a, s) VALUES ('x', 1), ('y', 2)",
	} {
		if _, err := r1.Query(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := r2.Query(ctx, "SYSTEM SYNC REPLICA default.t"); err != nil {
		t.Fatalf("sync replica: %v", err)
	}
	got, err := r2.Query(ctx, "SELECT a, s FROM default.t ORDER BY s")
	if err != nil {
		t.Fatal(err)
	}
	if want := "x\t1\ny\t2\n"; got != want {
		t.Fatalf("second replica has %q, want %q", got, want)
	}
	for i, s := range c.Replicas {
		got, err := s.Query(ctx, "SELECT cluster, shard_num, replica_num FROM system.clusters WHERE cluster = 'audit' FORMAT TSV")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(got, "\n") != 2 {
			t.Errorf("replica %d: system.clusters rows %q, want two replicas of one shard", i+1, got)
		}
	}
}
