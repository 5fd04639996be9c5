package browser_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
	"github.com/flowker-audit/flowker-audit/proxy/ui/uitest"
)

// fingerprintKey is set in the configuration so the test can compute the key's actor id.
const fingerprintKey = "e2e-browser-fingerprint-key-0001"

// auditGet calls the audit API with the audit key on behalf of t (a subtest may call it).
func auditGet(t *testing.T, env *testenv.Env, path string, v any) {
	t.Helper()
	r := testenv.Do(t, "GET", env.ProxyURL+path, nil, map[string]string{"X-API-Key": testenv.AuditKey})
	if r.Status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	r.JSON(t, v)
}

// list is one page of GET /v1/audit-events.
func list(t *testing.T, env *testenv.Env, q url.Values) testenv.Page {
	t.Helper()
	var p testenv.Page
	auditGet(t, env, "/v1/audit-events?"+q.Encode(), &p)
	return p
}

func ids(events []chain.Event) []string {
	out := make([]string, len(events))
	for i := range events {
		out[i] = events[i].EventID
	}
	return out
}

// newestFirst returns the ids of the events (oldest first, as AllEvents returns them) that
// keep says to keep, newest first: what the page must show for a filter, computed without the API.
func newestFirst(all []chain.Event, keep func(chain.Event) bool) []string {
	var out []string
	for i := len(all) - 1; i >= 0; i-- {
		if keep(all[i]) {
			out = append(out, all[i].EventID)
		}
	}
	return out
}

// rowView is what one table row shows.
type rowView struct {
	ID        string `json:"id"`
	Time      string `json:"time"`
	UTC       string `json:"utc"`
	Badge     string `json:"badge"`
	BadgeText string `json:"badgeText"`
	Failed    string `json:"failed"`
	FailedRow bool   `json:"failedRow"`
	ActorType string `json:"actorType"`
	ActorName string `json:"actorName"`
	ActorSub  string `json:"actorSub"`
	Resource  string `json:"resource"`
}

const rowsJS = `Array.from(document.querySelectorAll('#rows tr.event-row')).map(r => {
	const q = (s) => r.querySelector(s);
	const text = (s) => q(s) ? q(s).textContent : '';
	return {id: r.dataset.id, time: text('time'), utc: q('time').title, badge: q('.badge').className, badgeText: text('.badge'),
		failed: text('.result-failed'), failedRow: r.classList.contains('failed'), actorType: text('.cell-actor .tag'),
		actorName: text('.cell-actor .actor-name'), actorSub: text('.cell-actor .sub'), resource: text('.cell-resource .resource-name')};
})`

// TestAuditTrailPageAgainstSidecar fills a sidecar with traffic from the fake Flowker and checks,
// in headless Chromium, that the Audit Trail page shows exactly what the audit API answers.
func TestAuditTrailPageAgainstSidecar(t *testing.T) {
	ctx := uitest.NewBrowser(t) // first: skips or fails early when Chromium is missing
	ciBot := identity.Fingerprint([]byte(fingerprintKey), testenv.FlowkerKey)
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		c.Identity.FingerprintKey = fingerprintKey
		c.Identity.APIKeyNames = map[string]string{ciBot: "ci-bot"}
		// The identity provider's key: users' tokens verify, so they name the actor even though
		// the Flowker API key is sent too (an unverified token never overrides a key).
		c.Identity.JWT.HMACSecret = idpSigningKey
		c.Identity.JWT.Issuer = "https://auth.example.com"
	}})
	tr := fill(t, env, ciBot)
	testenv.Eventually(t, 30*time.Second, "every execution outcome", func() bool { return int(env.App.Journal().Last()) >= tr.events })
	env.WaitDelivered(30 * time.Second)
	all := env.AllEvents()
	if len(all) != tr.events {
		t.Fatalf("the trail holds %d events, want %d (one per request, one outcome per execution)", len(all), tr.events)
	}
	if len(all) < 60 {
		t.Fatalf("only %d events: the scenario is too small to page through", len(all))
	}
	actors := map[string]int{}
	for _, e := range all {
		actors[e.Actor.Type+" "+e.Actor.ID]++
	}
	for _, want := range append([]string{chain.ActorAPIKey + " " + ciBot, chain.ActorSystem + " "}, func() (u []string) {
		for _, a := range tr.humanActors {
			u = append(u, chain.ActorUser+" "+a)
		}
		return u
	}()...) {
		found := false
		for a := range actors {
			found = found || strings.HasPrefix(a, want)
		}
		if !found {
			t.Fatalf("no event by %q; actors: %v", want, actors)
		}
	}
	t.Logf("%d events by %d actors", len(all), len(actors))

	var uiCfg auditapi.UIConfig
	auditGet(t, env, "/audit-trail/config.json", &uiCfg)
	if uiCfg.ActorNames[ciBot] != "ci-bot" {
		t.Fatalf("config.json actor names %v, want %s named ci-bot", uiCfg.ActorNames, ciBot)
	}
	pageURL := env.ProxyURL + "/audit-trail"
	byID := map[string]chain.Event{}
	for _, e := range all {
		byID[e.EventID] = e
	}

	t.Run("a wrong key shows the 401 message", func(t *testing.T) {
		r := testenv.Do(t, "GET", env.ProxyURL+"/v1/audit-events?limit=20", nil, map[string]string{"X-API-Key": "not-the-audit-key"})
		var apiErr struct{ Code, Title, Message string }
		r.JSON(t, &apiErr)
		if r.Status != 401 || apiErr.Message == "" {
			t.Fatalf("API answers a wrong key with %d %s", r.Status, r.Body)
		}
		uitest.Run(t, ctx, chromedp.Navigate(pageURL))
		uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth' && !document.getElementById('auth-panel').hidden`)
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), "not-the-audit-key"), chromedp.Click(chromedp.ID("auth-submit")))
		uitest.WaitLoaded(t, ctx, n)
		want := "The key was refused (" + apiErr.Message + "). Enter it again."
		if got := uitest.Eval[string](t, ctx, `document.body.dataset.state + ' | ' + document.getElementById('auth-message').textContent`); got != "auth | "+want {
			t.Fatalf("page shows %q, want %q", got, "auth | "+want)
		}
		if uitest.Eval[int](t, ctx, `document.querySelectorAll('#rows tr.event-row').length`) != 0 {
			t.Fatal("rows shown without a valid key")
		}
	})

	t.Run("the table shows the API's first page", func(t *testing.T) {
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), testenv.AuditKey), chromedp.Click(chromedp.ID("auth-submit")))
		uitest.WaitLoaded(t, ctx, n)
		want := list(t, env, url.Values{"limit": {"20"}})
		rows := uitest.Eval[[]rowView](t, ctx, rowsJS)
		got := make([]string, len(rows))
		for i, r := range rows {
			got[i] = r.ID
		}
		if !slices.Equal(got, ids(want.Items)) {
			t.Fatalf("rows %v\nAPI  %v", got, ids(want.Items))
		}
		if oracle := newestFirst(all, func(chain.Event) bool { return true })[:20]; !slices.Equal(got, oracle) {
			t.Fatalf("rows %v\nare not the 20 newest events %v", got, oracle)
		}
		// The raw timestamps as the API wrote them (the page's hover text shows them in UTC).
		var raw struct {
			Items []struct{ EventID, Timestamp string }
		}
		auditGet(t, env, "/v1/audit-events?limit=20", &raw)
		zone := uitest.Zone()
		named, failed := 0, 0
		for i, r := range rows {
			e := want.Items[i]
			if raw.Items[i].EventID != e.EventID {
				t.Fatalf("the API changed between two reads")
			}
			if wantUTC := strings.Replace(strings.TrimSuffix(raw.Items[i].Timestamp, "Z"), "T", " ", 1) + " UTC"; r.UTC != wantUTC {
				t.Errorf("row %d: UTC time %q, want %q", i, r.UTC, wantUTC)
			}
			if local := e.Timestamp.In(zone).Format("03:04:05 PM"); !strings.Contains(r.Time, local) || strings.Contains(r.Time, e.Timestamp.UTC().Format("03:04:05")) {
				t.Errorf("row %d: time %q is not the local time %s", i, r.Time, local)
			}
			if wantBadge := "badge fam-" + auditapi.EventFamily(e.EventType); r.Badge != wantBadge || r.BadgeText != auditapi.EventLabel(e.EventType) {
				t.Errorf("row %d: badge %q %q, want %q %q", i, r.Badge, r.BadgeText, wantBadge, auditapi.EventLabel(e.EventType))
			}
			isFailed := e.Result == chain.ResultFailed
			if r.FailedRow != isFailed || strings.Contains(r.Failed, "Failed") != isFailed {
				t.Errorf("row %d (%s): failed marker %q (row marked %v)", i, e.Result, r.Failed, r.FailedRow)
			}
			if isFailed {
				failed++
			}
			wantType := map[string]string{chain.ActorAPIKey: "API key", chain.ActorUser: "User", chain.ActorSystem: "System"}[e.Actor.Type]
			switch {
			case r.ActorType != wantType:
				t.Errorf("row %d: actor type %q, want %q", i, r.ActorType, wantType)
			case e.Actor.ID == ciBot:
				named++
				if r.ActorName != "ci-bot" || r.ActorSub != ciBot {
					t.Errorf("row %d: actor %q (%q), want ci-bot (%s)", i, r.ActorName, r.ActorSub, ciBot)
				}
			case r.ActorName != e.Actor.ID || r.ActorSub != "":
				t.Errorf("row %d: actor %q (%q), want %q", i, r.ActorName, r.ActorSub, e.Actor.ID)
			}
			var meta map[string]any
			_ = json.Unmarshal(e.Metadata, &meta)
			wantRes := e.ResourceID
			if n, ok := meta["workflow.name"].(string); ok && n != "" {
				wantRes = n
			} else if n, ok := meta["provider_config.name"].(string); ok && n != "" {
				wantRes = n
			} else if wantRes == "" {
				wantRes = "—"
			}
			if r.Resource != wantRes {
				t.Errorf("row %d: resource %q, want %q", i, r.Resource, wantRes)
			}
		}
		if named == 0 || failed == 0 {
			t.Fatalf("the first page has %d rows by ci-bot and %d failed rows: the scenario should show both", named, failed)
		}
	})

	// The screenshot of the populated table (the README's image).
	uitest.Eval[bool](t, ctx, `(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return true; })()`)
	uitest.Run(t, ctx, uitest.MouseAway())
	png := uitest.FullScreenshot(t, ctx)
	shotPath := uitest.ScreenshotPath(t)
	uitest.SaveScreenshot(t, png, shotPath)
	if os.Getenv("FLOWKER_AUDIT_UPDATE_SCREENSHOT") == "1" {
		uitest.SaveScreenshot(t, png, filepath.Join(testenv.ModuleRoot(t), "docs", "audit-trail.png"))
	}

	t.Run("each filter narrows the rows exactly as the API does", func(t *testing.T) {
		// 100 rows a page, so each filter's whole answer is on the page.
		n := uitest.Loads(t, ctx)
		uitest.SetControl(t, ctx, "page-size", "100")
		uitest.WaitLoaded(t, ctx, n)
		unfiltered := ids(list(t, env, url.Values{"limit": {"100"}}).Items)
		if got := uitest.RowIDs(t, ctx); !slices.Equal(got, unfiltered) {
			t.Fatalf("100 rows a page: rows %v\nAPI %v", got, unfiltered)
		}
		// The date inputs take local time (the browser's zone), to the second.
		lastOfPhase2 := tr.phase3.Add(-time.Second)
		fromLocal := tr.phase2.In(uitest.Zone()).Format("2006-01-02T15:04:05")
		toLocal := lastOfPhase2.In(uitest.Zone()).Format("2006-01-02T15:04:05")
		for _, f := range []struct {
			name  string
			apply func(t *testing.T)
			query url.Values // the filter's parameters, as the page puts them in its address
			keep  func(chain.Event) bool
		}{
			{"event type", func(t *testing.T) { uitest.SetControl(t, ctx, "f-event-type", chain.WorkflowCreated) },
				url.Values{"eventType": {chain.WorkflowCreated}}, func(e chain.Event) bool { return e.EventType == chain.WorkflowCreated }},
			{"from date", func(t *testing.T) { uitest.SetControl(t, ctx, "f-from", fromLocal) },
				url.Values{"dateFrom": {tr.phase2.UTC().Format(time.RFC3339)}}, func(e chain.Event) bool { return !e.Timestamp.Before(tr.phase2) }},
			{"to date", func(t *testing.T) { uitest.SetControl(t, ctx, "f-to", toLocal) },
				url.Values{"dateTo": {lastOfPhase2.UTC().Format("2006-01-02T15:04:05") + ".999999Z"}}, func(e chain.Event) bool { return e.Timestamp.Before(tr.phase3) }},
			{"result", func(t *testing.T) { uitest.SetControl(t, ctx, "f-result", chain.ResultFailed) },
				url.Values{"result": {chain.ResultFailed}}, func(e chain.Event) bool { return e.Result == chain.ResultFailed }},
			{"resource id (typed, upper case)", func(t *testing.T) {
				typed := strings.ToUpper(tr.workflowID)
				uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("f-resource"), typed))
				// The page searches once typing pauses; wait for the search of the whole id.
				uitest.WaitFor(t, ctx, "the search for the typed id", fmt.Sprintf(`new URLSearchParams(location.search).get('resourceId') === %q && document.body.dataset.state === 'ready'`, typed))
			}, url.Values{"resourceId": {strings.ToUpper(tr.workflowID)}}, func(e chain.Event) bool { return e.ResourceID == tr.workflowID }},
		} {
			t.Run(f.name, func(t *testing.T) {
				n := uitest.Loads(t, ctx)
				f.apply(t)
				uitest.WaitLoaded(t, ctx, n)
				q := url.Values{"limit": {"100"}}
				for k, v := range f.query {
					q[k] = v
				}
				if got := uitest.PageQuery(t, ctx); got.Encode() != q.Encode() {
					t.Fatalf("page address query %s, want %s", got.Encode(), q.Encode())
				}
				api := list(t, env, q)
				if api.HasMore {
					t.Fatalf("the filter matches more than 100 events: the scenario is too large for this check")
				}
				got := uitest.RowIDs(t, ctx)
				if !slices.Equal(got, ids(api.Items)) {
					t.Fatalf("rows %v\nAPI  %v", got, ids(api.Items))
				}
				oracle := newestFirst(all, f.keep)
				if !slices.Equal(got, oracle) {
					t.Fatalf("rows %v\nwant %v (the trail filtered here)", got, oracle)
				}
				if len(got) == 0 || len(got) == len(all) {
					t.Fatalf("the filter keeps %d of %d events: it does not narrow", len(got), len(all))
				}
				t.Logf("%s: %d of %d events", f.name, len(got), len(all))
				n = uitest.Loads(t, ctx)
				uitest.Run(t, ctx, chromedp.Click(chromedp.ID("clear-filters")))
				uitest.WaitLoaded(t, ctx, n)
				if got := uitest.RowIDs(t, ctx); !slices.Equal(got, unfiltered) {
					t.Fatal("clearing the filter did not restore the rows")
				}
			})
		}
		n = uitest.Loads(t, ctx)
		uitest.SetControl(t, ctx, "page-size", "20")
		uitest.WaitLoaded(t, ctx, n)
	})

	t.Run("paging forward and back returns the API's pages", func(t *testing.T) {
		var pages [][]string
		q := url.Values{"limit": {"20"}}
		for {
			p := list(t, env, q)
			pages = append(pages, ids(p.Items))
			if !p.HasMore {
				break
			}
			q.Set("cursor", p.NextCursor)
		}
		if got, want := slices.Concat(pages...), newestFirst(all, func(chain.Event) bool { return true }); !slices.Equal(got, want) || len(pages) < 3 {
			t.Fatalf("the API's %d pages are not the trail, newest first", len(pages))
		}
		check := func(i int) {
			t.Helper()
			if got := uitest.RowIDs(t, ctx); !slices.Equal(got, pages[i]) {
				t.Fatalf("page %d: rows %v\nAPI %v", i+1, got, pages[i])
			}
			first := i*20 + 1
			if got, want := uitest.Eval[string](t, ctx, `document.getElementById('page-info').textContent`), fmt.Sprintf("Page %d · events %d–%d", i+1, first, first+len(pages[i])-1); got != want {
				t.Fatalf("page info %q, want %q", got, want)
			}
		}
		click := func(id string) {
			t.Helper()
			n := uitest.Loads(t, ctx)
			uitest.Run(t, ctx, chromedp.Click(chromedp.ID(id)))
			uitest.WaitLoaded(t, ctx, n)
		}
		check(0)
		for i := 1; i < len(pages); i++ {
			click("next")
			check(i)
		}
		if !uitest.Eval[bool](t, ctx, `document.getElementById('next').disabled`) {
			t.Fatal("Next is enabled on the last page")
		}
		for i := len(pages) - 2; i >= 0; i-- {
			click("prev")
			check(i)
		}
		if !uitest.Eval[bool](t, ctx, `document.getElementById('prev').disabled`) {
			t.Fatal("Previous is enabled on the first page")
		}
	})

	t.Run("the details panel shows the row's hash", func(t *testing.T) {
		uitest.CloseDialog(t, ctx)
		rows := uitest.RowIDs(t, ctx)
		idx := slices.IndexFunc(rows, func(id string) bool { return byID[id].Result == chain.ResultFailed })
		if idx < 0 {
			t.Fatal("no failed row on the first page")
		}
		var want chain.Event
		auditGet(t, env, "/v1/audit-events/"+rows[idx], &want)
		uitest.Eval[bool](t, ctx, fmt.Sprintf(`(() => { document.querySelectorAll('#rows tr.event-row')[%d].click(); return true; })()`, idx))
		uitest.WaitFor(t, ctx, "the details dialog", `document.getElementById('details').open`)
		for id, w := range map[string]string{"d-hash": want.Hash, "d-previous-hash": want.PreviousHash, "d-event-id": want.EventID,
			"d-chain-id": want.ChainID, "d-sequence": fmt.Sprint(want.Sequence)} {
			if got := uitest.Eval[string](t, ctx, fmt.Sprintf(`document.getElementById(%q).textContent`, id)); got != w {
				t.Errorf("%s %q, want %q", id, got, w)
			}
		}
		if len(want.Hash) != 64 {
			t.Fatalf("API hash %q", want.Hash)
		}
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("details-close")))
		uitest.WaitFor(t, ctx, "the dialog to close", `!document.getElementById('details').open`)
	})

	t.Run("verify shows the chain valid", func(t *testing.T) {
		uitest.CloseDialog(t, ctx)
		newest := uitest.RowIDs(t, ctx)[0]
		if newest != all[len(all)-1].EventID {
			t.Fatalf("first row %s is not the newest event %s", newest, all[len(all)-1].EventID)
		}
		uitest.Eval[bool](t, ctx, `(() => { document.querySelectorAll('#rows tr.event-row')[0].click(); return true; })()`)
		uitest.WaitFor(t, ctx, "the details dialog", `document.getElementById('details').open`)
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("verify-btn")))
		uitest.WaitFor(t, ctx, "the verify result", `document.querySelector('#verify-result.valid, #verify-result.invalid') !== null`)
		var v auditapi.VerifyOutput
		auditGet(t, env, "/v1/audit-events/"+newest+"/verify", &v)
		if !v.IsValid || v.TotalChecked != uint64(len(all)) || v.FromSequence != 1 || v.ToSequence != uint64(len(all)) {
			t.Fatalf("API verify: valid %v, %d events checked, want %d", v.IsValid, v.TotalChecked, len(all))
		}
		want := fmt.Sprintf("Chain valid — %d events checked (sequence 1–%d of chain %s)", len(all), len(all), all[0].ChainID)
		if got := uitest.Eval[string](t, ctx, `document.querySelector('#verify-result').className + ' | ' + document.querySelector('#verify-result strong').textContent`); got != "verify-result valid | "+want {
			t.Fatalf("verify shows %q, want %q", got, want)
		}
		uitest.Eval[bool](t, ctx, `(() => { document.getElementById('verify-result').scrollIntoView({block: 'end'}); return true; })()`)
		uitest.SaveScreenshot(t, uitest.ViewportScreenshot(t, ctx), strings.TrimSuffix(shotPath, ".png")+"-verify.png")
		uitest.Run(t, ctx, chromedp.Click(chromedp.ID("details-close")))
		uitest.WaitFor(t, ctx, "the dialog to close", `!document.getElementById('details').open`)
	})
}
