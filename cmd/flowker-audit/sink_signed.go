package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/sink"
)

// signedHashes returns the hashes of chainID that a checkpoint of the configured log signs with
// one of the configured keys (chain.checkpoint_key's public half and chain.checkpoint_public_keys),
// by sequence. A sequence two valid checkpoints sign with different hashes is left out (the chain
// was continued after a lost journal: neither is a reference). No log or no key: none.
func signedHashes(cfg *config.Config, chainID string, stdout io.Writer) map[uint64]string {
	out := map[uint64]string{}
	ev, err := loadCheckpoints(cfg, "", "")
	if err != nil || ev == nil {
		if err != nil {
			fmt.Fprintf(stdout, "checkpoint log not used: %v\n", err)
		}
		return out
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range ev.Keys {
		keys[checkpoint.KeyID(k)] = k
	}
	ambiguous := map[uint64]bool{}
	for _, cp := range ev.Checkpoints {
		pub, ok := keys[cp.KeyID]
		if cp.ChainID != chainID || !ok || cp.Verify(pub) != nil {
			continue
		}
		if h, ok := out[cp.Sequence]; ok && h != cp.Hash {
			ambiguous[cp.Sequence] = true
		}
		out[cp.Sequence] = cp.Hash
	}
	for seq := range ambiguous {
		delete(out, seq)
	}
	return out
}

// checkSigned judges, for a query sink, the rows at the newest signed sequence at or below the
// sink's cursor (or head) that the journal no longer holds: there the checkpoint is the reference
// (an INSERT-only duplicate at the head, after the journal compacted it). A row with another hash
// than the signed one is repairable only when the row with the signed hash is stored beside it
// (dropping the forged one restores the chain; nothing is written back).
func checkSigned(ctx context.Context, c *sink.Client, st *sinkState, jv *journalView) error {
	upTo := st.cursor
	if st.headErr == nil && st.head.Found {
		upTo = max(upTo, st.head.Sequence)
	}
	var seq uint64
	for s := range jv.signed {
		if s <= upTo && s > seq {
			if _, held := jv.hashes[s]; !held {
				seq = s
			}
		}
	}
	if seq == 0 {
		return nil
	}
	want := jv.signed[seq]
	var genuine bool
	var bad []badRow
	err := c.ReadChain(ctx, jv.chainID, seq, seq, func(e *chain.Event) error {
		if e.Hash == want {
			genuine = true
		} else {
			bad = append(bad, badRow{seq: seq, hash: e.Hash, eventID: e.EventID, want: want, bySignature: true})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading chain %s sequence %d: %w", jv.chainID, seq, err)
	}
	for i := range bad {
		bad[i].repairable = genuine
	}
	st.rows = append(st.rows, bad...)
	return nil
}
