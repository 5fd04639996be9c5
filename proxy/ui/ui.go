// Package ui serves the Audit Trail page (reference/seeds/000: a read-only, filterable table of
// audit events with badges, and a details panel that verifies the hash chain) at /audit-trail.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no build step, no CDN, no
// external font or script, so it works on an isolated network. It talks only to the sidecar's
// own audit API (package proxy/auditapi): GET /audit-trail/config.json, /v1/audit-events,
// /v1/audit-events/{id}/verify, sending the key the user typed (kept in sessionStorage, never
// in the URL) as X-API-Key. Nothing on the page can change or delete an event.
//
// Responses carry a strict Content-Security-Policy (everything from 'self', no inline script or
// style), nosniff, Referrer-Policy no-referrer and frame denial. Assets are referenced with a
// content hash (?v=...) and cached as immutable; the page itself is revalidated on every load.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Paths served.
const (
	// Root is the page's path; Root + "/" is the same page.
	Root = "/audit-trail"
	// AssetPrefix prefixes the embedded assets.
	AssetPrefix = Root + "/assets/"
	// configPath belongs to the audit API (auditapi serves it, authenticated), not to this package.
	configPath = Root + "/config.json"
	// openAPIPath belongs to the audit API too (auditapi.OpenAPIPath).
	openAPIPath = Root + "/openapi.yaml"
)

// CSP is the Content-Security-Policy of every response of this package.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Options configures the page.
type Options struct {
	// AuthMode tells the page which credential to ask for before it can read its configuration:
	// "api_key" (the audit API key), "delegate" (the user's Flowker credential) or "none"
	// (authentication is not configured: the page explains that instead of asking). Empty is
	// treated as "api_key". Use auditapi's API.AuthMode().
	AuthMode string
}

// Handler serves the page and its assets.
type Handler struct {
	index     []byte
	indexETag string
	files     map[string]asset
}

type asset struct {
	body        []byte
	contentType string
	version     string // hex prefix of the SHA-256 of body
}

// New builds the handler (templates the page once).
func New(opts Options) (*Handler, error) {
	mode := opts.AuthMode
	switch mode {
	case "":
		mode = "api_key"
	case "api_key", "delegate", "none":
	default:
		return nil, fmt.Errorf("audit trail page: unknown auth mode %q (want api_key, delegate or none)", opts.AuthMode)
	}
	h := &Handler{files: map[string]asset{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "assets/index.html" {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read embedded %s: %w", p, err)
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) { // do not depend on the host's mime tables
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.files[strings.TrimPrefix(p, "assets/")] = asset{body: b, contentType: ct, version: hex.EncodeToString(sum[:8])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit trail page: %w", err)
	}
	tpl, err := template.ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("audit trail page: parse index.html: %w", err)
	}
	var buf bytes.Buffer
	err = tpl.Execute(&buf, struct {
		AuthMode string
		Asset    func(string) (string, error)
	}{mode, h.assetURL})
	if err != nil {
		return nil, fmt.Errorf("audit trail page: render index.html: %w", err)
	}
	h.index = buf.Bytes()
	sum := sha256.Sum256(h.index)
	h.indexETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return h, nil
}

// assetURL returns the versioned URL of an embedded asset (used by the page template).
func (h *Handler) assetURL(name string) (string, error) {
	a, ok := h.files[name]
	if !ok {
		return "", fmt.Errorf("no embedded asset %q", name)
	}
	return AssetPrefix + name + "?v=" + a.version, nil
}

// Match reports whether r is for the page or its assets (/audit-trail, /audit-trail/...),
// case-insensitively like the rest of the sidecar's routes. /audit-trail/config.json is not
// matched: the audit API serves it.
func (h *Handler) Match(r *http.Request) bool {
	p := r.URL.Path
	if len(p) < len(Root) || !strings.EqualFold(p[:len(Root)], Root) {
		return false
	}
	rest := p[len(Root):]
	if rest != "" && rest[0] != '/' {
		return false
	}
	p = strings.TrimSuffix(p, "/")
	return !strings.EqualFold(p, configPath) && !strings.EqualFold(p, openAPIPath)
}

func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// ServeHTTP serves the page (GET and HEAD only).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	rest := strings.TrimPrefix(p[min(len(Root), len(p)):], "/")
	switch {
	case rest == "" || strings.EqualFold(rest, "index.html"):
		h.serve(w, r, h.index, "text/html; charset=utf-8", h.indexETag, "no-cache")
	case len(rest) > len("assets/") && strings.EqualFold(rest[:len("assets/")], "assets/"):
		a, ok := h.files[rest[len("assets/"):]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		cache := "no-cache"
		if r.URL.Query().Get("v") == a.version {
			cache = "public, max-age=31536000, immutable"
		}
		h.serve(w, r, a.body, a.contentType, `"`+a.version+`"`, cache)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, body []byte, contentType, etag, cache string) {
	hd := w.Header()
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
