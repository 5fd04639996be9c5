package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// BenchmarkRetentionBlock measures one retention block (PlanRetention and Retain of
// DefaultRetentionBatch events, one transaction): how long the single writer is held, so how
// long a Write queued behind it waits. Run it on its own:
//
//	go test -run '^$' -bench RetentionBlock -benchtime 20x ./plugins/sqlite/
func BenchmarkRetentionBlock(b *testing.B) {
	s := benchSink(b, filepath.Join(b.TempDir(), "audit.db"), "")
	ctx := context.Background()
	const id = "chain-ret"
	var last *chain.Event
	total := (b.N + 1) * DefaultRetentionBatch
	for written := 0; written < total; written += 10000 {
		batch := sinktest.GenerateChain(id, 10000, sinktest.GenOptions{Seed: 1, After: last})
		last = &batch[len(batch)-1]
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	cutoff := last.Timestamp.Add(time.Hour)
	b.ResetTimer()
	for range b.N {
		plan, err := s.PlanRetention(ctx, id, cutoff, last.Sequence-1)
		if err != nil || !plan.Found {
			b.Fatal(plan, err)
		}
		res, err := s.Retain(ctx, sink.RetentionAnchor{ChainID: id, Sequence: plan.Sequence, Hash: plan.Hash, Cutoff: cutoff, Time: cutoff, KeyID: "k", Signature: "s"})
		if err != nil || res.Events != DefaultRetentionBatch {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.N*DefaultRetentionBatch)/b.Elapsed().Seconds(), "events/s")
}
