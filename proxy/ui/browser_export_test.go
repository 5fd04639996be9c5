package ui_test

import (
	"bytes"
	"encoding/csv"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/exportfile"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/ui/uitest"
)

// walkAPI returns every event the API lists for q (all pages).
func (s *site) walkAPI(t *testing.T, q url.Values) []string {
	t.Helper()
	var out []string
	q.Set("limit", "100")
	for {
		l := s.list(t, q)
		out = append(out, ids(l.Items)...)
		if !l.HasMore {
			return out
		}
		q.Set("cursor", l.NextCursor)
	}
}

// TestActorFilterAndExportInBrowser drives the Actor filters (type, and a configured key name
// typed in place of its fingerprint) and the Export button in Chromium, comparing the rows and the
// downloaded files with what the API answers for the same filters.
func TestActorFilterAndExportInBrowser(t *testing.T) {
	events := testEvents()
	// Five events of Flowker's native history, older than everything else (import flowker).
	imported := auditapitest.Generate(auditapitest.GenOptions{ChainID: "flowker-native", Count: 5,
		Start: events[0].Timestamp.Add(-24 * time.Hour), Step: time.Minute, Seed: 9})
	events = append(events, imported...)
	key := auditapitest.APIKeyActors[0]
	names := map[string]string{key: "ci-bot", auditapitest.APIKeyActors[1]: "release-pipeline"}
	q, dbPath := openSQLite(t, events)
	s := newSite(t, q, dbPath, names)
	ctx := uitest.NewBrowser(t)
	dl := t.TempDir()
	uitest.AllowDownloads(t, ctx, dl)
	pageURL := s.srv.URL + "/audit-trail"

	uitest.Run(t, ctx, chromedp.Navigate(pageURL))
	uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth'`)
	n := uitest.Loads(t, ctx)
	uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), browserKey), chromedp.KeyEvent("\r"))
	uitest.WaitLoaded(t, ctx, n)

	t.Run("actor type", func(t *testing.T) {
		n := uitest.Loads(t, ctx)
		uitest.SetControl(t, ctx, "f-actor-type", chain.ActorAPIKey)
		uitest.WaitLoaded(t, ctx, n)
		if got := uitest.PageQuery(t, ctx); got.Encode() != "actorType=api_key" {
			t.Fatalf("page query %s", got.Encode())
		}
		want := s.list(t, url.Values{"actorType": {chain.ActorAPIKey}, "limit": {"20"}})
		if got := uitest.RowIDs(t, ctx); len(got) == 0 || !slices.Equal(got, ids(want.Items)) {
			t.Fatalf("rows %v\nwant %v", got, ids(want.Items))
		}
	})
	t.Run("a configured key name is offered and selects its fingerprint", func(t *testing.T) {
		if got := uitest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#actor-names option')).map(o => o.value + '=' + o.label)`); !slices.Equal(got,
			[]string{"ci-bot=" + key, "release-pipeline=" + auditapitest.APIKeyActors[1]}) {
			t.Fatalf("suggestions %v", got)
		}
		n := uitest.Loads(t, ctx)
		uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("f-actor"), "ci-bot"), uitest.PressEnter())
		uitest.WaitLoaded(t, ctx, n)
		if got := uitest.PageQuery(t, ctx); got.Get("actorId") != key || got.Get("actorType") != chain.ActorAPIKey {
			t.Fatalf("page query %s", got.Encode())
		}
		want := s.list(t, url.Values{"actorType": {chain.ActorAPIKey}, "actorId": {key}, "limit": {"20"}})
		got := uitest.RowIDs(t, ctx)
		if len(got) == 0 || !slices.Equal(got, ids(want.Items)) {
			t.Fatalf("rows %v\nwant %v", got, ids(want.Items))
		}
		if names := uitest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#rows .cell-actor .actor-name')).map(e => e.textContent)`); len(names) != len(got) || slices.ContainsFunc(names, func(n string) bool { return n != "ci-bot" }) {
			t.Fatalf("actor names shown %v", names)
		}
	})
	t.Run("a shared URL shows the name in the Actor field", func(t *testing.T) {
		uitest.Run(t, ctx, chromedp.Navigate(pageURL+"?actorId="+url.QueryEscape(key)))
		uitest.WaitFor(t, ctx, "the shared view", `document.body.dataset.state === 'ready'`)
		if v := uitest.Eval[string](t, ctx, `document.getElementById('f-actor').value`); v != "ci-bot" {
			t.Fatalf("Actor field %q", v)
		}
	})
	t.Run("export downloads the current filter", func(t *testing.T) {
		filter := url.Values{"actorId": {key}}
		want := s.walkAPI(t, url.Values{"actorId": {key}})
		for _, format := range []string{"ndjson", "csv"} {
			uitest.SetControl(t, ctx, "export-format", format)
			uitest.Run(t, ctx, chromedp.Click(chromedp.ID("export")))
			uitest.WaitFor(t, ctx, "the export", `document.body.dataset.export === 'done' || document.body.dataset.export === 'failed'`)
			status := uitest.Eval[string](t, ctx, `document.getElementById('export-status').textContent`)
			name, ok := strings.CutPrefix(status, "Exported ")
			if !ok || !strings.HasSuffix(name, "."+format+".") {
				t.Fatalf("export status %q", status)
			}
			body := uitest.WaitDownload(t, filepath.Join(dl, strings.TrimSuffix(name, ".")))
			var got []string
			if format == "ndjson" {
				path := filepath.Join(dl, strings.TrimSuffix(name, "."))
				res, err := exportfile.Verify(path, nil, "")
				if err != nil || !res.Valid() || res.Header.Contiguous {
					t.Fatalf("downloaded export: %v %+v", err, res)
				}
				if res.Header.Filters["actorId"] != key || len(res.Header.Filters) != len(filter) {
					t.Fatalf("export filters %v", res.Header.Filters)
				}
				for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
					if id, ok := bytes.CutPrefix(l, []byte(`{"eventId":"`)); ok {
						got = append(got, string(id[:36]))
					}
				}
			} else {
				recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
				if err != nil || strings.Join(recs[0], ",") != strings.Join(auditapi.CSVColumns, ",") {
					t.Fatalf("downloaded CSV: %v %v", err, recs[:1])
				}
				for _, r := range recs[1:] {
					got = append(got, r[0])
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: %d events downloaded, the API lists %d", format, len(got), len(want))
			}
			uitest.Eval[bool](t, ctx, `(delete document.body.dataset.export, true)`)
		}
	})
	t.Run("imported events are marked", func(t *testing.T) {
		uitest.Run(t, ctx, chromedp.Navigate(pageURL+"?sortOrder=ASC"))
		uitest.WaitFor(t, ctx, "the oldest events", `document.body.dataset.state === 'ready'`)
		got := uitest.Eval[[]bool](t, ctx, `Array.from(document.querySelectorAll('#rows tr.event-row')).slice(0, 7).map(r => !!r.querySelector('.badge.imported'))`)
		if !slices.Equal(got, []bool{true, true, true, true, true, false, false}) {
			t.Fatalf("Imported marks on the 7 oldest rows: %v", got)
		}
	})
}
