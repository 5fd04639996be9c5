// Package uitest drives the Audit Trail page (package proxy/ui) in a real headless Chromium for
// tests, through chromedp: it finds Chromium (installing Debian's package when running as root,
// failing with the command to run otherwise; FLOWKER_AUDIT_SKIP_BROWSER=1 skips), starts it in
// a fixed time zone, and offers the probes and waits the page's tests share. Every wait polls the
// page with a deadline; none depends on how fast the machine is.
//
// The page counts finished loads in body[data-loads] and reports its state (auth, loading,
// ready, empty, invalid, unavailable, error) in body[data-state]; the helpers rely on both.
package uitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TimeZone is the browser's time zone: UTC-3 all year, so local times differ from UTC.
const TimeZone = "America/Sao_Paulo"

// Zone returns TimeZone as a fixed offset (what the browser shows for current dates).
func Zone() *time.Location { return time.FixedZone("-03", -3*3600) }

// CredentialKey is the sessionStorage key under which the page keeps the typed credential.
const CredentialKey = "flowker-audit.credential"

// stepTimeout bounds one browser step (the browser context itself has no deadline).
const stepTimeout = 30 * time.Second

// ChromiumPath finds Chromium, installs it when missing and running as root, or fails with the
// command to run. FLOWKER_AUDIT_SKIP_BROWSER=1 skips the test explicitly.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if os.Getenv("FLOWKER_AUDIT_SKIP_BROWSER") == "1" {
		t.Skip("FLOWKER_AUDIT_SKIP_BROWSER=1: browser test skipped")
	}
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	const install = "apt-get install -y chromium"
	if os.Geteuid() == 0 {
		t.Logf("chromium is missing; running apt-get update && %s", install)
		for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "chromium"}} {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		if p := find(); p != "" {
			return p
		}
	}
	t.Fatalf("Chromium is not installed. Install it with: sudo %s (or set FLOWKER_AUDIT_SKIP_BROWSER=1 to skip this test)", install)
	return ""
}

// Locale is the browser's default locale (the page formats local times with Intl in it): US
// English, 12-hour clock.
const Locale = "en-US"

// NewBrowser starts headless Chromium (window 1440×1000, time zone TimeZone, locale Locale) with a
// fresh profile; the returned context lives until the test ends.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	return NewBrowserIn(t, Locale)
}

// NewBrowserIn is NewBrowser with the given BCP 47 locale. Locale and time zone are pinned
// through the DevTools protocol (Emulation.setLocaleOverride, Emulation.setTimezoneOverride), so
// neither the machine's LANG nor its TZ reaches the page.
func NewBrowserIn(t testing.TB, locale string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("lang", locale),
		chromedp.Env("TZ="+TimeZone, "LANG=C.UTF-8", "LANGUAGE=", "LC_ALL="),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		icu := strings.ReplaceAll(locale, "-", "_") // the protocol takes ICU style: en_US
		if _, err := cdp.Call(ctx, tg, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: icu}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: TimeZone})
		return err
	})); err != nil {
		t.Fatalf("pin the browser's locale %s and time zone %s: %v", locale, TimeZone, err)
	}
	if got := Eval[string](t, ctx, `Intl.DateTimeFormat().resolvedOptions().locale + ' ' + Intl.DateTimeFormat().resolvedOptions().timeZone`); got != locale+" "+TimeZone {
		t.Fatalf("browser runs in %q, want %q", got, locale+" "+TimeZone)
	}
	return ctx
}

// Run runs steps with a deadline.
func Run(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates js in the page and returns its value.
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// WaitFor polls the JavaScript condition js until it is true; on timeout it fails with what the
// page shows (state, status line, query, dialog and verify result, focus).
func WaitFor(t testing.TB, ctx context.Context, what, js string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout-5*time.Second))); err != nil {
		state := Eval[string](t, ctx, `[document.body.dataset.state, document.getElementById('status').textContent, location.search,
			'dialog open: ' + document.getElementById('details').open, 'verify: ' + document.getElementById('verify-result').className + ' ' + document.getElementById('verify-result').textContent,
			'verify button disabled: ' + document.getElementById('verify-btn').disabled, 'focus: ' + (document.activeElement && (document.activeElement.id || document.activeElement.tagName))].join(' | ')`)
		t.Fatalf("waiting for %s: %v (page: %s)", what, err, state)
	}
}

// Loads returns how many loads the page has finished.
func Loads(t testing.TB, ctx context.Context) int {
	t.Helper()
	return Eval[int](t, ctx, `Number(document.body.dataset.loads || 0)`)
}

// WaitLoaded waits until the page finished a load after the given count (see Loads).
func WaitLoaded(t testing.TB, ctx context.Context, after int) {
	t.Helper()
	WaitFor(t, ctx, "the page to load", fmt.Sprintf(`Number(document.body.dataset.loads || 0) > %d && document.body.dataset.state !== 'loading'`, after))
}

// RowIDs returns the event ids of the table's rows, top to bottom.
func RowIDs(t testing.TB, ctx context.Context) []string {
	t.Helper()
	return Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#rows tr.event-row')).map(r => r.dataset.id)`)
}

// SetControl changes filter controls the way a user's change does (value, then change event);
// pairs are id, value, id, value... All change in one task, so the page ends with one load.
func SetControl(t testing.TB, ctx context.Context, pairs ...string) {
	t.Helper()
	b, _ := json.Marshal(pairs)
	Eval[bool](t, ctx, fmt.Sprintf(`(() => { const p = %s; for (let i = 0; i < p.length; i += 2) { const e = document.getElementById(p[i]); e.value = p[i+1]; e.dispatchEvent(new Event('change', {bubbles: true})); } return true; })()`, b))
}

// PageQuery returns the query of the page's address (the filters it shows).
func PageQuery(t testing.TB, ctx context.Context) url.Values {
	t.Helper()
	q, err := url.ParseQuery(strings.TrimPrefix(Eval[string](t, ctx, `location.search`), "?"))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// SetCacheDisabled turns the browser cache off or on for the tab.
func SetCacheDisabled(off bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: off})
		return err
	})
}

// PressEnter presses Enter on the focused element the way a keyboard does: keydown carrying the
// text, then keyup. (chromedp.KeyEvent also sends a separate char event, which a real keyboard
// does not send once keydown was prevented; it would reach whatever took the focus.)
func PressEnter() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text, p.UnmodifiedText = "\r", "\r"
			}
			if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// MouseAway moves the mouse pointer to the window's top-left corner, so no row shows its hover
// style (a screenshot then shows the page as it is at rest).
func MouseAway() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, input.DispatchMouseEvent, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseMoved, X: 0, Y: 0})
		return err
	})
}

// CloseDialog closes the details dialog if a failed step left it open.
func CloseDialog(t testing.TB, ctx context.Context) {
	t.Helper()
	Eval[bool](t, ctx, `(() => { const d = document.getElementById('details'); if (d.open) d.close(); return true; })()`)
}

// FullScreenshot returns a PNG of the whole page.
func FullScreenshot(t testing.TB, ctx context.Context) []byte {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return png
}

// ViewportScreenshot returns a PNG of what the window shows (a modal dialog is as tall as the
// window).
func ViewportScreenshot(t testing.TB, ctx context.Context) []byte {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return png
}

// SaveScreenshot writes png to path (creating its directory) and logs where.
func SaveScreenshot(t testing.TB, png []byte, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// ScreenshotPath returns where a test saves its screenshot: $FLOWKER_AUDIT_SCREENSHOT, or
// audit-trail.png in a temporary directory of the test.
func ScreenshotPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FLOWKER_AUDIT_SCREENSHOT"); p != "" {
		return p
	}
	return filepath.Join(t.TempDir(), "audit-trail.png")
}

// AllowDownloads makes the browser save downloads into dir under their suggested names.
func AllowDownloads(t testing.TB, ctx context.Context, dir string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	})); err != nil {
		t.Fatalf("allow downloads into %s: %v", dir, err)
	}
}

// WaitDownload waits until the browser finished writing path (the file exists and its
// .crdownload companion does not) and returns its content.
func WaitDownload(t testing.TB, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		if b, err := os.ReadFile(path); err == nil {
			if _, err := os.Stat(path + ".crdownload"); os.IsNotExist(err) {
				return b
			}
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(filepath.Dir(path))
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("download %s did not complete within %s (directory holds %v)", path, stepTimeout, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
