// Command nullsink is an example of an external flowker-audit sink plugin, written the way a
// third party would write one: it imports only the public SDK (package sink) and the event
// model (package chain).
//
// It accepts every batch and throws the events away, remembering only the head (last sequence
// and hash) of each chain, so the sidecar can resume after a restart without resending what
// it already delivered. With `state_file` in its configuration the heads are also kept in that
// file and survive a restart of the plugin.
//
// Build it and point a sink at it:
//
//	go build -o /usr/local/lib/flowker-audit/nullsink ./sink/examples/nullsink
//
//	sinks:
//	  - name: discard
//	    plugin: /usr/local/lib/flowker-audit/nullsink
//	    config: {state_file: /var/lib/flowker-audit/nullsink.json}
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

func main() {
	// The logger must be created before Serve: serving redirects os.Stderr.
	log := sink.NewLogger(os.Stderr, slog.LevelInfo)
	sink.ServeWithOptions(&nullSink{log: log, heads: map[string]sink.Head{}}, sink.ServeOpts{Logger: log})
}

type config struct {
	// StateFile, when set, keeps the chain heads across plugin restarts.
	StateFile string `json:"state_file"`
}

type nullSink struct {
	log *slog.Logger

	mu    sync.Mutex
	cfg   config
	heads map[string]sink.Head
}

// Interface guards.
var (
	_ sink.Sink      = (*nullSink)(nil)
	_ sink.Validator = (*nullSink)(nil)
)

func parseConfig(raw []byte) (config, error) {
	var cfg config
	if len(bytes.TrimSpace(raw)) == 0 {
		return cfg, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("nullsink config: %w", err)
	}
	return cfg, nil
}

// ValidateConfig implements sink.Validator.
func (s *nullSink) ValidateConfig(raw []byte) error {
	_, err := parseConfig(raw)
	return err
}

func (s *nullSink) Configure(_ context.Context, raw []byte) error {
	cfg, err := parseConfig(raw)
	if err != nil {
		return sink.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
	if cfg.StateFile != "" {
		b, err := os.ReadFile(cfg.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("reading state file: %w", err)
		default:
			if err := json.Unmarshal(b, &s.heads); err != nil {
				return sink.Permanentf("state file %s is corrupt: %w", cfg.StateFile, err)
			}
		}
	}
	s.log.Info("nullsink configured", "state_file", cfg.StateFile, "chains", len(s.heads))
	return nil
}

func (s *nullSink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true}, nil
}

func (s *nullSink) Write(_ context.Context, events []chain.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for i := range events {
		e := &events[i]
		h := s.heads[e.ChainID]
		if h.Found && e.Sequence <= h.Sequence {
			continue // already stored: writes are idempotent by (chainId, sequence)
		}
		s.heads[e.ChainID] = sink.Head{Found: true, Sequence: e.Sequence, Hash: e.Hash}
		changed = true
	}
	if changed && s.cfg.StateFile != "" {
		return s.save()
	}
	return nil
}

// save replaces the state file atomically (write, fsync, rename).
func (s *nullSink) save() error {
	b, err := json.Marshal(s.heads)
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.cfg.StateFile), ".nullsink-*")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.cfg.StateFile); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

func (s *nullSink) Head(_ context.Context, chainID string) (sink.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heads[chainID], nil
}

func (s *nullSink) Close(context.Context) error { return nil }
