package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/flowker-audit/flowker-audit/sink"
)

// The fixes named by the cluster checks (the examples are in deployments/clickhouse/cluster).
const (
	fixRemoteServers = "add it to <remote_servers> in every server's configuration (example: deployments/clickhouse/cluster/remote_servers.xml) or correct the sink's cluster key"
	fixMacros        = "define <macros> with shard and replica in every server's configuration (example: deployments/clickhouse/cluster/macros.xml)"
	fixZooKeeper     = "add a <zookeeper> section to every server's configuration (example: deployments/clickhouse/cluster/zookeeper.xml)"
)

// checkCluster verifies, before any DDL runs, what a replicated schema needs from the server the
// sink is connected to: the configured cluster in remote_servers, the {shard} and {replica}
// macros, and a reachable ZooKeeper. A missing piece of configuration is a permanent error naming
// the fix; a ZooKeeper that does not answer is retryable (the sink tries again on the next call),
// so nothing is ever created half-way.
func (s *Sink) checkCluster(ctx context.Context, conn driver.Conn) error {
	name := s.cfg.Cluster
	q := "SELECT DISTINCT cluster FROM system.clusters"
	s.observe("cluster_check", q)
	clusters, err := queryStrings(ctx, conn, q)
	if err != nil {
		return classify(fmt.Errorf("read system.clusters: %w", err))
	}
	if !contains(clusters, name) {
		known := "none"
		if len(clusters) > 0 {
			sort.Strings(clusters)
			known = strings.Join(clusters, ", ")
		}
		return sink.Permanentf("clickhouse sink: cluster %q is not in the remote_servers of the server at %v (it knows: %s); %s",
			name, s.cfg.Addr, known, fixRemoteServers)
	}

	q = "SELECT macro FROM system.macros"
	s.observe("cluster_check", q)
	macros, err := queryStrings(ctx, conn, q)
	if err != nil {
		return classify(fmt.Errorf("read system.macros: %w", err))
	}
	var missing []string
	for _, m := range []string{"shard", "replica"} {
		if !contains(macros, m) {
			missing = append(missing, "{"+m+"}")
		}
	}
	if len(missing) > 0 {
		return sink.Permanentf("clickhouse sink: cluster %q needs the macros %s, which the server at %v does not define; %s",
			name, strings.Join(missing, " and "), s.cfg.Addr, fixMacros)
	}

	q = "SELECT count() FROM system.zookeeper WHERE path = '/'"
	s.observe("cluster_check", q)
	var n uint64
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		msg := err.Error()
		// Without a <zookeeper> section, 18.16 has no system.zookeeper table at all; current
		// servers say so in the message.
		if exceptionCode(err) == codeUnknownTable || strings.Contains(strings.ToLower(msg), "zookeeper configuration") {
			return sink.Permanentf("clickhouse sink: cluster %q needs ZooKeeper, which the server at %v is not configured with (%v); %s",
				name, s.cfg.Addr, err, fixZooKeeper)
		}
		return fmt.Errorf("clickhouse sink: cluster %q: the server at %v cannot reach ZooKeeper (%w); start ZooKeeper or fix <zookeeper> in the server's configuration; nothing was created, the sink retries",
			name, s.cfg.Addr, err)
	}
	// Every server of the cluster holds the same schema (replicas.go).
	return s.checkReplicas(ctx, conn)
}

// queryStrings runs q, which selects one String column, and returns its values.
func queryStrings(ctx context.Context, conn driver.Conn, q string) ([]string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
