package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/sink"
)

// `flowker-audit sink status|repair`: the operator's view and repair of a sink whose store
// conflicts with the journal (the FlowkerAuditSinkConflict alert). Both work offline: the sidecar
// must be stopped (the journal's file lock says whether it runs), and each sink's plugin is
// started on its own, as verify does.

// sink's exit codes.
const (
	exitSinkOK       = 0 // every sink agrees with the journal (status), or the repair left none in conflict
	exitSinkConflict = 1 // a sink conflicts with the journal (status, or a dry run of repair)
	exitSinkFailed   = 3 // the journal or a sink could not be read, or the repair could not finish
)

var sinkHelp = cmdHelp{
	usage: "sink status [--config FILE] | sink repair NAME [--config FILE] [--apply]",
	what: `Operator commands for sinks whose store conflicts with the journal (FlowkerAuditSinkConflict).
The sidecar must be stopped: both read the journal in data_dir (refused while a running sidecar
holds its lock, and keeping it from starting meanwhile) and start each sink's plugin on their own.

status: for each configured sink, its head against the journal's chain (sequence and hash), its
delivery cursor, and, for query sinks, every stored row the journal disagrees with: a sequence
beyond the journal's last one, or a hash other than the journal's for a sequence the journal still
holds; and, at the newest checkpointed sequence up to the sink's cursor that the journal no longer
holds, a row with another hash than the signed one (chain.checkpoint_log, with the configured
keys). Exit 0 when no sink conflicts, 1 when one does, 3 when something could not be read.

repair NAME: the plan for sink NAME, printed and, with --apply, carried out: the disagreeing
rows are dropped (only rows whose sequence and hash are named: a genuine row beside a forged
duplicate stays), the store's summary is rebuilt from its rows (a forged summary is undone too),
the journal's genuine events at the dropped sequences that the sidecar would not deliver again
are written back, and the head is checked against the journal again. Events after that are
delivered by the sidecar when it starts. A row the journal no longer holds is never dropped (the
genuine event could not be restored), nor a row a checkpoint contradicts unless the row with
the signed hash is stored beside it: those are reported, and left to verify and a backup.
Without --apply nothing is changed (exit 1 while a conflict is found). The query sinks of the
bundled plugins (sqlite, clickhouse on a single server) can be repaired; other plugins answer
that they cannot.`,
	example: "flowker-audit sink status --config /etc/flowker-audit/config.yaml\nflowker-audit sink repair store --config /etc/flowker-audit/config.yaml          # dry run\nflowker-audit sink repair store --config /etc/flowker-audit/config.yaml --apply",
}

func sinkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("sink", sinkHelp, stdout, stderr)
	path := fs.configFlag()
	apply := fs.Bool("apply", false, "repair: carry the plan out (default: print it and change nothing)")
	if len(args) == 0 || (args[0] != "status" && args[0] != "repair") {
		if err := fs.parse(args); err != nil { // --help
			return err
		}
		return exitError{code: exitUsage, msg: "usage: flowker-audit " + sinkHelp.usage}
	}
	sub, rest := args[0], args[1:]
	name := ""
	if sub == "repair" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			if err := fs.parse(rest); err != nil {
				return err
			}
			return exitError{code: exitUsage, msg: "usage: flowker-audit sink repair NAME [--config FILE] [--apply]"}
		}
		name, rest = rest[0], rest[1:]
	}
	if err := fs.parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{code: exitUsage, msg: "usage: flowker-audit " + sinkHelp.usage}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(config.Log{Format: "text", Level: "warn"}, stderr)
	jpath := filepath.Join(cfg.DataDir, "journal.db")
	hold, err := journal.Hold(jpath)
	if err != nil {
		if errors.Is(err, journal.ErrLocked) {
			return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: the sidecar is running (%v): stop it, then run this again", sub, err)}
		}
		return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: %v", sub, err)}
	}
	defer hold.Close()
	jv, err := readJournalView(ctx, jpath)
	if err != nil {
		return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: %v", sub, err)}
	}
	fmt.Fprintf(stdout, "journal %s: chain %s, last sequence %d, %s\n", jpath, jv.chainID, jv.last, jv.retained())
	jv.signed = signedHashes(cfg, jv.chainID, stdout)
	if sub == "status" {
		return sinkStatus(ctx, cfg, jv, stdout, log)
	}
	var sc *config.Sink
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Name == name {
			sc = &cfg.Sinks[i]
		}
	}
	if sc == nil {
		return exitError{code: exitUsage, msg: fmt.Sprintf("sink repair: no sink named %q in %s", name, *path)}
	}
	return sinkRepair(ctx, *sc, jv, *apply, stdout, log)
}

// journalView is what the offline commands know of the journal: its chain, head, the hashes of
// the events it still holds and the sinks' delivery cursors.
type journalView struct {
	path     string
	chainID  string
	last     uint64
	lastHash string
	hashes   map[uint64]string // retained sound records
	first    uint64            // lowest retained sequence (0: none)
	cursors  map[string]uint64
	signed   map[uint64]string // hashes validly signed by the configured keys' checkpoints (sink_signed.go)
}

func readJournalView(ctx context.Context, path string) (*journalView, error) {
	jv := &journalView{path: path, hashes: map[uint64]string{}}
	in, err := journal.Inspect(ctx, path, 1, func(e *chain.Event) error {
		jv.hashes[e.Sequence] = e.Hash
		if jv.first == 0 {
			jv.first = e.Sequence
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	jv.chainID, jv.last, jv.lastHash = in.ChainID, in.Last, in.LastHash
	if jv.cursors, err = journal.ReadCursors(path); err != nil {
		return nil, err
	}
	return jv, nil
}

func (jv *journalView) retained() string {
	if jv.first == 0 {
		return "no event retained (every sink acknowledged everything)"
	}
	return fmt.Sprintf("events %d..%d retained", jv.first, jv.last)
}

// hashAt returns the journal's hash of seq when it knows it.
func (jv *journalView) hashAt(seq uint64) (string, bool) {
	if h, ok := jv.hashes[seq]; ok {
		return h, true
	}
	if seq == jv.last && jv.lastHash != "" {
		return jv.lastHash, true
	}
	return "", false
}

// event reads the journal's event at seq.
func (jv *journalView) event(ctx context.Context, seq uint64) (chain.Event, error) {
	var out *chain.Event
	_, err := journal.Inspect(ctx, jv.path, seq, func(e *chain.Event) error {
		if e.Sequence == seq {
			ev := *e
			out = &ev
		}
		return errStopRead
	})
	if err != nil && !errors.Is(err, errStopRead) {
		return chain.Event{}, err
	}
	if out == nil {
		return chain.Event{}, fmt.Errorf("the journal no longer holds sequence %d", seq)
	}
	return *out, nil
}

// badRow is a stored row the journal disagrees with.
type badRow struct {
	seq         uint64
	hash        string // stored
	eventID     string
	want        string // the journal's hash ("" beyond the journal)
	repairable  bool   // the journal holds the genuine event (or there is none: beyond its head), or the genuine row is stored beside it
	bySignature bool   // judged by a signed checkpoint, not by the journal
}

func (b badRow) String() string {
	if b.bySignature {
		kept := "the row with the signed hash is not stored: it cannot be restored from the journal"
		if b.repairable {
			kept = "the row with the signed hash is stored beside it"
		}
		return fmt.Sprintf("sequence %d: stored hash %s (event %s), a signed checkpoint says %s: forged or duplicated; %s", b.seq, b.hash, b.eventID, b.want, kept)
	}
	if b.want == "" {
		return fmt.Sprintf("sequence %d: stored hash %s (event %s), beyond the journal's last sequence: not written by this sidecar", b.seq, b.hash, b.eventID)
	}
	return fmt.Sprintf("sequence %d: stored hash %s (event %s), the journal has %s: forged, rewritten or duplicated", b.seq, b.hash, b.eventID, b.want)
}

// sinkState is what one sink holds against the journal.
type sinkState struct {
	name, plugin string
	query        bool
	cursor       uint64
	head         sink.Head
	headErr      error // from Head (a conflict the plugin found itself, or a failure)
	conflict     string
	rows         []badRow // query sinks: rows the journal disagrees with
	scanned      uint64   // rows compared with the journal
}

func (s *sinkState) inConflict() bool { return s.conflict != "" || len(s.rows) > 0 }

// openSink starts and configures sc's plugin.
func openSink(ctx context.Context, sc config.Sink, log *slog.Logger) (*sink.Client, sink.Capabilities, error) {
	launch, err := app.LaunchOptions(sc, nil)
	if err != nil {
		return nil, sink.Capabilities{}, err
	}
	launch.Logger = log
	c, err := sink.Open(ctx, launch)
	if err != nil {
		return nil, sink.Capabilities{}, fmt.Errorf("starting sink %s: %w", sc.Name, err)
	}
	raw, _ := json.Marshal(sc.Config)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Configure(cctx, raw); err != nil {
		c.Kill()
		return nil, sink.Capabilities{}, fmt.Errorf("configuring sink %s: %w", sc.Name, err)
	}
	caps, err := c.Capabilities(cctx)
	if err != nil {
		c.Kill()
		return nil, sink.Capabilities{}, fmt.Errorf("sink %s capabilities: %w", sc.Name, err)
	}
	return c, caps, nil
}

// inspectSink compares the sink's head and (for a query sink) its rows from the journal's first
// retained sequence on with the journal, as the sidecar's delivery does before it writes.
func inspectSink(ctx context.Context, c *sink.Client, caps sink.Capabilities, sc config.Sink, jv *journalView) (*sinkState, error) {
	st := &sinkState{name: sc.Name, plugin: sc.Plugin, query: caps.Query, cursor: jv.cursors[sc.Name]}
	st.head, st.headErr = c.Head(ctx, jv.chainID)
	switch {
	case st.headErr != nil && errors.Is(st.headErr, sink.ErrConflict):
		st.conflict = st.headErr.Error()
	case st.headErr != nil:
		return st, fmt.Errorf("sink %s: head of chain %s: %w", sc.Name, jv.chainID, st.headErr)
	case !st.head.Found:
	case st.head.Hash == "":
		st.conflict = fmt.Sprintf("the sink reports head sequence %d without its hash", st.head.Sequence)
	case st.head.Sequence > jv.last:
		st.conflict = fmt.Sprintf("the sink's head is sequence %d (hash %s), beyond the journal's last sequence %d: the store holds events this sidecar did not write",
			st.head.Sequence, st.head.Hash, jv.last)
	default:
		if want, ok := jv.hashAt(st.head.Sequence); ok && want != st.head.Hash {
			st.conflict = fmt.Sprintf("the sink holds sequence %d with hash %s, the journal has %s: a forked or rewritten chain", st.head.Sequence, st.head.Hash, want)
		}
	}
	if !caps.Query {
		return st, nil
	}
	from := jv.first
	if from == 0 {
		from = jv.last + 1
	}
	err := c.ReadChain(ctx, jv.chainID, from, 0, func(e *chain.Event) error {
		st.scanned++
		if e.Sequence > jv.last {
			st.rows = append(st.rows, badRow{seq: e.Sequence, hash: e.Hash, eventID: e.EventID, repairable: true})
			return nil
		}
		if want, ok := jv.hashAt(e.Sequence); ok && want != e.Hash {
			st.rows = append(st.rows, badRow{seq: e.Sequence, hash: e.Hash, eventID: e.EventID, want: want, repairable: jv.hashes[e.Sequence] != ""})
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("sink %s: reading chain %s from sequence %d: %w", sc.Name, jv.chainID, from, err)
	}
	if err := checkSigned(ctx, c, st, jv); err != nil {
		return st, fmt.Errorf("sink %s: %w", sc.Name, err)
	}
	return st, nil
}

func (s *sinkState) print(w io.Writer, jv *journalView) {
	kind := ""
	if s.query {
		kind = ", query"
	}
	verdict := "agrees with the journal"
	if s.inConflict() {
		verdict = "CONFLICT"
	}
	fmt.Fprintf(w, "sink %s (%s%s): %s\n", s.name, s.plugin, kind, verdict)
	switch {
	case s.headErr != nil:
		fmt.Fprintf(w, "  head: %v\n", s.headErr)
	case s.head.Found:
		fmt.Fprintf(w, "  head: sequence %d, hash %s\n", s.head.Sequence, s.head.Hash)
	default:
		fmt.Fprintf(w, "  head: none (the sink holds no event of chain %s)\n", jv.chainID)
	}
	fmt.Fprintf(w, "  delivery cursor: %d (journal last %d)\n", s.cursor, jv.last)
	if s.conflict != "" && s.headErr == nil {
		fmt.Fprintf(w, "  conflict: %s\n", s.conflict)
	}
	if s.query {
		fmt.Fprintf(w, "  rows compared with the journal: %d; disagreeing: %d\n", s.scanned, len(s.rows))
		for _, r := range s.rows {
			fmt.Fprintf(w, "    %s\n", r)
		}
	} else {
		fmt.Fprintln(w, "  rows: not compared (the plugin cannot be read back)")
	}
}

func sinkStatus(ctx context.Context, cfg *config.Config, jv *journalView, stdout io.Writer, log *slog.Logger) error {
	code := exitSinkOK
	for _, sc := range cfg.Sinks {
		c, caps, err := openSink(ctx, sc, log)
		if err != nil {
			fmt.Fprintf(stdout, "sink %s (%s): could not be started: %v\n", sc.Name, sc.Plugin, err)
			code = exitSinkFailed
			continue
		}
		st, err := inspectSink(ctx, c, caps, sc, jv)
		c.Kill()
		if err != nil {
			fmt.Fprintf(stdout, "sink %s (%s): %v\n", sc.Name, sc.Plugin, err)
			code = exitSinkFailed
			continue
		}
		st.print(stdout, jv)
		if st.inConflict() {
			fmt.Fprintf(stdout, "  resolve: flowker-audit sink repair %s (prints the plan; --apply carries it out)\n", sc.Name)
			if code == exitSinkOK {
				code = exitSinkConflict
			}
		}
	}
	if code == exitSinkOK {
		return nil
	}
	return exitError{code: code}
}

func sinkRepair(ctx context.Context, sc config.Sink, jv *journalView, apply bool, stdout io.Writer, log *slog.Logger) error {
	c, caps, err := openSink(ctx, sc, log)
	if err != nil {
		return exitError{code: exitSinkFailed, msg: err.Error()}
	}
	defer c.Kill()
	st, err := inspectSink(ctx, c, caps, sc, jv)
	if err != nil {
		return exitError{code: exitSinkFailed, msg: err.Error()}
	}
	st.print(stdout, jv)
	if !st.inConflict() {
		fmt.Fprintln(stdout, "nothing to repair")
		return nil
	}
	if !caps.Query {
		return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: its plugin (%s) cannot be read back, so its rows cannot be compared: repair its store by hand (docs/OPERATIONS.md, sink conflicts)", sc.Name, sc.Plugin)}
	}
	var drop []sink.RowRef
	var kept []badRow
	for _, r := range st.rows {
		if r.repairable {
			drop = append(drop, sink.RowRef{Sequence: r.seq, Hash: r.hash})
		} else {
			kept = append(kept, r)
		}
	}
	for _, r := range kept {
		fmt.Fprintf(stdout, "cannot repair sequence %d: the journal no longer holds the genuine event (verify the chain, restore the store from a backup)\n", r.seq)
	}
	// Write back the genuine events the sidecar would not deliver again: at or below the
	// sequence it resumes after (max of its cursor and the head left after the drop).
	dropped, restore := map[uint64]bool{}, map[uint64]bool{}
	for _, r := range st.rows {
		if r.repairable {
			dropped[r.seq] = true
			if !r.bySignature && jv.hashes[r.seq] != "" {
				restore[r.seq] = true
			}
		}
	}
	newHead := uint64(0)
	if st.head.Found && st.headErr == nil {
		newHead = st.head.Sequence
	}
	for newHead > 0 && dropped[newHead] {
		newHead-- // the head itself was forged: what is left below it (approximately; checked after)
	}
	resume := max(st.cursor, newHead)
	var rewrite []uint64
	for seq := range restore {
		if seq <= resume {
			rewrite = append(rewrite, seq)
		}
	}
	sort.Slice(rewrite, func(i, j int) bool { return rewrite[i] < rewrite[j] })
	fmt.Fprintf(stdout, "plan for sink %s:\n", sc.Name)
	fmt.Fprintf(stdout, "  drop %d row(s) the journal or a signed checkpoint disagrees with%s\n", len(drop), seqList(drop))
	fmt.Fprintln(stdout, "  rebuild the store's summary of the chain from its rows")
	if len(rewrite) > 0 {
		fmt.Fprintf(stdout, "  write back the journal's genuine events at sequence(s) %s\n", joinSeqs(rewrite))
	}
	fmt.Fprintf(stdout, "  then the sidecar, once started, delivers the journal's events after sequence %d\n", resume)
	if !apply {
		fmt.Fprintln(stdout, "dry run: nothing was changed; run again with --apply to carry the plan out")
		return exitError{code: exitSinkConflict}
	}
	n, err := c.DropRows(ctx, jv.chainID, drop)
	if err != nil {
		if errors.Is(err, sink.ErrUnsupported) {
			return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: its plugin (%s) cannot drop rows: repair its store by hand (docs/OPERATIONS.md, sink conflicts)", sc.Name, sc.Plugin)}
		}
		return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: dropping rows: %v", sc.Name, err)}
	}
	fmt.Fprintf(stdout, "dropped %d row(s) and rebuilt the summary\n", n)
	if len(rewrite) > 0 {
		evs := make([]chain.Event, 0, len(rewrite))
		for _, seq := range rewrite {
			e, err := jv.event(ctx, seq)
			if err != nil {
				return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: %v", sc.Name, err)}
			}
			evs = append(evs, e)
		}
		if err := c.Write(ctx, evs); err != nil {
			return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s: writing back the genuine events: %v", sc.Name, err)}
		}
		fmt.Fprintf(stdout, "wrote back %d genuine event(s)\n", len(evs))
	}
	after, err := inspectSink(ctx, c, caps, sc, jv)
	if err != nil {
		return exitError{code: exitSinkFailed, msg: err.Error()}
	}
	fmt.Fprintln(stdout, "after the repair:")
	after.print(stdout, jv)
	if after.inConflict() {
		return exitError{code: exitSinkFailed, msg: fmt.Sprintf("sink %s still conflicts with the journal: the genuine events at the conflicting sequences are no longer in the journal (it compacted them), so they cannot be restored from it; verify the chain and restore the rows from an archive (docs/OPERATIONS.md, sink conflicts)", sc.Name)}
	}
	fmt.Fprintf(stdout, "sink %s agrees with the journal: start the sidecar; it resumes delivery to it\n", sc.Name)
	return nil
}

func seqList(rows []sink.RowRef) string {
	if len(rows) == 0 {
		return ""
	}
	seqs := make([]uint64, len(rows))
	for i, r := range rows {
		seqs[i] = r.Sequence
	}
	return " (sequence(s) " + joinSeqs(seqs) + ")"
}

func joinSeqs(seqs []uint64) string {
	parts := make([]string, len(seqs))
	for i, s := range seqs {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ", ")
}
