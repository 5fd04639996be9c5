// Package pgtest starts a throwaway PostgreSQL 15 server for tests: initdb in a temporary
// directory, a server on an ephemeral loopback port (fsync off), stopped and removed when the
// test ends. It uses Debian's postgresql-15 binaries (/usr/lib/postgresql/15/bin); as root, the
// server runs as the postgres user (initdb refuses root). FLOWKER_AUDIT_SKIP_POSTGRES=1 skips.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BinDir holds the PostgreSQL 15 programs.
const BinDir = "/usr/lib/postgresql/15/bin"

// Server is a running PostgreSQL server.
type Server struct {
	Port int
	dir  string
	uid  int
}

// URL returns the connection URL of database db (superuser postgres, no password).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Start starts a server for t, or skips/fails with the command that installs PostgreSQL 15.
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Getenv("FLOWKER_AUDIT_SKIP_POSTGRES") == "1" {
		t.Skip("FLOWKER_AUDIT_SKIP_POSTGRES=1: PostgreSQL test skipped")
	}
	if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
		t.Fatalf("PostgreSQL 15 is not installed (%v). Install it with: sudo apt-get install -y postgresql-15 (or set FLOWKER_AUDIT_SKIP_POSTGRES=1)", err)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: dir, uid: -1}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user to run the server: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.uid = uid
	}
	data := filepath.Join(dir, "data")
	s.run(t, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c TimeZone=UTC", s.Port, dir)
	s.run(t, "pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start")
	t.Cleanup(func() {
		cmd := s.cmd("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("stop postgres: %v\n%s", err, out)
		}
	})
	return s
}

func (s *Server) cmd(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(BinDir, prog)
	var cmd *exec.Cmd
	if s.uid >= 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "TZ=UTC")
	return cmd
}

func (s *Server) run(t testing.TB, prog string, args ...string) {
	t.Helper()
	if out, err := s.cmd(prog, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		t.Fatalf("%s %s: %v\n%s\n%s", prog, strings.Join(args, " "), err, out, log)
	}
}
