// Command flowker-audit is an audit sidecar for the Flowker workflow API: a reverse proxy that
// turns every mutating request into a hash-chained audit event, journals it durably, delivers it
// to sink plugins and serves Flowker's audit API and the Audit Trail page.
//
// Usage:
//
//	flowker-audit serve [--config FILE]          run the sidecar (default $FLOWKER_AUDIT_CONFIG or config.yaml)
//	flowker-audit check-config [--config FILE]   validate the configuration, listing every problem
//	flowker-audit healthcheck [--config FILE]    exit 0 when the admin listener's /readyz answers 200
//	flowker-audit verify [--config FILE] [--source sink|journal|FILE.ndjson] [--chain ID]
//	                     [--checkpoints FILE|none] [--public-key HEX|FILE] [--json]
//	flowker-audit checkpoints public-key [--config FILE]
//	flowker-audit export [--config FILE] --chain ID [--from N] [--to N] [--out FILE]
//	flowker-audit sink status [--config FILE] | sink repair NAME [--config FILE] [--apply]
//	flowker-audit fingerprint [--config FILE] API_KEY
//	flowker-audit schema clickhouse [--server-version V] [--database DB]
//	flowker-audit fake-flowker [--listen ADDR] [--api-key KEY] [--execution-delay D] [--latency D]
//	flowker-audit plugin NAME                    (internal: serve a bundled sink plugin)
//	flowker-audit version
//
// Every subcommand's --help says what it does, its flags and an example.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(os.Stderr, ex.msg)
			}
			os.Exit(ex.code)
		}
		fmt.Fprintln(os.Stderr, "flowker-audit:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a specific status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

const usage = `flowker-audit — audit sidecar for the Flowker workflow API

Usage:
  flowker-audit serve [--config FILE]          run the sidecar
  flowker-audit check-config [--config FILE]   validate the configuration, listing every problem
  flowker-audit healthcheck [--config FILE]    exit 0 when the admin listener's /readyz answers 200
                                               (for images without a shell, and compose)
  flowker-audit verify [--config FILE] [--source sink|journal|FILE.ndjson] [--chain ID]
                       [--checkpoints FILE|none] [--public-key HEX|FILE] [--json]
                                               recompute every hash and link of the chain(s) and
                                               check them against the signed checkpoints
                                               (exit 0 valid, 1 invalid, 3 could not read)
  flowker-audit checkpoints public-key [--config FILE]
                                               print the key that verifies this sidecar's checkpoints
  flowker-audit export [--config FILE] --chain ID [--from N] [--to N] [--out FILE]
                                               write a chain as NDJSON from the query sink
  flowker-audit sink status [--config FILE]    each sink's head and rows against the journal (sidecar stopped)
  flowker-audit sink repair NAME [--config FILE] [--apply]
                                               drop the rows of sink NAME the journal disagrees with
                                               and restore the genuine events (dry run without --apply)
  flowker-audit import flowker --postgres-url URL [--config FILE] [--chain ID] [--report FILE]
                                               copy Flowker's own audit_events (PostgreSQL) into the
                                               sinks as chain flowker-native (resumable, idempotent)
  flowker-audit fingerprint [--config FILE] API_KEY
                                               print the actor id an API key is recorded as
  flowker-audit audit-hash [--config FILE] [--match HEX] VALUE|-|@FILE
                                               print (or check) the keyed digest events carry for a value
  flowker-audit schema clickhouse [--server-version V] [--database DB]
                                               print the ClickHouse DDL (dry run)
  flowker-audit fake-flowker [--listen ADDR] [--api-key KEY] [--execution-delay D] [--latency D]
                                               run the in-memory fake Flowker (tests, demos)
  flowker-audit version                        version, commit, build date and Go version

Every command's --help says what it does, its flags and an example.
--config defaults to $FLOWKER_AUDIT_CONFIG, else config.yaml.
Environment overrides: FLOWKER_AUDIT_<KEY_PATH>, e.g. FLOWKER_AUDIT_UPSTREAM_URL,
FLOWKER_AUDIT_AUTH_API_KEYS (comma-separated); an unknown FLOWKER_AUDIT_* variable is an error.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serveCmd(ctx, rest, stdout, stderr)
	case "check-config":
		return checkConfigCmd(rest, stdout, stderr)
	case "healthcheck":
		return healthcheckCmd(ctx, rest, stdout, stderr)
	case "verify":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return verifyCmd(ctx, rest, stdout, stderr)
	case "checkpoints":
		return checkpointsCmd(ctx, rest, stdout, stderr)
	case "export":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return exportCmd(ctx, rest, stdout, stderr)
	case "sink":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return sinkCmd(ctx, rest, stdout, stderr)
	case "fingerprint":
		return fingerprintCmd(rest, stdout, stderr)
	case "audit-hash":
		return auditHashCmd(rest, stdout, stderr)
	case "import":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return importCmd(ctx, rest, stdout, stderr)
	case "schema":
		return schemaCmd(rest, stdout, stderr)
	case "fake-flowker":
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return fakeFlowkerCmd(ctx, rest, stdout, stderr)
	case "plugin":
		return pluginCmd(rest)
	case "version", "--version", "-v":
		return versionCmd(rest, stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return exitError{code: 2}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
