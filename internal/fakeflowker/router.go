package fakeflowker

import (
	"net/http"
	"strings"
)

// reqCtx carries one request through a handler.
type reqCtx struct {
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	params map[string]string
}

func (c *reqCtx) param(name string) string { return c.params[name] }

func (c *reqCtx) query(name string) string { return c.r.URL.Query().Get(name) }

type handlerFunc func(*reqCtx)

// route is one registered Fiber route. Patterns are lower-case; segments
// starting with ':' are parameters (one non-empty segment), a final "*" is a
// wildcard that may be empty.
type route struct {
	methods []string
	segs    []string
	star    bool
	handler handlerFunc
}

func newRoute(methods []string, pattern string, h handlerFunc) route {
	rt := route{methods: methods, handler: h}

	p := strings.TrimPrefix(pattern, "/")
	if strings.HasSuffix(p, "/*") {
		rt.star = true
		p = strings.TrimSuffix(p, "/*")
	}

	rt.segs = strings.Split(p, "/")

	return rt
}

func (rt *route) hasMethod(m string) bool {
	for _, x := range rt.methods {
		if x == m {
			return true
		}
	}

	return false
}

// matchPath matches the detection path; parameters are taken from the raw
// path at the same byte offsets (lower-casing keeps lengths), so they keep
// their original case and escapes.
func (rt *route) matchPath(detection, raw string) (map[string]string, bool) {
	if !strings.HasPrefix(detection, "/") {
		return nil, false
	}

	raw = raw[:len(detection)]
	d := detection[1:]
	o := raw[1:]

	var params map[string]string

	pos := 0

	for i, seg := range rt.segs {
		if pos > len(d) {
			return nil, false
		}

		end := strings.IndexByte(d[pos:], '/')
		if end < 0 {
			end = len(d)
		} else {
			end += pos
		}

		part := d[pos:end]

		switch {
		case strings.HasPrefix(seg, ":"):
			if part == "" {
				return nil, false
			}

			if params == nil {
				params = make(map[string]string)
			}

			params[seg[1:]] = o[pos:end]
		case part != seg:
			return nil, false
		}

		last := i == len(rt.segs)-1
		pos = end + 1

		if last {
			if rt.star {
				if params == nil {
					params = make(map[string]string)
				}

				if end == len(d) {
					params["*"] = ""
				} else {
					params["*"] = o[end+1:]
				}

				return params, true
			}

			return params, end == len(d)
		}

		if end == len(d) {
			return nil, false
		}
	}

	return params, false
}

// match finds the first route (registration order) for method and path.
// When none matches, allow lists the other methods that would match, in
// Fiber's method order.
func (s *Server) match(method, detection, raw string) (*route, map[string]string, []string) {
	lookup := method
	if lookup == http.MethodHead {
		lookup = http.MethodGet // Fiber registers every GET route for HEAD too.
	}

	for i := range s.routes {
		rt := &s.routes[i]
		if !rt.hasMethod(lookup) {
			continue
		}

		if params, ok := rt.matchPath(detection, raw); ok {
			return rt, params, nil
		}
	}

	var allow []string

	for _, m := range knownMethods {
		if m == method {
			continue
		}

		lm := m
		if lm == http.MethodHead {
			lm = http.MethodGet
		}

		for i := range s.routes {
			rt := &s.routes[i]
			if !rt.hasMethod(lm) {
				continue
			}

			if _, ok := rt.matchPath(detection, raw); ok {
				allow = append(allow, m)
				break
			}
		}
	}

	return nil, nil, allow
}

// buildRoutes registers the routes in Flowker's registration order.
func (s *Server) buildRoutes() []route {
	get := []string{http.MethodGet}
	post := []string{http.MethodPost}
	put := []string{http.MethodPut}
	patch := []string{http.MethodPatch}
	del := []string{http.MethodDelete}

	return []route{
		newRoute(knownMethods, "/v1/webhooks/*", s.handleWebhook),

		newRoute(post, "/v1/workflows", s.createWorkflow),
		newRoute(post, "/v1/workflows/from-template", s.createWorkflowFromTemplate),
		newRoute(get, "/v1/workflows", s.listWorkflows),
		newRoute(get, "/v1/workflows/:id", s.getWorkflow),
		newRoute(put, "/v1/workflows/:id", s.updateWorkflow),
		newRoute(del, "/v1/workflows/:id", s.deleteWorkflow),
		newRoute(post, "/v1/workflows/:id/clone", s.cloneWorkflow),
		newRoute(post, "/v1/workflows/:id/activate", s.activateWorkflow),
		newRoute(post, "/v1/workflows/:id/deactivate", s.deactivateWorkflow),
		newRoute(post, "/v1/workflows/:id/draft", s.draftWorkflow),

		newRoute(get, "/v1/catalog/executors", s.listCatalogExecutors),
		newRoute(get, "/v1/catalog/executors/:id", s.getCatalogExecutor),
		newRoute(post, "/v1/catalog/executors/:id/validate", s.validateCatalogExecutor),
		newRoute(get, "/v1/catalog/triggers", s.listCatalogTriggers),
		newRoute(get, "/v1/catalog/triggers/:id", s.getCatalogTrigger),
		newRoute(get, "/v1/catalog/providers", s.listCatalogProviders),
		newRoute(get, "/v1/catalog/providers/:id", s.getCatalogProvider),
		newRoute(get, "/v1/catalog/providers/:id/executors", s.listCatalogProviderExecutors),
		newRoute(get, "/v1/catalog/templates", s.listCatalogTemplates),
		newRoute(get, "/v1/catalog/templates/:id", s.getCatalogTemplate),
		newRoute(post, "/v1/catalog/templates/:id/validate", s.validateCatalogTemplate),

		newRoute(get, "/v1/executors", s.listExecutorConfigs),
		newRoute(get, "/v1/executors/:id", s.getExecutorConfig),
		newRoute(patch, "/v1/executors/:id", s.updateExecutorConfig),
		newRoute(del, "/v1/executors/:id", s.deleteExecutorConfig),

		newRoute(post, "/v1/provider-configurations", s.createProviderConfig),
		newRoute(get, "/v1/provider-configurations", s.listProviderConfigs),
		newRoute(get, "/v1/provider-configurations/:id", s.getProviderConfig),
		newRoute(patch, "/v1/provider-configurations/:id", s.updateProviderConfig),
		newRoute(del, "/v1/provider-configurations/:id", s.deleteProviderConfig),
		newRoute(post, "/v1/provider-configurations/:id/disable", s.disableProviderConfig),
		newRoute(post, "/v1/provider-configurations/:id/enable", s.enableProviderConfig),
		newRoute(post, "/v1/provider-configurations/:id/test", s.testProviderConfig),

		newRoute(post, "/v1/workflows/:workflowId/executions", s.executeWorkflow),
		newRoute(get, "/v1/executions", s.listExecutions),
		newRoute(get, "/v1/executions/:id", s.getExecution),
		newRoute(get, "/v1/executions/:id/results", s.getExecutionResults),

		newRoute(get, "/v1/dashboards/workflows/summary", s.workflowSummary),
		newRoute(get, "/v1/dashboards/executions", s.executionSummary),

		newRoute(get, "/v1/audit-events", s.listAuditEvents),
		newRoute(get, "/v1/audit-events/:id", s.getAuditEvent),
		newRoute(get, "/v1/audit-events/:id/verify", s.verifyAuditEvent),

		newRoute(get, "/health", s.health),
		newRoute(get, "/readyz", s.readyz),
		newRoute(get, "/version", s.version),
	}
}
