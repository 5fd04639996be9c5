package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/plugins/file"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// TestRetentionThroughTheSidecar: with `retention` on the SQLite query sink and on a file archive,
// the running sidecar removes old events from both (a clock moved two hours ahead), behind signed
// anchors, only what both acknowledged, and /verify then checks the trail from the anchor and
// says so.
func TestRetentionThroughTheSidecar(t *testing.T) {
	var ahead atomic.Int64 // nanoseconds the retention clock runs ahead
	archive := t.TempDir()
	env := testenv.Start(t, testenv.Options{
		Config: func(c *config.Config) {
			c.Chain.CheckpointInterval = config.Duration(time.Second)
			c.Sinks[0].Retention = config.Duration(time.Hour)
			c.Sinks = append(c.Sinks, config.Sink{Name: "archive", Plugin: "file", Retention: config.Duration(time.Hour),
				Config: map[string]any{"dir": archive, "max_bytes": 4096}})
		},
		RetentionTuning: func(r *host.Retention, every *time.Duration) {
			r.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
			*every = 100 * time.Millisecond
		},
	})
	for i := range 12 {
		if r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": fmt.Sprintf("ret-%d", i)}); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	env.WaitDelivered(30 * time.Second)
	verify := func() auditapi.VerifyOutput {
		t.Helper()
		evs := env.AllEvents()
		r := env.Audit("/v1/audit-events/" + evs[len(evs)-1].EventID + "/verify")
		var v auditapi.VerifyOutput
		r.JSON(t, &v)
		return v
	}
	if v := verify(); !v.IsValid || v.RetentionAnchor != nil || v.VerifiedFrom != 1 {
		t.Fatalf("before retention: %+v", v)
	}
	filesBefore, _ := filepath.Glob(filepath.Join(archive, "audit-*.ndjson"))
	if len(filesBefore) < 3 {
		t.Fatalf("%d archive files, want several rotated ones", len(filesBefore))
	}

	ahead.Store(int64(2 * time.Hour))
	var v auditapi.VerifyOutput
	testenv.Eventually(t, 30*time.Second, "retention in the query sink", func() bool {
		v = verify()
		return v.RetentionAnchor != nil
	})
	if !v.IsValid || v.VerifiedFrom != v.RetentionAnchor.Sequence+1 || v.FromSequence != 1 {
		t.Fatalf("after retention: %+v", v)
	}
	testenv.Eventually(t, 30*time.Second, "retention in the archive: its oldest file removed behind an anchor", func() bool {
		_, err := os.Stat(filesBefore[0])
		_, aerr := os.Stat(filepath.Join(archive, file.AnchorFile("audit")))
		return os.IsNotExist(err) && aerr == nil
	})
	// Every sink keeps its head: the newest events are still searchable.
	if evs := env.AllEvents(); len(evs) == 0 || evs[len(evs)-1].Sequence != env.App.Journal().Last() {
		t.Fatalf("the newest event is gone from the query sink")
	}
}
