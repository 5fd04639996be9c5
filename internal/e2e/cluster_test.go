package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// TestThreeSidecarsOneCluster: three sidecars (each its own journal and chain) in front of one
// fake Flowker write concurrently into one replicated ClickHouse cluster (ZooKeeper and two 18.16
// replicas of one shard). Each sidecar's audit API answers over all three chains with the same
// sequence of events, without duplicates or gaps, and every chain verifies through each of them.
// With one shared cursor key, a cursor from one sidecar continues on another, also while the
// three keep writing: the read horizon makes every pass paged during the writes a prefix of the
// final trail.
func TestThreeSidecarsOneCluster(t *testing.T) {
	c := chtest.StartCluster(t, "audit", 2)
	cfg := func(cc *config.Config) {
		cc.Sinks = []config.Sink{{Name: "store", Plugin: "clickhouse", Query: true,
			Config:        map[string]any{"addr": c.Addrs(), "database": "audit", "cluster": "audit"},
			BatchInterval: config.Duration(50 * time.Millisecond)}}
		cc.Auth.CursorKey = "shared-cursor-key-of-the-three-sidecars-0123456789"
	}
	first := testenv.Start(t, testenv.Options{ExecutionDelay: 10 * time.Millisecond, Config: cfg})
	envs := []*testenv.Env{first,
		testenv.StartSidecar(t, first.FakeURL, testenv.Options{Config: cfg}),
		testenv.StartSidecar(t, first.FakeURL, testenv.Options{Config: cfg})}

	// Each sidecar's chain joins the read horizon with its first watermark, sent once its sink
	// plugin is up; events a sidecar stamps before that are outside the horizon (docs/OPERATIONS.md,
	// the horizon's limits). So every chain gets one event, shown through the horizon, before the
	// concurrent writes.
	for i, e := range envs {
		body := map[string]any{"name": fmt.Sprintf("pc-%d-first", i), "providerId": "tracer",
			"config": map[string]any{"base_url": "https://tracer.example", "api_key": "pc-secret-123456"}}
		if r := e.Flowker("POST", "/v1/provider-configurations", body); r.Status != 201 {
			t.Fatalf("sidecar %d first request: %d %s", i, r.Status, r.Body)
		}
	}
	testenv.Eventually(t, 60*time.Second, "the first event of every chain through the read horizon", func() bool {
		return len(first.AllEvents()) == len(envs)
	})

	// One client per sidecar, all at once: provider configurations created (201) and refused
	// (404), each an audit event in that sidecar's chain.
	const perSidecar = 40
	var wg sync.WaitGroup
	for i, e := range envs {
		wg.Add(1)
		go func(i int, e *testenv.Env) {
			defer wg.Done()
			for n := 0; n < perSidecar; n++ {
				time.Sleep(50 * time.Millisecond) // writes spread over a few seconds, for the paging below
				body := map[string]any{"name": fmt.Sprintf("pc-%d-%d-%d", i, n, time.Now().UnixNano()), "providerId": "tracer",
					"config": map[string]any{"base_url": "https://tracer.example", "api_key": "pc-secret-123456"}}
				want := 201
				if n%5 == 4 {
					body["providerId"], want = "nope", 404
				}
				if r := e.Flowker("POST", "/v1/provider-configurations", body); r.Status != want {
					t.Errorf("sidecar %d request %d: %d %s", i, n, r.Status, r.Body)
					return
				}
			}
		}(i, e)
	}
	// Meanwhile, page through the trail again and again, hopping from sidecar to sidecar with
	// each cursor. The read horizon (plugins/clickhouse/watermark.go) serves only what every
	// sidecar has delivered, so each pass must be a prefix of the final trail: no event twice,
	// none skipped, in the final order.
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	var passes [][]string
	for done := false; !done; {
		select {
		case <-writing:
			done = true
		default:
		}
		passes = append(passes, pageHopping(t, envs))
	}
	if t.Failed() {
		t.FailNow()
	}
	var total uint64
	chains := map[string]uint64{}
	for _, e := range envs {
		e.WaitDelivered(90 * time.Second)
		total += e.App.Journal().Last()
		chains[e.App.Journal().ChainID()] = e.App.Journal().Last()
	}
	if len(chains) != 3 || total < 3*perSidecar {
		t.Fatalf("chains %v, %d events journaled, want 3 chains and at least %d events", chains, total, 3*perSidecar)
	}

	// Once every sidecar is caught up, its next heartbeat (at most a second later) moves the
	// read horizon past its last event.
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := uint64(len(envs[0].AllEvents()))
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trail shows %d events 30s after the last delivery, the journals hold %d (the read horizon does not advance)", n, total)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The same trail, in the same order, through every sidecar.
	var ref []string
	for i, e := range envs {
		all := e.AllEvents()
		keys := make([]string, len(all))
		seen := map[string]bool{}
		next := map[string]uint64{}
		for j, ev := range all {
			keys[j] = fmt.Sprintf("%s/%d", ev.ChainID, ev.Sequence)
			if seen[keys[j]] {
				t.Fatalf("sidecar %d: %s twice", i, keys[j])
			}
			seen[keys[j]] = true
			if next[ev.ChainID]+1 != ev.Sequence {
				t.Fatalf("sidecar %d: chain %s goes from %d to %d", i, ev.ChainID, next[ev.ChainID], ev.Sequence)
			}
			next[ev.ChainID] = ev.Sequence
		}
		if uint64(len(all)) != total {
			t.Fatalf("sidecar %d answers %d events, the journals hold %d", i, len(all), total)
		}
		for id, last := range chains {
			if next[id] != last {
				t.Fatalf("sidecar %d: chain %s ends at %d, its journal at %d", i, id, next[id], last)
			}
		}
		if ref == nil {
			ref = keys
		} else if strings.Join(keys, ",") != strings.Join(ref, ",") {
			t.Fatalf("sidecar %d pages the trail in another order than sidecar 0", i)
		}
		// Every chain verifies through this sidecar.
		for id := range chains {
			var lastOfChain chain.Event
			for _, ev := range all {
				if ev.ChainID == id {
					lastOfChain = ev
				}
			}
			var v verifyOut
			e.Audit("/v1/audit-events/"+lastOfChain.EventID+"/verify").JSON(t, &v)
			if !v.IsValid || v.TotalChecked != chains[id] || v.ChainID != id {
				t.Fatalf("sidecar %d: verify of chain %s: %+v", i, id, v)
			}
		}
	}
	if keys := pageHopping(t, envs); strings.Join(keys, ",") != strings.Join(ref, ",") {
		t.Fatalf("paging across the sidecars after the writes saw %d events, want the %d of the trail", len(keys), total)
	}
	most := 0
	for i, keys := range passes {
		for j := range keys {
			if j >= len(ref) || keys[j] != ref[j] {
				t.Fatalf("pass %d of %d while writing: event %d is %s, the final trail has %s there (a gap, a duplicate or another order)",
					i+1, len(passes), j, keys[j], ref[min(j, len(ref)-1)])
			}
		}
		most = max(most, len(keys))
	}
	t.Logf("3 sidecars, %d events in 3 chains, the same trail through each; %d passes paged while writing were each a prefix of it (the longest %d events)",
		total, len(passes), most)
}

// pageHopping pages ascending through the audit API, asking envs[i%3] for page i with the cursor
// the previous sidecar returned, and returns the events it saw as "chain/sequence", failing t when
// an event repeats or a chain skips or reorders a sequence.
func pageHopping(t *testing.T, envs []*testenv.Env) []string {
	t.Helper()
	next := map[string]uint64{}
	var keys []string
	cursor := ""
	for page := 0; ; page++ {
		path := "/v1/audit-events?limit=9&sortOrder=ASC"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := envs[page%len(envs)].Audit(path)
		if r.Status != 200 {
			t.Fatalf("page %d from sidecar %d: %d %s", page, page%len(envs), r.Status, r.Body)
		}
		var p testenv.Page
		r.JSON(t, &p)
		for _, ev := range p.Items {
			if ev.Sequence != next[ev.ChainID]+1 {
				t.Fatalf("page %d from sidecar %d: chain %s goes from %d to %d", page, page%len(envs), ev.ChainID, next[ev.ChainID], ev.Sequence)
			}
			next[ev.ChainID] = ev.Sequence
			keys = append(keys, fmt.Sprintf("%s/%d", ev.ChainID, ev.Sequence))
		}
		if !p.HasMore {
			return keys
		}
		cursor = p.NextCursor
	}
}
