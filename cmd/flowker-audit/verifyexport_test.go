package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// apiExport exports through the real audit API over an in-memory store, with a signed checkpoint
// log, and returns the file and the checkpoint public key (hex).
func apiExport(t *testing.T, query string) (path, pub string, events []chain.Event) {
	t.Helper()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	events = append(sinktest.GenerateChain("vm-a", 300, sinktest.GenOptions{Seed: 3, Start: start}),
		sinktest.GenerateChain("vm-b", 200, sinktest.GenOptions{Seed: 4, Start: start})...)
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize)))
	dir := t.TempDir()
	cp, err := signer.Sign("vm-a", events[250].Sequence, events[250].Hash, events[250].Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(cp)
	logPath := filepath.Join(dir, "checkpoints.ndjson")
	if err := os.WriteFile(logPath, append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auditapi.NewStaticKeys([]string{"k-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	store := auditapitest.NewStore(events...)
	api, err := auditapi.New(auditapi.Options{Querier: func(context.Context) (sink.Querier, error) { return store, nil },
		Auth: keys, CursorKey: []byte("0123456789abcdef0123456789abcdef"), CheckpointLog: logPath})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", auditapi.ExportPath+"?format=ndjson&"+query, nil)
	r.Header.Set(auditapi.HeaderAPIKey, "k-0123456789abcdef")
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("export: %d %s", w.Code, w.Body)
	}
	path = filepath.Join(dir, "export.ndjson")
	if err := os.WriteFile(path, w.Body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(signer.Public()), events
}

func TestVerifyAPIExport(t *testing.T) {
	noConfig := filepath.Join(t.TempDir(), "absent.yaml")
	t.Run("whole trail", func(t *testing.T) {
		path, pub, _ := apiExport(t, "sortOrder=ASC")
		out, _, err := runCLI(t, "verify", "--config", noConfig, "--source", path, "--public-key", pub)
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		for _, want := range []string{"contiguous export", "chain vm-a: valid — 300 events (sequence 1 to 300, contiguous), 300 hashes recomputed, 299 links checked; checkpoint at sequence 251",
			"signature valid", "chain vm-b: valid — 200 events", "no signed checkpoint in the export"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("filtered by actor is not a broken chain", func(t *testing.T) {
		path, pub, _ := apiExport(t, "actorType=user")
		out, _, err := runCLI(t, "verify", "--config", noConfig, "--source", path, "--public-key", pub)
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		if !strings.Contains(out, "filtered export (not contiguous chains)") || strings.Contains(out, "INVALID") {
			t.Fatalf("output:\n%s", out)
		}
	})
	t.Run("an edited event fails with exit 1", func(t *testing.T) {
		path, pub, events := apiExport(t, "sortOrder=DESC")
		b, _ := os.ReadFile(path)
		b = bytes.Replace(b, []byte(events[100].EventID), []byte("00000000-0000-4000-8000-000000000000"), 1)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err := runCLI(t, "verify", "--config", noConfig, "--source", path, "--public-key", pub)
		if exitCode(err) != 1 || !strings.Contains(out, "INVALID at sequence 101 (hash mismatch)") {
			t.Fatalf("exit %d:\n%s", exitCode(err), out)
		}
	})
	t.Run("without a key, signatures are said to be unchecked", func(t *testing.T) {
		path, _, _ := apiExport(t, "")
		out, errOut, err := runCLI(t, "verify", "--config", noConfig, "--source", path)
		if err != nil || !strings.Contains(out, "signature not checked") || !strings.Contains(errOut, "not checked") {
			t.Fatalf("%v\n%s\n%s", err, out, errOut)
		}
	})
}
