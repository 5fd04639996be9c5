package fakeflowker

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// handleWebhook is Flowker's catch-all /v1/webhooks/* handler.
func (s *Server) handleWebhook(c *reqCtx) {
	if len(c.body) > maxExecutionBody {
		c.fail(http.StatusRequestEntityTooLarge, "FLK-0363", "Payload Too Large", "webhook request body exceeds 1MB limit")
		return
	}

	path := c.param("*")
	method := c.r.Method

	s.mu.Lock()
	rt, ok := s.webhooks[webhookKey(method, path)]
	s.mu.Unlock()

	if !ok {
		c.notFound("FLK-0361", "no webhook registered for this path and method")
		return
	}

	if rt.VerifyToken != "" {
		token := c.r.Header.Get("X-Webhook-Token")
		if subtle.ConstantTimeCompare([]byte(token), []byte(rt.VerifyToken)) != 1 {
			c.fail(http.StatusUnauthorized, "FLK-0362", "Unauthorized", "invalid or missing webhook verification token")
			return
		}
	}

	var input map[string]any

	if len(c.body) > 0 {
		if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &input); err != nil {
			c.invalidBody()
			return
		}
	}

	if input == nil {
		input = make(map[string]any)
	}

	input["_webhook"] = map[string]any{
		"method":    method,
		"path":      path,
		"headers":   webhookHeaders(c.r),
		"query":     webhookQuery(c.r),
		"remote_ip": remoteIP(c.r),
	}

	key := strings.TrimSpace(c.r.Header.Get("Idempotency-Key"))

	s.mu.Lock()

	ex, _, startedAt, e := s.startExecutionLocked(rt.WorkflowID, input, key)

	var (
		out      executionCreateOutput
		terminal bool
	)

	if e == nil {
		out = ex.createOutput()
		out.StartedAt = startedAt
		terminal = ex.terminal()
	}

	s.mu.Unlock()

	if e != nil {
		c.sendErr(e)
		return
	}

	c.w.Header().Set("X-Webhook-Workflow-ID", rt.WorkflowID.String())
	c.w.Header().Set("X-Webhook-Execution-ID", out.ExecutionID.String())

	if terminal {
		c.json(http.StatusOK, out)
		return
	}

	c.json(http.StatusCreated, out)
}

// webhookHeaders copies the request headers except the credentials.
func webhookHeaders(r *http.Request) map[string]any {
	h := make(map[string]any, len(r.Header)+1)

	for k, vs := range r.Header {
		switch strings.ToLower(k) {
		case "authorization", "x-api-key", "x-webhook-token":
			continue
		}

		if len(vs) > 0 {
			h[k] = vs[len(vs)-1]
		}
	}

	if r.Host != "" {
		h["Host"] = r.Host
	}

	return h
}

func webhookQuery(r *http.Request) map[string]any {
	q := make(map[string]any)

	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			q[k] = vs[len(vs)-1]
		}
	}

	return q
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}

	return host
}
