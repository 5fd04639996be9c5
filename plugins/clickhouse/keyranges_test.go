package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// TestKeyRanges: fetchByKeys bounds one time range per cluster of nearby keys, never one range
// from the oldest key to the newest (which reads everything in between).
func TestKeyRanges(t *testing.T) {
	t.Parallel()
	const gap = keyClusterGap
	tests := []struct {
		name string
		ts   []int64
		want string
	}{
		{"one key", []int64{5_000_000}, "((ts_us >= 5000000 AND ts >= toDateTime(5) AND ts_us <= 5000000 AND ts <= toDateTime(5)))"},
		{"close keys share a range, in any order", []int64{3_000_000, 1_000_000, 2_000_000},
			"((ts_us >= 1000000 AND ts >= toDateTime(1) AND ts_us <= 3000000 AND ts <= toDateTime(3)))"},
		{"far keys get ranges of their own", []int64{1_000_000, 1_000_000 + gap + 1, 1_000_000 + 3*gap},
			"((ts_us >= 1000000 AND ts >= toDateTime(1) AND ts_us <= 1000000 AND ts <= toDateTime(1))" +
				" OR (ts_us >= 61000001 AND ts >= toDateTime(61) AND ts_us <= 61000001 AND ts <= toDateTime(61))" +
				" OR (ts_us >= 181000000 AND ts >= toDateTime(181) AND ts_us <= 181000000 AND ts <= toDateTime(181)))"},
		{"a gap of exactly the limit is read through", []int64{1_000_000, 1_000_000 + gap},
			"((ts_us >= 1000000 AND ts >= toDateTime(1) AND ts_us <= 61000000 AND ts <= toDateTime(61)))"},
		{"before 1970: no ts bound", []int64{-5_000_000},
			"((ts_us >= -5000000 AND ts_us <= -5000000))"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := make([]key, len(tc.ts))
			for i, ts := range tc.ts {
				keys[i] = key{ts: ts, chain: "c", seq: uint64(i + 1)}
			}
			if got := keyRanges(keys); got != tc.want {
				t.Errorf("keyRanges:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

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
