package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
)

// loadCheckpoints resolves verify's --checkpoints and --public-key flags into the evidence every
// verifier uses. logArg is a path, "none" (nil evidence), or "" for the configured log (a missing
// one is a warning, not an error). pubArg lists keys (hex or files, comma-separated), or is "" for
// the public half of the configured signing key plus chain.checkpoint_public_keys.
func loadCheckpoints(cfg *config.Config, logArg, pubArg string) (*checkpoint.Evidence, error) {
	if logArg == "none" {
		return nil, nil
	}
	explicit := logArg != ""
	var keyPath string
	if cfg != nil {
		var defLog string
		keyPath, defLog = cfg.CheckpointPaths()
		if !explicit {
			logArg = defLog
		}
	}
	if logArg == "" {
		return nil, nil
	}
	missing := false
	if _, err := os.Stat(logArg); err != nil {
		if explicit || !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint log: %w", err)
		}
		missing = true // a missing default log: a warning; the sink's checkpoints may still count
	}
	var keys []ed25519.PublicKey
	switch {
	case pubArg != "":
		var err error
		if keys, err = checkpoint.LoadPublicKeys(strings.Split(pubArg, ",")); err != nil {
			return nil, err
		}
	case keyPath != "":
		key, err := checkpoint.LoadKey(keyPath)
		if err != nil && missing {
			return checkpoint.LoadEvidence(logArg) // neither log nor key: hashes and links only
		}
		if err != nil {
			return nil, fmt.Errorf("%w (or give --public-key)", err)
		}
		more, err := checkpoint.LoadPublicKeys(cfg.Chain.CheckpointPublicKeys)
		if err != nil {
			return nil, fmt.Errorf("chain.checkpoint_public_keys: %w", err)
		}
		keys = append([]ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, more...)
	default:
		return nil, errors.New("--public-key is required to check a checkpoint log without a configuration")
	}
	return checkpoint.LoadEvidence(logArg, keys...)
}

func checkpointsCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("checkpoints public-key", cmdHelp{usage: "checkpoints public-key [--config FILE]",
		what:    "Print the public half of this sidecar's checkpoint signing key (chain.checkpoint_key), which a\nverifier needs besides the checkpoint log.",
		example: "flowker-audit checkpoints public-key --config config.yaml > checkpoint.pub"}, stdout, stderr)
	path := fs.configFlag()
	if len(args) == 0 || args[0] != "public-key" {
		if err := fs.parse(args); err != nil { // --help
			return err
		}
		fmt.Fprintln(stderr, "usage: flowker-audit checkpoints public-key [--config FILE]")
		return exitError{code: 2}
	}
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	keyPath, _ := cfg.CheckpointPaths()
	key, err := checkpoint.LoadKey(keyPath)
	if err != nil {
		return fmt.Errorf("%w (the sidecar creates the key on its first start with chain.checkpoint_interval > 0)", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "%s\n", hex.EncodeToString(pub))
	fmt.Fprintf(stderr, "key id %s; give it to verifiers: flowker-audit verify --checkpoints FILE --public-key %s\n",
		checkpoint.KeyID(pub), hex.EncodeToString(pub))
	return nil
}
