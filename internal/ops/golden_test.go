package ops

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenMode says how much of a family the golden exposition pins.
type goldenMode int

const (
	// modeValues: every series with its value (histograms and summaries: the observation count;
	// sums and bucket counts of durations vary).
	modeValues goldenMode = iota
	// modeSeries: every series' labels, not their values (timing-dependent counts: fsyncs,
	// batches, bytes that include durations).
	modeSeries
	// modeShape: the family's name, type and label names only (series that may or may not exist
	// depending on timing; Go and process collectors).
	modeShape
)

// goldenModes classifies every flowker_audit_ family. A family missing here fails the test, so
// a new metric is a conscious addition to the golden file (and to docs/OPERATIONS.md).
var goldenModes = map[string]goldenMode{
	"flowker_audit_build_info":                         modeValues,
	"flowker_audit_chain_sequence":                     modeValues,
	"flowker_audit_checkpoints_total":                  modeSeries,
	"flowker_audit_checkpoint_sequence":                modeSeries,
	"flowker_audit_events_total":                       modeValues,
	"flowker_audit_events_lost_total":                  modeValues,
	"flowker_audit_execution_replays_total":            modeValues,
	"flowker_audit_unclassified_mutations_total":       modeValues,
	"flowker_audit_journal_append_duration_seconds":    modeValues,
	"flowker_audit_journal_appended_events_total":      modeValues,
	"flowker_audit_journal_max_bytes":                  modeValues,
	"flowker_audit_journal_recovery_cut_records_total": modeValues,
	"flowker_audit_journal_writable":                   modeValues,
	"flowker_audit_journal_appended_bytes_total":       modeSeries,
	"flowker_audit_journal_bytes":                      modeSeries,
	"flowker_audit_journal_commit_duration_seconds":    modeSeries,
	"flowker_audit_journal_compacted_events_total":     modeSeries,
	"flowker_audit_journal_entries":                    modeSeries,
	"flowker_audit_journal_fsyncs_total":               modeSeries,
	"flowker_audit_journal_group_commit_events":        modeSeries,
	// Write-ahead intents and events that finish after the response (issue 13's journal and
	// proxy changes): present after the scenario, values depend on timing.
	"flowker_audit_intents_cut_total":                    modeSeries,
	"flowker_audit_intents_foreign_total":                modeSeries,
	"flowker_audit_intents_pending":                      modeSeries,
	"flowker_audit_intents_recovered_total":              modeSeries,
	"flowker_audit_intents_written_total":                modeSeries,
	"flowker_audit_journal_completions_total":            modeSeries,
	"flowker_audit_journal_intent_duration_seconds":      modeSeries,
	"flowker_audit_proxy_audited_forwarded_total":        modeSeries,
	"flowker_audit_proxy_events_late_total":              modeSeries,
	"flowker_audit_proxy_events_waiting":                 modeSeries,
	"flowker_audit_proxy_forwarded_without_intent_total": modeSeries,
	"flowker_audit_proxy_audit_hold_duration_seconds":    modeValues,
	"flowker_audit_proxy_in_flight_requests":             modeValues,
	"flowker_audit_proxy_held_bytes":                     modeValues,
	"flowker_audit_proxy_refused_total":                  modeValues,
	"flowker_audit_proxy_request_duration_seconds":       modeValues,
	"flowker_audit_proxy_requests_total":                 modeValues,
	"flowker_audit_upstream_request_duration_seconds":    modeValues,
	"flowker_audit_access_requests_total":                modeShape, // labelled by caller fingerprint (a generated key)
	"flowker_audit_access_events_returned_total":         modeShape,
	"flowker_audit_search_duration_seconds":              modeValues,
	"flowker_audit_search_requests_total":                modeValues,
	"flowker_audit_verify_failures_total":                modeValues,
	"flowker_audit_sink_acked_sequence":                  modeValues,
	"flowker_audit_sink_errors_total":                    modeValues,
	"flowker_audit_sink_lag_events":                      modeValues,
	"flowker_audit_sink_oldest_unacked_age_seconds":      modeValues,
	"flowker_audit_sink_plugin_restarts_total":           modeValues,
	"flowker_audit_sink_up":                              modeValues,
	"flowker_audit_sink_written_events_total":            modeValues,
	"flowker_audit_sink_batch_events":                    modeSeries,
	"flowker_audit_sink_write_duration_seconds":          modeSeries,
	"flowker_audit_watcher_abandoned_total":              modeValues,
	"flowker_audit_watcher_pending":                      modeValues,
	"flowker_audit_watcher_polls_total":                  modeShape,
	"flowker_audit_conflicting_duplicates_served_total":  modeValues,
	"flowker_audit_sink_conflict":                        modeValues,
	"flowker_audit_sink_conflicts_total":                 modeValues,
	// The access trail (access_events.enabled) and retention (a year, nothing removed in the
	// scenario): present at zero.
	"flowker_audit_access_events_recorded_total":   modeSeries,
	"flowker_audit_access_events_lost_total":       modeValues,
	"flowker_audit_retention_anchor_sequence":      modeValues,
	"flowker_audit_retention_errors_total":         modeValues,
	"flowker_audit_retention_removed_blocks_total": modeValues,
	"flowker_audit_retention_removed_events_total": modeValues,
	// The background scrub (issue 20): its counts and pass time depend on timing.
	"flowker_audit_sink_scrub_problem":                     modeValues,
	"flowker_audit_sink_scrub_problem_sequence":            modeValues,
	"flowker_audit_sink_scrub_problems_total":              modeValues,
	"flowker_audit_sink_scrub_errors_total":                modeSeries,
	"flowker_audit_sink_scrub_verified_events_total":       modeSeries,
	"flowker_audit_sink_scrub_last_pass_timestamp_seconds": modeSeries,
}

// normalizedLabels are label values that differ between runs and machines.
var normalizedLabels = map[string]string{"chain": "<chain>", "revision": "<revision>", "goversion": "<goversion>"}

// renderGolden renders fams in the golden format: per family a header line with its type, label
// names and histogram buckets, then its series as the family's mode allows.
func renderGolden(t *testing.T, fams families) string {
	t.Helper()
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		mf := fams[name]
		mode, known := goldenModes[name]
		switch {
		case strings.HasPrefix(name, "flowker_audit_") && !known:
			t.Errorf("metric family %s is not classified in goldenModes", name)
			mode = modeShape
		case !strings.HasPrefix(name, "flowker_audit_"):
			mode = modeShape // Go and process collectors
		}
		labelNames := map[string]bool{}
		var buckets []string
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labelNames[l.GetName()] = true
			}
			if h := m.GetHistogram(); h != nil && buckets == nil {
				for _, bk := range h.GetBucket() {
					buckets = append(buckets, strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64))
				}
			}
		}
		ln := make([]string, 0, len(labelNames))
		for l := range labelNames {
			ln = append(ln, l)
		}
		sort.Strings(ln)
		fmt.Fprintf(&b, "# %s %s labels=[%s]", name, strings.ToLower(mf.GetType().String()), strings.Join(ln, ","))
		if buckets != nil && strings.HasPrefix(name, "flowker_audit_") {
			fmt.Fprintf(&b, " buckets=[%s]", strings.Join(buckets, ","))
		}
		b.WriteString("\n")
		if mode == modeShape {
			continue
		}
		var lines []string
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if n, ok := normalizedLabels[l.GetName()]; ok {
					v = n
				}
				parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), v))
			}
			line := name + "{" + strings.Join(parts, ",") + "}"
			if mode == modeValues {
				v := metricValue(m)
				if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY {
					line += " count=" + strconv.FormatFloat(v, 'g', -1, 64)
				} else {
					line += " " + strconv.FormatFloat(v, 'g', -1, 64)
				}
			}
			lines = append(lines, line)
		}
		sort.Strings(lines)
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// checkGolden compares the normalised exposition with testdata/name (go test -update rewrites it).
func checkGolden(t *testing.T, fams families, name string) {
	t.Helper()
	got := renderGolden(t, fams)
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/ops -run TestRunningSidecar -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("the exposition after the scenario differs from %s (if intended: go test ./internal/ops -run TestRunningSidecar -update):\n%s",
			path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		g[l]++
	}
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
