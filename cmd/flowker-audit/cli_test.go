package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestEverySubcommandHelp(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"}, {"check-config", "-h"}, {"healthcheck", "--help"}, {"verify", "--help"},
		{"checkpoints", "public-key", "--help"}, {"checkpoints", "--help"}, {"export", "--help"},
		{"fingerprint", "--help"}, {"schema", "clickhouse", "--help"}, {"schema", "--help"},
		{"fake-flowker", "--help"}, {"version", "--help"}, {"sink", "--help"}, {"sink", "status", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, stderr, err := runCLI(t, args...)
			if exitCode(err) != 0 {
				t.Fatalf("exit %d: %s", exitCode(err), stderr)
			}
			for _, want := range []string{"usage: flowker-audit " + args[0], "example:\n  flowker-audit " + args[0]} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
			// A description line between the synopsis and the flags.
			if parts := strings.SplitN(out, "\n\n", 3); len(parts) < 3 || len(strings.TrimSpace(parts[1])) < 20 {
				t.Errorf("help has no description:\n%s", out)
			}
			if args[0] != "version" && !strings.Contains(out, "flags:\n  -") {
				t.Errorf("help lists no flags:\n%s", out)
			}
		})
	}
	if _, stderr, err := runCLI(t, "verify", "--no-such-flag"); exitCode(err) != 2 || !strings.Contains(stderr, "usage: flowker-audit verify") {
		t.Errorf("bad flag: exit %d, stderr %s", exitCode(err), stderr)
	}
}

func TestVersionPrintsCommitDateAndGo(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-12-07T08:00:00Z"
	out, _, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flowker-audit 1.2.3\n", "commit:     0123456789abcdef0123456789abcdef01234567", "built:      2026-12-07T08:00:00Z", "go version: " + runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigPathFromEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "from-env.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nupstream:\n  url: http://127.0.0.1:4999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLOWKER_AUDIT_CONFIG", path)
	out, stderr, err := runCLI(t, "check-config")
	if err != nil || !strings.Contains(out, path+": OK") || !strings.Contains(out, "http://127.0.0.1:4999") {
		t.Fatalf("check-config with FLOWKER_AUDIT_CONFIG: %v\n%s%s", err, out, stderr)
	}
	// --config still wins.
	if out, _, err := runCLI(t, "check-config", "--config", filepath.Join("..", "..", "config.yaml")); err != nil || !strings.Contains(out, "config.yaml: OK") {
		t.Fatalf("--config: %v\n%s", err, out)
	}
}

func TestMisspeltVariableIsAnError(t *testing.T) {
	t.Setenv("FLOWKER_AUDIT_UPSTREAM_URLX", "http://flowker:4021")
	_, stderr, err := runCLI(t, "check-config", "--config", filepath.Join("..", "..", "config.yaml"))
	if exitCode(err) != 1 || !strings.Contains(stderr, "FLOWKER_AUDIT_UPSTREAM_URLX") || !strings.Contains(stderr, "did you mean FLOWKER_AUDIT_UPSTREAM_URL?") {
		t.Fatalf("exit %d:\n%s", exitCode(err), stderr)
	}
}

func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			_, _ = w.Write([]byte(`{"status":"alive"}`))
		case r.URL.Path == "/readyz" && ready:
			_, _ = w.Write([]byte(`{"status":"ready"}`))
		case r.URL.Path == "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not ready","checks":{"shutdown":{"status":"down"}}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	write := func(addr string) string {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte("version: 1\nadmin:\n  addr: \""+addr+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wildcard := write(":" + port)
	if out, stderr, err := runCLI(t, "healthcheck", "--config", wildcard); err != nil || !strings.Contains(out, "ready") {
		t.Fatalf("ready: %v %s %s", err, out, stderr)
	}
	ready = false
	if _, _, err := runCLI(t, "healthcheck", "--config", wildcard); exitCode(err) != 1 || !strings.Contains(err.Error(), "503") {
		t.Fatalf("not ready: exit %d %v", exitCode(err), err)
	}
	if _, _, err := runCLI(t, "healthcheck", "--config", wildcard, "--path", "/healthz"); err != nil {
		t.Fatalf("alive: %v", err)
	}
	// Nothing listening: exit 1.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if _, _, err := runCLI(t, "healthcheck", "--config", write(dead)); exitCode(err) != 1 {
		t.Fatalf("nothing listening: exit %d", exitCode(err))
	}
}

func TestAdminURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":9464", "http://127.0.0.1:9464/readyz"}, {"0.0.0.0:9464", "http://127.0.0.1:9464/readyz"},
		{"[::]:9464", "http://[::1]:9464/readyz"}, {"127.0.0.1:1", "http://127.0.0.1:1/readyz"}, {"10.0.0.2:9", "http://10.0.0.2:9/readyz"},
	} {
		if got, err := adminURL(tc.addr, "/readyz"); err != nil || got != tc.want {
			t.Errorf("adminURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := adminURL("9464", "/readyz"); err == nil {
		t.Error("a port without a colon is not an address")
	}
}

func TestVerifyExitCodesAndJSON(t *testing.T) {
	good := filepath.Join("..", "..", "plugins", "file", "testdata", "event.ndjson")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "tampered.ndjson")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(raw), `"wf-1"`, `"wf-2"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.ndjson")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	garbled := filepath.Join(t.TempDir(), "garbled.ndjson")
	if err := os.WriteFile(garbled, []byte("{not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		valid     bool
		jsonError string
	}{
		{"valid", []string{"--source", good}, 0, true, ""},
		{"tampered", []string{"--source", bad}, 1, false, ""},
		{"missing file", []string{"--source", filepath.Join(t.TempDir(), "nope.ndjson")}, 3, false, "no such file"},
		{"garbled line", []string{"--source", garbled}, 3, false, "garbled.ndjson:1"},
		{"no events", []string{"--source", empty}, 3, false, "no events found"},
		{"unreadable config", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, 3, false, "reading configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, append([]string{"verify"}, tc.args...)...)
			if exitCode(err) != tc.code {
				t.Fatalf("text: exit %d (%v), want %d", exitCode(err), err, tc.code)
			}
			out, _, err := runCLI(t, append([]string{"verify", "--json"}, tc.args...)...)
			if exitCode(err) != tc.code {
				t.Fatalf("json: exit %d, want %d", exitCode(err), tc.code)
			}
			var rep verifyJSON
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rep); err != nil {
				t.Fatalf("--json output is not one report: %v\n%s", err, out)
			}
			if rep.Valid != tc.valid || rep.ExitCode != tc.code || !strings.Contains(rep.Error, tc.jsonError) {
				t.Errorf("report %+v", rep)
			}
			if tc.code == 1 && (len(rep.Chains) != 1 || rep.Chains[0].Problem == nil || rep.Chains[0].Problem.Reason == "") {
				t.Errorf("an invalid chain names its problem: %+v", rep.Chains)
			}
		})
	}
}
