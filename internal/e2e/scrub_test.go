package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// scrubState returns what the scrub reports: the problem gauge, the problem's sequence and the
// readiness detail.
func (r *tamperRun) scrubState() (problem bool, seq string, detail string) {
	r.t.Helper()
	m := r.metrics()
	problem = strings.Contains(m, `flowker_audit_sink_scrub_problem{sink="store"} 1`)
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, `flowker_audit_sink_scrub_problem_sequence{sink="store"} `) {
			seq = strings.Fields(l)[1]
		}
	}
	_, rd := r.env.App.Ready()
	c := rd.Checks["scrub:store"]
	if c.Status == "problem" {
		detail = c.Error
	}
	return problem, seq, detail
}

// TestScrubFindsRowsBelowTheCursor: rows changed below the delivery cursor, where delivery never
// looks again, in a real SQLite store and a real clickhouse-server: the background scrub
// (chain.scrub_interval, small batches so that a pass takes several steps) names the sequence in
// its metric, readiness detail and log, while delivery goes on; once the row is put back, a full
// pass clears the report.
func TestScrubFindsRowsBelowTheCursor(t *testing.T) {
	ch := chtest.Start(t)
	scrub := func(c *config.Config) {
		c.Chain.ScrubInterval = config.Duration(100 * time.Millisecond)
		c.Chain.ScrubBatch = 6
	}
	cases := []struct {
		name, stores string
		tamper       func(t *testing.T, r *tamperRun) (seq uint64, reason string)
		undo         func(t *testing.T, r *tamperRun)
	}{
		{name: "field edit", tamper: func(t *testing.T, r *tamperRun) (uint64, string) {
			e := r.stored[6]
			e.ResourceID = "edited-below-the-cursor"
			r.st.replace(t, r.dir, e)
			return 7, "hash mismatch"
		}, undo: func(t *testing.T, r *tamperRun) { r.st.replace(t, r.dir, r.stored[6]) }},
		{name: "insert-only duplicate", stores: "clickhouse", tamper: func(t *testing.T, r *tamperRun) (uint64, string) {
			dup := r.stored[8]
			dup.EventID = "00000000-0000-4000-8000-000000000009"
			if err := r.st.insert(t, r.dir, forge(dup)); err != nil {
				t.Fatal(err)
			}
			return 9, "duplicate"
		}},
	}
	for i, tc := range cases {
		for _, st := range []tamperStore{sqliteStore{}, clickhouseStore{ch: ch, db: fmt.Sprintf("scrub_%d", i)}} {
			if tc.stores != "" && tc.stores != st.name() {
				continue
			}
			t.Run(st.name()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				r := newTamperRun(t, st, scrub)
				r.start()
				testenv.Eventually(t, 30*time.Second, "a clean scrub pass", func() bool {
					return strings.Contains(r.metrics(), `flowker_audit_sink_scrub_verified_events_total{sink="store"}`) &&
						!strings.Contains(r.metrics(), `flowker_audit_sink_scrub_last_pass_timestamp_seconds{sink="store"} 0`)
				})
				seq, reason := tc.tamper(t, r)
				want := fmt.Sprintf("sequence %d (%s)", seq, reason)
				var detail string
				testenv.Eventually(t, 30*time.Second, "the scrub to report "+want, func() bool {
					p, s, d := r.scrubState()
					detail = d
					return p && s == fmt.Sprint(seq) && strings.Contains(d, want)
				})
				t.Logf("%s scrub: %s", st.name(), detail)
				if logs := r.logs.String(); !strings.Contains(logs, "scrub: the query sink's stored chain is broken") || !strings.Contains(logs, fmt.Sprintf("sequence=%d", seq)) {
					t.Fatalf("no scrub error in the log:\n%s", logs)
				}
				if ready, _ := r.env.App.Ready(); !ready {
					t.Fatal("a scrub problem made the sidecar unready")
				}
				// Delivery is not blocked.
				r.write(3)
				r.env.WaitDelivered(30 * time.Second)
				if tc.undo == nil {
					return
				}
				tc.undo(t, r)
				testenv.Eventually(t, 30*time.Second, "the scrub to clear its report", func() bool {
					p, s, d := r.scrubState()
					return !p && s == "0" && d == ""
				})
			})
		}
	}
}
