package chtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cluster is one ZooKeeper and ClickHouse servers in the shards of a cluster named Name in every
// server's remote_servers, with the macros {cluster}, {shard} (01, 02, ...) and {replica} (r1,
// r2, ... numbered across the cluster) set per server, and ON CLUSTER DDL enabled.
type Cluster struct {
	Name string
	ZK   *ZooKeeper
	// Replicas lists every server, shard by shard.
	Replicas []*Server
	// Shards lists the servers of each shard (Shards[0] is shard 01).
	Shards [][]*Server
}

// Addrs returns the replicas' native addresses, in order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Replicas))
	for i, s := range c.Replicas {
		addrs[i] = s.Addr
	}
	return addrs
}

// Close stops the servers and ZooKeeper.
func (c *Cluster) Close() error {
	var errs []error
	for _, s := range c.Replicas {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ZK != nil {
		if err := c.ZK.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StartCluster starts ZooKeeper and `replicas` ClickHouse servers, the replicas of one shard, for
// t, stopped when t ends. It skips t (naming the install command) only when ZooKeeper is missing
// and cannot be installed, or when FLOWKER_AUDIT_SKIP_CLICKHOUSE=1.
func StartCluster(t testing.TB, name string, replicas int, opts ...Option) *Cluster {
	t.Helper()
	return StartShardedCluster(t, name, []int{replicas}, opts...)
}

// StartShardedCluster is StartCluster with several shards: shards[i] is the number of replicas
// of shard i+1 (each shard has weight 1 and internal_replication).
func StartShardedCluster(t testing.TB, name string, shards []int, opts ...Option) *Cluster {
	t.Helper()
	return startCluster(t, t.TempDir(), name, shards, opts...)
}

// StartClusterIn is StartCluster with ZooKeeper's and the servers' files kept in dir (created if
// needed) when t ends: a later call with the same dir, name and replicas starts the same cluster
// on its stored data, on new ports. Benchmarks use it to load a data set once.
func StartClusterIn(t testing.TB, dir, name string, replicas int, opts ...Option) *Cluster {
	t.Helper()
	return startCluster(t, dir, name, []int{replicas}, opts...)
}

func startCluster(t testing.TB, dir, name string, shards []int, opts ...Option) *Cluster {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%v (unset it to run the ClickHouse tests)", ErrSkipped)
	}
	zk, err := LaunchZooKeeper(filepath.Join(dir, "zookeeper"), t.Logf)
	if errors.Is(err, ErrNoZooKeeper) {
		t.Skipf("chtest: the ClickHouse cluster tests need ZooKeeper: %v", err)
	}
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	c := &Cluster{Name: name, ZK: zk}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	total := 0
	for _, n := range shards {
		total += n
	}
	ports, err := FreePorts(3 * total)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	var xml strings.Builder
	i := 0
	for _, n := range shards {
		xml.WriteString("            <shard>\n                <internal_replication>true</internal_replication>\n")
		for r := 0; r < n; r++ {
			fmt.Fprintf(&xml, "                <replica><host>127.0.0.1</host><port>%d</port></replica>\n", ports[3*i])
			i++
		}
		xml.WriteString("            </shard>\n")
	}
	remote := fmt.Sprintf(`    <remote_servers>
        <%[1]s>
%[2]s        </%[1]s>
    </remote_servers>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
`, name, xml.String())
	i = 0
	for sh, n := range shards {
		var servers []*Server
		for r := 0; r < n; r++ {
			macros := fmt.Sprintf("    <macros><cluster>%s</cluster><shard>%02d</shard><replica>r%d</replica></macros>\n", name, sh+1, i+1)
			o := append([]Option{WithLogf(t.Logf), WithDir(filepath.Join(dir, fmt.Sprintf("r%d", i+1))),
				WithPorts(ports[3*i], ports[3*i+1], ports[3*i+2]), WithConfig(remote + macros + zk.ConfigXML())}, opts...)
			s, err := Launch(o...)
			if err != nil {
				t.Fatalf("chtest: shard %02d replica r%d: %v", sh+1, i+1, err)
			}
			servers = append(servers, s)
			c.Replicas = append(c.Replicas, s)
			i++
		}
		c.Shards = append(c.Shards, servers)
	}
	return c
}
