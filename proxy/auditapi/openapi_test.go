package auditapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/ui"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

const openAPIKey = "openapi-test-key-0123456789"

// panicking is a querier whose Search panics (a bug: 500).
type panicking struct{ sink.Querier }

// anchoredStore is a store that applied retention: it keeps signed retention anchors.
type anchoredStore struct {
	*auditapitest.Store
	anchors []sink.RetentionAnchor
}

func (s *anchoredStore) ReadAnchors(_ context.Context, chainID string) ([]sink.RetentionAnchor, error) {
	var out []sink.RetentionAnchor
	for _, a := range s.anchors {
		if a.ChainID == chainID {
			out = append(out, a)
		}
	}
	return out, nil
}

func (panicking) Search(context.Context, sink.Query) (sink.Page, error) { panic("bug") }

// textBody decodes a body documented as a string (the page, the document itself). ndjsonBody
// does too, after checking that every line is a JSON value.
func textBody(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(r)
	return string(b), err
}

func ndjsonBody(r io.Reader, h http.Header, s *openapi3.SchemaRef, e openapi3filter.EncodingFn) (any, error) {
	v, err := textBody(r, h, s, e)
	if err != nil {
		return nil, err
	}
	for i, l := range strings.Split(strings.TrimSuffix(v.(string), "\n"), "\n") {
		if !json.Valid([]byte(l)) {
			return nil, fmt.Errorf("line %d is not JSON", i+1)
		}
	}
	return v, nil
}

func init() {
	openapi3filter.RegisterBodyDecoder("text/html", textBody)
	openapi3filter.RegisterBodyDecoder("application/yaml", textBody)
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", ndjsonBody)
}

// openAPIRouter loads the document the sidecar serves, checks that it is a valid OpenAPI 3
// document, and returns a router over it.
func openAPIRouter(t *testing.T, served []byte) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(served)
	if err != nil {
		t.Fatalf("load the served OpenAPI document: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	doc.Servers = nil // match requests to any host
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOpenAPIDocumentIsTheRepositoryFile: what the sidecar publishes is the file in the repository.
func TestOpenAPIDocumentIsTheRepositoryFile(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, auditapi.OpenAPI) {
		t.Fatal("embedded document differs from proxy/auditapi/openapi.yaml")
	}
}

// TestResponsesMatchOpenAPI sends real requests for every route the sidecar answers itself, with
// every status each can answer, and validates each response (status, headers, content type and
// body) against the published document.
func TestResponsesMatchOpenAPI(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	events := append(sinktest.GenerateChain("chain-a", 120, sinktest.GenOptions{Seed: 5, Start: start}),
		sinktest.GenerateChain("chain-b", 80, sinktest.GenOptions{Seed: 6, Start: start})...)
	// A tampered copy makes verify answer isValid false.
	tampered := append([]chain.Event(nil), events...)
	tampered[50].Result = "FAILED"
	if events[50].Result == "FAILED" {
		tampered[50].Result = "SUCCESS"
	}

	keys, err := auditapi.NewStaticKeys([]string{openAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	newAPI := func(q sink.Querier, down bool) *auditapi.API {
		api, err := auditapi.New(auditapi.Options{
			Querier: func(context.Context) (sink.Querier, error) {
				if down {
					return nil, errors.New("down")
				}
				return q, nil
			},
			Auth: keys, CursorKey: []byte("0123456789abcdef0123456789abcdef"), Registerer: prometheus.NewRegistry(),
			ActorNames: map[string]string{"key:0123": "ci-bot"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return api
	}
	good := newAPI(auditapitest.NewStore(events...), false)
	// Signed checkpoints of chain-a: one matching at sequence 40, and for the "departed" API one
	// at sequence 80 whose hash is not the stored one.
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)))
	sign := func(seq uint64, hash string) checkpoint.Checkpoint {
		c, err := signer.Sign("chain-a", seq, hash, events[seq-1].Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	withEvidence := func(cps ...checkpoint.Checkpoint) *auditapi.API {
		api, err := auditapi.New(auditapi.Options{
			Querier: func(context.Context) (sink.Querier, error) { return auditapitest.NewStore(events...), nil },
			Auth:    keys, CursorKey: []byte("0123456789abcdef0123456789abcdef"), Registerer: prometheus.NewRegistry(),
			Checkpoints: func(string) (*checkpoint.Evidence, error) {
				return &checkpoint.Evidence{Path: "checkpoints.ndjson", Checkpoints: cps, Keys: []ed25519.PublicKey{signer.Public()}}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return api
	}
	// chain-a after retention removed sequences 1..30 behind a signed anchor.
	anchor, err := signer.SignAnchor("chain-a", 30, events[29].Hash, events[30].Timestamp, events[119].Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	retained := &anchoredStore{Store: auditapitest.NewStore(events[30:]...), anchors: []sink.RetentionAnchor{sink.RetentionAnchor(anchor)}}
	withRetention, err := auditapi.New(auditapi.Options{
		Querier: func(context.Context) (sink.Querier, error) { return retained, nil },
		Auth:    keys, CursorKey: []byte("0123456789abcdef0123456789abcdef"), Registerer: prometheus.NewRegistry(),
		Checkpoints: func(string) (*checkpoint.Evidence, error) {
			return &checkpoint.Evidence{Path: "checkpoints.ndjson", Checkpoints: []checkpoint.Checkpoint{sign(40, events[39].Hash)}, Keys: []ed25519.PublicKey{signer.Public()}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	apis := map[string]*auditapi.API{
		"retained": withRetention,
		"good":     good,
		"down":     newAPI(nil, true),
		"tampered": newAPI(auditapitest.NewStore(tampered...), false),
		"panic":    newAPI(panicking{auditapitest.NewStore(events...)}, false),
		"signed":   withEvidence(sign(40, events[39].Hash)),
		"departed": withEvidence(sign(40, events[39].Hash), sign(80, strings.Repeat("ab", 32))),
	}
	page, err := ui.New(ui.Options{AuthMode: good.AuthMode()})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(api *auditapi.API, w http.ResponseWriter, r *http.Request) {
		switch {
		case api.Match(r):
			api.ServeHTTP(w, r)
		case page.Match(r):
			page.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}

	// The document is read from the sidecar itself.
	w := httptest.NewRecorder()
	serve(good, w, httptest.NewRequest(http.MethodGet, auditapi.OpenAPIPath, nil))
	if w.Code != 200 {
		t.Fatalf("GET %s: %d", auditapi.OpenAPIPath, w.Code)
	}
	router := openAPIRouter(t, w.Body.Bytes())

	id, last := events[10].EventID, events[119].EventID
	cases := []struct {
		name, api, method, target string
		auth                      bool
		status                    int
	}{
		{"list", "good", "GET", "/v1/audit-events", true, 200},
		{"list filtered", "good", "GET", "/v1/audit-events?actorType=user&sortOrder=ASC&limit=5&eventType=WORKFLOW_UPDATED", true, 200},
		{"list empty", "good", "GET", "/v1/audit-events?actorId=nobody", true, 200},
		{"list bad enum", "good", "GET", "/v1/audit-events?actorType=robot", true, 400},
		{"list bad uuid", "good", "GET", "/v1/audit-events?resourceId=x", true, 400},
		{"list bad date", "good", "GET", "/v1/audit-events?dateFrom=yesterday", true, 400},
		{"list bad range", "good", "GET", "/v1/audit-events?dateFrom=2026-03-03T00:00:00Z&dateTo=2026-03-02T00:00:00Z", true, 400},
		{"list bad cursor", "good", "GET", "/v1/audit-events?cursor=abc", true, 400},
		{"list bad limit", "good", "GET", "/v1/audit-events?limit=x", true, 400},
		{"list no key", "good", "GET", "/v1/audit-events", false, 401},
		{"list POST", "good", "POST", "/v1/audit-events", true, 405},
		{"list store down", "down", "GET", "/v1/audit-events", true, 503},
		{"list bug", "panic", "GET", "/v1/audit-events", true, 500},
		{"export csv", "good", "GET", "/v1/audit-events/export?format=csv&actorType=api_key", true, 200},
		{"export ndjson", "good", "GET", "/v1/audit-events/export?format=ndjson", true, 200},
		{"export no format", "good", "GET", "/v1/audit-events/export", true, 400},
		{"export no key", "good", "GET", "/v1/audit-events/export?format=csv", false, 401},
		{"export DELETE", "good", "DELETE", "/v1/audit-events/export?format=csv", true, 405},
		{"export store down", "down", "GET", "/v1/audit-events/export?format=ndjson", true, 503},
		{"get", "good", "GET", "/v1/audit-events/" + id, true, 200},
		{"get first of chain", "good", "GET", "/v1/audit-events/" + events[0].EventID, true, 200},
		{"get bad id", "good", "GET", "/v1/audit-events/not-a-uuid", true, 400},
		{"get unknown", "good", "GET", "/v1/audit-events/6ba7b810-9dad-41d1-80b4-00c04fd430c8", true, 404},
		{"get no key", "good", "GET", "/v1/audit-events/" + id, false, 401},
		{"get PUT", "good", "PUT", "/v1/audit-events/" + id, true, 405},
		{"get store down", "down", "GET", "/v1/audit-events/" + id, true, 503},
		{"verify valid", "good", "GET", "/v1/audit-events/" + last + "/verify", true, 200},
		{"verify broken", "tampered", "GET", "/v1/audit-events/" + last + "/verify", true, 200},
		{"verify with checkpoints", "signed", "GET", "/v1/audit-events/" + last + "/verify", true, 200},
		{"verify departs from a checkpoint", "departed", "GET", "/v1/audit-events/" + last + "/verify", true, 200},
		{"verify after retention", "retained", "GET", "/v1/audit-events/" + last + "/verify", true, 200},
		{"verify bad id", "good", "GET", "/v1/audit-events/x/verify", true, 400},
		{"verify unknown", "good", "GET", "/v1/audit-events/6ba7b810-9dad-41d1-80b4-00c04fd430c8/verify", true, 404},
		{"verify no key", "good", "GET", "/v1/audit-events/" + id + "/verify", false, 401},
		{"verify PATCH", "good", "PATCH", "/v1/audit-events/" + id + "/verify", true, 405},
		{"verify store down", "down", "GET", "/v1/audit-events/" + id + "/verify", true, 503},
		{"config", "good", "GET", "/audit-trail/config.json", true, 200},
		{"config no key", "good", "GET", "/audit-trail/config.json", false, 401},
		{"config POST", "good", "POST", "/audit-trail/config.json", true, 405},
		{"openapi", "good", "GET", "/audit-trail/openapi.yaml", false, 200},
		{"page", "good", "GET", "/audit-trail", false, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.auth {
				req.Header.Set(auditapi.HeaderAPIKey, openAPIKey)
			}
			w := httptest.NewRecorder()
			serve(apis[tc.api], w, req)
			if w.Code != tc.status {
				t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.target, w.Code, tc.status, w.Body)
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				// A method the document does not list for a documented path: the 405 it gets is
				// Flowker's framework error, checked against that schema directly.
				if w.Code == 405 && strings.Contains(w.Body.String(), `"code":405`) {
					checkFrameworkError(t, router, w)
					return
				}
				t.Fatalf("%s %s: not in the document: %v", tc.method, tc.target, err)
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
					Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
				Status: w.Code, Header: w.Header(), Body: io.NopCloser(bytes.NewReader(w.Body.Bytes())),
				Options: &openapi3filter.Options{IncludeResponseStatus: true},
			}
			if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
				t.Fatalf("%s %s: %d response does not match the document: %v\n%s", tc.method, tc.target, w.Code, err, clipBody(w.Body.String()))
			}
			for name, want := range map[string]string{"verify with checkpoints": `"newestCheckpoint":{`, "verify departs from a checkpoint": `"departsAfterSequence":40`,
				"verify after retention": `"verifiedFrom":31,"retentionAnchor":{"sequence":30`} {
				if tc.name == name && !strings.Contains(w.Body.String(), want) {
					t.Fatalf("%s: the answer lacks %s: %s", name, want, w.Body)
				}
			}
		})
	}
}

// checkFrameworkError validates a 405 body against the FrameworkError schema through a documented
// GET route's 405 response.
func checkFrameworkError(t *testing.T, router routers.Router, w *httptest.ResponseRecorder) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/audit-events", nil)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 405, Header: w.Header(), Body: io.NopCloser(bytes.NewReader(w.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("405 body does not match FrameworkError: %v\n%s", err, w.Body)
	}
}

func clipBody(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
