package chtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	version := func() string {
		t.Helper()
		out, err := s.Query(ctx, "SELECT version()")
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		return strings.TrimSpace(out)
	}
	if v := version(); v == "" {
		t.Fatal("empty version")
	}
	if _, err := s.Query(ctx, "CREATE TABLE default.t (x UInt64) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query(ctx, "INSERT INTO default.t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}

	// A crash loses nothing that was acknowledged, and the server comes back on the same ports.
	addr, httpAddr := s.Addr, s.HTTPAddr
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if _, err := s.Query(ctx, "SELECT 1"); err == nil {
		t.Fatal("query succeeded while the server was down")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr || s.HTTPAddr != httpAddr {
		t.Fatalf("addresses changed across restart: %s %s -> %s %s", addr, httpAddr, s.Addr, s.HTTPAddr)
	}
	out, err := s.Query(ctx, "SELECT sum(x) FROM default.t")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "3" {
		t.Fatalf("sum after restart = %q, want 3", out)
	}

	// A graceful stop, then Restart again.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if !s.Running() {
		t.Fatal("not running after Restart")
	}
}

func TestLaunchSkip(t *testing.T) {
	t.Setenv(EnvSkip, "1")
	if _, err := Launch(); err != ErrSkipped {
		t.Fatalf("Launch with %s=1: err = %v, want ErrSkipped", EnvSkip, err)
	}
}

func TestUsersD(t *testing.T) {
	s := Start(t, WithUsersD("extra.xml", []byte(`<?xml version="1.0"?>
<yandex><users><reader><password>pw</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></reader></users></yandex>`)))
	ctx := context.Background()
	out, err := s.QueryAs(ctx, "reader", "pw", "SELECT DISTINCT user FROM system.processes WHERE query LIKE '%system.processes%'")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "reader" {
		t.Fatalf("user of the running query = %q, want reader", out)
	}
	if _, err := s.QueryAs(ctx, "reader", "wrong", "SELECT 1"); err == nil {
		t.Fatal("wrong password accepted")
	}
}

func TestChdb(t *testing.T) {
	c := RequireChdb(t)
	res, err := c.Run(context.Background(), "TSV", []string{"SELECT version()", "SELECT nonsense(", "SELECT unhex('00ff41')"})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != "" || !strings.HasPrefix(string(res[0].Output), "26.") {
		t.Errorf("version: %+v (want a 26.x engine)", res[0])
	}
	if res[1].Err == "" {
		t.Errorf("syntax error not reported: %+v", res[1])
	}
	if res[2].Err != "" || string(res[2].Output) != "\\0\xffA\n" {
		t.Errorf("binary output not preserved: %q", res[2].Output)
	}
}
