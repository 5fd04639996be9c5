package chtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cluster is one ZooKeeper and ClickHouse servers that are the replicas of one shard of a cluster
// named Name in every server's remote_servers, with the macros {cluster}, {shard} (01) and
// {replica} (r1, r2, ...) set per server, and ON CLUSTER DDL enabled.
type Cluster struct {
	Name     string
	ZK       *ZooKeeper
	Replicas []*Server
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

// StartCluster starts ZooKeeper and `replicas` ClickHouse servers for t, stopped when t ends. It
// skips t (naming the install command) only when ZooKeeper is missing and cannot be installed, or
// when FLOWKER_AUDIT_SKIP_CLICKHOUSE=1.
func StartCluster(t testing.TB, name string, replicas int, opts ...Option) *Cluster {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%v (unset it to run the ClickHouse tests)", ErrSkipped)
	}
	dir := t.TempDir()
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
	ports, err := FreePorts(3 * replicas)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	var shard strings.Builder
	for i := 0; i < replicas; i++ {
		fmt.Fprintf(&shard, "                <replica><host>127.0.0.1</host><port>%d</port></replica>\n", ports[3*i])
	}
	remote := fmt.Sprintf(`    <remote_servers>
        <%[1]s>
            <shard>
                <internal_replication>true</internal_replication>
%[2]s            </shard>
        </%[1]s>
    </remote_servers>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
`, name, shard.String())
	for i := 0; i < replicas; i++ {
		macros := fmt.Sprintf("    <macros><cluster>%s</cluster><shard>01</shard><replica>r%d</replica></macros>\n", name, i+1)
		o := append([]Option{WithLogf(t.Logf), WithDir(filepath.Join(dir, fmt.Sprintf("r%d", i+1))),
			WithPorts(ports[3*i], ports[3*i+1], ports[3*i+2]), WithConfig(remote + macros + zk.ConfigXML())}, opts...)
		s, err := Launch(o...)
		if err != nil {
			t.Fatalf("chtest: replica r%d: %v", i+1, err)
		}
		c.Replicas = append(c.Replicas, s)
	}
	return c
}
