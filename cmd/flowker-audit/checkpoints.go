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

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
)

// checkpoints is the set of signed checkpoints a verify run checks chains against (nil: none).
type checkpoints struct {
	path string
	cps  []checkpoint.Checkpoint
	keys []ed25519.PublicKey
}

// loadCheckpoints resolves verify's --checkpoints and --public-key flags. logArg is a path,
// "none", or "" for the configured log (when there is a configuration and the file exists; a
// notice on stderr says when it does not). pubArg lists keys (hex or files, comma-separated), or
// is "" for the public half of the configured signing key.
func loadCheckpoints(cfg *config.Config, logArg, pubArg string, stderr io.Writer) (*checkpoints, error) {
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
	cps, err := checkpoint.ReadFile(logArg)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		fmt.Fprintf(stderr, "no checkpoint log at %s: checking hashes and links only (a chain cut short at its end would pass)\n", logArg)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	var keys []ed25519.PublicKey
	switch {
	case pubArg != "":
		for _, arg := range strings.Split(pubArg, ",") {
			k, err := checkpoint.LoadPublicKey(strings.TrimSpace(arg))
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	case keyPath != "":
		key, err := checkpoint.LoadKey(keyPath)
		if err != nil {
			return nil, fmt.Errorf("%w (or give --public-key)", err)
		}
		keys = append(keys, key.Public().(ed25519.PublicKey))
	default:
		return nil, errors.New("--public-key is required to check a checkpoint log without a configuration")
	}
	return &checkpoints{path: logArg, cps: cps, keys: keys}, nil
}

// chains returns the chain ids that have checkpoints.
func (c *checkpoints) chains() []string {
	if c == nil {
		return nil
	}
	return checkpoint.Chains(c.cps)
}

// guard verifies one chain: links and hashes (chain.Verifier) and, when checkpoints are given,
// the signed heads (checkpoint.Checker).
type guard struct {
	v *chain.Verifier
	c *checkpoint.Checker
}

func newGuard(cp *checkpoints, chainID string, next uint64, prevHash string) (*guard, error) {
	g := &guard{v: chain.NewVerifier(chainID, next, prevHash)}
	if cp != nil {
		c, err := checkpoint.NewChecker(chainID, cp.cps, cp.keys...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cp.path, err)
		}
		g.c = c
	}
	return g, nil
}

func (g *guard) Add(e *chain.Event) error {
	if err := g.v.Add(e); err != nil {
		return err
	}
	if g.c != nil {
		return g.c.Observe(e)
	}
	return nil
}

// finish checks, once the chain was read without a problem, that it reaches its newest
// checkpoint.
func (g *guard) finish() *chain.Problem {
	if g.c == nil {
		return nil
	}
	last, _ := g.v.Last()
	var p *chain.Problem
	if errors.As(g.c.Finish(last), &p) {
		return p
	}
	return nil
}

// note describes what the checkpoints covered, for verify's report.
func (g *guard) note() string {
	if g.c == nil {
		return ""
	}
	switch {
	case g.c.Count() == 0:
		return "; no signed checkpoint of this chain"
	case g.c.Matched() == 0:
		return fmt.Sprintf("; none of its %d signed checkpoints falls in the verified range (its first event's link is trusted)", g.c.Count())
	}
	return fmt.Sprintf("; %d of %d signed checkpoints matched", g.c.Matched(), g.c.Count())
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
