package app

import (
	"crypto/ed25519"
	"fmt"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
)

// checkpointEvidence returns what the audit API's /verify checks chains against: the checkpoint
// log as it is on disk now, verified with the current key and chain.checkpoint_public_keys. When
// the file lacks a checkpoint this process wrote (it was truncated, emptied or replaced while the
// sidecar ran), the answer says so.
func (a *App) checkpointEvidence() (func(chainID string) (*checkpoint.Evidence, error), error) {
	if a.checkpoints == nil {
		return nil, nil
	}
	_, logPath := a.cfg.CheckpointPaths()
	more, err := checkpoint.LoadPublicKeys(a.cfg.Chain.CheckpointPublicKeys)
	if err != nil {
		return nil, fmt.Errorf("chain.checkpoint_public_keys: %w", err)
	}
	keys := append([]ed25519.PublicKey{a.checkpoints.Signer.Public()}, more...)
	return func(chainID string) (*checkpoint.Evidence, error) {
		ev, err := checkpoint.LoadEvidence(logPath, keys...)
		if err != nil {
			return nil, err
		}
		if written, ok := a.checkpoints.Log.Last(chainID); ok {
			found := false
			for _, c := range ev.Checkpoints {
				if c.ChainID == written.ChainID && c.Sequence == written.Sequence && c.Hash == written.Hash && c.Signature == written.Signature {
					found = true
					break
				}
			}
			if !found {
				ev.Warnings = append(ev.Warnings, fmt.Sprintf("the checkpoint log %s lacks the checkpoint this sidecar last wrote (sequence %d, signed at %s): the file was truncated, emptied or replaced; keep the shipped copy as the reference",
					logPath, written.Sequence, written.Time.Format(chain.TimestampLayout)))
				// What this process signed still counts: verify against it too.
				ev.Checkpoints = append(ev.Checkpoints, written)
			}
		}
		return ev, nil
	}, nil
}
