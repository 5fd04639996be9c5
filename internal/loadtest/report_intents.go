package loadtest

import (
	"slices"
	"strings"
)

// intentsClosedRow is one concurrency of the before/after comparison of audited writes.
type intentsClosedRow struct {
	C                         int
	Before, After             []float64 // req/s per round
	BeforeMedian, AfterMedian float64
	Ratio                     float64 // after / before, medians
	CPUBefore, CPUAfter       float64 // sidecar CPU µs per request, medians over rounds
}

// intentsPacedRow is the paced run of one build: p50 and p99 per round and their medians.
type intentsPacedRow struct {
	Build            string
	P50, P99         []float64
	P50Med, P99Med   float64
	Achieved         []float64
	DirectP99Med     float64
	Fsyncs           float64 // fsyncs per audited POST over every run of the build
	ChecksOK, Checks int
	// Waits are the medians of the paced runs' journal waits (nil when the runs have none).
	Waits *JournalWaits
}

// proxyIntents renders section 1c: audited writes of the design before write-ahead intents
// against this checkout, from scripts/bench-intents.sh.
func (x *renderer) proxyIntents() {
	s := x.r.Sections["proxy-intents"]
	ratioTarget := x.s("target-intents-ratio", TargetIntentsRatio)
	p99Target := x.s("target-intents-p99", TargetIntentsP99)
	x.t("intents-title", nil)
	before, after := x.r.IntentsBefore, x.r.IntentsAfter
	if !x.header(s, "section proxy-intents") || len(before) == 0 || len(after) == 0 {
		x.notMeasured(ratioTarget)
		x.notMeasured(p99Target)
		return
	}
	var rows []intentsClosedRow
	for _, c := range intentsConcurrencies(before) {
		row := intentsClosedRow{C: c}
		var cpuB, cpuA []float64
		for _, p := range before {
			if r := closedPOST(p, c); r != nil {
				row.Before = append(row.Before, r.RPS)
				cpuB = append(cpuB, cpuPerRequest(r))
			}
		}
		for _, p := range after {
			if r := closedPOST(p, c); r != nil {
				row.After = append(row.After, r.RPS)
				cpuA = append(cpuA, cpuPerRequest(r))
			}
		}
		if len(row.Before) == 0 || len(row.After) == 0 {
			continue
		}
		row.BeforeMedian, row.AfterMedian = median(row.Before), median(row.After)
		row.CPUBefore, row.CPUAfter = median(cpuB), median(cpuA)
		if row.BeforeMedian > 0 {
			row.Ratio = row.AfterMedian / row.BeforeMedian
		}
		rows = append(rows, row)
	}
	paced := []intentsPacedRow{intentsPaced("before", before), intentsPaced("after", after)}
	x.t("intents", struct {
		Rounds int
		Closed []intentsClosedRow
		Paced  []intentsPacedRow
		Log    string
		Body   int
	}{len(before), rows, paced, strings.Join(grepLines(s.Out, "round ", "building "), "\n"), before[0].BodyBytes})

	if len(rows) == 0 {
		x.notMeasured(ratioTarget)
	} else {
		met := true
		var parts []string
		for _, r := range rows {
			met = met && r.Ratio >= TargetIntentsRatio
			parts = append(parts, x.s("measured-intents-ratio", r))
		}
		x.verdict(ratioTarget, met, true, parts...)
	}
	if len(paced[0].P99) == 0 || len(paced[1].P99) == 0 {
		x.notMeasured(p99Target)
	} else {
		added := paced[1].P99Med - paced[0].P99Med
		x.verdict(p99Target, added <= TargetIntentsP99, true,
			x.s("measured-intents-p99", struct{ Added, Before, After float64 }{added, paced[0].P99Med, paced[1].P99Med}))
	}
}

func intentsConcurrencies(reports []*ProxyReport) []int {
	var cs []int
	for _, p := range reports {
		for _, r := range p.Runs {
			if r.Method == "POST" && r.Via == "sidecar" && r.Rate == 0 && !slices.Contains(cs, r.Concurrency) {
				cs = append(cs, r.Concurrency)
			}
		}
	}
	slices.Sort(cs)
	return cs
}

// closedPOST returns the first closed-loop audited POST run at concurrency c.
func closedPOST(p *ProxyReport, c int) *ProxyRun {
	for i := range p.Runs {
		r := &p.Runs[i]
		if r.Method == "POST" && r.Via == "sidecar" && r.Rate == 0 && r.Concurrency == c {
			return r
		}
	}
	return nil
}

func cpuPerRequest(r *ProxyRun) float64 {
	if r.RPS <= 0 {
		return 0
	}
	return r.CPU.Sidecar / r.RPS * 1e6
}

func intentsPaced(build string, reports []*ProxyReport) intentsPacedRow {
	row := intentsPacedRow{Build: build}
	var direct []float64
	var waits []JournalWaits
	var fsyncs, posts float64
	for _, p := range reports {
		for i := range p.Runs {
			r := &p.Runs[i]
			if r.Method != "POST" || r.Rate <= 0 {
				continue
			}
			if r.Via == "direct" {
				direct = append(direct, r.P99)
				continue
			}
			row.P50 = append(row.P50, r.P50)
			row.P99 = append(row.P99, r.P99)
			row.Achieved = append(row.Achieved, r.RPS)
			if r.Journal != nil {
				waits = append(waits, *r.Journal)
			}
		}
		fsyncs += p.EventCheck.Fsyncs
		posts += float64(p.EventCheck.SidecarPOSTs)
		row.Checks++
		if p.EventCheck.OK {
			row.ChecksOK++
		}
	}
	if len(row.P99) > 0 {
		row.P50Med, row.P99Med = median(row.P50), median(row.P99)
	}
	if len(direct) > 0 {
		row.DirectP99Med = median(direct)
	}
	if len(waits) > 0 {
		of := func(f func(JournalWaits) float64) float64 {
			v := make([]float64, len(waits))
			for i, w := range waits {
				v[i] = f(w)
			}
			return median(v)
		}
		row.Waits = &JournalWaits{
			IntentP50Ms: of(func(w JournalWaits) float64 { return w.IntentP50Ms }),
			IntentP99Ms: of(func(w JournalWaits) float64 { return w.IntentP99Ms }),
			EventP50Ms:  of(func(w JournalWaits) float64 { return w.EventP50Ms }),
			EventP99Ms:  of(func(w JournalWaits) float64 { return w.EventP99Ms }),
			CommitP99Ms: of(func(w JournalWaits) float64 { return w.CommitP99Ms }),
		}
	}
	if posts > 0 {
		row.Fsyncs = fsyncs / posts
	}
	return row
}

// median of v (the mean of the two middle values for an even count); v is not changed.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// roundsList formats per-round figures: "4,040 / 3,744".
func roundsList(v []float64, format func(float64) string) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = format(f)
	}
	return strings.Join(parts, " / ")
}
