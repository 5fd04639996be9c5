package app

import (
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// buildScrub prepares the background scrub of the query sink (chain.scrub_interval): the shared
// verifier over the stored chain with the checkpoint log, a batch per interval, round and round.
func (a *App) buildScrub() error {
	if a.query == nil || a.cfg.Chain.ScrubInterval <= 0 {
		return nil
	}
	evidence, err := a.checkpointEvidence()
	if err != nil {
		return err
	}
	a.scrub = host.NewScrubber(a.query, host.ScrubConfig{Interval: a.cfg.Chain.ScrubInterval.D(), Batch: a.cfg.Chain.ScrubBatch, Evidence: evidence},
		host.NewScrubMetrics(a.reg), a.log.With("component", "sink"))
	return nil
}

// scrubReadiness adds what the scrub found to readiness as a detail: a broken stored chain does
// not make the sidecar unready (the journal and delivery work; the proxy must keep auditing), but
// /readyz names it beside the FlowkerAuditSinkScrubProblem alert.
func (a *App) scrubReadiness(r *Readiness) {
	if a.scrub == nil {
		return
	}
	c := CheckResult{Status: "up"}
	if p := a.scrub.Problem(); p != "" {
		c = CheckResult{Status: "problem", Error: p}
	}
	r.Checks["scrub:"+a.query.Name()] = c
}
