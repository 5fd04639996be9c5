package fakeflowker

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRouting(t *testing.T) {
	e := newEnv(t, 0)

	r := e.post("/v1/workflows", map[string]any{"name": "routing"})
	e.expect(r, http.StatusCreated, "")

	id := r.str("workflowId")
	upper := strings.ToUpper(id)

	tests := []struct {
		name    string
		method  string
		path    string
		noKey   bool
		status  int
		code    string
		numCode float64
		message string
		allow   string
		wantID  bool
	}{
		{name: "case-insensitive with trailing slash", method: "GET", path: "/V1/Workflows/", status: 200},
		{name: "many trailing slashes", method: "GET", path: "/v1/workflows///", status: 200},
		{name: "double leading slash is unknown", method: "POST", path: "//v1/workflows", status: 404, numCode: 404, message: "Cannot POST //v1/workflows"},
		{name: "percent-encoded path is not decoded", method: "GET", path: "/v1/work%66lows", status: 401, noKey: true, code: "UNAUTHORIZED"},
		{name: "percent-encoded path with key", method: "GET", path: "/v1/work%66lows", status: 404, numCode: 404, message: "Cannot GET /v1/work%66lows"},
		{name: "escaped braces stay raw in params", method: "GET", path: "/v1/workflows/%7B" + id + "%7D", status: 400, code: "FLK-0002"},
		{name: "upper-case uuid", method: "GET", path: "/v1/workflows/" + upper, status: 200, wantID: true},
		{name: "urn uuid", method: "GET", path: "/v1/workflows/urn:uuid:" + id, status: 200, wantID: true},
		{name: "bad uuid", method: "GET", path: "/v1/workflows/not-a-uuid", status: 400, code: "FLK-0002", message: "invalid workflow ID"},
		{name: "from-template is a GET id", method: "GET", path: "/v1/workflows/from-template", status: 400, code: "FLK-0002"},
		{name: "wrong method on executions", method: "PUT", path: "/v1/workflows/" + id + "/executions", status: 405, numCode: 405, message: "Method Not Allowed", allow: "POST"},
		{name: "wrong method on workflow", method: "POST", path: "/v1/workflows/" + id, status: 405, numCode: 405, allow: "GET, HEAD, PUT, DELETE"},
		{name: "unknown v1 path without key", method: "GET", path: "/v1/nope", noKey: true, status: 401, code: "UNAUTHORIZED", message: "API Key missing or invalid"},
		{name: "unknown v1 path with key", method: "GET", path: "/v1/nope", status: 404, numCode: 404, message: "Cannot GET /v1/nope"},
		{name: "unknown path outside v1", method: "GET", path: "/nope", noKey: true, status: 404, numCode: 404},
		{name: "health is public", method: "GET", path: "/health", noKey: true, status: 200},
		{name: "readyz is public", method: "GET", path: "/readyz", noKey: true, status: 200},
		{name: "version is public", method: "GET", path: "/version", noKey: true, status: 200},
		{name: "v1 route needs key", method: "GET", path: "/v1/workflows", noKey: true, status: 401, code: "UNAUTHORIZED"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do(req{method: tc.method, path: tc.path, noKey: tc.noKey})
			e.expect(r, tc.status, tc.code)

			if tc.numCode != 0 {
				if got, _ := r.body["code"].(float64); got != tc.numCode || r.body["title"] != "request_failed" {
					t.Fatalf("framework error body = %s", r.raw)
				}
			}

			if tc.message != "" && r.body["message"] != tc.message {
				t.Fatalf("message = %v, want %q", r.body["message"], tc.message)
			}

			if got := r.header.Get("Allow"); got != tc.allow {
				t.Fatalf("Allow = %q, want %q", got, tc.allow)
			}

			if tc.wantID && r.str("id") != id {
				t.Fatalf("id = %q, want canonical %q", r.str("id"), id)
			}
		})
	}
}

func TestWrongAPIKey(t *testing.T) {
	e := newEnv(t, 0)

	r := e.do(req{method: "GET", path: "/v1/workflows", header: map[string]string{"X-API-Key": "wrong"}})
	e.expect(r, http.StatusUnauthorized, "UNAUTHORIZED")

	if r.body["title"] != "Unauthorized" {
		t.Fatalf("title = %v", r.body["title"])
	}
}

func TestNoAPIKeyConfigured(t *testing.T) {
	srv := New(Options{})
	t.Cleanup(srv.Close)

	rec := httptestRecorder(srv, "GET", "/v1/workflows", nil, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 without a configured key", rec.Code)
	}
}

func TestNotFoundMessageIsHTMLEscaped(t *testing.T) {
	srv := New(Options{})
	t.Cleanup(srv.Close)

	rec := httptestRecorder(srv, "GET", "/a<b>&", nil, nil)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `Cannot GET /a\u0026lt;b\u0026gt;\u0026amp;`) {
		t.Fatalf("404 = %d %s", rec.Code, rec.Body.String())
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, 0)

	r := e.do(req{method: "GET", path: "/v1/workflows", header: map[string]string{"X-Request-Id": "req-123"}})
	if got := r.header.Get("X-Request-Id"); got != "req-123" {
		t.Fatalf("echoed X-Request-Id = %q", got)
	}

	for _, path := range []string{"/v1/workflows", "/nope", "/version"} {
		r = e.do(req{method: "GET", path: path, noKey: true})
		if _, err := uuid.Parse(r.header.Get("X-Request-Id")); err != nil {
			t.Fatalf("%s: generated X-Request-Id %q is not a UUID", path, r.header.Get("X-Request-Id"))
		}
	}
}

func TestBodyLimitAndMethods(t *testing.T) {
	e := newEnv(t, 0)

	big := bytes.Repeat([]byte("a"), maxBodySize+1)
	r := e.do(req{method: "POST", path: "/v1/workflows", body: big, noKey: true})
	e.expect(r, http.StatusRequestEntityTooLarge, "")

	if got, _ := r.body["code"].(float64); got != 413 || r.body["message"] != "Request Entity Too Large" {
		t.Fatalf("413 body = %s", r.raw)
	}

	r = e.do(req{method: "FOO", path: "/v1/workflows"})
	e.expect(r, http.StatusNotImplemented, "")

	r = e.do(req{method: "HEAD", path: "/v1/workflows"})
	e.expect(r, http.StatusOK, "")

	if len(r.raw) != 0 {
		t.Fatalf("HEAD returned a body: %q", r.raw)
	}

	r = e.do(req{method: "OPTIONS", path: "/v1/workflows", noKey: true, header: map[string]string{
		"Origin": "http://example.com", "Access-Control-Request-Method": "POST",
	}})
	e.expect(r, http.StatusNoContent, "")
}

func TestJSONEscaping(t *testing.T) {
	e := newEnv(t, 0)

	r := e.post("/v1/workflows", map[string]any{"name": "<b>&</b>"})
	e.expect(r, http.StatusCreated, "")

	r = e.get("/v1/workflows/" + r.str("workflowId"))
	if !bytes.Contains(r.raw, []byte(`"\u003cb\u003e\u0026\u003c/b\u003e"`)) {
		t.Fatalf("name not HTML-escaped like encoding/json: %s", r.raw)
	}

	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

func TestBodyParsing(t *testing.T) {
	e := newEnv(t, 0)

	var mp bytes.Buffer

	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("name", "multipart-name")
	_ = mw.Close()

	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
		code   string
	}{
		{name: "json", ctype: "application/json", body: `{"name":"a"}`, status: 201},
		{name: "json with charset", ctype: "application/json; charset=utf-8", body: `{"name":"b"}`, status: 201},
		{name: "vendor json", ctype: "application/vnd.api+json", body: `{"name":"c"}`, status: 201},
		{name: "upper-case content type", ctype: "APPLICATION/JSON", body: `{"name":"d"}`, status: 201},
		{name: "unknown fields ignored", ctype: "application/json", body: `{"name":"e","bogus":[1,2]}`, status: 201},
		{name: "case-insensitive field names", ctype: "application/json", body: `{"NAME":"f"}`, status: 201},
		{name: "text/plain", ctype: "text/plain", body: `{"name":"g"}`, status: 400, code: "FLK-0001"},
		{name: "no content type", ctype: "", body: `{"name":"h"}`, status: 400, code: "FLK-0001"},
		{name: "space before semicolon", ctype: "application/json ; charset=utf-8", body: `{"name":"i"}`, status: 400, code: "FLK-0001"},
		{name: "truncated json", ctype: "application/json", body: `{"name": "half`, status: 400, code: "FLK-0001"},
		{name: "invalid escape", ctype: "application/json", body: `{"name":"a\q"}`, status: 400, code: "FLK-0001"},
		{name: "empty body", ctype: "application/json", body: ``, status: 400, code: "FLK-0001"},
		{name: "wrong type", ctype: "application/json", body: `{"name":5}`, status: 400, code: "FLK-0001"},
		{name: "form without name", ctype: "application/x-www-form-urlencoded", body: `{"name": "x"}`, status: 400, code: "FLK-0110"},
		{name: "form with name", ctype: "application/x-www-form-urlencoded", body: `name=form-wf`, status: 201},
		{name: "multipart", ctype: mw.FormDataContentType(), body: mp.String(), status: 201},
		{name: "xml", ctype: "application/xml", body: `<w><Name>xml-wf</Name></w>`, status: 201},
		{name: "broken xml", ctype: "text/xml", body: `<w><Name>`, status: 400, code: "FLK-0001"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t

			var body any
			if tc.body != "" {
				body = tc.body
			} else {
				body = []byte{}
			}

			ctype := tc.ctype
			if ctype == "" {
				ctype = noContentType
			}

			r := e.do(req{method: "POST", path: "/v1/workflows", body: body, ctype: ctype})
			e.expect(r, tc.status, tc.code)
		})
	}
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)

	go func() {
		errc <- Run(ctx, "127.0.0.1:0", Options{APIKey: "k"}, func(a net.Addr) { addrc <- a })
	}()

	var addr net.Addr

	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("Run returned early: %v", err)
	}

	res, err := http.Get("http://" + addr.String() + "/version")
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}

	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()

	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(Version)) {
		t.Fatalf("GET /version = %d %s", res.StatusCode, body)
	}

	cancel()

	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context was cancelled")
	}

	if err := Run(t.Context(), "256.0.0.1:bad", Options{}, nil); err == nil {
		t.Fatal("Run on a bad address returned nil")
	}
}
