// Command seeddb fills a database of the sqlite plugin with generated audit events (two
// interleaved chains over 30 days, as the Audit Trail timing test uses). The browser test runs it
// as a separate process when the test binary is built with -race, where SQLite writes are ten
// times slower.
//
//	go run ./proxy/ui/internal/seeddb -n 100000 -out /tmp/audit.db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
)

func main() {
	n := flag.Int("n", 100000, "number of events")
	out := flag.String("out", "", "database file to create (required)")
	end := flag.String("end", "", "RFC 3339 time of the newest events (default: now)")
	flag.Parse()
	if err := run(*n, *out, *end); err != nil {
		fmt.Fprintln(os.Stderr, "seeddb:", err)
		os.Exit(1)
	}
}

func run(n int, out, endText string) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	end := time.Now().UTC()
	if endText != "" {
		t, err := time.Parse(time.RFC3339, endText)
		if err != nil {
			return fmt.Errorf("-end: %w", err)
		}
		end = t
	}
	ctx := context.Background()
	s := sqlite.New(sqlite.Options{})
	cfg, _ := json.Marshal(map[string]string{"path": out, "synchronous": "normal"})
	if err := s.Configure(ctx, cfg); err != nil {
		return fmt.Errorf("open %s: %w", out, err)
	}
	events := auditapitest.GenerateSpread(n, end)
	for i := 0; i < len(events); i += 5000 {
		if err := s.Write(ctx, events[i:min(i+5000, len(events))]); err != nil {
			_ = s.Close(ctx)
			return fmt.Errorf("write events %d..: %w", i, err)
		}
	}
	return s.Close(ctx)
}
