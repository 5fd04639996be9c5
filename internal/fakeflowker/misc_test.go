package fakeflowker

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestDashboards(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://x")
	wf := e.activeWorkflow("dash", "/dash", "", pc)
	e.expect(e.post("/v1/workflows", map[string]any{"name": "draft"}), http.StatusCreated, "")

	done := e.execute(wf, "d1", nil).str("executionId")
	e.execute(wf, "d2", nil)
	e.srv.FinishExecution(done)

	r := e.get("/v1/dashboards/workflows/summary")
	e.expect(r, http.StatusOK, "")

	if r.body["total"] != float64(2) || r.body["active"] != float64(1) || len(r.body["byStatus"].([]any)) != 2 {
		t.Fatalf("workflow summary = %s", r.raw)
	}

	r = e.get("/v1/dashboards/executions")
	if r.body["total"] != float64(2) || r.body["completed"] != float64(1) || r.body["running"] != float64(1) || r.body["failed"] != float64(0) {
		t.Fatalf("execution summary = %s", r.raw)
	}

	if r = e.get("/v1/dashboards/executions?status=running"); r.body["total"] != float64(1) {
		t.Fatalf("status filter = %s", r.raw)
	}

	future := url.QueryEscape(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339))
	if r = e.get("/v1/dashboards/executions?startTime=" + future); r.body["total"] != float64(0) {
		t.Fatalf("startTime filter = %s", r.raw)
	}

	for _, q := range []string{"startTime=yesterday", "endTime=x", "status=done", "startTime=2026-01-02T00:00:00Z&endTime=2026-01-01T00:00:00Z"} {
		e.expect(e.get("/v1/dashboards/executions?"+q), http.StatusBadRequest, "FLK-0302")
	}
}

func TestAuditRoutes(t *testing.T) {
	e := newEnv(t, 0)

	r := e.get("/v1/audit-events?limit=4&sortOrder=ASC")
	e.expect(r, http.StatusOK, "")

	if string(r.raw) != `{"items":[],"nextCursor":"","hasMore":false}` {
		t.Fatalf("audit list = %s", r.raw)
	}

	tests := []struct {
		path   string
		status int
		code   string
	}{
		{path: "/v1/audit-events?limit=x", status: 400, code: "FLK-0304"},
		{path: "/v1/audit-events?limit=500", status: 200},
		{path: "/v1/audit-events?resourceId=x", status: 400, code: "FLK-0002"},
		{path: "/v1/audit-events?dateFrom=x", status: 400, code: "FLK-0305"},
		{path: "/v1/audit-events?dateTo=x", status: 400, code: "FLK-0305"},
		{path: "/v1/audit-events?dateFrom=2026-01-02T00:00:00Z&dateTo=2026-01-01T00:00:00Z", status: 400, code: "FLK-0308"},
		{path: "/v1/audit-events/00000000-0000-0000-0000-000000000000", status: 404, code: "FLK-0600"},
		{path: "/v1/audit-events/nope", status: 400, code: "FLK-0002"},
		{path: "/v1/audit-events/00000000-0000-0000-0000-000000000000/verify", status: 404, code: "FLK-0600"},
		{path: "/v1/audit-events/nope/verify", status: 400, code: "FLK-0002"},
	}

	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			e.t = t
			e.expect(e.get(tc.path), tc.status, tc.code)
		})
	}

	e.t = t

	r = e.get("/v1/audit-events/00000000-0000-0000-0000-000000000000")
	if r.str("title") != "Not Found" || r.str("message") != "audit entry not found" {
		t.Fatalf("404 body = %s", r.raw)
	}

	// The credential probe used by the sidecar: 401 without a valid key.
	e.expect(e.do(req{method: "GET", path: "/v1/audit-events/00000000-0000-0000-0000-000000000000", noKey: true}), http.StatusUnauthorized, "UNAUTHORIZED")
}

func TestHealthAndVersion(t *testing.T) {
	e := newEnv(t, 0)

	r := e.do(req{method: "GET", path: "/health", noKey: true})
	e.expect(r, http.StatusOK, "")

	if r.str("status") != "healthy" || r.str("uptime") == "" || r.str("checks.database.status") == "" {
		t.Fatalf("health = %s", r.raw)
	}

	r = e.do(req{method: "GET", path: "/readyz", noKey: true})
	if r.str("status") != "healthy" || r.str("checks.mongodb.status") != "up" || r.str("deployment_mode") != "local" || r.str("version") != Version {
		t.Fatalf("readyz = %s", r.raw)
	}

	r = e.do(req{method: "GET", path: "/version", noKey: true})
	if r.str("version") != Version || r.str("requestDate") == "" {
		t.Fatalf("version = %s", r.raw)
	}

	e.srv.Close()

	r = e.do(req{method: "GET", path: "/readyz", noKey: true})
	e.expect(r, http.StatusServiceUnavailable, "")
}
