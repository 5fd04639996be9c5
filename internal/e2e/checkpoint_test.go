package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// TestSignedCheckpointsRevealTailTruncation: the sidecar signs its chain head while running and
// at shutdown; cutting the newest events off the SQLite store (and fixing its chain summary) leaves
// a chain that verifies on its own, but `flowker-audit verify` names the truncation against the
// checkpoint log. Run with the real binary, as an operator would.
func TestSignedCheckpointsRevealTailTruncation(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		c.Chain.CheckpointInterval = config.Duration(time.Second)
	}})
	for i := 0; i < 10; i++ {
		if r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": fmt.Sprintf("cp-%d", i)}); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	env.WaitDelivered(30 * time.Second)
	chainID := env.AllEvents()[0].ChainID
	_, logPath := env.Config.CheckpointPaths()
	testenv.Eventually(t, 15*time.Second, "a periodic checkpoint of sequence 10", func() bool {
		cps, err := checkpoint.ReadFile(logPath)
		return err == nil && len(cps) > 0 && cps[len(cps)-1].Sequence == 10
	})
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	// Periodic checkpoints may have signed earlier heads while the writes were still arriving;
	// the head of sequence 10, unchanged at shutdown, is signed exactly once.
	cps, err := checkpoint.ReadFile(logPath)
	if err != nil || len(cps) == 0 || cps[len(cps)-1].Sequence != 10 {
		t.Fatalf("checkpoint log after shutdown: %+v %v", cps, err)
	}
	for i, cp := range cps {
		if cp.ChainID != chainID || (i > 0 && cp.Sequence <= cps[i-1].Sequence) {
			t.Fatalf("checkpoint log after shutdown (each head signed once, in order, for chain %s): %+v", chainID, cps)
		}
	}

	bin := testenv.Binary(t)
	cfgPath := filepath.Join(env.DataDir, "verify.yaml")
	yaml := fmt.Sprintf("version: 1\ndata_dir: %q\nsinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    config: {path: %q}\n",
		env.DataDir, filepath.Join(env.DataDir, "audit.db"))
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%v: %v\n%s", args, err, out)
		return "", -1
	}

	out, code := cli("verify", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "valid — 10 events verified") || !strings.Contains(out, "1 of 1 signed checkpoints matched") {
		t.Fatalf("verify of the intact store (exit %d):\n%s", code, out)
	}

	pubOut, code := cli("checkpoints", "public-key", "--config", cfgPath)
	pub := regexp.MustCompile(`(?m)^[0-9a-f]{64}$`).FindString(pubOut)
	if code != 0 || pub == "" {
		t.Fatalf("checkpoints public-key (exit %d):\n%s", code, pubOut)
	}

	// An export checked by someone holding only the export, the shipped log and the public key.
	export := filepath.Join(t.TempDir(), "chain.ndjson")
	if out, code := cli("export", "--config", cfgPath, "--chain", chainID, "--out", export); code != 0 {
		t.Fatalf("export (exit %d):\n%s", code, out)
	}
	out, code = cli("verify", "--source", export, "--checkpoints", logPath, "--public-key", pub)
	if code != 0 || !strings.Contains(out, "valid — 10 events verified") || !strings.Contains(out, "1 of 1 signed checkpoints matched") {
		t.Fatalf("verify of the export against the checkpoints (exit %d):\n%s", code, out)
	}

	// Cut sequences 9 and 10 and make the summary agree: a consistent, shorter chain.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.DataDir, "audit.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`DELETE FROM events WHERE chain_id = ? AND seq > 8`,
		`UPDATE chains SET event_count = 8, last_seq = 8 WHERE chain_id = ?`,
	} {
		if _, err := db.Exec(q, chainID); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	out, code = cli("verify", "--config", cfgPath, "--checkpoints", "none")
	if code != 0 || !strings.Contains(out, "valid — 8 events verified") {
		t.Fatalf("without checkpoints the truncated chain should pass as valid, showing the gap they close (exit %d):\n%s", code, out)
	}
	out, code = cli("verify", "--config", cfgPath)
	if code != 1 || !strings.Contains(out, "INVALID at sequence 9 (truncated)") || !strings.Contains(out, "covers sequence 10") {
		t.Fatalf("verify of the truncated store (exit %d):\n%s", code, out)
	}
	t.Logf("truncation reported: %s", strings.TrimSpace(out))
	// The same export, cut short by hand, is reported too.
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	if err := os.WriteFile(export, []byte(strings.Join(lines[:7], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = cli("verify", "--source", export, "--checkpoints", logPath, "--public-key", pub)
	if code != 1 || !strings.Contains(out, "INVALID at sequence 8 (truncated)") {
		t.Fatalf("verify of a shortened export (exit %d):\n%s", code, out)
	}

	// A verifier holding only the log and the public key (no access to the signing key).
	out, code = cli("verify", "--config", cfgPath, "--checkpoints", logPath, "--public-key", pub)
	if code != 1 || !strings.Contains(out, "(truncated)") {
		t.Fatalf("verify with an explicit public key (exit %d):\n%s", code, out)
	}
	// Another key does not verify the log: the chain is not called valid, and the report names
	// the key the checkpoint was signed with (exit 1).
	out, code = cli("verify", "--config", cfgPath, "--public-key", strings.Repeat("ab", 32))
	if code != 1 || !strings.Contains(out, "not by any given key") {
		t.Fatalf("verify with another key (exit %d):\n%s", code, out)
	}
}
