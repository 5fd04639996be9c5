package fakeflowker

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
)

type statusCount struct {
	Status string `json:"status"`
	Count  int    `json:"count"`
}

type workflowSummaryOutput struct {
	Total    int           `json:"total"`
	Active   int           `json:"active"`
	ByStatus []statusCount `json:"byStatus"`
}

type executionSummaryOutput struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
}

func (s *Server) workflowSummary(c *reqCtx) {
	counts := make(map[string]int)

	s.mu.Lock()

	out := workflowSummaryOutput{Total: len(s.workflows), ByStatus: []statusCount{}}
	for _, w := range s.workflows {
		counts[w.Status]++
	}

	s.mu.Unlock()

	out.Active = counts[statusActive]

	for st, n := range counts {
		out.ByStatus = append(out.ByStatus, statusCount{Status: st, Count: n})
	}

	sort.Slice(out.ByStatus, func(i, j int) bool { return out.ByStatus[i].Status < out.ByStatus[j].Status })

	c.json(http.StatusOK, out)
}

func (s *Server) executionSummary(c *reqCtx) {
	var start, end *time.Time

	if v := c.query("startTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			c.badRequest("FLK-0302", "invalid startTime format, expected RFC3339")
			return
		}

		start = &t
	}

	if v := c.query("endTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			c.badRequest("FLK-0302", "invalid endTime format, expected RFC3339")
			return
		}

		end = &t
	}

	if start != nil && end != nil && start.After(*end) {
		c.badRequest("FLK-0302", "startTime must be before endTime")
		return
	}

	status := c.query("status")
	if status != "" && !isExecutionStatus(status) {
		c.badRequest("FLK-0302", "invalid status, must be one of: pending, running, completed, failed")
		return
	}

	var out executionSummaryOutput

	s.mu.Lock()

	for _, ex := range s.executions {
		if start != nil && ex.StartedAt.Before(*start) {
			continue
		}

		if end != nil && ex.StartedAt.After(*end) {
			continue
		}

		if status != "" && ex.Status != status {
			continue
		}

		out.Total++

		switch ex.Status {
		case execCompleted:
			out.Completed++
		case execFailed:
			out.Failed++
		case execPending:
			out.Pending++
		case execRunning:
			out.Running++
		}
	}

	s.mu.Unlock()

	c.json(http.StatusOK, out)
}

type auditListOutput struct {
	Items      []any  `json:"items"`
	NextCursor string `json:"nextCursor"`
	HasMore    bool   `json:"hasMore"`
}

// listAuditEvents validates like Flowker's handler; the fake has no native
// audit rows, so the page is always empty.
func (s *Server) listAuditEvents(c *reqCtx) {
	if v := c.query("limit"); v != "" {
		if _, err := strconv.Atoi(v); err != nil {
			c.badRequest("FLK-0304", "invalid limit parameter, expected integer")
			return
		}
	}

	if v := c.query("resourceId"); v != "" {
		if _, err := uuid.Parse(v); err != nil {
			c.badRequest("FLK-0002", "invalid resourceId format, expected UUID")
			return
		}
	}

	var from, to *time.Time

	if v := c.query("dateFrom"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			c.badRequest("FLK-0305", "invalid dateFrom format, expected RFC3339")
			return
		}

		from = &t
	}

	if v := c.query("dateTo"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			c.badRequest("FLK-0305", "invalid dateTo format, expected RFC3339")
			return
		}

		to = &t
	}

	if from != nil && to != nil && from.After(*to) {
		c.badRequest("FLK-0308", "dateFrom must be before dateTo")
		return
	}

	c.json(http.StatusOK, auditListOutput{Items: []any{}})
}

func (s *Server) getAuditEvent(c *reqCtx) {
	if _, err := uuid.Parse(c.param("id")); err != nil {
		c.badRequest("FLK-0002", "invalid audit event ID")
		return
	}

	c.notFound("FLK-0600", "audit entry not found")
}

func (s *Server) verifyAuditEvent(c *reqCtx) { s.getAuditEvent(c) }

type healthCheck struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type healthOutput struct {
	Status    string                 `json:"status"`
	Version   string                 `json:"version"`
	Uptime    string                 `json:"uptime"`
	Timestamp time.Time              `json:"timestamp"`
	Checks    map[string]healthCheck `json:"checks"`
}

func (s *Server) health(c *reqCtx) {
	now := s.now()

	c.json(http.StatusOK, healthOutput{
		Status:    "healthy",
		Version:   "dev",
		Uptime:    now.Sub(s.started).String(),
		Timestamp: now,
		Checks:    map[string]healthCheck{"database": {Status: "healthy", Message: "in-memory store"}},
	})
}

type readyCheck struct {
	Status    string `json:"status"`
	LatencyMs int64  `json:"latency_ms"`
}

type readyOutput struct {
	Status         string                `json:"status"`
	Checks         map[string]readyCheck `json:"checks"`
	Version        string                `json:"version"`
	DeploymentMode string                `json:"deployment_mode"`
}

func (s *Server) readyz(c *reqCtx) {
	if s.ctx.Err() != nil {
		c.json(http.StatusServiceUnavailable, readyOutput{Status: "unhealthy", Checks: map[string]readyCheck{}, Version: Version, DeploymentMode: "local"})
		return
	}

	c.json(http.StatusOK, readyOutput{
		Status: "healthy",
		Checks: map[string]readyCheck{
			"mongodb":    {Status: "up", LatencyMs: 0},
			"postgresql": {Status: "up", LatencyMs: 0},
		},
		Version:        Version,
		DeploymentMode: "local",
	})
}

type versionOutput struct {
	RequestDate time.Time `json:"requestDate"`
	Version     string    `json:"version"`
}

func (s *Server) version(c *reqCtx) {
	c.json(http.StatusOK, versionOutput{RequestDate: s.now(), Version: Version})
}
