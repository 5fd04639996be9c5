package host

import (
	"context"
	"errors"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
)

// waitOrHeartbeat waits, like Source.Wait, until the journal holds an event after cursor. For a
// sink that keeps delivery watermarks (sink.WatermarkWriter) it sends one every
// WatermarkInterval while it waits: delivery is caught up, so every event of the chain with a
// timestamp at or below the moment before the check is acknowledged. The check is exact: the
// journal stamps an event when its writer stages it, strictly increasing per chain, and an Ack
// of the unchanged cursor passes through that writer after everything staged before it, so when
// the journal's last sequence is still the cursor after that Ack, no event stamped at or before
// the moment is missing. (A wall clock stepping backwards breaks it, as it breaks the journal's
// own timestamps.) The busy chain's watermark the sink derives from the batches it stores.
//
// A plugin run's first heartbeat goes at once, not after an interval: a sidecar starting with an
// empty journal vouches for its chain (no event stamped before now) before it stores any event,
// so its chain is live in the sinks' read horizon before its first events arrive, and other
// sidecars' newer events are held back for them.
func (s *Supervisor) waitOrHeartbeat(ctx context.Context, c *sink.Client, cursor uint64) error {
	if !s.caps.Watermarks || s.cfg.WatermarkInterval < 0 || s.noWM == c {
		return s.src.Wait(ctx, cursor)
	}
	if s.greeted != c {
		s.greeted = c
		s.heartbeat(ctx, c, cursor)
	}
	for s.noWM != c {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.WatermarkInterval)
		err := s.src.Wait(wctx, cursor)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		s.heartbeat(ctx, c, cursor)
	}
	return s.src.Wait(ctx, cursor)
}

// heartbeat sends the watermark of a caught-up chain (see waitOrHeartbeat). Failures are logged
// at debug level and not retried: the next heartbeat supersedes this one. A plugin that answers
// sink.ErrUnsupported gets no more heartbeats until it is restarted.
func (s *Supervisor) heartbeat(ctx context.Context, c *sink.Client, cursor uint64) {
	if s.src.Last() != cursor {
		return // more to deliver (at cursor 0 with an empty journal the chain has no event yet: vouched for all the same)
	}
	now := time.Now()
	bctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	if err := s.src.Ack(bctx, s.cfg.Name, cursor); err != nil { // the barrier through the journal's writer
		s.log.Debug("watermark barrier", "error", err)
		return
	}
	if s.src.Last() != cursor {
		return // an event was stamped before now; it is delivered next and carries the watermark on
	}
	err := c.WriteWatermark(bctx, s.src.ChainID(), now)
	switch {
	case errors.Is(err, sink.ErrUnsupported):
		// The plugin keeps no watermarks in this configuration (e.g. the ClickHouse sink
		// without read_horizon): no more heartbeats, and no more barrier transactions, for
		// this plugin run.
		s.noWM = c
	case err != nil:
		s.log.Debug("sending the delivery watermark", "error", err)
	}
}
