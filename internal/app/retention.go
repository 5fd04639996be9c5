package app

import (
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// retention returns the retention driver and how often it runs, or nil when no sink has a
// retention period (or checkpoints are off: configuration validation refuses that combination,
// because anchors are signed with the checkpoint key).
//
// It runs every retention/100, between one minute and one hour: a seven-year retention is
// applied hourly, removal lagging the cutoff by at most an hour (plus the block granularity of
// each sink: a ClickHouse partition is a month).
func (a *App) retention() (*host.Retention, time.Duration) {
	if a.checkpoints == nil {
		return nil, 0
	}
	var shortest time.Duration
	for _, c := range a.sinkConfigs {
		if c.Retention > 0 && (shortest == 0 || c.Retention < shortest) {
			shortest = c.Retention
		}
	}
	if shortest == 0 {
		return nil, 0
	}
	signer := a.checkpoints.Signer
	r := &host.Retention{
		Sinks:  a.supervisors,
		Source: a.journal,
		Sign: func(chainID string, seq uint64, hash string, cutoff, now time.Time) (sink.RetentionAnchor, error) {
			an, err := signer.SignAnchor(chainID, seq, hash, cutoff, now)
			return sink.RetentionAnchor(an), err
		},
		Metrics: host.NewRetentionMetrics(a.reg),
		Logger:  a.log.With("component", "retention"),
	}
	for _, c := range a.sinkConfigs {
		if c.Retention > 0 {
			r.Metrics.Init(c.Name)
		}
	}
	every := min(max(shortest/100, time.Minute), time.Hour)
	if a.retTuning != nil {
		a.retTuning(r, &every)
	}
	return r, every
}
