package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// clusterConfig is a sink configuration for a cluster reached through addrs.
func clusterConfig(addrs []string, database string, extra map[string]any) map[string]any {
	cfg := map[string]any{"addr": addrs, "database": database, "cluster": "audit", "dial_timeout": "2s", "read_timeout": "30s"}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func configureSink(t testing.TB, cfg map[string]any) (*Sink, error) {
	t.Helper()
	s := New(Options{Logger: testLogger(t)})
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return s, s.Configure(ctx, b)
}

// syncReplicas waits until every replica has fetched every part of the local tables of l.
func syncReplicas(t testing.TB, c *chtest.Cluster, l Layout) {
	t.Helper()
	for _, srv := range c.Replicas {
		for _, tb := range l.Tables() {
			if strings.HasSuffix(tb, "_local") {
				query(t, srv, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", l.Database, tb))
			}
		}
	}
}

// TestClusterSink writes through the plugin into two replicas of one shard (ZooKeeper and
// clickhouse-server 18.16 started by chtest), reads from either replica, and kills one replica
// with SIGKILL under writes: nothing is lost, nothing is stored twice by (chain, sequence), and
// the replicas converge once the killed one is back.
func TestClusterSink(t *testing.T) {
	t.Parallel()
	c := chtest.StartCluster(t, "audit", 2, chtest.WithConfig(queryLogConfig), chtest.WithUsersD("log-queries.xml", logQueries))
	r1, r2 := c.Replicas[0], c.Replicas[1]
	db := newDatabase("cluster")
	l := Layout{Database: db, Table: "trail", Cluster: "audit"}

	w, err := configureSink(t, clusterConfig(c.Addrs(), db, map[string]any{"table": "trail"}))
	if err != nil {
		t.Fatalf("Configure on the cluster: %v", err)
	}
	// The schema exists on both replicas: Replicated local tables under Distributed ones.
	for _, srv := range c.Replicas {
		got := query(t, srv, fmt.Sprintf("SELECT name, engine FROM system.tables WHERE database = '%s' AND name IN ('trail', 'trail_local', 'trail_by_id_local', 'trail_chain_blocks') ORDER BY name", db))
		want := "trail\tDistributed\ntrail_by_id_local\tReplicatedReplacingMergeTree\ntrail_chain_blocks\tDistributed\ntrail_local\tReplicatedMergeTree"
		if got != want {
			t.Fatalf("tables on %s:\n%s\nwant\n%s", srv.Addr, got, want)
		}
	}

	t.Run("quorum", func(t *testing.T) {
		q, err := configureSink(t, clusterConfig(c.Addrs(), db, map[string]any{"table": "trail", "insert_quorum": 2}))
		if err != nil {
			t.Fatal(err)
		}
		evs := sinktest.GenerateChain("chain-quorum", 200, sinktest.GenOptions{Seed: 21})
		if err := q.Write(ctxT(t), evs); err != nil {
			t.Fatalf("Write with insert_quorum 2: %v", err)
		}
		// Acknowledged with quorum 2: both replicas have it, without waiting for replication.
		for _, srv := range c.Replicas {
			if n := query(t, srv, fmt.Sprintf("SELECT count() FROM %s.trail_local WHERE chain_id = 'chain-quorum'", db)); n != "200" {
				t.Errorf("%s has %s rows of the quorum write, want 200", srv.Addr, n)
			}
		}
		// Read from the second replica alone.
		r, err := configureSink(t, clusterConfig([]string{r2.Addr}, db, map[string]any{"table": "trail"}))
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, r, evs)
	})

	t.Run("kill a replica under writes", func(t *testing.T) {
		// The outage lasts FLOWKER_AUDIT_CLUSTER_OUTAGE (default 5s; the scenario is 30s)
		// while the writers go on.
		outage := 5 * time.Second
		if v := os.Getenv("FLOWKER_AUDIT_CLUSTER_OUTAGE"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("FLOWKER_AUDIT_CLUSTER_OUTAGE: %v", err)
			}
			outage = d
		}
		const chains, batch = 3, 25
		pace := 50 * time.Millisecond // between one writer's batches: ~500 events/s per writer
		perChain := int((outage+20*time.Second)/pace) * batch
		all := make([][]chain.Event, chains)
		for i := range all {
			all[i] = sinktest.GenerateChain(fmt.Sprintf("chain-ha-%d", i), perChain, sinktest.GenOptions{Seed: int64(30 + i)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), outage+2*time.Minute)
		defer cancel()
		var (
			mu      sync.Mutex
			written int // batches acknowledged
			retries int
			acked   = make([]int, chains) // events acknowledged per chain (a prefix of all[i])
		)
		stop := make(chan struct{})
		// One writer per chain, like one sidecar per chain: each retries its batch until the
		// sink acknowledges it, as the host does from its journal, until stopped.
		var wg sync.WaitGroup
		errs := make(chan error, chains)
		for i := 0; i < chains; i++ {
			wg.Add(1)
			go func(i int, evs []chain.Event) {
				defer wg.Done()
				for lo := 0; lo+batch <= len(evs); lo += batch {
					select {
					case <-stop:
						return
					case <-time.After(pace):
					}
					for {
						err := w.Write(ctx, evs[lo:lo+batch])
						if err == nil {
							break
						}
						if sink.IsPermanent(err) || ctx.Err() != nil {
							errs <- fmt.Errorf("chain %d batch at %d: %w", i, lo, err)
							return
						}
						mu.Lock()
						retries++
						mu.Unlock()
						time.Sleep(100 * time.Millisecond)
					}
					mu.Lock()
					written++
					acked[i] = lo + batch
					mu.Unlock()
				}
				errs <- fmt.Errorf("chain %d: the writer ran out of events before it was stopped", i)
			}(i, all[i])
		}
		progress := func() int { mu.Lock(); defer mu.Unlock(); return written }
		waitFor := func(n int) {
			for progress() < n && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitFor(30)
		if err := r1.Kill(); err != nil {
			t.Fatal(err)
		}
		killedAt := progress()
		t.Logf("killed replica r1 (SIGKILL) after %d batches; down for %v", killedAt, outage)
		time.Sleep(outage)
		// Searches keep answering from the surviving replica.
		rd, err := configureSink(t, clusterConfig([]string{r2.Addr}, db, map[string]any{"table": "trail"}))
		if err != nil {
			t.Fatalf("Configure on the surviving replica: %v", err)
		}
		page, err := rd.Search(ctx, sink.Query{Order: sink.Desc, Limit: 20})
		if err != nil || len(page.Events) != 20 {
			t.Fatalf("Search on the surviving replica: %d events, %v", len(page.Events), err)
		}
		downFor := progress() - killedAt
		if err := r1.Restart(); err != nil {
			t.Fatal(err)
		}
		restartedAt := progress()
		waitFor(restartedAt + 30)
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := 0
		for i := range acked {
			want += acked[i]
			all[i] = all[i][:acked[i]]
		}
		t.Logf("%d batches acknowledged while r1 was down, %d after its restart; %d events in all, %d retried writes",
			downFor, progress()-restartedAt, want, retries)

		// Every chain is delivered and idle: the heartbeats the host sends then (the read horizon,
		// watermark.go) let searches show everything.
		for _, id := range []string{"chain-quorum", "chain-ha-0", "chain-ha-1", "chain-ha-2"} {
			if err := w.WriteWatermark(ctx, id, time.Now()); err != nil {
				t.Fatalf("WriteWatermark(%s): %v", id, err)
			}
		}
		syncReplicas(t, c, l)
		for _, srv := range c.Replicas {
			got := query(t, srv, fmt.Sprintf("SELECT count(), uniqExact(chain_id, seq) FROM %s.trail_local WHERE chain_id LIKE 'chain-ha-%%'", db))
			if got != fmt.Sprintf("%d\t%d", want, want) {
				t.Errorf("replica %s: rows, distinct (chain, seq) = %q, want %d each (0 lost, 0 duplicated)", srv.Addr, got, want)
			}
			// The views' tables too: a retry deduplicated by the events table skips the views on
			// 18.16, and the sink restores what they missed (heal.go).
			checkLookups(t, srv, db, "chain_id LIKE 'chain-ha-%'", want)
		}
		// Every chain reads back whole and verifies through either replica alone.
		for _, addr := range c.Addrs() {
			r, err := configureSink(t, clusterConfig([]string{addr}, db, map[string]any{"table": "trail"}))
			if err != nil {
				t.Fatal(err)
			}
			for _, evs := range all {
				checkChain(t, r, evs)
				checkChainCount(t, r, evs)
			}
			if n := pageAll(t, r); n != want+200 {
				t.Errorf("paging through %s: %d distinct events, want %d", addr, n, want+200)
			}
		}
		// The replicas hold the same rows.
		sums := make([]string, 0, 2)
		for _, srv := range c.Replicas {
			sums = append(sums, query(t, srv, fmt.Sprintf("SELECT sum(cityHash64(chain_id, seq, hash)) FROM %s.trail_local", db)))
		}
		if sums[0] != sums[1] {
			t.Errorf("replicas differ: checksums %v", sums)
		}
	})

	t.Run("a chain's block reads that chain's rows only", func(t *testing.T) { blockReadsOneChain(t, r1, db) })
	t.Run("lookups restored for more rows than one statement holds", func(t *testing.T) { healManyRows(t, c, db) })
	t.Run("quorum with a replica down", func(t *testing.T) { quorumReplicaDown(t, c, db) })
	t.Run("quorum with a replica killed", func(t *testing.T) { quorumReplicaKilled(t, c, db) })
}

// queryLogConfig and logQueries turn on system.query_log for every query of the default user.
const queryLogConfig = `
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>1000</flush_interval_milliseconds>
    </query_log>`

var logQueries = []byte(`<yandex><profiles><default><log_queries>1</log_queries></default></profiles></yandex>`)

// blockReadsOneChain: three chains whose events interleave in time, written by three writers
// into their own table of db on srv's cluster and merged: each of the sink's block queries (what
// verify and ReadChain run) reads that chain's rows and no other chain's (PartitionKey), which
// the server's query log counts. With the events table partitioned by month alone, the merged
// part holds the three chains and every block query reads about three rows per row it returns.
func blockReadsOneChain(t *testing.T, srv *chtest.Server, db string) {
	const chains, n = 3, 6000
	s, err := configureSink(t, clusterConfig([]string{srv.Addr}, db, map[string]any{"table": "parts"}))
	if err != nil {
		t.Fatal(err)
	}
	all := make([][]chain.Event, chains)
	for i := range all {
		all[i] = sinktest.GenerateChain(fmt.Sprintf("chain-part-%d", i), n, sinktest.GenOptions{Seed: int64(60 + i)})
	}
	// The writers take turns, as sidecars writing at once do.
	for lo := 0; lo < n; lo += 500 {
		for _, evs := range all {
			if err := s.Write(ctxT(t), evs[lo:min(lo+500, n)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Merged, as a table is once the background merges have run (the leader replica merges and
	// the others fetch the result; the check below does not depend on how far that got).
	query(t, srv, fmt.Sprintf("OPTIMIZE TABLE %s.parts_local FINAL", db))
	if got := query(t, srv, fmt.Sprintf("SELECT groupUniqArray(partition) FROM system.parts WHERE database = '%s' AND table = 'parts_local' AND active", db)); strings.Count(got, "chain-part-") != chains {
		t.Errorf("the partitions of the events table are %s, want one per chain and month", got)
	}
	st, err := s.ensureReady(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, evs := range all {
		id := evs[0].ChainID
		var qs []string
		if err := s.listBlocks(ctxT(t), st, id, 1, 0, func(b blockInfo) bool {
			qs = append(qs, blockQuery(st, id, b, 1, 0))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if len(qs) == 0 {
			t.Fatalf("no blocks listed for %s", id)
		}
		marker := fmt.Sprintf("block_read_%s_%d", strings.ReplaceAll(id, "-", "_"), time.Now().UnixNano())
		for _, q := range qs {
			query(t, srv, fmt.Sprintf("SELECT count() AS %s FROM (%s)", marker, q))
		}
		query(t, srv, "SYSTEM FLUSH LOGS")
		got := query(t, srv, fmt.Sprintf("SELECT sum(read_rows) FROM system.query_log WHERE type = 2 AND query LIKE '%%%s%%'", marker))
		var read int
		if _, err := fmt.Sscan(got, &read); err != nil {
			t.Fatalf("read_rows %q: %v", got, err)
		}
		// A block's time window can start and end inside a granule (1,024 rows) of the part.
		if limit := n + 2*1024*len(qs); read > limit || read < n {
			t.Errorf("the block queries of %s read %d rows to return %d (want %d to %d): they read other chains' rows", id, read, n, n, limit)
		}
		t.Logf("%s: %d block queries read %d rows to return %d", id, len(qs), read, n)
	}
}

// healManyRows: events stored while the id lookup's view was detached on every replica (their
// lookup rows lost, as a deduplicated retry loses them on 18.16), then remembered as unsure, as a
// failed insert remembers its rows: the next healPending restores all 6,000 lookup rows. Listing
// 6,000 event ids in one statement (~290 KB) exceeds the server's max_query_size (256 KiB), which
// a failed batch of 10,000 events once hit in the 100 M benchmark; the checks go 1,000 rows at a
// time.
func healManyRows(t *testing.T, c *chtest.Cluster, db string) {
	const n = 6000
	s, err := configureSink(t, clusterConfig(c.Addrs(), db, map[string]any{"table": "healbig"}))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.ensureReady(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	view := fmt.Sprintf("%s.%s_mv", db, st.l.ByID())
	for _, srv := range c.Replicas {
		query(t, srv, "DETACH TABLE "+view)
	}
	evs := sinktest.GenerateChain("chain-heal-big", n, sinktest.GenOptions{Seed: 71})
	for lo := 0; lo < n; lo += 1000 {
		if err := s.Write(ctxT(t), evs[lo:lo+1000]); err != nil {
			t.Fatal(err)
		}
	}
	for _, srv := range c.Replicas {
		query(t, srv, "ATTACH TABLE "+view)
	}
	countIDs := func() string {
		return query(t, c.Replicas[0], fmt.Sprintf("SELECT count() FROM %s.%s WHERE chain_id = 'chain-heal-big'", db, st.l.ByID()))
	}
	if got := countIDs(); got != "0" {
		t.Fatalf("%s id lookup rows with the view detached, want 0", got)
	}
	s.noteUnsure(st, rowsOf(t, evs))
	if err := s.healPending(ctxT(t), st); err != nil {
		t.Fatalf("healPending over %d rows: %v", n, err)
	}
	if got := countIDs(); got != fmt.Sprint(n) {
		t.Errorf("%s id lookup rows after healing, want %d", got, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if got, err := s.Get(ctxT(t), evs[i].EventID); err != nil || got.Sequence != evs[i].Sequence {
			t.Errorf("Get(%s) after healing: sequence %d, %v; want %d", evs[i].EventID, got.Sequence, err, evs[i].Sequence)
		}
	}
}

// quorumReplicaDown: with insert_quorum 2 and one of the two replicas down, a write is refused as
// retryable (the host keeps it in the journal and retries); once the replica is back, the retried
// write is stored once, on both replicas.
func quorumReplicaDown(t *testing.T, c *chtest.Cluster, db string) {
	r1, r2 := c.Replicas[0], c.Replicas[1]
	q, err := configureSink(t, clusterConfig(c.Addrs(), db, map[string]any{"table": "trail", "insert_quorum": 2}))
	if err != nil {
		t.Fatal(err)
	}
	evs := sinktest.GenerateChain("chain-quorum-down", 300, sinktest.GenOptions{Seed: 22})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// writeRetrying retries like the host, from the journal, with backoff, until the write is
	// acknowledged; it returns how many tries it took.
	writeRetrying := func(evs []chain.Event) int {
		tries := 1
		for err := q.Write(ctx, evs); err != nil; err = q.Write(ctx, evs) {
			if sink.IsPermanent(err) || ctx.Err() != nil {
				t.Fatalf("write: %v", err)
			}
			tries++
			time.Sleep(500 * time.Millisecond)
		}
		return tries
	}
	// Both replicas up (r1 may still be re-registering in ZooKeeper after the previous step's
	// restart: the quorum counts active replicas).
	writeRetrying(evs[:100])
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	err = q.Write(ctxT(t), evs[100:200])
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("Write with insert_quorum 2 and one replica down: %v; want a retryable error", err)
	}
	t.Logf("refused while r2 is down (retryable): %v", err)
	if err := r2.Restart(); err != nil {
		t.Fatal(err)
	}
	// The host retries from the journal with backoff until the quorum is back.
	tries := writeRetrying(evs[100:200])
	writeRetrying(evs[200:])
	t.Logf("stored after %d tries once r2 was back", tries)
	for _, srv := range []*chtest.Server{r1, r2} {
		got := query(t, srv, fmt.Sprintf("SELECT count(), uniqExact(seq) FROM %s.trail_local WHERE chain_id = 'chain-quorum-down'", db))
		if got != "300\t300" {
			t.Errorf("%s: rows, distinct sequences = %q, want 300 each", srv.Addr, got)
		}
	}
	checkChain(t, q, evs)
}

// checkChain reads want's chain back through s: whole, identical, verifying, with its head.
func checkChain(t *testing.T, s *Sink, want []chain.Event) {
	t.Helper()
	got, v := readAll(t, s, want[0].ChainID)
	if p := v.Problem(); p != nil {
		t.Fatalf("chain %s does not verify: %v", want[0].ChainID, p)
	}
	if len(got) != len(want) {
		t.Fatalf("chain %s: ReadChain returned %d events, want %d", want[0].ChainID, len(got), len(want))
	}
	for i := range want {
		if !sameEvent(&got[i], &want[i]) {
			t.Fatalf("chain %s event %d = %+v, want %+v", want[0].ChainID, i, got[i], want[i])
		}
	}
	h, err := s.Head(ctxT(t), want[0].ChainID)
	last := want[len(want)-1]
	if err != nil || !h.Found || h.Sequence != last.Sequence || h.Hash != last.Hash {
		t.Fatalf("Head(%s) = %+v, %v; want sequence %d", want[0].ChainID, h, err, last.Sequence)
	}
}

// pageAll pages through every event of s in ascending order (timestamp, chain, sequence) and
// returns how many it saw, failing t on a repeated event or a step backwards.
func pageAll(t *testing.T, s *Sink) int {
	t.Helper()
	type key struct {
		chain string
		seq   uint64
	}
	seen := map[key]bool{}
	var prev *chain.Event
	q := sink.Query{Order: sink.Asc, Limit: 97}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		p, err := s.Search(ctxT(t), q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Events {
			e := &p.Events[i]
			k := key{e.ChainID, e.Sequence}
			if seen[k] {
				t.Fatalf("paging returned %s/%d twice", e.ChainID, e.Sequence)
			}
			seen[k] = true
			if prev != nil && !sink.PositionOf(prev).Less(sink.PositionOf(e)) {
				t.Fatalf("paging order: %s/%d after %s/%d", e.ChainID, e.Sequence, prev.ChainID, prev.Sequence)
			}
			prev = e
		}
		if !p.More || len(p.Events) == 0 {
			return len(seen)
		}
		after := sink.PositionOf(prev)
		q.After = &after
	}
}

// TestClusterBadInput: a cluster the server does not know, missing macros, ZooKeeper not
// configured, and ZooKeeper down at start are each named with their fix at Configure, and nothing
// is created on the server.
func TestClusterBadInput(t *testing.T) {
	t.Parallel()
	ports, err := chtest.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	deadZK := fmt.Sprintf("    <zookeeper><node><host>127.0.0.1</host><port>%d</port></node><session_timeout_ms>2000</session_timeout_ms></zookeeper>\n", ports[0])
	macros := "    <macros><shard>01</shard><replica>r1</replica></macros>\n"
	for _, tc := range []struct {
		name      string
		config    string // added to config.xml; remote_servers is added by the test
		cluster   string
		permanent bool
		want      []string
	}{
		{"unknown cluster", "", "nope", true, []string{`cluster "nope" is not in the remote_servers`, "it knows: audit", "deployments/clickhouse/cluster/remote_servers.xml"}},
		{"missing macros", "", "audit", true, []string{"needs the macros {shard} and {replica}", "deployments/clickhouse/cluster/macros.xml"}},
		{"no zookeeper", macros, "audit", true, []string{"not configured with", "deployments/clickhouse/cluster/zookeeper.xml"}},
		{"zookeeper down", macros + deadZK, "audit", false, []string{"cannot reach ZooKeeper", "start ZooKeeper", "nothing was created"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := chtest.FreePorts(3)
			if err != nil {
				t.Fatal(err)
			}
			rs := fmt.Sprintf("    <remote_servers><audit><shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard></audit></remote_servers>\n", p[0])
			srv := chtest.Start(t, chtest.WithPorts(p[0], p[1], p[2]), chtest.WithConfig(rs+tc.config))
			db := newDatabase("bad_cluster")
			_, err = configureSink(t, clusterConfig([]string{srv.Addr}, db, map[string]any{"cluster": tc.cluster}))
			if err == nil {
				t.Fatal("Configure succeeded")
			}
			if sink.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v: %v", sink.IsPermanent(err), tc.permanent, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := query(t, srv, fmt.Sprintf("SELECT count() FROM system.databases WHERE name = '%s'", db)); n != "0" {
				t.Errorf("database %s was created", db)
			}
		})
	}
}

// TestTableShareDatabase: two deployments with their own table share one database on one server;
// each reads back only its own events, and the default table keeps its historical names.
func TestTableShareDatabase(t *testing.T) {
	t.Parallel()
	srv := server(t)
	db := newDatabase("shared_db")
	a := openSink(t, srv, db, Options{}, map[string]any{"table": "team_a"})
	b := openSink(t, srv, db, Options{}, nil)
	ea := sinktest.GenerateChain("chain-a", 40, sinktest.GenOptions{Seed: 51})
	eb := sinktest.GenerateChain("chain-b", 30, sinktest.GenOptions{Seed: 52})
	if err := a.Write(ctxT(t), ea); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctxT(t), eb); err != nil {
		t.Fatal(err)
	}
	checkStored(t, a, ea)
	checkStored(t, b, eb)
	got := query(t, srv, fmt.Sprintf("SELECT name FROM system.tables WHERE database = '%s' AND name NOT LIKE '%%_mv' ORDER BY name", db))
	want := strings.Join([]string{"audit_chain_blocks", "audit_checkpoints", "audit_events", "audit_events_by_actor", "audit_events_by_id",
		"audit_events_by_resource", "audit_events_watermarks", "audit_schema_version", "team_a", "team_a_by_actor", "team_a_by_id", "team_a_by_resource",
		"team_a_chain_blocks", "team_a_checkpoints", "team_a_schema_version", "team_a_watermarks"}, "\n")
	if got != want {
		t.Errorf("tables:\n%s\nwant\n%s", got, want)
	}
}

// TestClusterReplicaSchema: one replica holds the audit tables of another schema (an older
// plugin's columns, another recorded version, made by hand on that server alone). Configure names
// the replica, the differences and the fix, and creates nothing on the other replica; a replica
// that records a newer schema version asks for a plugin upgrade.
func TestClusterReplicaSchema(t *testing.T) {
	t.Parallel()
	c := chtest.StartCluster(t, "audit", 2)
	r1, r2 := c.Replicas[0], c.Replicas[1]
	db := newDatabase("replica_schema")
	for _, q := range []string{
		"CREATE DATABASE " + db,
		// The events table of an older layout (no actor_ip), on r2 only.
		"CREATE TABLE " + db + ".audit_events_local (chain_id String, seq UInt64, event_id UUID, ts_us Int64, ts DateTime('UTC') DEFAULT toDateTime(intDiv(ts_us, 1000000), 'UTC'), event_type String, action String, result String, resource_type String, resource_id String, actor_type String, actor_id String, context String, metadata String, hash FixedString(32), previous_hash FixedString(32)) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/" + db + "/old_events', '{replica}') PARTITION BY toYYYYMM(ts) ORDER BY (ts_us, chain_id, seq)",
		"CREATE TABLE " + db + ".audit_schema_version_local (version UInt32, variant String, server_version String, applied_at DateTime('UTC')) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/" + db + "/old_version', '{replica}') ORDER BY version",
		"INSERT INTO " + db + ".audit_schema_version_local VALUES (1, 'portable', '18.16.1', now())",
	} {
		if _, err := r2.Query(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := configureSink(t, clusterConfig([]string{r1.Addr, r2.Addr}, db, nil))
	if err == nil || !sink.IsPermanent(err) {
		t.Fatalf("Configure with a replica of another schema: %v, want a permanent error", err)
	}
	for _, w := range []string{`replicas of cluster "audit" do not hold the same schema`, db + ".audit_events_local on " + r2.Addr + " is not this plugin's",
		"columns missing [actor_ip]", "DROP TABLE " + db + ".<name>_local", "flowker-audit schema clickhouse --cluster audit", "nothing was written"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if n := query(t, r1, fmt.Sprintf("SELECT count() FROM system.databases WHERE name = '%s'", db)); n != "0" {
		t.Errorf("database %s was created on %s", db, r1.Addr)
	}

	// A newer version recorded on a replica: upgrade the plugin.
	query(t, r2, "INSERT INTO "+db+".audit_schema_version_local VALUES (9, 'portable', '18.16.1', now())")
	query(t, r2, "DROP TABLE "+db+".audit_events_local")
	_, err = configureSink(t, clusterConfig([]string{r1.Addr, r2.Addr}, db, nil))
	if err == nil || !strings.Contains(err.Error(), "has schema version 9") || !strings.Contains(err.Error(), "upgrade the plugin") {
		t.Fatalf("Configure with a replica of a newer schema: %v", err)
	}

	// Once the odd tables are dropped, the sink creates the schema on both.
	query(t, r2, "DROP TABLE "+db+".audit_schema_version_local")
	w, err := configureSink(t, clusterConfig([]string{r1.Addr, r2.Addr}, db, nil))
	if err != nil {
		t.Fatalf("Configure after the fix: %v", err)
	}
	evs := sinktest.GenerateChain("chain-fixed", 10, sinktest.GenOptions{Seed: 71})
	if err := w.Write(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	checkChain(t, w, evs)
}

// TestClusterShards: a cluster of two shards (shard 01 with two replicas, shard 02 with one).
// Writers of eight chains write through the Distributed table; each chain lands whole on the
// shard cityHash64(chain_id) picks, both shards get chains, and searching, paging and verifying
// through the Distributed tables (from a server of either shard) see every event of every chain.
func TestClusterShards(t *testing.T) {
	t.Parallel()
	c := chtest.StartShardedCluster(t, "audit", []int{2, 1})
	db := newDatabase("shards")
	w, err := configureSink(t, clusterConfig(c.Addrs(), db, nil))
	if err != nil {
		t.Fatalf("Configure on two shards: %v", err)
	}
	var all [][]chain.Event
	total := 0
	for i := 0; i < 8; i++ {
		evs := sinktest.GenerateChain(fmt.Sprintf("chain-shard-%d", i), 50+10*i, sinktest.GenOptions{Seed: int64(80 + i)})
		for lo := 0; lo < len(evs); lo += 20 {
			if err := w.Write(ctxT(t), evs[lo:min(lo+20, len(evs))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteWatermark(ctxT(t), evs[0].ChainID, time.Now()); err != nil {
			t.Fatal(err)
		}
		all = append(all, evs)
		total += len(evs)
	}
	syncReplicas(t, c, Layout{Database: db, Cluster: "audit"})

	// Where each chain is: on exactly one shard, the one its sharding key picks, whole.
	perShard := make([]int, len(c.Shards))
	for _, evs := range all {
		id := evs[0].ChainID
		want := query(t, c.Shards[0][0], fmt.Sprintf("SELECT cityHash64('%s') %% 2", id))
		var on []int
		for s, servers := range c.Shards {
			for _, srv := range servers {
				n := query(t, srv, fmt.Sprintf("SELECT count() FROM %s.audit_events_local WHERE chain_id = '%s'", db, id))
				switch n {
				case "0":
				case fmt.Sprint(len(evs)):
					if srv == servers[0] {
						on = append(on, s)
					}
				default:
					t.Errorf("chain %s: %s rows on %s, want 0 or all %d", id, n, srv.Addr, len(evs))
				}
			}
		}
		if len(on) != 1 || fmt.Sprint(on[0]) != want {
			t.Errorf("chain %s is on shards %v, want only shard index %s (cityHash64(chain_id) %% 2)", id, on, want)
			continue
		}
		perShard[on[0]]++
	}
	t.Logf("chains per shard: %v", perShard)
	for s, n := range perShard {
		if n == 0 {
			t.Errorf("shard %02d holds no chain", s+1)
		}
	}
	// Reads through a server of either shard see everything.
	for _, srv := range []*chtest.Server{c.Shards[0][1], c.Shards[1][0]} {
		r, err := configureSink(t, clusterConfig([]string{srv.Addr}, db, nil))
		if err != nil {
			t.Fatal(err)
		}
		if n := pageAll(t, r); n != total {
			t.Errorf("paging through %s: %d events, want %d", srv.Addr, n, total)
		}
		for _, evs := range all {
			checkChain(t, r, evs)
			p, err := r.Search(ctxT(t), sink.Query{Filter: sink.Filter{ResourceID: evs[3].ResourceID}, Limit: 1000})
			if err != nil || len(p.Events) == 0 {
				t.Errorf("resource search for %s through %s: %d events, %v", evs[3].ResourceID, srv.Addr, len(p.Events), err)
			}
			if _, err := r.Get(ctxT(t), evs[5].EventID); err != nil {
				t.Errorf("Get(%s) through %s: %v", evs[5].EventID, srv.Addr, err)
			}
		}
		chains, err := r.Chains(ctxT(t))
		if err != nil || len(chains) != len(all) {
			t.Errorf("Chains through %s: %d, %v; want %d", srv.Addr, len(chains), err, len(all))
		}
	}
}
