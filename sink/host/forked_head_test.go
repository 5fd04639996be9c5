package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/host/internal/memsource"
)

// compacting is a journal that no longer holds the events below a sequence.
type compacting struct {
	*memsource.Source
	below atomic.Uint64
}

func (c *compacting) Read(ctx context.Context, from uint64, maxEvents, maxBytes int) ([]chain.Event, error) {
	evs, err := c.Source.Read(ctx, max(from, c.below.Load()), maxEvents, maxBytes)
	return evs, err
}

// A head found forked stays a conflict after the journal stops holding its sequence (the journal
// moved on and compacted it), as long as the sink still reports that very head: delivery never
// resumes on top of a rewritten event.
func TestForkedHeadStaysAConflictAfterCompaction(t *testing.T) {
	src := &compacting{Source: memsource.New("chain-f")}
	src.Append(10, 100)
	path := filepath.Join(t.TempDir(), "log")
	forged := fmt.Sprintf(`{"chainId":"chain-f","sequence":5,"hash":%q}`, strings.Repeat("f", 64))
	if err := os.WriteFile(path, []byte(forged+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	logs := &syncBuffer{}
	sup := NewSupervisor(testConfig("f", selfLaunch(t, "applog"), map[string]any{"path": path}), src, m, slog.New(slog.NewTextHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the conflict", func() bool { return testutil.ToFloat64(m.conflict.WithLabelValues("f")) == 1 })
	src.below.Store(6) // the journal no longer holds sequence 5
	n := strings.Count(logs.String(), "still conflicts")
	waitFor(t, "two re-checks after the compaction", func() bool { return strings.Count(logs.String(), "still conflicts") >= n+2 })
	if ok, why := sup.Ready(); ok || !strings.Contains(why, "which disagreed with the journal when it was found") {
		t.Fatalf("Ready() = %v, %q", ok, why)
	}
	if acks := src.Acks("f"); len(acks) != 0 {
		t.Fatalf("acks %v: delivery resumed on top of the forked head", acks)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil { // the operator removes the forged row
		t.Fatal(err)
	}
	waitFor(t, "the conflict to clear", func() bool { return testutil.ToFloat64(m.conflict.WithLabelValues("f")) == 0 })
}
