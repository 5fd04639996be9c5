package e2e

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/exportfile"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// TestExportThroughTheSidecar: the sidecar (real plugin processes, real checkpoint log) exports
// its trail as NDJSON carrying its own signed checkpoint, which verifies offline with the public
// key; a filtered export verifies as such; the OpenAPI document is served through the proxy.
func TestExportThroughTheSidecar(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		c.Chain.CheckpointInterval = config.Duration(time.Second)
	}})
	for i := 0; i < 12; i++ {
		if r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": fmt.Sprintf("exp-%d", i)}); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	env.Flowker("POST", "/v1/workflows", "not json") // a failed attempt, audited too
	env.WaitDelivered(30 * time.Second)
	keyPath, logPath := env.Config.CheckpointPaths()
	testenv.Eventually(t, 15*time.Second, "a checkpoint of sequence 13", func() bool {
		cps, err := checkpoint.ReadFile(logPath)
		return err == nil && len(cps) > 0 && cps[len(cps)-1].Sequence == 13
	})
	key, err := checkpoint.LoadKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pub := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}

	r := env.Audit("/v1/audit-events/export?format=ndjson&sortOrder=ASC")
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %v", r.Status, r.Header)
	}
	path := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(path, r.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := exportfile.Verify(path, pub, "")
	if err != nil || !res.Valid() || len(res.Chains) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	c := res.Chains[0]
	if c.Events != 13 || !c.Contiguous || !strings.Contains(c.Checkpoint, "checkpoint at sequence 13") || !strings.Contains(c.Checkpoint, "signature valid") {
		t.Fatalf("chain %+v", c)
	}

	r = env.Audit("/v1/audit-events/export?format=ndjson&result=FAILED")
	if err := os.WriteFile(path, r.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = exportfile.Verify(path, pub, "")
	if err != nil || !res.Valid() || res.Header.Contiguous || len(res.Chains) != 1 || res.Chains[0].Events != 1 {
		t.Fatalf("filtered: %v %+v", err, res)
	}

	r = env.Audit("/v1/audit-events/export?format=csv")
	if r.Status != 200 || strings.Count(string(r.Body), "\r\n") != 14 {
		t.Fatalf("csv: %d, %d lines", r.Status, strings.Count(string(r.Body), "\r\n"))
	}
	doc := testenv.Do(t, "GET", env.ProxyURL+"/audit-trail/openapi.yaml", nil, nil)
	if doc.Status != 200 || !strings.HasPrefix(string(doc.Body), "openapi: 3.0.3") {
		t.Fatalf("openapi: %d %.60s", doc.Status, doc.Body)
	}
}
