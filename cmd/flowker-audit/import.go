package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/internal/flowkerimport"
	"github.com/flowker-audit/flowker-audit/sink"
)

// importCmd: flowker-audit import flowker — copy Flowker's native audit history into the sinks.
func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "flowker" {
		return exitError{code: 2, msg: "usage: flowker-audit import flowker --postgres-url URL [--config FILE] [--table audit_events] [--chain flowker-native] [--report FILE] [--sidecar-stopped]"}
	}
	fs := newCommand("import flowker", cmdHelp{usage: "import flowker --postgres-url URL [--config FILE] [--table audit_events] [--chain flowker-native] [--report FILE] [--sidecar-stopped]",
		what:    "Copy Flowker's own audit history (its PostgreSQL audit_events table) into every sink of the\nconfiguration as the chain flowker-native, rows unchanged, each checked with Flowker's hash rules\n(rows that do not verify are imported as they are and listed). Resumable and idempotent.",
		example: "FLOWKER_AUDIT_IMPORT_POSTGRES_URL=postgres://flowker@db:5432/flowker flowker-audit import flowker --config config.yaml"}, stdout, stderr)
	path := fs.configFlag()
	pgURL := fs.String("postgres-url", os.Getenv("FLOWKER_AUDIT_IMPORT_POSTGRES_URL"), "Flowker's PostgreSQL, e.g. postgres://user:pass@host:5432/flowker?sslmode=require (default $FLOWKER_AUDIT_IMPORT_POSTGRES_URL, which keeps the password out of the process list)")
	table := fs.String("table", "audit_events", "Flowker's audit table (schema-qualified names accepted)")
	chainID := fs.String("chain", flowkerimport.DefaultChainID, "chain id the rows are stored as")
	report := fs.String("report", "", "append one JSON line per row that does not verify to this file (default: stdout)")
	stopped := fs.Bool("sidecar-stopped", false, "confirm the sidecar is stopped: needed when a file sink is configured (its files have one writer)")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	if *pgURL == "" {
		return exitError{code: 2, msg: "--postgres-url (or FLOWKER_AUDIT_IMPORT_POSTGRES_URL) is required"}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(config.Log{Format: "text", Level: "info"}, stderr)
	var targets []flowkerimport.NamedTarget
	defer func() {
		for _, t := range targets {
			t.Target.(*sink.Client).Kill()
		}
	}()
	for _, s := range cfg.Sinks {
		if s.Plugin == "file" && !*stopped {
			return exitError{code: 2, msg: fmt.Sprintf("sink %s is a file sink, whose files take one writer: stop the sidecar and re-run with --sidecar-stopped", s.Name)}
		}
		launch, err := app.LaunchOptions(s, nil)
		if err != nil {
			return err
		}
		launch.Logger = log
		c, err := sink.Open(ctx, launch)
		if err != nil {
			return fmt.Errorf("starting sink %s: %w", s.Name, err)
		}
		raw, _ := json.Marshal(s.Config)
		if err := c.Configure(ctx, raw); err != nil {
			c.Kill()
			return fmt.Errorf("configuring sink %s: %w", s.Name, err)
		}
		caps, err := c.Capabilities(ctx)
		if err != nil || !caps.Write {
			c.Kill()
			if err != nil {
				return fmt.Errorf("sink %s: %w", s.Name, err)
			}
			continue
		}
		targets = append(targets, flowkerimport.NamedTarget{Name: s.Name, Target: c})
	}
	out := stdout
	if *report != "" {
		f, err := os.OpenFile(*report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	rep, err := flowkerimport.Import(ctx, flowkerimport.Options{PostgresURL: *pgURL, Table: *table, ChainID: *chainID, Targets: targets, Logger: log,
		OnFlag: func(f flowkerimport.Flag) { _ = enc.Encode(map[string]any{"flagged": f}) }})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "chain %s: %d rows read after sequence %d, now %d events in %d sink(s); %d row(s) do not verify under Flowker's rules\n",
		rep.ChainID, rep.Read, rep.Resumed, rep.Last, len(targets), len(rep.Flagged))
	if len(rep.Flagged) > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d imported row(s) do not verify (imported as they are, listed above or in --report)", len(rep.Flagged))}
	}
	return nil
}
