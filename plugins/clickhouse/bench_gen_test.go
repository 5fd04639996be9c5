package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
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
