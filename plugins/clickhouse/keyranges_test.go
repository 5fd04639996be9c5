package clickhouse

import "testing"

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
