package ui_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/ui"
	"github.com/flowker-audit/flowker-audit/proxy/ui/uitest"
	"github.com/flowker-audit/flowker-audit/sink"
)

// newCheckpointSite is newSite with a signed checkpoint log behind /verify.
func newCheckpointSite(t *testing.T, q sink.Querier, evidence func(string) (*checkpoint.Evidence, error)) *httptest.Server {
	t.Helper()
	keys, err := auditapi.NewStaticKeys([]string{browserKey})
	if err != nil {
		t.Fatal(err)
	}
	api, err := auditapi.New(auditapi.Options{
		Querier:     func(context.Context) (sink.Querier, error) { return q, nil },
		Auth:        keys,
		CursorKey:   []byte("browser-test-cursor-key-32-bytes"),
		Registerer:  prometheus.NewRegistry(),
		Checkpoints: evidence,
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := ui.New(ui.Options{AuthMode: api.AuthMode()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case api.Match(r):
			api.ServeHTTP(w, r)
		case page.Match(r):
			page.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestVerifyShowsCheckpointCoverage: the page's Verify shows what the signed checkpoints covered
// (the coverage line: sequences, newest checkpoint used, how many matched, what is not yet
// covered) and every warning about the checkpoint log (here a torn last line), for a valid chain
// and for one whose checkpointed event was rewritten with its own hash, exactly as /verify
// answers them. The checkpoint time is shown in UTC whatever the browser's zone (uitest pins it to
// America/Sao_Paulo, locale en-US).
func TestVerifyShowsCheckpointCoverage(t *testing.T) {
	const chainID = "3b9f0c2e-coverage"
	events := auditapitest.Generate(auditapitest.GenOptions{ChainID: chainID, Count: 40,
		Start: time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute), Step: time.Minute, Seed: 7})
	q, dbPath := openSQLite(t, events)

	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := checkpoint.NewSigner(priv)
	signedAt := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	logPath := filepath.Join(t.TempDir(), "checkpoints.ndjson")
	var lines []string
	for _, seq := range []uint64{10, 30} {
		c, err := signer.Sign(chainID, seq, events[seq-1].Hash, signedAt.Add(time.Duration(seq)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		lines = append(lines, string(b))
	}
	torn := `{"chainId":"` + chainID + `","sequence":4`
	if err := os.WriteFile(logPath, []byte(strings.Join(lines, "\n")+"\n"+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	evidence := func(string) (*checkpoint.Evidence, error) { return checkpoint.LoadEvidence(logPath, signer.Public()) }
	srv := newCheckpointSite(t, q, evidence)

	ctx := uitest.NewBrowser(t)
	uitest.Run(t, ctx, chromedp.Navigate(srv.URL+"/audit-trail"))
	uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth'`)
	n := uitest.Loads(t, ctx)
	uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), browserKey), chromedp.KeyEvent("\r"))
	uitest.WaitLoaded(t, ctx, n)

	head := events[len(events)-1] // the newest event: the first row
	apiVerify := func(t *testing.T) auditapi.VerifyOutput {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/audit-events/"+head.EventID+"/verify", nil)
		req.Header.Set(auditapi.HeaderAPIKey, browserKey)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v auditapi.VerifyOutput
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// shown opens the first row's details, runs Verify and returns the result's title and its
	// lines by class (coverage, warning, detail, "" for the others).
	shown := func(t *testing.T) (title string, lines map[string][]string) {
		t.Helper()
		uitest.Eval[bool](t, ctx, `(() => { document.querySelectorAll('#rows tr.event-row')[0].click(); return true; })()`)
		uitest.WaitFor(t, ctx, "the details dialog", `document.getElementById('details').open`)
		uitest.Run(t, ctx, chromedp.Focus(chromedp.ID("verify-btn")), uitest.PressEnter())
		uitest.WaitFor(t, ctx, "the verify result", `document.querySelector('#verify-result.valid, #verify-result.invalid') !== null`)
		title = uitest.Eval[string](t, ctx, `document.querySelector('#verify-result strong').textContent`)
		raw := uitest.Eval[[][]string](t, ctx, `Array.from(document.querySelectorAll('#verify-result div')).map(d => [d.className, d.textContent])`)
		lines = map[string][]string{}
		for _, l := range raw {
			lines[l[0]] = append(lines[l[0]], l[1])
		}
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("details-close")))
		uitest.WaitFor(t, ctx, "the dialog to close", `!document.getElementById('details').open`)
		return title, lines
	}
	wantWarning := func(t *testing.T, v auditapi.VerifyOutput, lines map[string][]string) {
		t.Helper()
		if len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "is torn") {
			t.Fatalf("API warnings %q", v.Warnings)
		}
		if got := lines["warning"]; len(got) != 1 || got[0] != "Warning: "+v.Warnings[0] {
			t.Fatalf("warning lines %q, want %q", got, "Warning: "+v.Warnings[0])
		}
	}

	t.Run("valid chain", func(t *testing.T) {
		v := apiVerify(t)
		title, lines := shown(t)
		t.Logf("page: %s %q", title, lines)
		if want := "Chain valid — 40 events checked (sequence 1–40 of chain " + chainID + ")"; title != want || !v.IsValid {
			t.Fatalf("title %q, want %q (API valid %v)", title, want, v.IsValid)
		}
		wantCoverage := "Checkpoints: sequences 1..40; newest checkpoint used: sequence 30 signed at 2026-01-02T03:04:35.123456Z (2 of 2 signed checkpoints matched); 10 events after it not yet covered by a checkpoint."
		if got := lines["coverage"]; len(got) != 1 || got[0] != wantCoverage || got[0] != "Checkpoints: "+v.Coverage+"." {
			t.Fatalf("coverage line %q\nwant %q\nAPI %q", got, wantCoverage, v.Coverage)
		}
		if !v.CheckpointsChecked || v.CheckpointsMatched != 2 || v.NotYetCovered != 10 || v.NewestCheckpoint == nil || v.NewestCheckpoint.Sequence != 30 {
			t.Fatalf("API: %+v", v)
		}
		if got := lines[""]; len(got) != 1 || got[0] != "10 of these events are not yet covered by a signed checkpoint (their links are checked; no signature proves them yet)." {
			t.Fatalf("not-yet-covered line %q", got)
		}
		wantWarning(t, v, lines)
	})

	t.Run("checkpointed event rewritten with its own hash", func(t *testing.T) {
		forged := events[29]
		forged.ResourceID = "rewritten"
		forged.Seal()
		db, err := sql.Open("sqlite", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`PRAGMA busy_timeout = 5000`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE events SET resource_id = ?, hash = ? WHERE chain_id = ? AND seq = 30`, forged.ResourceID, forged.Hash, chainID); err != nil {
			t.Fatal(err)
		}
		v := apiVerify(t)
		title, lines := shown(t)
		t.Logf("page: %s %q", title, lines)
		if title != "Chain broken at sequence 30: checkpoint mismatch" || v.IsValid || v.Reason != string(chain.ReasonCheckpointMismatch) {
			t.Fatalf("title %q (API %+v)", title, v)
		}
		wantCoverage := "Checkpoints: sequences 1..29; newest checkpoint used: sequence 10 signed at 2026-01-02T03:04:15.123456Z (1 of 2 signed checkpoints matched); 19 events after it not yet covered by a checkpoint."
		if got := lines["coverage"]; len(got) != 1 || got[0] != wantCoverage || got[0] != "Checkpoints: "+v.Coverage+"." {
			t.Fatalf("coverage line %q\nwant %q\nAPI %q", got, wantCoverage, v.Coverage)
		}
		if got := lines["detail"]; len(got) != 1 || got[0] != v.Detail || !strings.Contains(got[0], "departs from the signed one somewhere in sequences 11..30") {
			t.Fatalf("detail line %q (API %q)", got, v.Detail)
		}
		if got := strings.Join(lines[""], " | "); !strings.Contains(got, "differs from what a signed checkpoint recorded") || !strings.Contains(got, "29 events verified before the break") {
			t.Fatalf("explanation lines %q", got)
		}
		wantWarning(t, v, lines)
	})
}
