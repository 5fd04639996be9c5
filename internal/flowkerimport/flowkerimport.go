// Package flowkerimport copies Flowker's native audit history (its PostgreSQL audit_events table)
// into the sidecar's sinks as a chain of its own, so that search and the Audit Trail page show
// what happened before the sidecar was installed.
//
// Rows are read in Flowker's id order and stored unchanged — Flowker's hash and previous hash,
// its jsonb text of context and metadata, created_at as the timestamp — with sequence numbers
// 1, 2, 3... in that order (Flowker's ids have gaps where its inserts failed). Each row is checked
// with Flowker's own rules (chain.FlowkerHash: SHA-256 over input::bytea, and the link to the row
// before it); a row that does not verify is imported as it is and flagged in the report, never
// fixed.
//
// Re-running is idempotent and resumes where the previous run stopped: each sink's head of the
// chain says how many rows it holds, the row at that position must still carry the head's hash
// (or the import stops: the source changed), and only the rows after it are read. Sinks ignore
// events they already hold.
package flowkerimport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// DefaultChainID is the chain the imported rows are stored as.
const DefaultChainID = "flowker-native"

// Target is a sink the rows are written to (a sink.Client, or a sink in process).
type Target interface {
	Head(ctx context.Context, chainID string) (sink.Head, error)
	Write(ctx context.Context, events []chain.Event) error
}

// NamedTarget is a Target with a name for messages.
type NamedTarget struct {
	Name string
	Target
}

// Options configures an import.
type Options struct {
	// PostgresURL is Flowker's database (postgres://user:pass@host:5432/db?sslmode=...).
	PostgresURL string
	// Table is the audit table (default audit_events; schema-qualified names are accepted).
	Table string
	// ChainID is the chain the rows become (default DefaultChainID).
	ChainID string
	// Batch is how many rows are written per sink call (default 1000).
	Batch int
	// Targets receive the rows. At least one.
	Targets []NamedTarget
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// OnFlag is called for every row that does not verify, as it is found (optional).
	OnFlag func(Flag)
}

// Flag is a row imported as it is although it does not verify under Flowker's rules.
type Flag struct {
	Sequence  uint64 `json:"sequence"`  // its sequence in the imported chain
	FlowkerID int64  `json:"flowkerId"` // its id in Flowker's table
	EventID   string `json:"eventId"`
	Reason    string `json:"reason"` // hash mismatch, broken link, bad genesis, bytea syntax
	Detail    string `json:"detail"`
}

// Report is the outcome of an import.
type Report struct {
	ChainID string
	// Resumed is the sequence the run started after (0: from the first row).
	Resumed uint64
	// Read is the number of rows read from PostgreSQL in this run.
	Read uint64
	// Last is the last sequence of the imported chain after the run.
	Last uint64
	// Flagged are the rows of this run that do not verify.
	Flagged []Flag
}

// rowColumns reads a row with the text renderings Flowker's trigger hashed.
const rowColumns = `id, event_id::text, event_type::text, action::text, result::text, resource_id, resource_type::text,
	actor_type::text, actor_id, actor_ip, context::text, metadata::text, created_at, hash, previous_hash`

// Import runs an import. It stops at the first error (nothing is lost: a re-run resumes).
func Import(ctx context.Context, o Options) (Report, error) {
	if o.Table == "" {
		o.Table = "audit_events"
	}
	if o.ChainID == "" {
		o.ChainID = DefaultChainID
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rep := Report{ChainID: o.ChainID}
	if len(o.Targets) == 0 {
		return rep, errors.New("flowker import: no sink to write to")
	}
	if o.PostgresURL == "" {
		return rep, errors.New("flowker import: the PostgreSQL URL is required")
	}
	table := pgx.Identifier(splitTable(o.Table)).Sanitize()

	// Resume from the lowest head among the sinks: every sink gets every row after its own head.
	heads := make([]sink.Head, len(o.Targets))
	from := -1
	for i, t := range o.Targets {
		h, err := t.Head(ctx, o.ChainID)
		if err != nil {
			return rep, fmt.Errorf("flowker import: head of %s in sink %s: %w", o.ChainID, t.Name, err)
		}
		heads[i] = h
		if from < 0 || h.Sequence < heads[from].Sequence {
			from = i
		}
	}
	start := heads[from]

	conn, err := pgx.Connect(ctx, o.PostgresURL)
	if err != nil {
		return rep, fmt.Errorf("flowker import: connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	lastID := int64(0)
	prevHash := ""
	if start.Sequence > 0 {
		// The row at position start.Sequence (in id order) must be the one the sink holds.
		var id int64
		var hash string
		err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT id, hash FROM %s ORDER BY id OFFSET $1 LIMIT 1`, table), int64(start.Sequence-1)).Scan(&id, &hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return rep, fmt.Errorf("flowker import: sink %s holds %d rows of %s but the table has fewer: the source lost rows, nothing imported",
				o.Targets[from].Name, start.Sequence, o.ChainID)
		}
		if err != nil {
			return rep, fmt.Errorf("flowker import: find the resume row: %w", err)
		}
		if hash != start.Hash {
			return rep, fmt.Errorf("flowker import: row %d (sequence %d) has hash %s in PostgreSQL but %s in sink %s: the source changed, nothing imported",
				id, start.Sequence, hash, start.Hash, o.Targets[from].Name)
		}
		lastID, prevHash = id, hash
		rep.Resumed = start.Sequence
	}

	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE id > $1 ORDER BY id`, rowColumns, table), lastID)
	if err != nil {
		return rep, fmt.Errorf("flowker import: read %s: %w", o.Table, err)
	}
	defer rows.Close()
	seq := start.Sequence
	batch := make([]chain.Event, 0, o.Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		for i, t := range o.Targets {
			evs := batch
			for len(evs) > 0 && evs[0].Sequence <= heads[i].Sequence {
				evs = evs[1:]
			}
			if len(evs) == 0 {
				continue
			}
			if err := t.Write(ctx, evs); err != nil {
				return fmt.Errorf("flowker import: write sequences %d..%d to sink %s: %w", evs[0].Sequence, evs[len(evs)-1].Sequence, t.Name, err)
			}
		}
		o.Logger.Info("imported", "chain", o.ChainID, "up_to_sequence", batch[len(batch)-1].Sequence)
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		var (
			e         chain.Event
			id        int64
			ctxText   string
			metaText  string
			createdAt time.Time
			prev      *string
		)
		if err := rows.Scan(&id, &e.EventID, &e.EventType, &e.Action, &e.Result, &e.ResourceID, &e.ResourceType,
			&e.Actor.Type, &e.Actor.ID, &e.Actor.IPAddress, &ctxText, &metaText, &createdAt, &e.Hash, &prev); err != nil {
			return rep, fmt.Errorf("flowker import: read row after id %d: %w", lastID, err)
		}
		seq++
		rep.Read++
		e.ChainID, e.Sequence = o.ChainID, seq
		e.Context, e.Metadata = []byte(ctxText), []byte(metaText)
		e.Timestamp = chain.Now(createdAt)
		if prev != nil {
			e.PreviousHash = *prev
		}
		if f, bad := check(&e, id, prevHash, seq); bad {
			rep.Flagged = append(rep.Flagged, f)
			o.Logger.Warn("imported a row that does not verify under Flowker's rules", "sequence", f.Sequence, "flowker_id", id,
				"event_id", e.EventID, "reason", f.Reason, "detail", f.Detail)
			if o.OnFlag != nil {
				o.OnFlag(f)
			}
		}
		batch = append(batch, e)
		lastID, prevHash = id, e.Hash
		if len(batch) == o.Batch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("flowker import: read %s: %w", o.Table, err)
	}
	if err := flush(); err != nil {
		return rep, err
	}
	rep.Last = seq
	return rep, nil
}

// check verifies one row with Flowker's rules: its hash (chain.FlowkerHash over the previous hash
// it stores) and its link to the row before it.
func check(e *chain.Event, id int64, prevHash string, seq uint64) (Flag, bool) {
	f := Flag{Sequence: seq, FlowkerID: id, EventID: e.EventID}
	want, err := e.FlowkerHash()
	switch {
	case errors.Is(err, chain.ErrByteaSyntax):
		f.Reason, f.Detail = "bytea syntax", "Flowker's trigger could not have hashed this row (its text is not valid bytea input)"
		return f, true
	case err != nil:
		f.Reason, f.Detail = "hash mismatch", err.Error()
		return f, true
	case want != e.Hash:
		f.Reason, f.Detail = "hash mismatch", fmt.Sprintf("stored %s, Flowker's rules give %s", e.Hash, want)
		return f, true
	case seq == 1 && e.PreviousHash != "":
		f.Reason, f.Detail = "bad genesis", "the first row links to "+e.PreviousHash
		return f, true
	case seq > 1 && e.PreviousHash != prevHash:
		f.Reason, f.Detail = "broken link", fmt.Sprintf("previous_hash %s, the row before it has %s (a fork from concurrent inserts, or a change)", e.PreviousHash, prevHash)
		return f, true
	}
	return f, false
}

// splitTable splits "schema.table" for quoting.
func splitTable(s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return []string{s[:i], s[i+1:]}
		}
	}
	return []string{s}
}
