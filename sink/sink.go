// Package sink is the public SDK for audit sink plugins and the typed host-side client for them.
//
// A sink receives batches of hash-chained audit events from the flowker-audit sidecar and stores or
// forwards them. Sinks run as separate processes (hashicorp/go-plugin over gRPC, mutual TLS, a
// versioned handshake) so that a crashing or hanging sink never takes the proxy down; the sidecar's
// supervisor restarts it and replays what it had not acknowledged.
//
// Writing a sink: implement Sink (and Querier when the sink can answer the audit API), then
//
//	func main() { sink.Serve(&mySink{}) }
//
// Lifecycle, in order:
//  1. the host starts the plugin process and checks the handshake (protocol version, magic cookie);
//  2. Configure receives the sink's `config:` block from config.yaml as JSON; return a Permanent
//     error (listing every problem) when it is invalid;
//  3. Capabilities tells the host whether the sink accepts writes and answers queries;
//  4. Head(chainID) is called before delivery starts and before every retry: events with a sequence
//     at or below the returned head are never sent again;
//  5. Write is called with batches in chain order; it must be idempotent by (chainId, sequence) and
//     must only return nil once the batch is durable;
//  6. Close is called on shutdown.
//
// Optional interfaces, detected by the SDK and reported in Capabilities: CheckpointWriter and
// CheckpointReader (keep signed checkpoints beside the events) and Retainer (remove old events in
// whole blocks behind a signed retention anchor, for the sink's `retention` setting).
//
// Errors: any error is retryable unless wrapped with Permanent. ErrNotFound and ErrUnsupported
// cross the process boundary intact.
package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Sink is what every sink plugin implements.
type Sink interface {
	// Configure validates and applies the sink's configuration (the JSON form of its `config:`
	// block). It is called once per plugin process start, before any other method.
	Configure(ctx context.Context, config []byte) error
	// Capabilities reports what the sink can do.
	Capabilities(ctx context.Context) (Capabilities, error)
	// Write durably stores a batch of events of one or more chains, in chain order. Writing an
	// event whose (chainId, sequence) is already stored must not create a second copy.
	Write(ctx context.Context, events []chain.Event) error
	// Head returns the last stored event of chainID (Found false when the sink has none).
	Head(ctx context.Context, chainID string) (Head, error)
	// Close flushes and releases resources.
	Close(ctx context.Context) error
}

// Querier is implemented by sinks that can answer the audit API.
type Querier interface {
	// Search returns one page of events matching q, in q.Order by (timestamp, chainId, sequence).
	Search(ctx context.Context, q Query) (Page, error)
	// Get returns the event with the given eventId, or ErrNotFound.
	Get(ctx context.Context, eventID string) (chain.Event, error)
	// ReadChain calls fn for every stored event of chainID with from <= sequence <= to, in sequence
	// order (to == 0 means no upper bound). It stops at the first error fn returns and returns it.
	ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error
	// Chains lists the chains the sink holds.
	Chains(ctx context.Context) ([]ChainInfo, error)
}

// Capabilities describes a sink.
type Capabilities struct {
	Write       bool // accepts Write
	Query       bool // implements Querier
	Checkpoints bool // implements CheckpointWriter (set by the SDK, whatever the sink reports)
	Retention   bool // implements Retainer (set by the SDK, whatever the sink reports)
	Watermarks  bool // implements WatermarkWriter (set by the SDK, whatever the sink reports)
}

// Head is the last stored event of a chain.
type Head struct {
	Found    bool
	Sequence uint64
	Hash     string
}

// ChainInfo summarises one stored chain.
type ChainInfo struct {
	ChainID string
	Count   uint64 // number of stored events
	First   uint64 // lowest stored sequence
	Last    uint64 // highest stored sequence
}

// Order is a sort direction over (timestamp, chainId, sequence).
type Order uint8

// Sort orders.
const (
	Desc Order = iota // newest first (the default)
	Asc
)

func (o Order) String() string {
	if o == Asc {
		return "ASC"
	}
	return "DESC"
}

// Filter narrows a search. Empty strings and zero times mean "any". From and To are inclusive.
type Filter struct {
	EventType    string
	Action       string
	Result       string
	ResourceType string
	ResourceID   string
	ActorType    string // actor.type
	ActorID      string // actor.id, exactly as stored (for API keys the fingerprint "key:...")
	From         time.Time
	To           time.Time
}

// Matches reports whether e satisfies f: every non-empty field equal, From <= timestamp <= To
// (zero times unbounded). It is the reference semantics every Querier implements.
func (f Filter) Matches(e *chain.Event) bool {
	switch {
	case f.EventType != "" && e.EventType != f.EventType,
		f.Action != "" && e.Action != f.Action,
		f.Result != "" && e.Result != f.Result,
		f.ResourceType != "" && e.ResourceType != f.ResourceType,
		f.ResourceID != "" && e.ResourceID != f.ResourceID,
		f.ActorType != "" && e.Actor.Type != f.ActorType,
		f.ActorID != "" && e.Actor.ID != f.ActorID,
		!f.From.IsZero() && e.Timestamp.Before(f.From),
		!f.To.IsZero() && e.Timestamp.After(f.To):
		return false
	}
	return true
}

// Position is a keyset cursor: the sort key of the last event of the previous page.
type Position struct {
	TimeMicros int64  // event timestamp, Unix microseconds
	ChainID    string // tie-break
	Sequence   uint64 // tie-break
}

// PositionOf returns the sort key of e.
func PositionOf(e *chain.Event) Position {
	return Position{TimeMicros: e.Timestamp.UnixMicro(), ChainID: e.ChainID, Sequence: e.Sequence}
}

// Less reports whether p sorts before o in ascending order.
func (p Position) Less(o Position) bool {
	if p.TimeMicros != o.TimeMicros {
		return p.TimeMicros < o.TimeMicros
	}
	if p.ChainID != o.ChainID {
		return p.ChainID < o.ChainID
	}
	return p.Sequence < o.Sequence
}

// Query is one search request.
type Query struct {
	Filter Filter
	Order  Order
	After  *Position // nil for the first page; otherwise only events strictly after it in Order
	Limit  int       // 1..1000
}

// Page is one page of results.
type Page struct {
	Events []chain.Event
	More   bool // more events match after the last one
}

// Sentinel errors that keep their identity across the plugin boundary.
var (
	ErrNotFound    = errors.New("not found")
	ErrUnsupported = errors.New("operation not supported by this sink")
)

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying soon (bad configuration, an event the sink can never
// accept). The host marks the sink failed (metrics, readiness) and retries only every max
// backoff, so that an operator's fix is picked up.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error { return Permanent(fmt.Errorf(format, args...)) }

// ErrConflict means the store holds something that disagrees with the chain being delivered:
// a sequence already stored with another hash, a head the host never wrote, a summary that
// claims more than the rows hold. Return it (wrapped, e.g. with Conflictf) from Write or Head;
// the host then stops delivering to the sink, keeps the journal and reports the conflict until
// an operator resolves it. A conflict is permanent (IsPermanent is true).
var ErrConflict = errors.New("store conflicts with the chain")

// Conflictf returns a permanent error wrapping ErrConflict with a message naming what disagrees.
func Conflictf(format string, args ...any) error {
	return Permanent(fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...)))
}

// IsPermanent reports whether err (or an error it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
