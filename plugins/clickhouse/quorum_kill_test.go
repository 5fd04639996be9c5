package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// quorumReplicaKilled: with insert_quorum 2, one of the two replicas is killed with SIGKILL while
// a writer goes on. Its ZooKeeper session outlives it (chtest's session timeout is 6 s), so it
// still counts as active: the insert in flight, already stored on the survivor, waits for a
// quorum that cannot come and fails (code 319, status unknown); retries are refused (286, the
// previous quorum is unsatisfied; 285 once the session expired) and the host would keep them in
// its journal. When the replica is back it fetches the part, the quorum is met, and the retried
// batch is deduplicated: every acknowledged and every retried event is stored exactly once on
// both replicas, the replicas hold the same rows, and the chain verifies through either.
func quorumReplicaKilled(t *testing.T, c *chtest.Cluster, db string) {
	r1, r2 := c.Replicas[0], c.Replicas[1]
	// read_timeout 8s: a quorum wait ends after 6 s (insert_quorum_timeout is ¾ of it).
	q, err := configureSink(t, clusterConfig(c.Addrs(), db, map[string]any{"table": "trail", "insert_quorum": 2, "read_timeout": "8s"}))
	if err != nil {
		t.Fatal(err)
	}
	const batches, batch = 16, 25
	evs := sinktest.GenerateChain("chain-quorum-kill", batches*batch, sinktest.GenOptions{Seed: 23})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var (
		mu     sync.Mutex
		acked  int                // batches acknowledged
		failed = map[string]int{} // refused writes by ClickHouse exception code (or the error, when none)
	)
	done := make(chan error, 1)
	go func() {
		// The host's delivery: the same batch again, with backoff, until it is acknowledged.
		for i := 0; i < batches; i++ {
			for {
				err := q.Write(ctx, evs[i*batch:(i+1)*batch])
				if err == nil {
					break
				}
				if sink.IsPermanent(err) || ctx.Err() != nil {
					done <- fmt.Errorf("batch %d: %w", i, err)
					return
				}
				kind := fmt.Sprintf("code %d", exceptionCode(err))
				if exceptionCode(err) == 0 {
					kind = err.Error()
				}
				mu.Lock()
				failed[kind]++
				mu.Unlock()
				time.Sleep(300 * time.Millisecond)
			}
			mu.Lock()
			acked++
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		done <- nil
	}()
	progress := func() int { mu.Lock(); defer mu.Unlock(); return acked }
	for progress() < 4 {
		select {
		case err := <-done:
			t.Fatalf("writer ended before the kill: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := r2.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := progress()
	// Down past its ZooKeeper session's expiry (6 s): first a replica that still looks active,
	// then one that is gone.
	time.Sleep(9 * time.Second)
	downFor := progress() - killedAt
	if err := r2.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	mu.Lock()
	kinds := make([]string, 0, len(failed))
	refused := 0
	for k, n := range failed {
		kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
		refused += n
	}
	mu.Unlock()
	sort.Strings(kinds)
	t.Logf("killed r2 after %d batches; %d acknowledged while it was down; refused writes: %s", killedAt, downFor, strings.Join(kinds, ", "))
	if refused == 0 {
		t.Errorf("no write was refused while a replica of a quorum of 2 was killed")
	}

	syncReplicas(t, c, Layout{Database: db, Table: "trail", Cluster: "audit"})
	want := fmt.Sprintf("%d\t%d", len(evs), len(evs))
	sums := make([]string, 0, 2)
	for _, srv := range []*chtest.Server{r1, r2} {
		got := query(t, srv, fmt.Sprintf("SELECT count(), uniqExact(seq) FROM %s.trail_local WHERE chain_id = 'chain-quorum-kill'", db))
		if got != want {
			t.Errorf("%s: rows, distinct sequences = %q, want %q (0 lost, 0 duplicated)", srv.Addr, got, want)
		}
		checkLookups(t, srv, db, "chain_id = 'chain-quorum-kill'", len(evs))
		sums = append(sums, query(t, srv, fmt.Sprintf("SELECT sum(cityHash64(seq, hash)) FROM %s.trail_local WHERE chain_id = 'chain-quorum-kill'", db)))
	}
	if sums[0] != sums[1] {
		t.Errorf("replicas differ: checksums %v", sums)
	}
	for _, addr := range c.Addrs() {
		r, err := configureSink(t, clusterConfig([]string{addr}, db, map[string]any{"table": "trail"}))
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, r, evs)
		checkChainCount(t, r, evs)
	}
}

// checkLookups checks on srv that the id, resource and actor lookups hold every one of the want
// events matching cond (ReplacingMergeTree: a row restored twice is merged away and read once),
// and that the chain summary covers them: its blocks count at least want rows (more only where a
// restore raced replication, recounted exactly by Chains) over exactly want sequences.
func checkLookups(t *testing.T, srv *chtest.Server, db, cond string, want int) {
	t.Helper()
	for _, tb := range []string{"trail_by_id_local", "trail_by_resource_local", "trail_by_actor_local"} {
		got := query(t, srv, fmt.Sprintf("SELECT uniqExact(chain_id, seq) FROM %s.%s WHERE %s", db, tb, cond))
		if got != fmt.Sprint(want) {
			t.Errorf("%s: %s holds %s distinct (chain, seq), want %d", srv.Addr, tb, got, want)
		}
	}
	got := query(t, srv, fmt.Sprintf("SELECT sum(n) >= %[3]d, sum(hi - lo + 1) FROM (SELECT countMerge(rows) AS n, minMerge(min_seq) AS lo, maxMerge(max_seq) AS hi FROM %[1]s.trail_chain_blocks_local WHERE %[2]s GROUP BY chain_id, block)", db, cond, want))
	if got != fmt.Sprintf("1\t%d", want) {
		t.Errorf("%s: chain summary (rows >= %d, sequences spanned) = %q, want 1 and %d", srv.Addr, want, got, want)
	}
}

// checkChainCount checks that the chain list through s counts want's chain exactly.
func checkChainCount(t *testing.T, s *Sink, want []chain.Event) {
	t.Helper()
	chains, err := s.Chains(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.ChainID == want[0].ChainID {
			if c.Count != uint64(len(want)) || c.First != 1 || c.Last != uint64(len(want)) {
				t.Errorf("Chains: %+v, want %d events 1..%d", c, len(want), len(want))
			}
			return
		}
	}
	t.Errorf("Chains lacks %s", want[0].ChainID)
}
