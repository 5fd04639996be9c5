package chtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Environment variables for the modern-engine checks.
const (
	// EnvSkipChdb, when "1", makes RequireChdb skip the test instead of failing when chdb is
	// not installed.
	EnvSkipChdb = "FLOWKER_AUDIT_SKIP_CHDB"
	// EnvChdbDir overrides the directory holding run.js and node_modules/chdb.
	EnvChdbDir = "FLOWKER_AUDIT_CHDB_DIR"
)

// ChdbInstallCommand installs chdb for the tests (from the repository root).
const ChdbInstallCommand = "internal/chtest/chdb/install.sh"

// Chdb runs SQL on chdb, an embedded current ClickHouse (26.x) from the npm registry, through
// node. It has no network protocol: statements are plain SQL text.
type Chdb struct {
	// Dir holds run.js and node_modules/chdb.
	Dir string
	// Node is the node binary.
	Node string
}

// ChdbResult is the outcome of one statement.
type ChdbResult struct {
	SQL    string
	Output []byte // the result in the requested format, exact bytes
	Err    string // the engine's error, "" on success
}

// FindChdb locates node and the installed chdb module. Its error says how to install them.
func FindChdb() (*Chdb, error) {
	dir := os.Getenv(EnvChdbDir)
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return nil, errors.New("locate internal/chtest/chdb: no caller information")
		}
		dir = filepath.Join(filepath.Dir(file), "chdb")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found (apt-get install -y nodejs npm), then run %s", ChdbInstallCommand)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "chdb", "package.json")); err != nil {
		return nil, fmt.Errorf("chdb is not installed in %s; run %s (or set %s=1 to skip)", dir, ChdbInstallCommand, EnvSkipChdb)
	}
	return &Chdb{Dir: dir, Node: node}, nil
}

// RequireChdb returns chdb or fails t with the install command; it skips t only when
// FLOWKER_AUDIT_SKIP_CHDB=1.
func RequireChdb(t testing.TB) *Chdb {
	t.Helper()
	c, err := FindChdb()
	if err == nil {
		return c
	}
	if os.Getenv(EnvSkipChdb) == "1" {
		t.Skipf("modern-engine check skipped (%s=1): %v", EnvSkipChdb, err)
	}
	t.Fatalf("modern-engine check: %v", err)
	return nil
}

// Run executes statements in order in one fresh chdb session and returns one result per
// statement. format is a ClickHouse output format ("TSV" when empty). A failing statement does
// not stop the others; err reports only a failure to run chdb at all.
func (c *Chdb) Run(ctx context.Context, format string, statements []string) ([]ChdbResult, error) {
	if format == "" {
		format = "TSV"
	}
	in, err := json.Marshal(map[string]any{"statements": statements, "format": format})
	if err != nil {
		return nil, fmt.Errorf("encode chdb input: %w", err)
	}
	cmd := exec.CommandContext(ctx, c.Node, filepath.Join(c.Dir, "run.js"))
	cmd.Dir = c.Dir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run chdb: %w: %s", err, stderr.String())
	}
	var raw []struct {
		OK     bool   `json:"ok"`
		Output string `json:"output_b64"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		return nil, fmt.Errorf("decode chdb output: %w", err)
	}
	if len(raw) != len(statements) {
		return nil, fmt.Errorf("chdb returned %d results for %d statements", len(raw), len(statements))
	}
	out := make([]ChdbResult, len(raw))
	for i, r := range raw {
		out[i] = ChdbResult{SQL: statements[i], Err: r.Error}
		if r.OK {
			if out[i].Output, err = base64.StdEncoding.DecodeString(r.Output); err != nil {
				return nil, fmt.Errorf("decode chdb result %d: %w", i, err)
			}
		} else if out[i].Err == "" {
			out[i].Err = "unknown chdb error"
		}
	}
	return out, nil
}
