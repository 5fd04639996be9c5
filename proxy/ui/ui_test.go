package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newHandler(t *testing.T, mode string) *Handler {
	t.Helper()
	h, err := New(Options{AuthMode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMatch(t *testing.T) {
	h := newHandler(t, "")
	for path, want := range map[string]bool{
		"/audit-trail":                       true,
		"/audit-trail/":                      true,
		"/Audit-Trail/":                      true,
		"/audit-trail/index.html":            true,
		"/audit-trail/assets/app.js":         true,
		"/audit-trail/config.json":           false, // the audit API's
		"/audit-trail/config.json/":          false,
		"/AUDIT-TRAIL/CONFIG.JSON":           false,
		"/audit-trailer":                     false,
		"/v1/audit-events":                   false,
		"/":                                  false,
		"/audit":                             false,
		"/audit-trail/../v1/workflows":       true, // served as 404 here, never forwarded
		"/audit-trail/assets/../config.json": true,
	} {
		if got := h.Match(httptest.NewRequest(http.MethodGet, "http://x"+path, nil)); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestServesPageWithSecurityHeaders(t *testing.T) {
	h := newHandler(t, "delegate")
	for _, target := range []string{"/audit-trail", "/audit-trail/", "/audit-trail/index.html"} {
		w := serve(h, http.MethodGet, target, nil)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %v", target, w.Code, w.Header())
		}
		for k, v := range map[string]string{
			"Content-Security-Policy": CSP,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-cache",
			"X-Frame-Options":         "DENY",
		} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", target, k, got, v)
			}
		}
		body := w.Body.String()
		if !strings.Contains(body, `<meta name="audit-auth-mode" content="delegate">`) {
			t.Fatalf("auth mode missing:\n%s", body)
		}
		if !regexp.MustCompile(`<script src="/audit-trail/assets/app\.js\?v=[0-9a-f]{16}" defer></script>`).MatchString(body) {
			t.Fatalf("versioned script missing:\n%s", body)
		}
	}
	if !strings.Contains(CSP, "default-src 'self'") || strings.Contains(CSP, "unsafe-inline") || strings.Contains(CSP, "unsafe-eval") {
		t.Fatalf("CSP %s", CSP)
	}
}

func TestAssetsCaching(t *testing.T) {
	h := newHandler(t, "")
	page := serve(h, http.MethodGet, "/audit-trail/", nil).Body.String()
	src := regexp.MustCompile(`/audit-trail/assets/app\.css\?v=[0-9a-f]+`).FindString(page)
	if src == "" {
		t.Fatal("no stylesheet link")
	}
	w := serve(h, http.MethodGet, src, nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/css; charset=utf-8" ||
		w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" || w.Header().Get("Content-Security-Policy") != CSP {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	etag := w.Header().Get("ETag")
	if w := serve(h, http.MethodGet, src, map[string]string{"If-None-Match": etag}); w.Code != 304 || w.Body.Len() != 0 {
		t.Fatalf("revalidation: %d", w.Code)
	}
	// Without (or with a stale) version the asset is revalidated, never cached for a year.
	for _, target := range []string{"/audit-trail/assets/app.css", "/audit-trail/assets/app.css?v=old"} {
		if w := serve(h, http.MethodGet, target, nil); w.Code != 200 || w.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: %d %v", target, w.Code, w.Header())
		}
	}
	if w := serve(h, http.MethodGet, "/audit-trail/assets/app.js", nil); w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("js type %q", w.Header().Get("Content-Type"))
	}
	if w := serve(h, http.MethodHead, "/audit-trail/assets/app.js", nil); w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %d bytes", w.Code, w.Body.Len())
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := newHandler(t, "")
	for _, target := range []string{"/audit-trail/nope", "/audit-trail/assets/nope.js", "/audit-trail/assets/", "/audit-trail/../v1/workflows"} {
		if w := serve(h, http.MethodGet, target, nil); w.Code != 404 || w.Header().Get("Content-Security-Policy") != CSP {
			t.Errorf("%s: %d", target, w.Code)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if w := serve(h, m, "/audit-trail/", nil); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d", m, w.Code)
		}
	}
	if _, err := New(Options{AuthMode: "open"}); err == nil {
		t.Fatal("unknown auth mode accepted")
	}
}

// TestAssetsAreSelfContained: nothing is loaded from elsewhere, and nothing inline needs
// 'unsafe-inline' (no inline script, style attribute, event handler attribute or innerHTML).
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := assets.ReadFile(p)
		s := string(b)
		for _, m := range external.FindAllString(s, -1) {
			if m != "http://www.w3.org" { // the SVG namespace, never fetched
				t.Errorf("%s refers to %s", p, m)
			}
		}
		switch {
		case strings.HasSuffix(p, ".html"):
			for _, tag := range regexp.MustCompile(`<script[^>]*>[^<]*`).FindAllString(s, -1) {
				if !strings.Contains(tag, " src=") || !strings.HasSuffix(tag, ">") {
					t.Errorf("%s has an inline script: %s", p, tag)
				}
			}
			if regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=`).MatchString(s) {
				t.Errorf("%s has inline style or an event handler attribute", p)
			}
		case strings.HasSuffix(p, ".js"):
			if regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|localStorage|\.style\.|console\.`).MatchString(s) {
				t.Errorf("%s uses a forbidden API", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
