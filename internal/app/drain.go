package app

import (
	"context"
	"time"
)

// DrainReport says what a shutdown drain achieved.
type DrainReport struct {
	// Undelivered is, per sink, how many events it had not acknowledged when the drain ended.
	Undelivered map[string]uint64
	// Retained is how many events the journal still holds after the final compaction (0 when
	// every sink acknowledged everything).
	Retained int64
	// Complete is true when every sink acknowledged every event.
	Complete bool
}

// drain runs once nothing is appended any more (listeners closed, in-flight requests done,
// watcher stopped): it waits until every sink acknowledged the journal's last sequence, or
// until the deadline, then removes what every sink acknowledged from the journal, so that a
// volume that may not come back (a pod's ephemeral volume, a rolled-out node) holds nothing
// undelivered. What is left is logged per sink and stays in the journal for the next start.
func (a *App) drain(deadline time.Time) DrainReport {
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	a.log.Info("draining the journal into the sinks", "last_sequence", a.journal.Last(), "deadline", deadline.Sub(start).Round(time.Millisecond).String())
	a.waitDelivered(ctx)
	rep := DrainReport{Undelivered: map[string]uint64{}, Complete: true}
	for _, s := range a.supervisors {
		if lag := s.Lag(); lag > 0 {
			rep.Undelivered[s.Name()] = lag
			rep.Complete = false
		}
	}
	// Compact now rather than at the next tick (the compaction loop has stopped): use a fresh
	// context so that a drain that used up the deadline still removes what was acknowledged.
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if upTo, ok := a.acknowledgedByAll(); ok && upTo > 0 {
		if _, err := a.journal.Compact(cctx, upTo); err != nil {
			a.log.Warn("final journal compaction failed", "err", err)
		}
	}
	rep.Retained, _, _ = a.journal.Stats()
	if rep.Complete {
		a.log.Info("journal drained: every event was delivered to every sink", "retained_events", rep.Retained,
			"took", time.Since(start).Round(time.Millisecond).String())
	} else {
		args := []any{"retained_events", rep.Retained, "took", time.Since(start).Round(time.Millisecond).String()}
		for name, n := range rep.Undelivered {
			args = append(args, "undelivered_events."+name, n)
		}
		a.log.Warn("shutdown deadline reached before the sinks caught up: the undelivered events stay in the journal and are delivered after the next start on this volume",
			args...)
	}
	a.lastDrain.Store(&rep)
	return rep
}

// acknowledgedByAll returns the highest sequence every sink acknowledged (their lowest cursor).
func (a *App) acknowledgedByAll() (uint64, bool) {
	upTo := uint64(0)
	for i, s := range a.supervisors {
		c, err := a.journal.Cursor(s.Name())
		if err != nil {
			a.log.Warn("reading a sink cursor", "sink", s.Name(), "err", err)
			return 0, false
		}
		if i == 0 || c < upTo {
			upTo = c
		}
	}
	return upTo, len(a.supervisors) > 0
}

// LastDrain returns the report of the shutdown drain (nil before Run stopped).
func (a *App) LastDrain() *DrainReport { return a.lastDrain.Load() }
