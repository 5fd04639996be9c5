package fakeflowker

import (
	"net/http"
	"testing"
	"time"
)

// TestFamiliesShareHandlers runs the same checks against the three resource families that share
// family.go's handlers: an update answers the in-memory, nanosecond updatedAt while a later get
// answers the stored, millisecond one; get and delete of an unknown or malformed id answer the
// family's own errors; a list page has items, nextCursor and hasMore.
func TestFamiliesShareHandlers(t *testing.T) {
	e := newEnv(t, 0)

	workflowID := e.post("/v1/workflows", map[string]any{"name": "fam-wf"}).str("workflowId")
	providerID := e.tracerProvider("fam-pc", "http://127.0.0.1:9/fam")

	const unknown = "50205d80-bb2d-48b0-a87d-0f298dd7bdc6"

	tests := []struct {
		name     string
		base, id string
		update   req
		notFound string
	}{
		{
			name: "workflows", base: "/v1/workflows", id: workflowID,
			update:   req{method: http.MethodPut, body: map[string]any{"name": "fam-wf-2"}},
			notFound: "FLK-0100",
		},
		{
			name: "provider configurations", base: "/v1/provider-configurations", id: providerID,
			update:   req{method: http.MethodPost, path: "/disable"},
			notFound: "FLK-0290",
		},
		{
			name: "executor configurations", base: "/v1/executors", id: SeededExecutorConfigSandboxID,
			update: req{method: http.MethodPatch, body: map[string]any{
				"name": "fam-exec", "baseUrl": "http://127.0.0.1:4031/echo",
				"endpoints":      []any{map[string]any{"name": "echo", "path": "/echo", "method": "POST"}},
				"authentication": map[string]any{"type": "none"},
			}},
			notFound: "FLK-0250",
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t

			u := tc.update
			u.path = tc.base + "/" + tc.id + u.path
			r := e.do(u)
			e.expect(r, http.StatusOK, "")

			answered, err := time.Parse(time.RFC3339Nano, r.str("updatedAt"))
			if err != nil {
				t.Fatalf("updatedAt of the update answer: %v (%s)", err, r.raw)
			}

			if answered.Equal(answered.Truncate(time.Millisecond)) {
				t.Fatalf("update answered a millisecond updatedAt %s; want the in-memory nanosecond one (the step clock adds 123 ns)", answered)
			}

			r = e.get(tc.base + "/" + tc.id)
			e.expect(r, http.StatusOK, "")

			stored, err := time.Parse(time.RFC3339Nano, r.str("updatedAt"))
			if err != nil {
				t.Fatalf("updatedAt of the get answer: %v (%s)", err, r.raw)
			}

			if !stored.Equal(answered.Truncate(time.Millisecond)) {
				t.Fatalf("get answered updatedAt %s; want the update's %s at millisecond precision", stored, answered)
			}

			r = e.get(tc.base + "?limit=1")
			e.expect(r, http.StatusOK, "")

			for _, key := range []string{"items", "nextCursor", "hasMore"} {
				if _, ok := r.body[key]; !ok {
					t.Fatalf("list page lacks %q: %s", key, r.raw)
				}
			}

			e.expect(e.get(tc.base+"/"+unknown), http.StatusNotFound, tc.notFound)
			e.expect(e.get(tc.base+"/not-a-uuid"), http.StatusBadRequest, "FLK-0002")
			e.expect(e.do(req{method: http.MethodDelete, path: tc.base + "/" + unknown}), http.StatusNotFound, tc.notFound)
			e.expect(e.do(req{method: http.MethodDelete, path: tc.base + "/" + tc.id}), http.StatusNoContent, "")
			e.expect(e.get(tc.base+"/"+tc.id), http.StatusNotFound, tc.notFound)
		})
	}
}
