package app

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
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

// chainFromCheckpoints recognises a lost journal: when journal.db does not exist (and chain.id is
// not configured) but the checkpoint log holds checkpoints signed by this sidecar's key, the
// journal of that chain was lost — deleted, or a volume replaced. It returns the chain of the
// newest such checkpoint (the sidecar then continues it after the sinks' heads, and counts what
// neither the journal nor a sink holds), or "" when there is nothing to recognise.
func (a *App) chainFromCheckpoints() string {
	if a.cfg.Chain.CheckpointInterval <= 0 {
		return ""
	}
	if _, err := os.Stat(filepath.Join(a.cfg.DataDir, "journal.db")); !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	keyPath, logPath := a.cfg.CheckpointPaths()
	key, err := checkpoint.LoadKey(keyPath)
	if err != nil {
		return ""
	}
	cps, err := checkpoint.ReadFile(logPath)
	if err != nil {
		return ""
	}
	pub := key.Public().(ed25519.PublicKey)
	var newest *checkpoint.Checkpoint
	for i := range cps {
		if cps[i].Verify(pub) == nil && (newest == nil || cps[i].Time.After(newest.Time)) {
			newest = &cps[i]
		}
	}
	if newest == nil {
		return ""
	}
	a.log.Warn("the journal is missing but the checkpoint log holds this key's checkpoints of a chain: the journal was lost; continuing that chain after the sinks' heads (set chain.id to make this explicit)",
		"chain_id", newest.ChainID, "checkpoint_sequence", newest.Sequence, "checkpoint_time", newest.Time, "log", logPath)
	return newest.ChainID
}

// forwardCheckpoints hands every checkpoint the writer signs, and at start the newest one in
// the log, to the sinks; plugins that keep checkpoints store or forward them (a witness beside the
// events), the others ignore them.
func (a *App) forwardCheckpoints() {
	if a.checkpoints == nil {
		return
	}
	toSinks := func(c checkpoint.Checkpoint) {
		sc := sink.Checkpoint{ChainID: c.ChainID, Sequence: c.Sequence, Hash: c.Hash, Time: c.Time, KeyID: c.KeyID, Signature: c.Signature}
		for _, s := range a.supervisors {
			s.Checkpoint(sc)
		}
	}
	a.checkpoints.OnWrite = toSinks
	if last, ok := a.checkpoints.Log.Last(a.journal.ChainID()); ok {
		toSinks(last)
	}
}
