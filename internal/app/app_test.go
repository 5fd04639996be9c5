package app

import (
	"context"
	"testing"

	"github.com/flowker-audit/flowker-audit/config"
)

// An App made with New but never run holds the journal's file lock until Close; after Close a
// second App opens the same data_dir at once.
func TestCloseReleasesAnAppNeverRun(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Sinks = nil
	cfg.Chain.CheckpointInterval = 0
	cfg.Listen.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
	for i := range 2 {
		a, err := New(context.Background(), Options{Config: cfg})
		if err != nil {
			t.Fatalf("New #%d: %v", i+1, err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close #%d: %v", i+1, err)
		}
	}
}
