package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

func TestAuditHash(t *testing.T) {
	dir := t.TempDir()
	key := strings.Repeat("k", 64)
	if err := os.WriteFile(filepath.Join(dir, digestKeyFile), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("version: 1\ndata_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `{"name":"ledger","config":{"api_key":"summer2024"}}`
	want := capture.Digest([]byte(key), []byte(body))
	out, _, err := runCLI(t, "audit-hash", "--config", cfg, body)
	if err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("audit-hash: %q %v, want %s", out, err, want)
	}
	bodyFile := filepath.Join(dir, "body.json")
	if err := os.WriteFile(bodyFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLI(t, "audit-hash", "--config", cfg, "--match", want, "@"+bodyFile); err != nil || strings.TrimSpace(out) != "match" {
		t.Fatalf("--match with the body: %q %v", out, err)
	}
	guess := strings.Replace(body, "summer2024", "winter2023", 1)
	if out, _, err := runCLI(t, "audit-hash", "--config", cfg, "--match", want, guess); exitCode(err) != 1 || strings.TrimSpace(out) != "no match" {
		t.Fatalf("--match with a wrong guess: %q %v", out, err)
	}
	// A configured capture.digest_key wins over the file.
	t.Setenv("FLOWKER_AUDIT_CAPTURE_DIGEST_KEY", strings.Repeat("c", 40))
	if out, _, _ := runCLI(t, "audit-hash", "--config", cfg, body); strings.TrimSpace(out) != capture.Digest([]byte(strings.Repeat("c", 40)), []byte(body)) {
		t.Fatalf("configured key not used: %q", out)
	}
	if _, _, err := runCLI(t, "audit-hash", "--config", cfg); exitCode(err) != 2 {
		t.Fatalf("no value: %v", err)
	}
}
