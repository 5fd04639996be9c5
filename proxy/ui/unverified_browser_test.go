package ui_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/ui/uitest"
)

// TestUnverifiedActorShownAsSuch: an actor taken from a JWT whose signature was not verified is
// marked "Unverified" in the table and in the details; a verified one and an API key are not.
func TestUnverifiedActorShownAsSuch(t *testing.T) {
	events := auditapitest.Generate(auditapitest.GenOptions{ChainID: "5a9e-unverified", Count: 3,
		Start: time.Now().UTC().Add(-time.Hour).Truncate(time.Minute), Step: time.Minute, Seed: 3})
	claims := []string{
		`{"auth": {"detail": "no JWT key configured", "method": "jwt", "verified": false}}`,
		`{"auth": {"method": "jwt", "verified": true}}`,
		`{"auth": {"method": "api_key", "verified": false}}`,
	}
	for i := range events {
		events[i].Actor = chain.Actor{Type: chain.ActorUser, ID: "claimed-admin-" + string(rune('a'+i)), IPAddress: "10.0.0.1"}
		events[i].Context = []byte(claims[i])
	}
	q, dbPath := openSQLite(t, events)
	s := newSite(t, q, dbPath, nil)
	ctx := uitest.NewBrowser(t)
	uitest.Run(t, ctx, chromedp.Navigate(s.srv.URL+"/audit-trail"))
	uitest.WaitFor(t, ctx, "the key form", `document.body.dataset.state === 'auth'`)
	n := uitest.Loads(t, ctx)
	uitest.Run(t, ctx, chromedp.SendKeys(chromedp.ID("auth-key"), browserKey), chromedp.KeyEvent("\r"))
	uitest.WaitLoaded(t, ctx, n)
	marked := uitest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#rows tr.event-row')).filter(r => r.querySelector('.cell-actor .tag.unverified')).map(r => r.querySelector('.cell-actor .actor-name').textContent)`)
	if len(marked) != 1 || marked[0] != "claimed-admin-a" {
		t.Fatalf("rows marked unverified: %q, want only claimed-admin-a", marked)
	}
	uitest.Eval[bool](t, ctx, `(() => { Array.from(document.querySelectorAll('#rows tr.event-row')).find(r => r.querySelector('.tag.unverified')).click(); return true; })()`)
	uitest.WaitFor(t, ctx, "the details", `!!document.getElementById('d-actor-verified')`)
	if got := uitest.Eval[string](t, ctx, `document.getElementById('d-actor-verified').textContent`); !strings.HasPrefix(got, "No: subject claimed in a JWT") || !strings.Contains(got, "no JWT key configured") {
		t.Fatalf("details say %q", got)
	}
}
