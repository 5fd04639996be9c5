package clickhouse

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// TestBenchRareActorsKeepTheChainValid: the benchmark's rare actors are spread over the data set
// and the re-sealed chain still verifies across batches.
func TestBenchRareActorsKeepTheChainValid(t *testing.T) {
	t.Parallel()
	env := benchEnv{events: 5000, batch: 1500, gap: time.Second}
	v := chain.NewVerifier(benchChainID, 1, "")
	rare := map[string]int{}
	i := 0
	for batch := range generate(context.Background(), env) {
		for j := range batch {
			if err := v.Add(&batch[j]); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if id, ok := rareActor(i); ok != (batch[j].Actor.ID == id) || (ok && batch[j].Actor.Type != chain.ActorAPIKey) {
				t.Fatalf("event %d: actor %+v, rare %q %v", i, batch[j].Actor, id, ok)
			}
			if ok := strings.HasPrefix(batch[j].Actor.ID, "key:rare"); ok {
				rare[batch[j].Actor.ID]++
			}
			i++
		}
	}
	if i != 5000 || len(rare) != 5 {
		t.Fatalf("%d events, rare actors %v", i, rare)
	}
}

// TestBenchProxyContexts: the cluster benchmark's proxy-shaped contexts are canonical JSON of the
// sidecar's keys, far smaller than sinktest's, and the re-sealed chain verifies across batches.
func TestBenchProxyContexts(t *testing.T) {
	t.Parallel()
	env := benchEnv{batch: 700, gap: time.Second}
	v := chain.NewVerifier("ctx-chain", 1, "")
	total, n := 0, 0
	for batch := range generateChain(context.Background(), "ctx-chain", 5, 2000, env, contextProxy) {
		for j := range batch {
			e := &batch[j]
			if err := v.Add(e); err != nil {
				t.Fatalf("event %d: %v", n, err)
			}
			canon, err := jsonb.Canonical(e.Context)
			if err != nil || !bytes.Equal(canon, e.Context) {
				t.Fatalf("event %d: context is not canonical (%v): %s", n, err, e.Context)
			}
			for _, k := range []string{`"method"`, `"path"`, `"route"`, `"requestId"`, `"status"`, `"auth"`, `"request"`, `"response"`} {
				if !bytes.Contains(e.Context, []byte(k)) {
					t.Fatalf("event %d: context lacks %s: %s", n, k, e.Context)
				}
			}
			total += len(e.Context)
			n++
		}
	}
	if n != 2000 || total/n < 300 || total/n > 1200 {
		t.Fatalf("%d events, mean context %d bytes", n, total/max(n, 1))
	}
	t.Logf("mean proxy-shaped context: %d bytes", total/n)
}

// TestBenchGenerateAfterContinues: a load continued after a stored head (generateChainAfter)
// writes the very batches an uninterrupted load writes after it.
func TestBenchGenerateAfterContinues(t *testing.T) {
	t.Parallel()
	env := benchEnv{batch: 500, gap: time.Second}
	var all []chain.Event
	for batch := range generateChain(context.Background(), "resume-chain", 9, 2000, env, contextProxy) {
		all = append(all, batch...)
	}
	head := all[999] // after two whole batches, as a load stopped there stored it
	var rest []chain.Event
	for batch := range generateChainAfter(context.Background(), "resume-chain", 9, 2000, env, contextProxy, &head) {
		rest = append(rest, batch...)
	}
	if len(rest) != 1000 {
		t.Fatalf("continued with %d events, want 1000", len(rest))
	}
	for i := range rest {
		if !sameEvent(&rest[i], &all[1000+i]) {
			t.Fatalf("event %d differs from the uninterrupted load's:\n%+v\n%+v", 1001+i, rest[i], all[1000+i])
		}
	}
}
