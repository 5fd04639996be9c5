package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// Intent recovery. An intent is written before an audited request is forwarded and resolved by
// its event; one still unresolved when the sidecar starts belongs to a request of the previous
// run whose event was never journaled (the process died, or its journal failed, in between).
// Recovery runs alongside new traffic, right after the listeners open: it turns each such
// intent into exactly one event, resolving the intent in the event's own transaction, so a crash
// during recovery leaves the rest for the next start and never records one twice.

const (
	// recoverySkew is the clock difference tolerated between the sidecar and Flowker.
	recoverySkew = time.Second
	// recoveryPatience is how long recovery keeps asking an unreachable Flowker before it
	// records the outcome as unknown.
	recoveryPatience = 2 * time.Minute
)

// loadIntents snapshots the unresolved intents before any new request is served: all of them
// belong to the previous run.
func (a *App) loadIntents() error {
	in, err := a.journal.Intents()
	if err != nil {
		return fmt.Errorf("reading unresolved intents: %w", err)
	}
	a.unresolved = in
	if len(in) > 0 {
		a.log.Warn("requests of the previous run reached (or may have reached) Flowker without an event: recovering them",
			"intents", len(in))
	}
	return nil
}

func (a *App) newReconciler() *reconciler {
	return &reconciler{
		base: a.upstream, client: &http.Client{Transport: a.transport, Timeout: 15 * time.Second},
		apiKey: a.cfg.Watcher.APIKey, authorization: a.cfg.Watcher.Authorization, journal: a.journal,
		skew: recoverySkew, until: a.started.Add(recoverySkew), claimed: map[string]bool{}, maxPages: 50,
	}
}

// recoverIntents turns every intent of the previous run into exactly one event.
func (a *App) recoverIntents(ctx context.Context) {
	if len(a.unresolved) == 0 {
		return
	}
	rc := a.newReconciler()
	counts := map[string]int{}
	for _, in := range recoveryOrder(a.unresolved) {
		outcome, err := a.recoverIntent(ctx, rc, in)
		if err != nil {
			a.log.Error("intent recovery stopped; the rest are recovered at the next start", "err", err)
			return
		}
		counts[outcome]++
	}
	a.log.Info("intent recovery done", "observed", counts["observed"], "reconciled", counts["reconciled"], "unknown", counts["unknown"], "already_recorded", counts["duplicate"])
	a.unresolved = nil
}

// recoverIntent journals the event of one intent: the one observed before the answer when the
// intent has its completion, else one whose outcome is learned from Flowker. It retries while
// Flowker or the journal is unavailable, until ctx ends.
func (a *App) recoverIntent(ctx context.Context, rc *reconciler, in journal.Intent) (string, error) {
	firstTry := time.Now()
	backoff := 250 * time.Millisecond
	for {
		label, err := a.recoverOnce(ctx, rc, in, firstTry)
		if err == nil {
			return label, nil
		}
		a.log.Warn("recovering an intent: retrying", "event_id", in.ID, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// recoverOnce makes one attempt of recoverIntent.
func (a *App) recoverOnce(ctx context.Context, rc *reconciler, in journal.Intent, firstTry time.Time) (string, error) {
	if in.Completion != nil {
		// Answered, and its event written before the answer: appended as it was observed.
		return a.journalRecovered(ctx, rc, *in.Completion, "observed", in.Completion.ResourceID)
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := rc.learn(lctx, in)
	cancel()
	if err != nil && ctx.Err() == nil && time.Since(firstTry) > recoveryPatience {
		out, err = unknown("Flowker could not be asked for %s: %v", recoveryPatience, err), nil
	} else if err != nil && !errors.Is(err, errFlowker) && ctx.Err() == nil {
		out, err = unknown("Flowker's answer could not be used: %v", err), nil
	}
	if err != nil {
		return "", err
	}
	label := "unknown"
	if out.Reconciled {
		label = "reconciled"
	}
	return a.journalRecovered(ctx, rc, recoveredDraft(in, out, time.Now()), label, out.ResourceID, "evidence", out.Evidence, "reason", out.Reason)
}

// journalRecovered appends d, the event of a recovered intent (resolving it in the same
// transaction), and counts it with outcome label; claim is the resource the intent is now known
// to have made ("" if none), no longer a candidate for the intents matched by time window.
func (a *App) journalRecovered(ctx context.Context, rc *reconciler, d journal.Draft, label, claim string, attrs ...any) (string, error) {
	ev, err := a.journal.Append(ctx, d)
	switch {
	case errors.Is(err, journal.ErrDuplicate):
		// The execution was recorded meanwhile (by the watcher's or a client's replay): the
		// intent is resolved without a second event.
		return "duplicate", nil
	case err != nil:
		return "", err
	}
	if claim != "" {
		rc.claimed[claim] = true
	}
	a.journalMetrics.IntentsRecovered.WithLabelValues(label).Inc()
	a.proxyMetrics.Events.WithLabelValues(ev.EventType, ev.Result).Inc()
	if d.Watch != nil && a.watcher != nil {
		a.watcher.Started(d.Watch.ExecutionID, d.Watch.WorkflowID)
	}
	a.log.Warn("event recovered from an intent", append([]any{"event_id", ev.EventID, "sequence", ev.Sequence, "event_type", ev.EventType,
		"result", ev.Result, "resource_id", ev.ResourceID, "outcome", label}, attrs...)...)
	return label, nil
}

// recoveredDraft is the event of a recovered intent: the draft the intent holds, with the result
// and resource learned, and the context saying how ("outcome": "reconciled" with the evidence, or
// "unknown" with the reason).
func recoveredDraft(in journal.Intent, out Outcome, now time.Time) journal.Draft {
	d := in.Draft
	d.EventID, d.Resolves = in.ID, in.ID
	d.Result = out.Result
	if out.ResourceID != "" {
		d.ResourceID = out.ResourceID
	}
	d.Once, d.Watch = out.Once, out.Watch
	add := []byte(`"outcome":`)
	if out.Reconciled {
		add = jsonb.AppendString(add, "reconciled")
		add = append(add, `,"outcomeEvidence":`...)
		add = jsonb.AppendString(add, chain.CleanText(out.Evidence, 2048))
	} else {
		add = jsonb.AppendString(add, "unknown")
		add = append(add, `,"outcomeReason":`...)
		add = jsonb.AppendString(add, chain.CleanText(out.Reason, 2048))
	}
	add = append(add, `,"recoveredAt":`...)
	add = jsonb.AppendString(add, now.UTC().Format(time.RFC3339Nano))
	ctx := d.Context
	var raw []byte
	if len(ctx) < 2 || string(ctx) == "{}" {
		raw = append(append([]byte{'{'}, add...), '}')
	} else {
		raw = append(append(append(append([]byte(nil), ctx[:len(ctx)-1]...), ','), add...), '}')
	}
	var c jsonb.Canonicalizer
	// The intent's metadata was written as plain JSON: canonical from here on.
	if meta, err := c.AppendCanonical(nil, orEmptyObject(d.Metadata)); err == nil {
		d.Metadata = meta
	} else {
		d.Metadata = []byte("{}")
	}
	if canon, err := c.AppendCanonical(nil, raw); err == nil {
		d.Context = canon
	} else {
		// The intent's context was canonical when written: only damage can get here, and the
		// event is still recorded, saying so.
		fb := []byte(`{"encodingError":`)
		fb = jsonb.AppendString(fb, chain.CleanText(err.Error(), 512))
		fb = append(append(fb, ','), add...)
		d.Context, _ = c.AppendCanonical(nil, append(fb, '}'))
	}
	return d
}

func orEmptyObject(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// retryStranded appends, once the journal writes again, the events of requests that reached
// Flowker while it could not (their intents are durable), without waiting for a restart.
func (a *App) retryStranded(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.proxy.StrandedCount() == 0 || a.journal.Accepting() != nil {
			continue
		}
		if n, err := a.proxy.RetryStranded(ctx); err != nil {
			a.log.Warn("the journal still cannot take the waiting events", "journaled", n, "err", err)
		} else if n > 0 {
			a.log.Info("events that waited for the journal are journaled", "events", n)
		}
	}
}
