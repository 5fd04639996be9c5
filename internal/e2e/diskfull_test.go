package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, or skips the test when this
// process may not mount (not root, or no CAP_SYS_ADMIN in a container).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: the full-disk test mounts a small tmpfs and needs root (run `sudo go test -run TestDiskFull ./internal/e2e/`)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size)+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("skipped: could not mount a tmpfs (needs CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a ballast file until the file system is full and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ballast")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return p
		}
	}
}

// TestDiskFullLeavesNoChangeWithoutEvent: the journal's disk fills up for real (data_dir on a
// small tmpfs, filled with a ballast file) while clients keep creating workflows through the real
// sidecar process. Requests whose intent cannot be written are refused with 503 before Flowker
// sees them (counted); requests already forwarded keep their event, which is journaled once space
// is back. After the ballast is removed the sidecar writes again without a restart, and every
// change Flowker applied has exactly one event.
func TestDiskFullLeavesNoChangeWithoutEvent(t *testing.T) {
	dataDir := mountTmpfs(t, 8<<20)
	applied := &appliedLog{changes: map[string]int{}}
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey})
	fsrv := httptest.NewServer(applied.wrap(fake))
	defer fsrv.Close()
	cfgDir := t.TempDir() // config, and the SQLite store, off the small disk
	pp, ap := freePort(t), freePort(t)
	cfg := writeCrashConfig(t, cfgDir, fsrv.URL, pp, ap, ", compact_every: 1h")
	b, _ := os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), "data_dir: "+strconv.Quote(cfgDir), "data_dir: "+strconv.Quote(dataDir), 1))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, cfg, pp, ap)
	ballast := fillDisk(t, dataDir)

	proxyURL := proc.proxy
	wl := &workload{proxy: func() string { return proxyURL }, client: &http.Client{Timeout: 10 * time.Second}, acked: map[string]string{}}
	var mu sync.Mutex
	codes := map[int]int{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				status, _, _ := wl.do(ctx, "POST", "/v1/workflows", map[string]any{"name": "full-" + strconv.Itoa(w) + "-" + strconv.Itoa(i),
					"description": strings.Repeat("d", 400)}, nil)
				mu.Lock()
				codes[status]++
				mu.Unlock()
			}
		}()
	}
	metric := func(name string) float64 {
		r := testenv.Do(t, "GET", proc.admin+"/metrics", nil, nil)
		for _, line := range strings.Split(string(r.Body), "\n") {
			if strings.HasPrefix(line, name+" ") {
				v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
				return v
			}
		}
		return -1
	}
	testenv.Eventually(t, 60*time.Second, "requests refused because the disk is full", func() bool {
		return metric(`flowker_audit_proxy_refused_total{reason="journal_failed"}`) >= 20
	})
	if !strings.Contains(proc.stderr.String(), "no space left on device") {
		t.Fatalf("the journal did not report ENOSPC:\n%s", proc.stderr.String())
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	// Space is back: the same process writes again.
	created := func() int {
		mu.Lock()
		defer mu.Unlock()
		return codes[201]
	}
	testenv.Eventually(t, 30*time.Second, "writes succeeding again without a restart", func() bool {
		before := created()
		time.Sleep(200 * time.Millisecond)
		return created() > before
	})
	stop()
	wg.Wait()
	testenv.Eventually(t, 30*time.Second, "no event waiting and no intent pending", func() bool {
		return metric("flowker_audit_intents_pending") == 0 && metric("flowker_audit_proxy_events_waiting") == 0
	})
	env := &testenv.Env{ProxyURL: proc.proxy}
	var events []chain.Event
	testenv.Eventually(t, 60*time.Second, "every applied change in the trail", func() bool {
		events = allEvents(t, env)
		success := map[string]int{}
		for _, e := range events {
			if e.Result == chain.ResultSuccess {
				success[e.EventType+" "+e.ResourceID]++
			}
		}
		applied.mu.Lock()
		defer applied.mu.Unlock()
		for k, n := range applied.changes {
			if success[k] != n {
				return false
			}
		}
		return len(success) == len(applied.changes)
	})
	have := map[string]bool{}
	for _, e := range events {
		if have[e.EventID] {
			t.Errorf("event %s stored twice", e.EventID)
		}
		have[e.EventID] = true
	}
	wl.mu.Lock()
	for id := range wl.acked {
		if !have[id] {
			t.Errorf("acknowledged event %s is not in the trail", id)
		}
	}
	wl.mu.Unlock()
	if lost := metric(`flowker_audit_events_lost_total{reason="journal_failed"}`); lost != 0 {
		t.Errorf("events_lost_total{journal_failed} = %v", lost)
	}
	mu.Lock()
	t.Logf("answers %v; refused %v; events journaled late %v; %d changes applied, %d events",
		codes, metric(`flowker_audit_proxy_refused_total{reason="journal_failed"}`), metric("flowker_audit_proxy_events_late_total"),
		len(applied.changes), len(events))
	mu.Unlock()
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
}
