package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/plugins"
	"github.com/flowker-audit/flowker-audit/plugins/clickhouse"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
	"github.com/flowker-audit/flowker-audit/sink"
)

func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path, config.Options{Plugins: plugins.Catalog{}})
	if err != nil {
		if es, ok := config.IsErrors(err); ok {
			return nil, exitError{code: 1, msg: fmt.Sprintf("%s: %s", path, es.Error())}
		}
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("serve", cmdHelp{usage: "serve [--config FILE]", what: "Run the sidecar: the proxy on listen.addr in front of upstream.url, the admin listener\n(metrics, /healthz, /readyz) on admin.addr, the journal in data_dir and the sink plugins.\nSIGTERM or SIGINT drains and stops it within shutdown_timeout; a second signal exits at once.",
		example: "flowker-audit serve --config /etc/flowker-audit/config.yaml\nFLOWKER_AUDIT_CONFIG=/etc/flowker-audit/config.yaml FLOWKER_AUDIT_UPSTREAM_URL=http://127.0.0.1:4021 flowker-audit serve"}, stdout, stderr)
	path := fs.configFlag()
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	a, err := app.New(ctx, app.Options{Config: cfg, Logger: log, Version: version, Revision: buildCommit()})
	if err != nil {
		return err
	}
	// A second signal while shutting down exits at once.
	go func() {
		<-ctx.Done()
		again, stop := signalContext()
		defer stop()
		<-again.Done()
		if again.Err() != nil && ctx.Err() != nil {
			log.Error("second signal: exiting without waiting")
			os.Exit(1)
		}
	}()
	return a.Run(ctx, nil)
}

func checkConfigCmd(args []string, stdout, stderr io.Writer) error {
	fs := newCommand("check-config", cmdHelp{usage: "check-config [--config FILE]", what: "Validate a configuration (file, then FLOWKER_AUDIT_* environment overrides) and list every\nproblem with its field path; print a summary when it is valid. Exit 0 valid, 1 invalid.",
		example: "flowker-audit check-config --config config.yaml"}, stdout, stderr)
	path := fs.configFlag()
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, config.Options{Plugins: plugins.Catalog{}})
	if err != nil {
		if es, ok := config.IsErrors(err); ok {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", *path, len(es))
			for _, e := range es {
				fmt.Fprintf(stderr, "  %s\n", e.Error())
			}
			return exitError{code: 1}
		}
		return err
	}
	sinks := make([]string, len(cfg.Sinks))
	for i, s := range cfg.Sinks {
		sinks[i] = fmt.Sprintf("%s (%s%s)", s.Name, s.Plugin, map[bool]string{true: ", query"}[s.Query])
	}
	fmt.Fprintf(stdout, "%s: OK\n  listen %s -> upstream %s\n  admin %s, data_dir %s\n  sinks: %s\n  audit API auth: %s\n",
		*path, cfg.Listen.Addr, cfg.Upstream.URL, cfg.Admin.Addr, cfg.DataDir, strings.Join(sinks, ", "), authSummary(cfg.Auth))
	return nil
}

func authSummary(a config.Auth) string {
	var parts []string
	if len(a.APIKeys) > 0 {
		parts = append(parts, fmt.Sprintf("%d API key(s)", len(a.APIKeys)))
	}
	if a.Delegate {
		parts = append(parts, "delegated to Flowker")
	}
	if len(parts) == 0 {
		return "NONE CONFIGURED (the audit API answers 401)"
	}
	return strings.Join(parts, " + ")
}

func pluginCmd(args []string) error {
	if len(args) != 1 {
		return exitError{code: 2, msg: "usage: flowker-audit plugin NAME (started by the sidecar itself)"}
	}
	return plugins.Serve(args[0])
}

func fakeFlowkerCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("fake-flowker", cmdHelp{usage: "fake-flowker [--listen ADDR] [--api-key KEY] [--execution-delay D] [--latency D]", what: "Run the in-memory fake Flowker (the workflow, execution and provider API) for tests and demos.",
		example: "flowker-audit fake-flowker --listen 127.0.0.1:4021 --api-key demo-flowker-key"}, stdout, stderr)
	listen := fs.String("listen", "127.0.0.1:4021", "address to listen on (Flowker's default port is 4021)")
	key := fs.String("api-key", os.Getenv("FAKE_FLOWKER_API_KEY"), "require this X-API-Key on /v1 routes (empty: no auth)")
	delay := fs.Duration("execution-delay", 2*time.Second, "time until an execution completes or fails")
	latency := fs.Duration("latency", 0, "service time added to every response (models a real Flowker in benchmarks)")
	if err := fs.parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return fakeflowker.Run(ctx, *listen, fakeflowker.Options{APIKey: *key, ExecutionDelay: *delay, Latency: *latency, Logger: log}, func(a net.Addr) {
		fmt.Fprintf(stdout, "fake Flowker listening on http://%s\n", a)
	})
}

func fingerprintCmd(args []string, stdout, stderr io.Writer) error {
	fs := newCommand("fingerprint", cmdHelp{usage: "fingerprint [--config FILE] API_KEY", what: "Print the actor id an API key is recorded as (a keyed fingerprint, with identity.fingerprint_key\nor the key the sidecar generated in data_dir), to name it in identity.api_key_names.",
		example: "flowker-audit fingerprint --config config.yaml \"$FLOWKER_API_KEY\""}, stdout, stderr)
	path := fs.configFlag()
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitError{code: 2, msg: "usage: flowker-audit fingerprint [--config FILE] API_KEY"}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	key := []byte(cfg.Identity.FingerprintKey)
	if len(key) == 0 {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "fingerprint.key"))
		if err != nil {
			return fmt.Errorf("no identity.fingerprint_key and no %s yet (start the sidecar once): %w", filepath.Join(cfg.DataDir, "fingerprint.key"), err)
		}
		key = []byte(strings.TrimSpace(string(b)))
	}
	fmt.Fprintln(stdout, identity.Fingerprint(key, fs.Arg(0)))
	return nil
}

func schemaCmd(args []string, stdout, stderr io.Writer) error {
	fs := newCommand("schema clickhouse", cmdHelp{usage: "schema clickhouse [--server-version V] [--database DB] [--table TABLE] [--cluster NAME] [--grants USER]", what: "Print the ClickHouse DDL the clickhouse sink would create (for operators who manage schemas\nthemselves), in the form of the files in deployments/clickhouse; nothing is executed.\nWith --cluster, the replicated variant: ON CLUSTER DDL, Replicated tables named <name>_local\nunder Distributed tables (deployments/clickhouse/cluster).\nWith --grants, print instead the SQL that creates USER with SELECT and INSERT on the database\nand nothing else (ClickHouse 20.5 and later; 18.16 uses users.xml).",
		example: "flowker-audit schema clickhouse --server-version 24.8 --database audit > schema.sql"}, stdout, stderr)
	ver := fs.String("server-version", clickhouse.Legacy.String(), "ClickHouse server version the DDL is for (18.16.1 = portable; 23+ = modern)")
	db := fs.String("database", "audit", "database name")
	table := fs.String("table", clickhouse.TableEvents, "events table name (the sink's table key); the other tables are named after it")
	cluster := fs.String("cluster", "", "cluster name from the servers' remote_servers (the sink's cluster key): print the replicated schema")
	grantsFor := fs.String("grants", "", "print the user and grants SQL for this ClickHouse user instead of the DDL")
	if len(args) == 0 || args[0] != "clickhouse" {
		if err := fs.parse(args); err != nil { // --help
			return err
		}
		return exitError{code: 2, msg: "usage: flowker-audit schema clickhouse [--server-version V] [--database DB]"}
	}
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	v, err := clickhouse.ParseVersion(*ver)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if *grantsFor != "" {
		_, err := fmt.Fprint(stdout, clickhouse.SQLScript(fmt.Sprintf("Application user %s: SELECT and INSERT on %s only (ClickHouse 20.5 and later).\nReplace the placeholder with the SHA-256 hex of the password.", *grantsFor, *db),
			clickhouse.Grants(*db, *grantsFor)))
		return err
	}
	l := clickhouse.Layout{Database: *db, Table: *table, Cluster: *cluster}
	header := fmt.Sprintf("flowker-audit ClickHouse schema v%d for server %s (%s variant).", clickhouse.SchemaVersion, v, v.Variant())
	if *cluster != "" {
		header += fmt.Sprintf("\nReplicated on cluster %s: set the {shard} and {replica} macros on every server (deployments/clickhouse/cluster).", *cluster)
	}
	_, err = fmt.Fprint(stdout, clickhouse.SQLScript(header, clickhouse.SchemaDDL(v, l)))
	return err
}

// openQuerySink starts the configured query sink's plugin on its own (for verify and export).
func openQuerySink(ctx context.Context, cfg *config.Config, log *slog.Logger) (*sink.Client, error) {
	for _, s := range cfg.Sinks {
		if !s.Query {
			continue
		}
		launch, err := app.LaunchOptions(s, nil)
		if err != nil {
			return nil, err
		}
		launch.Logger = log
		c, err := sink.Open(ctx, launch)
		if err != nil {
			return nil, fmt.Errorf("starting sink %s: %w", s.Name, err)
		}
		raw, _ := json.Marshal(s.Config)
		if err := c.Configure(ctx, raw); err != nil {
			c.Kill()
			return nil, fmt.Errorf("configuring sink %s: %w", s.Name, err)
		}
		return c, nil
	}
	return nil, errors.New("no sink has query: true")
}

// verifyResult is what verify found for one chain.
type verifyResult = checkpoint.Report

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("verify", verifyHelp, stdout, stderr)
	path := fs.configFlag()
	source := fs.String("source", "sink", "where to read the chain: sink (the query sink), journal (the local journal; the sidecar must be stopped), or the path of an NDJSON file: the CLI's export, or an export of the audit API (GET /v1/audit-events/export?format=ndjson), checked offline")
	chainID := fs.String("chain", "", "verify only this chain (default: every chain)")
	cpLog := fs.String("checkpoints", "", "signed checkpoint log to check the chain(s) against: every chain must reach its newest checkpoint with the signed hash (default for sink and journal: the configured chain.checkpoint_log; for an NDJSON file: none; none: skip)")
	cpKey := fs.String("public-key", "", "checkpoint verification keys, hex or files, comma-separated (default: the public half of the configured chain.checkpoint_key and chain.checkpoint_public_keys)")
	asJSON := fs.Bool("json", false, "print one JSON object (chains, problems, coverage, counts) instead of text")
	if err := fs.parse(args); err != nil {
		return err
	}
	start := time.Now()
	var results []verifyResult
	var err error
	var cp *checkpoint.Evidence
	switch *source {
	case "sink", "journal":
		cfg, lerr := loadConfig(*path)
		if lerr != nil {
			return verifyReadError(stdout, *asJSON, lerr)
		}
		if cp, err = loadCheckpoints(cfg, *cpLog, *cpKey); err != nil {
			return verifyReadError(stdout, *asJSON, err)
		}
		if *source == "journal" {
			results, err = verifyJournal(ctx, cfg, cp)
		} else {
			results, err = verifySink(ctx, cfg, *chainID, cp, newLogger(config.Log{Format: "text", Level: "warn"}, stderr))
		}
	default:
		if ok, xerr := isExportFile(*source); xerr != nil {
			return verifyReadError(stdout, *asJSON, xerr)
		} else if ok { // an export of the audit API (verifyexport.go)
			if *asJSON {
				return exitError{code: exitUsage, msg: "verify: --json is not available for audit API exports (GET /v1/audit-events/export) yet"}
			}
			return verifyExportCmd(*source, *chainID, *cpKey, *path, stdout, stderr)
		}
		if cp, err = loadCheckpoints(nil, *cpLog, *cpKey); err != nil {
			return verifyReadError(stdout, *asJSON, err)
		}
		results, err = verifyNDJSON(ctx, *source, *chainID, cp)
	}
	if err != nil {
		return verifyReadError(stdout, *asJSON, err)
	}
	if cp != nil && !*asJSON {
		for _, w := range cp.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	return verifyReport(stdout, results, time.Since(start), *asJSON)
}

func verifySink(ctx context.Context, cfg *config.Config, only string, cp *checkpoint.Evidence, log *slog.Logger) ([]verifyResult, error) {
	c, err := openQuerySink(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer c.Kill()
	chains, err := c.Chains(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	var out []verifyResult
	seen := map[string]bool{}
	for _, ch := range chains {
		if only != "" && ch.ChainID != only {
			continue
		}
		seen[ch.ChainID] = true
		if cp != nil && len(cp.Keys) > 0 {
			// The checkpoints the sink keeps count too (their signatures are checked).
			if cps, err := c.ReadCheckpoints(ctx, ch.ChainID); err == nil {
				for _, x := range cps {
					cp.Add(checkpoint.Checkpoint{ChainID: x.ChainID, Sequence: x.Sequence, Hash: x.Hash, Time: x.Time, KeyID: x.KeyID, Signature: x.Signature})
				}
			}
		}
		addSinkAnchors(ctx, c, ch.ChainID, cp) // verify_retention.go
		r, err := checkpoint.Verify(ctx, c.ReadChain, checkpoint.Request{ChainID: ch.ChainID, StoredLast: ch.Last, Evidence: cp})
		if err != nil {
			return nil, fmt.Errorf("reading chain %s: %w", ch.ChainID, err)
		}
		if r.Problem == nil && r.Checked < ch.Count {
			// ReadChain ended early: the events after it are missing.
			r.Problem = &chain.Problem{ChainID: ch.ChainID, Sequence: r.From + r.Checked, Reason: chain.ReasonGap,
				Detail: fmt.Sprintf("the sink holds %d events but only %d link up from the genesis", ch.Count, r.Checked)}
		}
		out = append(out, r)
	}
	// A chain with signed checkpoints that the sink does not hold at all was removed whole.
	for _, id := range evidenceChains(cp) {
		if seen[id] || (only != "" && id != only) {
			continue
		}
		addSinkAnchors(ctx, c, id, cp)
		none := func(context.Context, string, uint64, uint64, func(*chain.Event) error) error { return nil }
		r, err := checkpoint.Verify(ctx, none, checkpoint.Request{ChainID: id, Evidence: cp})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out, nil
}

// evidenceChains returns the chain ids the checkpoint log mentions.
func evidenceChains(cp *checkpoint.Evidence) []string {
	if cp == nil {
		return nil
	}
	return checkpoint.Chains(cp.Checkpoints)
}

// verifyJournal checks the local journal read-only (journal.Inspect: the file is never changed,
// nothing is cut): the retained events from the first one on, its link trusted (the whole chain is
// verified against the query sink). A damaged record is reported as such, not as a gap.
func verifyJournal(ctx context.Context, cfg *config.Config, cp *checkpoint.Evidence) ([]verifyResult, error) {
	path := filepath.Join(cfg.DataDir, "journal.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var first *chain.Event
	in, err := journal.Inspect(ctx, path, 1, func(e *chain.Event) error {
		ev := *e
		first = &ev
		return errStopRead
	})
	if err != nil && !errors.Is(err, errStopRead) {
		return nil, err
	}
	req := checkpoint.Request{ChainID: in.ChainID, From: in.Last + 1, StoredLast: in.Last, Evidence: cp}
	if first != nil {
		req.From, req.PrevHash = first.Sequence, first.PreviousHash
	}
	var damaged []journal.RecordDamage
	read := func(ctx context.Context, _ string, from, to uint64, fn func(*chain.Event) error) error {
		in, err := journal.Inspect(ctx, path, from, func(e *chain.Event) error {
			if to != 0 && e.Sequence > to {
				return errStopRead
			}
			return fn(e)
		})
		damaged = in.Damaged
		if errors.Is(err, errStopRead) {
			return nil
		}
		return err
	}
	r, err := checkpoint.Verify(ctx, read, req)
	if err != nil {
		return nil, err
	}
	// A damaged record first shows as a gap (or a broken link) at or after it: name it.
	if len(damaged) > 0 && (r.Problem == nil || damaged[0].Sequence <= r.Problem.Sequence) {
		d := damaged[0]
		r.Problem = &chain.Problem{ChainID: in.ChainID, Sequence: d.Sequence, Reason: chain.ReasonDamagedRecord,
			Detail: fmt.Sprintf("%s (%d damaged record(s) in the journal; verify does not change the file: the sidecar's start cuts them)", d.Reason, len(damaged))}
		if d.Sequence >= r.From && d.Sequence-r.From < r.Checked {
			r.Checked = d.Sequence - r.From
		}
	}
	return []verifyResult{r}, nil
}

// errStopRead ends a read early.
var errStopRead = errors.New("stop")

// verifyNDJSON verifies every chain of an NDJSON export: a first pass finds each chain's first
// event (an export may start mid-chain: its link is trusted), then each chain is read and checked.
func verifyNDJSON(ctx context.Context, path, only string, cp *checkpoint.Evidence) ([]verifyResult, error) {
	type firstEvent struct {
		seq  uint64
		prev string
	}
	firsts := map[string]firstEvent{}
	err := scanNDJSON(path, func(e *chain.Event) error {
		if _, ok := firsts[e.ChainID]; !ok && (only == "" || e.ChainID == only) {
			firsts[e.ChainID] = firstEvent{e.Sequence, e.PreviousHash}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	read := func(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
		return scanNDJSON(path, func(e *chain.Event) error {
			if e.ChainID != chainID || e.Sequence < from || (to != 0 && e.Sequence > to) {
				return nil
			}
			return fn(e)
		})
	}
	var out []verifyResult
	for id, f := range firsts {
		r, err := checkpoint.Verify(ctx, read, checkpoint.Request{ChainID: id, From: f.seq, PrevHash: f.prev, Evidence: cp})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out, nil
}

// scanNDJSON calls fn for every event of the NDJSON file at path, in file order.
func scanNDJSON(path string, fn func(*chain.Event) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var e chain.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("export", cmdHelp{usage: "export [--config FILE] --chain ID [--from N] [--to N] [--out FILE]", what: "Write a chain from the query sink as NDJSON (one event per line, as hashed), for archiving or for\nflowker-audit verify --source FILE elsewhere.",
		example: "flowker-audit export --config config.yaml --chain vm-dd82e083 --out chain.ndjson"}, stdout, stderr)
	path := fs.configFlag()
	chainID := fs.String("chain", "", "chain to export (required; see verify for the list)")
	from := fs.Uint64("from", 1, "first sequence")
	to := fs.Uint64("to", 0, "last sequence (0: the end)")
	out := fs.String("out", "-", "output file (- for stdout)")
	if err := fs.parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	c, err := openQuerySink(ctx, cfg, newLogger(config.Log{Format: "text", Level: "warn"}, stderr))
	if err != nil {
		return err
	}
	defer c.Kill()
	if *chainID == "" {
		chains, err := c.Chains(ctx)
		if err != nil {
			return err
		}
		if len(chains) != 1 {
			ids := make([]string, len(chains))
			for i, ch := range chains {
				ids[i] = ch.ChainID
			}
			return exitError{code: 2, msg: fmt.Sprintf("--chain is required when the sink holds %d chains: %s", len(chains), strings.Join(ids, ", "))}
		}
		*chainID = chains[0].ChainID
	}
	w := stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	n := 0
	buf := make([]byte, 0, 4096)
	err = c.ReadChain(ctx, *chainID, *from, *to, func(e *chain.Event) error {
		buf = append(e.AppendJSON(buf[:0]), '\n')
		n++
		_, err := bw.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d events of chain %s\n", n, *chainID)
	return nil
}
