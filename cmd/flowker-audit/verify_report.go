package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// verify's exit codes (documented in its --help, README and OPERATIONS).
const (
	exitVerifyValid    = 0 // every chain verified
	exitVerifyInvalid  = 1 // at least one chain is broken (hash, link, gap, truncated)
	exitUsage          = 2 // bad flags or arguments
	exitVerifyReadFail = 3 // nothing conclusive: configuration, source, sink or file could not be read, or held no events
)

var verifyHelp = cmdHelp{
	usage: "verify [--config FILE] [--source sink|journal|FILE.ndjson] [--chain ID] [--checkpoints FILE|none] [--public-key HEX|FILE] [--json]",
	what: `Recompute every hash and link of the chain(s) held by the query sink, the local journal or an
NDJSON export, and check that each chain reaches its newest signed checkpoint.

Exit status: 0 every chain is valid; 1 a chain is invalid (the first bad sequence and why are
printed); 2 usage error; 3 the chain could not be read (configuration, sink, journal or file
unreadable, or no events found) — nothing is known about its validity.`,
	example: `flowker-audit verify --config /etc/flowker-audit/config.yaml
flowker-audit verify --source chain.ndjson --checkpoints checkpoints.ndjson --public-key checkpoint.pub --json`,
}

// verifyJSON is verify's --json output.
type verifyJSON struct {
	Valid          bool              `json:"valid"`
	Chains         []verifyChainJSON `json:"chains"`
	Events         uint64            `json:"events"`
	ElapsedSeconds float64           `json:"elapsedSeconds"`
	Error          string            `json:"error,omitempty"`
	ExitCode       int               `json:"exitCode"`
}

type verifyChainJSON struct {
	ChainID       string       `json:"chainId"`
	Valid         bool         `json:"valid"`
	Checked       uint64       `json:"checked"`
	FirstSequence uint64       `json:"firstSequence"`
	Problem       *problemJSON `json:"problem,omitempty"`
	// Checkpoints says in a sentence what the signed checkpoints covered.
	Checkpoints string `json:"checkpoints,omitempty"`
	// CheckpointsMatched / CheckpointsTotal: checkpoints of the chain matched in the range, and
	// validly signed in the log.
	CheckpointsMatched int `json:"checkpointsMatched"`
	CheckpointsTotal   int `json:"checkpointsTotal"`
	// NewestCheckpointSequence is the newest checkpoint used (0: none); NotYetCovered counts the
	// verified events after it, which no signature proves yet.
	NewestCheckpointSequence uint64 `json:"newestCheckpointSequence,omitempty"`
	// RetentionAnchorSequence is the signed retention anchor verification started from (the last
	// event removed by retention; firstSequence is the one after it), 0 when none.
	RetentionAnchorSequence uint64 `json:"retentionAnchorSequence,omitempty"`
	NotYetCovered           uint64 `json:"notYetCovered"`
	// DepartsAfterSequence, on a checkpoint mismatch: the chain departs after this sequence.
	DepartsAfterSequence *uint64  `json:"departsAfterSequence,omitempty"`
	Warnings             []string `json:"warnings,omitempty"`
}

type problemJSON struct {
	Sequence uint64 `json:"sequence"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
}

// verifyReport prints the results (text or JSON) and returns the exit status.
func verifyReport(w io.Writer, results []verifyResult, el time.Duration, asJSON bool) error {
	out := verifyJSON{Valid: true, Chains: []verifyChainJSON{}, ElapsedSeconds: el.Seconds()}
	for _, r := range results {
		out.Events += r.Checked
		c := verifyChainJSON{ChainID: r.ChainID, Valid: r.Problem == nil, Checked: r.Checked, FirstSequence: r.From, Checkpoints: r.Summary(),
			CheckpointsMatched: r.Matched, CheckpointsTotal: r.Checkpoints, NotYetCovered: r.NotYetCovered, Warnings: r.Warnings}
		if r.Used != nil {
			c.NewestCheckpointSequence = r.Used.Sequence
		}
		if r.Anchor != nil {
			c.RetentionAnchorSequence = r.Anchor.Sequence
		}
		if r.Problem != nil {
			out.Valid = false
			c.Problem = &problemJSON{Sequence: r.Problem.Sequence, Reason: string(r.Problem.Reason), Detail: r.Problem.Detail}
			if r.Problem.Reason == chain.ReasonCheckpointMismatch {
				d := r.DepartsAfter
				c.DepartsAfterSequence = &d
			}
		}
		out.Chains = append(out.Chains, c)
	}
	code := exitVerifyValid
	switch {
	case len(results) == 0:
		out.Valid, out.Error, code = false, "no events found", exitVerifyReadFail
	case !out.Valid:
		code = exitVerifyInvalid
	}
	out.ExitCode = code
	if asJSON {
		if err := json.NewEncoder(w).Encode(out); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	} else {
		for _, r := range results {
			if r.Problem != nil {
				fmt.Fprintf(w, "chain %s: INVALID at sequence %d (%s): %s — %d events verified before it; %s\n",
					r.ChainID, r.Problem.Sequence, r.Problem.Reason, r.Problem.Detail, r.Checked, r.Summary())
				continue
			}
			fmt.Fprintf(w, "chain %s: valid — %d events verified; %s\n", r.ChainID, r.Checked, r.Summary())
		}
		fmt.Fprintf(w, "%d chain(s), %d events in %s (%.0f events/s)\n", len(results), out.Events, el.Round(time.Millisecond), float64(out.Events)/el.Seconds())
	}
	switch code {
	case exitVerifyValid:
		return nil
	case exitVerifyReadFail:
		msg := ""
		if !asJSON {
			msg = "could not verify: " + out.Error
		}
		return exitError{code: code, msg: msg}
	default:
		return exitError{code: code}
	}
}

// verifyReadError ends verify with exit 3: the chain could not be read, so nothing is known
// about its validity (never confused with exit 1, a chain found broken).
func verifyReadError(w io.Writer, asJSON bool, err error) error {
	msg := err.Error()
	var ex exitError
	if errors.As(err, &ex) && ex.msg != "" {
		msg = ex.msg
	}
	if asJSON {
		_ = json.NewEncoder(w).Encode(verifyJSON{Chains: []verifyChainJSON{}, Error: msg, ExitCode: exitVerifyReadFail})
	}
	return exitError{code: exitVerifyReadFail, msg: "could not verify: " + msg}
}
