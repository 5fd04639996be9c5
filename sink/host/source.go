// Package host runs sink plugins for the sidecar: one Supervisor per configured sink starts the
// plugin process, delivers the journal to it in ordered batches, acknowledges what the sink
// stored, and restarts the plugin when it crashes or hangs.
//
// Delivery is at-least-once on the wire and exactly-once in the sink: before it starts and after
// every failure the supervisor asks the sink for its head (the last sequence it stored) and
// skips everything at or below it, and sinks are idempotent by (chainId, sequence) for the rare
// batch that was stored but not acknowledged.
package host

import (
	"context"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Source is the durable journal delivery reads from (implemented by chain/journal).
type Source interface {
	ChainID() string
	// Last returns the highest sequence appended so far (0 when empty).
	Last() uint64
	// Wait blocks until an event with sequence > after exists, or ctx is done.
	Wait(ctx context.Context, after uint64) error
	// Read returns up to max events with sequence >= from, in order, at most maxBytes of encoded events (at least one).
	Read(ctx context.Context, from uint64, max int, maxBytes int) ([]chain.Event, error)
	// Cursor returns the last sequence the named sink acknowledged (0 = none).
	Cursor(name string) (uint64, error)
	// Ack durably records that the named sink stored every event up to seq.
	Ack(ctx context.Context, name string, seq uint64) error
	// AppendedAt returns the append time of the event with the given sequence (for lag age), ok=false if unknown.
	AppendedAt(seq uint64) (time.Time, bool)
}
