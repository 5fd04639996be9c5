package ui_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/ui"
	"github.com/flowker-audit/flowker-audit/proxy/ui/uitest"
	"github.com/flowker-audit/flowker-audit/sink"
)

const browserKey = "browser-test-key-0123456789"

// saoPaulo is the browser's time zone (uitest.TimeZone).
var saoPaulo = uitest.Zone()

// site is the sidecar's audit API and page over a query sink, as the proxy mounts them.
type site struct {
	srv    *httptest.Server
	q      sink.Querier
	dbPath string
	down   atomic.Bool
}

// openSQLite stores events in a fresh database of the sqlite plugin, in batches of 5000.
func openSQLite(t *testing.T, events []chain.Event) (sink.Querier, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s := sqlite.New(sqlite.Options{})
	cfg, _ := json.Marshal(map[string]string{"path": path, "synchronous": "normal"})
	if err := s.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(ctx) })
	for i := 0; i < len(events); i += 5000 {
		if err := s.Write(ctx, events[i:min(i+5000, len(events))]); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

// tamper rewrites the stored metadata of an event behind the sink's back (as an intruder with
// file access would) and returns a function that puts the original back.
func (s *site) tamper(t *testing.T, ev chain.Event, metadata string) (restore func()) {
	t.Helper()
	db, err := sql.Open("sqlite", s.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(v string) {
		if _, err := db.Exec(`PRAGMA busy_timeout = 5000`); err != nil {
			t.Fatal(err)
		}
		res, err := db.Exec(`UPDATE events SET metadata = ? WHERE event_id = ?`, v, ev.EventID)
		if n, _ := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("tamper %s: %v (%d rows)", ev.EventID, err, n)
		}
	}
	exec(metadata)
	return func() { exec(string(ev.Metadata)); db.Close() }
}

func newSite(t *testing.T, q sink.Querier, dbPath string, names map[string]string) *site {
	t.Helper()
	s := &site{q: q, dbPath: dbPath}
	keys, err := auditapi.NewStaticKeys([]string{browserKey})
	if err != nil {
		t.Fatal(err)
	}
	api, err := auditapi.New(auditapi.Options{
		Querier: func(context.Context) (sink.Querier, error) {
			if s.down.Load() {
				return nil, errors.New("query sink stopped by the test")
			}
			return q, nil
		},
		Auth:       keys,
		CursorKey:  []byte("browser-test-cursor-key-32-bytes"),
		Registerer: prometheus.NewRegistry(),
		ActorNames: names,
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := ui.New(ui.Options{AuthMode: api.AuthMode()})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case api.Match(r):
			api.ServeHTTP(w, r)
		case page.Match(r):
			page.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

type apiList struct {
	Items      []chain.Event `json:"items"`
	NextCursor string        `json:"nextCursor"`
	HasMore    bool          `json:"hasMore"`
}

// getJSON queries the audit API directly (what the page must show).
func (s *site) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	req.Header.Set(auditapi.HeaderAPIKey, browserKey)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func (s *site) list(t *testing.T, q url.Values) apiList {
	t.Helper()
	var l apiList
	s.getJSON(t, "/v1/audit-events?"+q.Encode(), &l)
	return l
}

func ids(events []chain.Event) []string {
	out := make([]string, len(events))
	for i := range events {
		out[i] = events[i].EventID
	}
	return out
}

func testEvents() []chain.Event {
	start := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Hour)
	a := auditapitest.Generate(auditapitest.GenOptions{ChainID: "0c1d6a52-chain-a", Count: 360, Start: start, Step: 7 * time.Minute, Seed: 1})
	b := auditapitest.Generate(auditapitest.GenOptions{ChainID: "7f3e9b10-chain-b", Count: 240, Start: start.Add(90 * time.Second), Step: 11 * time.Minute, Seed: 2})
	return append(a, b...)
}

// TestAuditTrailInBrowser drives the page in headless Chromium against the API over the sqlite
// plugin's query sink, comparing what the page shows with what the API answers.
func TestAuditTrailInBrowser(t *testing.T) {
	events := testEvents()
	names := map[string]string{auditapitest.APIKeyActors[0]: "ci-bot", auditapitest.APIKeyActors[1]: "release-pipeline"}
	q, dbPath := openSQLite(t, events)
	s := newSite(t, q, dbPath, names)
	ctx := uitest.NewBrowser(t)
	pageURL := s.srv.URL + "/audit-trail"

	t.Run("asks for the key, refuses a wrong one", func(t *testing.T) {
		uitest.Run(t, ctx, chromedp.Navigate(pageURL))
		uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth' && !document.getElementById('auth-panel').hidden`)
		if msg := uitest.Eval[string](t, ctx, `document.getElementById('auth-message').textContent`); !strings.Contains(msg, "Enter the audit API key") {
			t.Fatalf("first message %q", msg)
		}
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), "wrong-key"), chromedp.Click(chromedp.ID("auth-submit")))
		uitest.WaitLoaded(t, ctx, n)
		if st := uitest.Eval[string](t, ctx, `document.body.dataset.state`); st != "auth" {
			t.Fatalf("state %s after a wrong key", st)
		}
		msg := uitest.Eval[string](t, ctx, `document.getElementById('auth-message').textContent`)
		if !strings.Contains(msg, "The key was refused (API Key missing or invalid)") {
			t.Fatalf("401 message %q", msg)
		}
		if uitest.Eval[bool](t, ctx, `document.getElementById('auth-form').hidden || document.getElementById('auth-key').value !== ''`) {
			t.Fatal("no way to re-enter the key")
		}
	})

	t.Run("right key shows the API's first page", func(t *testing.T) {
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), browserKey), chromedp.KeyEvent("\r"))
		uitest.WaitLoaded(t, ctx, n)
		want := s.list(t, url.Values{"limit": {"20"}})
		if got := uitest.RowIDs(t, ctx); !slices.Equal(got, ids(want.Items)) {
			t.Fatalf("rows %v\nwant %v", got, ids(want.Items))
		}
		// The key is in sessionStorage only, never in the URL or localStorage.
		if uitest.Eval[bool](t, ctx, fmt.Sprintf(`location.href.includes(%q) || localStorage.length !== 0 || !sessionStorage.getItem('flowker-audit.credential').includes(%q)`, browserKey, browserKey)) {
			t.Fatal("key stored in the wrong place")
		}
		// Timestamp in local time with the UTC value on hover.
		first := want.Items[0]
		title := uitest.Eval[string](t, ctx, `document.querySelector('#rows tr.event-row time').title`)
		wantTitle := strings.Replace(strings.TrimSuffix(first.Timestamp.UTC().Format(time.RFC3339Nano), "Z"), "T", " ", 1) + " UTC"
		if title != wantTitle {
			t.Fatalf("timestamp title %q, want %q", title, wantTitle)
		}
		// The browser runs in uitest.Locale (en-US, 12-hour clock); TestLocalTimeFollowsLocale
		// checks other locales.
		shown := uitest.Eval[string](t, ctx, `document.querySelector('#rows tr.event-row time').textContent`)
		if want := first.Timestamp.In(saoPaulo).Format("03:04:05 PM"); !strings.Contains(shown, want) {
			t.Fatalf("timestamp %q is not local time %s", shown, want)
		}
		// Failed results are marked with text, not only colour; configured actor names are shown.
		failed := 0
		named := 0
		for _, e := range want.Items {
			if e.Result == chain.ResultFailed {
				failed++
			}
			if names[e.Actor.ID] != "" {
				named++
			}
		}
		if got := uitest.Eval[int](t, ctx, `document.querySelectorAll('#rows tr.event-row.failed .result-failed').length`); got != failed {
			t.Fatalf("%d rows marked failed, want %d", got, failed)
		}
		if got := uitest.Eval[int](t, ctx, `Array.from(document.querySelectorAll('#rows .cell-actor .actor-name')).filter(e => ['ci-bot','release-pipeline'].includes(e.textContent)).length`); got != named {
			t.Fatalf("%d actor names shown, want %d", got, named)
		}
		if uitest.Eval[bool](t, ctx, `Array.from(document.querySelectorAll('#f-event-type, #f-from, #f-to, #f-result, #f-resource')).some(e => e.disabled)`) {
			t.Fatal("filters still disabled")
		}
		if got := uitest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#f-event-type optgroup')).map(g => g.label)`); !slices.Equal(got, []string{"Workflow", "Execution", "Provider", "Other"}) {
			t.Fatalf("event type groups %v", got)
		}
	})

	unfiltered := ids(s.list(t, url.Values{"limit": {"20"}}).Items)
	checkFilter := func(t *testing.T, apply func(), want url.Values) {
		t.Helper()
		n := uitest.Loads(t, ctx)
		apply()
		uitest.WaitLoaded(t, ctx, n)
		if got := uitest.PageQuery(t, ctx); got.Encode() != want.Encode() {
			t.Fatalf("URL query %s, want %s", got.Encode(), want.Encode())
		}
		q := url.Values{"limit": {"20"}}
		for k, v := range want {
			q[k] = v
		}
		api := ids(s.list(t, q).Items)
		got := uitest.RowIDs(t, ctx)
		if !slices.Equal(got, api) {
			t.Fatalf("rows %v\nAPI %v", got, api)
		}
		if len(got) == 0 || slices.Equal(got, unfiltered) {
			t.Fatalf("the filter did not narrow the rows (%d rows)", len(got))
		}
		n = uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("clear-filters")))
		uitest.WaitLoaded(t, ctx, n)
		if got := uitest.RowIDs(t, ctx); !slices.Equal(got, unfiltered) {
			t.Fatal("clearing the filter did not restore the rows")
		}
	}
	ref := events[200] // chain a, in the middle of the time range
	t.Run("event type filter", func(t *testing.T) {
		checkFilter(t, func() { uitest.SetControl(t, ctx, "f-event-type", chain.WorkflowUpdated) }, url.Values{"eventType": {chain.WorkflowUpdated}})
	})
	t.Run("from date filter", func(t *testing.T) {
		local := ref.Timestamp.In(saoPaulo).Format("2006-01-02T15:04:05")
		checkFilter(t, func() { uitest.SetControl(t, ctx, "f-from", local, "f-sort", "ASC") },
			url.Values{"dateFrom": {ref.Timestamp.Truncate(time.Second).UTC().Format(time.RFC3339)}, "sortOrder": {"ASC"}})
	})
	t.Run("to date filter", func(t *testing.T) {
		local := ref.Timestamp.In(saoPaulo).Format("2006-01-02T15:04:05")
		checkFilter(t, func() { uitest.SetControl(t, ctx, "f-to", local) },
			url.Values{"dateTo": {ref.Timestamp.Truncate(time.Second).UTC().Format("2006-01-02T15:04:05") + ".999999Z"}})
	})
	t.Run("result filter", func(t *testing.T) {
		checkFilter(t, func() { uitest.SetControl(t, ctx, "f-result", chain.ResultFailed) }, url.Values{"result": {chain.ResultFailed}})
	})
	t.Run("resource id filter (typed)", func(t *testing.T) {
		typed := strings.ToUpper(ref.ResourceID)
		checkFilter(t, func() { uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("f-resource"), typed)) },
			url.Values{"resourceId": {typed}})
	})
	t.Run("shared URL restores the filters", func(t *testing.T) {
		q := url.Values{"eventType": {chain.ExecutionFailed}, "limit": {"50"}}
		uitest.Run(t, ctx, chromedp.Navigate(pageURL+"?"+q.Encode()))
		uitest.WaitFor(t, ctx, "the shared view", `document.body.dataset.state === 'ready'`)
		api := ids(s.list(t, q).Items)
		if got := uitest.RowIDs(t, ctx); !slices.Equal(got, api) || len(got) == 0 {
			t.Fatalf("rows %v\nAPI %v", got, api)
		}
		if v := uitest.Eval[string](t, ctx, `document.getElementById('f-event-type').value + ' ' + document.getElementById('page-size').value`); v != chain.ExecutionFailed+" 50" {
			t.Fatalf("controls %q", v)
		}
		n := uitest.Loads(t, ctx)
		uitest.SetControl(t, ctx, "page-size", "20")
		uitest.WaitLoaded(t, ctx, n)
		n = uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("clear-filters")))
		uitest.WaitLoaded(t, ctx, n)
	})

	t.Run("paging forward and back", func(t *testing.T) {
		var pages [][]string
		q := url.Values{"limit": {"20"}}
		for range 3 {
			l := s.list(t, q)
			pages = append(pages, ids(l.Items))
			q.Set("cursor", l.NextCursor)
		}
		check := func(i int) {
			t.Helper()
			if got := uitest.RowIDs(t, ctx); !slices.Equal(got, pages[i]) {
				t.Fatalf("page %d: rows %v\nwant %v", i+1, got, pages[i])
			}
		}
		check(0)
		for i, btn := range []string{"next", "next", "prev", "prev"} {
			n := uitest.Loads(t, ctx)
			uitest.Run(t, ctx, chromedp.Click(chromedp.ID(btn)))
			uitest.WaitLoaded(t, ctx, n)
			check([]int{1, 2, 1, 0}[i])
		}
		if !uitest.Eval[bool](t, ctx, `document.getElementById('prev').disabled`) {
			t.Fatal("previous enabled on the first page")
		}
	})

	screenshotPath := uitest.ScreenshotPath(t)
	uitest.SaveScreenshot(t, uitest.FullScreenshot(t, ctx), screenshotPath)

	first := s.list(t, url.Values{"limit": {"20"}}).Items
	t.Run("details panel and verify", func(t *testing.T) {
		row := first[1]
		uitest.Eval[bool](t, ctx, `(() => { document.querySelectorAll('#rows tr.event-row')[1].focus(); return true; })()`)
		uitest.Run(t, ctx, uitest.PressEnter())
		uitest.WaitFor(t, ctx, "the details dialog", `document.getElementById('details').open`)
		if got := uitest.Eval[string](t, ctx, `document.getElementById('d-hash').textContent`); got != row.Hash {
			t.Fatalf("hash %q, want %q", got, row.Hash)
		}
		for id, want := range map[string]string{"d-event-id": row.EventID, "d-chain-id": row.ChainID, "d-sequence": fmt.Sprint(row.Sequence), "d-previous-hash": row.PreviousHash} {
			if got := uitest.Eval[string](t, ctx, fmt.Sprintf(`document.getElementById(%q).textContent`, id)); got != want {
				t.Fatalf("%s %q, want %q", id, got, want)
			}
		}
		var meta map[string]any
		if err := json.Unmarshal([]byte(uitest.Eval[string](t, ctx, `document.querySelector('#d-metadata pre').textContent`)), &meta); err != nil {
			t.Fatalf("metadata not shown as JSON: %v", err)
		}
		var wantMeta map[string]any
		_ = json.Unmarshal(row.Metadata, &wantMeta)
		if fmt.Sprint(meta) != fmt.Sprint(wantMeta) {
			t.Fatalf("metadata %v, want %v", meta, wantMeta)
		}
		if uitest.Eval[bool](t, ctx, `!document.getElementById('details').contains(document.activeElement)`) {
			t.Fatal("focus is not in the dialog")
		}
		uitest.Run(t, ctx, chromedp.Focus(chromedp.ID("verify-btn")), uitest.PressEnter())
		uitest.WaitFor(t, ctx, "the verify result", `document.querySelector('#verify-result.valid, #verify-result.invalid') !== null`)
		var v auditapi.VerifyOutput
		s.getJSON(t, "/v1/audit-events/"+row.EventID+"/verify", &v)
		want := fmt.Sprintf("Chain valid — %d events checked (sequence 1–%d of chain %s)", v.TotalChecked, v.ToSequence, v.ChainID)
		if got := uitest.Eval[string](t, ctx, `document.querySelector('#verify-result strong').textContent`); got != want || !v.IsValid {
			t.Fatalf("verify shows %q, want %q", got, want)
		}
		uitest.Run(t, ctx, chromedp.KeyEvent(kb.Escape))
		uitest.WaitFor(t, ctx, "the dialog to close", `!document.getElementById('details').open`)
		if got := uitest.Eval[string](t, ctx, `document.activeElement.dataset.id || document.activeElement.tagName`); got != row.EventID {
			t.Fatalf("focus returned to %q, want the row %s", got, row.EventID)
		}
	})

	t.Run("verify names the tampered sequence", func(t *testing.T) {
		row := first[0]
		var victim chain.Event
		for _, e := range events {
			if e.ChainID == row.ChainID && e.Sequence == row.Sequence-5 {
				victim = e
			}
		}
		defer s.tamper(t, victim, `{"workflow.name": "rewritten"}`)()
		uitest.Eval[bool](t, ctx, `(() => { document.querySelectorAll('#rows tr.event-row')[0].click(); return true; })()`)
		uitest.WaitFor(t, ctx, "the details dialog", `document.getElementById('details').open`)
		uitest.Run(t, ctx, chromedp.Focus(chromedp.ID("verify-btn")), uitest.PressEnter())
		uitest.WaitFor(t, ctx, "the verify result", `document.querySelector('#verify-result.valid, #verify-result.invalid') !== null`)
		want := fmt.Sprintf("Chain broken at sequence %d: hash mismatch", victim.Sequence)
		if got := uitest.Eval[string](t, ctx, `document.querySelector('#verify-result.invalid strong').textContent`); got != want {
			t.Fatalf("verify shows %q, want %q", got, want)
		}
		if role := uitest.Eval[string](t, ctx, `document.getElementById('verify-result').getAttribute('role')`); role != "alert" {
			t.Fatalf("broken chain announced with role %q", role)
		}
		uitest.Eval[bool](t, ctx, `(() => { document.getElementById('verify-result').scrollIntoView({block: 'end'}); return true; })()`)
		uitest.SaveScreenshot(t, uitest.ViewportScreenshot(t, ctx), strings.TrimSuffix(screenshotPath, ".png")+"-verify-broken.png")
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("details-close")))
		uitest.WaitFor(t, ctx, "the dialog to close", `!document.getElementById('details').open`)
	})

	t.Run("store unavailable", func(t *testing.T) {
		uitest.CloseDialog(t, ctx)
		s.down.Store(true)
		defer s.down.Store(false)
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("refresh")))
		uitest.WaitLoaded(t, ctx, n)
		if st := uitest.Eval[string](t, ctx, `document.body.dataset.state`); st != "unavailable" {
			t.Fatalf("state %s", st)
		}
		if got := uitest.Eval[string](t, ctx, `document.getElementById('rows').textContent`); !strings.Contains(got, "Audit store unavailable") {
			t.Fatalf("rows show %q", got)
		}
		s.down.Store(false)
		n = uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("state-retry")))
		uitest.WaitLoaded(t, ctx, n)
		if got := uitest.RowIDs(t, ctx); !slices.Equal(got, unfiltered) {
			t.Fatal("retry did not bring the rows back")
		}
	})

	t.Run("a key revoked later shows the 401 message", func(t *testing.T) {
		uitest.CloseDialog(t, ctx)
		uitest.Eval[bool](t, ctx, `(() => { sessionStorage.setItem('flowker-audit.credential', JSON.stringify({kind: 'apikey', value: 'revoked'})); return true; })()`)
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("refresh")))
		uitest.WaitLoaded(t, ctx, n)
		if got := uitest.Eval[string](t, ctx, `document.body.dataset.state + ': ' + document.getElementById('auth-message').textContent`); !strings.Contains(got, "auth: The key was refused (API Key missing or invalid)") {
			t.Fatalf("page shows %q", got)
		}
	})
}

// TestFirstScreenTiming measures, with 100,000 events in the store, the time from navigation
// start to the first screen being usable (first page rendered, filters enabled: the page's
// performance mark "audit-first-screen"). It is logged, and written to FLOWKER_AUDIT_UI_TIMING
// when set; nothing is asserted about it.
func TestFirstScreenTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 100_000
	start := time.Now()
	q, dbPath := seedSQLite(t, n)
	const kind = "SQLite (plugins/sqlite)"
	t.Logf("%d events generated and written to the %s store in %v (race detector: %v)", n, kind, time.Since(start).Round(time.Millisecond), raceEnabled)
	s := newSite(t, q, dbPath, nil)
	ctx := uitest.NewBrowser(t)
	uitest.Run(t, ctx, chromedp.Navigate(s.srv.URL+"/audit-trail"))
	uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth'`)
	uitest.Eval[bool](t, ctx, fmt.Sprintf(`(() => { sessionStorage.setItem('flowker-audit.credential', JSON.stringify({kind: 'apikey', value: %q})); return true; })()`, browserKey))
	var samples []float64
	for i := range 3 {
		// The first sample ignores the browser cache (a first visit); the others reuse it.
		uitest.Run(t, ctx, uitest.SetCacheDisabled(i == 0))
		uitest.Run(t, ctx, chromedp.Navigate(s.srv.URL+"/audit-trail"))
		uitest.WaitFor(t, ctx, "the first screen", `performance.getEntriesByName('audit-first-screen').length > 0`)
		samples = append(samples, uitest.Eval[float64](t, ctx, `performance.getEntriesByName('audit-first-screen')[0].startTime`))
		if got := len(uitest.RowIDs(t, ctx)); got != 20 {
			t.Fatalf("%d rows on the first screen", got)
		}
	}
	report := fmt.Sprintf("first screen usable (rows rendered, filters enabled) with %d events in the %s store: %.0f ms with the browser cache disabled, then %.0f ms and %.0f ms with it (reloads); time from navigation start to the page's performance mark\n",
		n, kind, samples[0], samples[1], samples[2])
	t.Log(strings.TrimSpace(report))
	if p := os.Getenv("FLOWKER_AUDIT_UI_TIMING"); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLocalTimeFollowsLocale opens the page in browsers pinned to different locales: the table
// shows each event's time in the browser's time zone, formatted the way that locale writes
// times (12-hour with AM/PM in US English, 24-hour with German month names in German), while
// the hover text stays in UTC whatever the locale.
func TestLocalTimeFollowsLocale(t *testing.T) {
	events := testEvents()
	q, dbPath := openSQLite(t, events)
	s := newSite(t, q, dbPath, nil)
	want := s.list(t, url.Values{"limit": {"20"}})
	first := want.Items[0]
	local := first.Timestamp.In(saoPaulo)
	germanMonths := []string{"Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez."}
	for _, tc := range []struct {
		locale   string
		contains []string
		absent   []string
	}{
		{"en-US", []string{local.Format("03:04:05 PM"), local.Format("Jan 02, 2006")}, nil},
		{"de-DE", []string{local.Format("15:04:05"), local.Format("02."), germanMonths[local.Month()-1]}, []string{"AM", "PM"}},
	} {
		t.Run(tc.locale, func(t *testing.T) {
			ctx := uitest.NewBrowserIn(t, tc.locale)
			uitest.Run(t, ctx, chromedp.Navigate(s.srv.URL+"/audit-trail"))
			uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth'`)
			n := uitest.Loads(t, ctx)
			uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), browserKey), chromedp.KeyEvent("\r"))
			uitest.WaitLoaded(t, ctx, n)
			if got := uitest.RowIDs(t, ctx); len(got) == 0 || got[0] != first.EventID {
				t.Fatalf("first row %v, want %s", got, first.EventID)
			}
			shown := uitest.Eval[string](t, ctx, `document.querySelector('#rows tr.event-row time').textContent`)
			for _, w := range tc.contains {
				if !strings.Contains(shown, w) {
					t.Errorf("%s: time %q does not contain %q", tc.locale, shown, w)
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(shown, w) {
					t.Errorf("%s: time %q contains %q", tc.locale, shown, w)
				}
			}
			title := uitest.Eval[string](t, ctx, `document.querySelector('#rows tr.event-row time').title`)
			if wantTitle := strings.Replace(strings.TrimSuffix(first.Timestamp.UTC().Format(time.RFC3339Nano), "Z"), "T", " ", 1) + " UTC"; title != wantTitle {
				t.Errorf("%s: hover text %q, want %q", tc.locale, title, wantTitle)
			}
		})
	}
}

// seedSQLite returns a sqlite plugin store holding auditapitest.GenerateSpread(n, now). Under
// the race detector SQLite writes are about ten times slower, so the data is then written by
// ./internal/seeddb in a process built without it.
func seedSQLite(t *testing.T, n int) (sink.Querier, string) {
	t.Helper()
	if !raceEnabled {
		return openSQLite(t, auditapitest.GenerateSpread(n, time.Now().UTC()))
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to seed the store without the race detector: %v", err)
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	cmd := exec.Command(goTool, "run", "./internal/seeddb", "-n", fmt.Sprint(n), "-out", path)
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed %s: %v\n%s", path, err, out)
	}
	ctx := context.Background()
	st := sqlite.New(sqlite.Options{})
	cfg, _ := json.Marshal(map[string]string{"path": path})
	if err := st.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(ctx) })
	return st, path
}
