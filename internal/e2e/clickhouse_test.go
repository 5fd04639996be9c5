package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/sink"
)

func clickhouseSink(ch *chtest.Server, query bool) config.Sink {
	return config.Sink{Name: "warehouse", Plugin: "clickhouse", Query: query,
		Config:        map[string]any{"addr": []any{ch.Addr}, "database": "audit"},
		BatchInterval: config.Duration(50 * time.Millisecond)}
}

func waitSink(t *testing.T, env *testenv.Env, name string) {
	t.Helper()
	testenv.Eventually(t, 90*time.Second, "sink "+name+" to acknowledge every event", func() bool {
		c, _ := env.App.Journal().Cursor(name)
		return c >= env.App.Journal().Last()
	})
}

// TestClickHouseAnswersLikeSQLite: fake Flowker -> sidecar -> ClickHouse (the query sink) and
// SQLite side by side; the audit API (served from ClickHouse) returns the same events in the
// same order as the SQLite store for the same flows, in both orders and with filters; /verify is
// valid; an ALTER UPDATE of one row makes /verify name its sequence.
func TestClickHouseAnswersLikeSQLite(t *testing.T) {
	ch := chtest.Start(t)
	env := testenv.Start(t, testenv.Options{ExecutionDelay: 200 * time.Millisecond, Config: func(c *config.Config) {
		c.Sinks = []config.Sink{clickhouseSink(ch, true),
			{Name: "store", Plugin: "sqlite", Config: map[string]any{"path": filepath.Join(c.DataDir, "audit.db")}}}
	}})
	_, outcomes := scenario(t, caller{t: t, base: env.ProxyURL})
	// An outcome is looked for in the journal and in the store: once both sinks hold it, the
	// journal compacts it away (every 200 ms here).
	testenv.Eventually(t, 30*time.Second, "execution outcomes", func() bool {
		stored := map[string]bool{}
		for _, e := range env.AllEvents() {
			if e.EventType == chain.ExecutionCompleted || e.EventType == chain.ExecutionFailed {
				stored[e.ResourceID] = true
			}
		}
		for id := range outcomes {
			if !stored[id] && len(terminalInJournal(t, env, id)) == 0 {
				return false
			}
		}
		return true
	})
	waitSink(t, env, "warehouse")
	waitSink(t, env, "store")

	// Open the SQLite store in-process to compare.
	lite := sqlite.New(sqlite.Options{})
	if err := lite.Configure(context.Background(), []byte(fmt.Sprintf(`{"path": %q}`, filepath.Join(env.DataDir, "audit.db")))); err != nil {
		t.Fatal(err)
	}
	defer lite.Close(context.Background())
	q := sink.Querier(lite)

	for _, tc := range []struct{ query, filter string }{
		{"sortOrder=ASC", ""}, {"sortOrder=DESC", ""}, {"eventType=" + chain.ExecutionStarted, chain.ExecutionStarted},
		{"result=FAILED&sortOrder=ASC", ""},
	} {
		var api []string
		cursor := ""
		for {
			r := env.Audit("/v1/audit-events?limit=7&" + tc.query + cursorParam(cursor))
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", tc.query, r.Status, r.Body)
			}
			var p testenv.Page
			r.JSON(t, &p)
			for _, e := range p.Items {
				api = append(api, e.EventID)
			}
			if !p.HasMore {
				break
			}
			cursor = p.NextCursor
		}
		want := sqlitePage(t, q, tc.query)
		if strings.Join(api, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: ClickHouse API returned %d events, SQLite holds %d, or in another order", tc.query, len(api), len(want))
		}
	}
	all := env.AllEvents()
	last := all[len(all)-1]
	var v verifyOut
	env.Audit("/v1/audit-events/"+last.EventID+"/verify").JSON(t, &v)
	if !v.IsValid || v.TotalChecked != uint64(len(all)) {
		t.Fatalf("verify: %+v", v)
	}

	// Tamper with one row in ClickHouse (a mutation, as an operator with ALTER rights could).
	ctx := context.Background()
	if _, err := ch.Query(ctx, "ALTER TABLE audit.audit_events UPDATE context = '{\"tampered\": true}' WHERE seq = 9"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the mutation to finish", func() bool {
		out, err := ch.Query(ctx, "SELECT count() FROM system.mutations WHERE database = 'audit' AND is_done = 0")
		return err == nil && strings.TrimSpace(out) == "0"
	})
	env.Audit("/v1/audit-events/"+last.EventID+"/verify").JSON(t, &v)
	if v.IsValid || v.FirstInvalidID != 9 {
		t.Fatalf("verify after ALTER UPDATE of sequence 9: %+v", v)
	}
	t.Logf("ClickHouse and SQLite agree on %d events; tampered sequence 9 reported: %s", len(all), v.Message)
}

func cursorParam(c string) string {
	if c == "" {
		return ""
	}
	return "&cursor=" + c
}

func sqlitePage(t *testing.T, q sink.Querier, query string) []string {
	t.Helper()
	qq := sink.Query{Limit: 1000}
	if !strings.Contains(query, "sortOrder=ASC") {
		qq.Order = sink.Desc
	} else {
		qq.Order = sink.Asc
	}
	for _, part := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "eventType":
			qq.Filter.EventType = v
		case "result":
			qq.Filter.Result = v
		}
	}
	var ids []string
	for {
		p, err := q.Search(context.Background(), qq)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Events {
			ids = append(ids, p.Events[i].EventID)
		}
		if !p.More {
			return ids
		}
		pos := sink.PositionOf(&p.Events[len(p.Events)-1])
		qq.After = &pos
	}
}

func terminalInJournal(t *testing.T, env *testenv.Env, execID string) []chain.Event {
	var out []chain.Event
	_ = env.App.Journal().ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
		if e.ResourceID == execID && (e.EventType == chain.ExecutionCompleted || e.EventType == chain.ExecutionFailed) {
			out = append(out, *e)
		}
		return nil
	})
	return out
}

// TestClickHouseOutageUnderLoad: ClickHouse is stopped for 30 s while clients keep writing
// through the sidecar. No request fails (the journal buffers), the lag drains after the restart,
// and every event is stored exactly once.
func TestClickHouseOutageUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage")
	}
	ch := chtest.Start(t)
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		c.Sinks = []config.Sink{clickhouseSink(ch, true)}
	}})
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond) // ~200 requests/s in total
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				req, _ := http.NewRequest("POST", env.ProxyURL+"/v1/workflows", strings.NewReader(fmt.Sprintf(`{"name":"load-%d-%d"}`, w, i)))
				req.Header.Set("X-API-Key", testenv.FlowkerKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 201 {
					failed.Add(1)
					if resp != nil {
						resp.Body.Close()
					}
					continue
				}
				resp.Body.Close()
				ok.Add(1)
			}
		}(w)
	}
	time.Sleep(2 * time.Second)
	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	downAt := env.App.Journal().Last()
	time.Sleep(30 * time.Second) // the outage
	lagDuringOutage := env.App.Journal().Last() - downAt
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during the ClickHouse outage (%d succeeded)", failed.Load(), ok.Load())
	}
	waitSink(t, env, "warehouse")
	// Every event exactly once: the chain verifies end to end through ClickHouse, and the count
	// of stored rows per sequence is one.
	all := env.AllEvents()
	if uint64(len(all)) != env.App.Journal().Last() || int64(len(all)) != ok.Load() {
		t.Fatalf("ClickHouse holds %d events; journal %d; acknowledged requests %d", len(all), env.App.Journal().Last(), ok.Load())
	}
	out, err := ch.Query(context.Background(), "SELECT count() FROM (SELECT seq, count() AS c FROM audit.audit_events GROUP BY seq HAVING c > 1)")
	if err != nil || strings.TrimSpace(out) != "0" {
		t.Fatalf("duplicated sequences in ClickHouse: %q %v", out, err)
	}
	var v verifyOut
	env.Audit("/v1/audit-events/"+all[len(all)-1].EventID+"/verify").JSON(t, &v)
	if !v.IsValid || v.TotalChecked != uint64(len(all)) {
		t.Fatalf("verify: %+v", v)
	}
	t.Logf("%d requests, 0 failed; %d events buffered during the 30 s outage, then drained; %d stored once each", ok.Load(), lagDuringOutage, len(all))
}
