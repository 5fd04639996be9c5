package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/proxy"
)

// Outcome is what recovery learned about a request whose event was never journaled.
type Outcome struct {
	// Reconciled is true when the outcome was observed in Flowker (Result is then SUCCESS or
	// FAILED); false means unknown (Result UNKNOWN) and Reason says why.
	Reconciled bool
	Result     string
	ResourceID string
	Evidence   string
	Reason     string
	// Watch, for an execution found started, hands it to the execution watcher.
	Watch *journal.Watch
	Once  string
}

func unknown(format string, args ...any) Outcome {
	return Outcome{Result: chain.ResultUnknown, Reason: fmt.Sprintf(format, args...)}
}

func reconciled(result, evidence string) Outcome {
	return Outcome{Reconciled: true, Result: result, Evidence: evidence}
}

// reconciler asks Flowker, through its read endpoints, what became of a request.
type reconciler struct {
	base          *url.URL
	client        *http.Client
	apiKey        string
	authorization string
	journal       *journal.Journal
	// skew is the clock difference tolerated between the sidecar and Flowker when comparing a
	// resource's timestamps with the request's start.
	skew time.Duration
	// until is when this process started (plus skew): changes after it belong to the new run's
	// own requests, never to an intent of the previous run.
	until time.Time
	// claimed are resource ids recovery already assigned to an intent (so that two intents never
	// claim one execution or create).
	claimed map[string]bool
	// maxPages bounds the list pages read for one intent.
	maxPages int
}

// errFlowker is Flowker being unreachable or answering 5xx: recovery retries later.
var errFlowker = errors.New("flowker did not answer")

// learn finds out what became of the request behind in.
func (rc *reconciler) learn(ctx context.Context, in journal.Intent) (Outcome, error) {
	det, err := proxy.ParseIntentDetail(in.Detail)
	if err != nil {
		return unknown("the intent's detail could not be read: %v", err), nil
	}
	if rc.apiKey == "" && rc.authorization == "" {
		return unknown("no credentials to ask Flowker (watcher.api_key or watcher.authorization)"), nil
	}
	since := in.Start.Add(-rc.skew)
	id := det.Params["id"]
	switch det.Rule {
	case "workflow.create", "workflow.clone":
		return rc.created(ctx, "/v1/workflows", det, since, "")
	case "provider_config.create":
		return rc.created(ctx, "/v1/provider-configurations", det, since, det.ProviderID)
	case "workflow.activate":
		return rc.status(ctx, "/v1/workflows/"+id, "active", since)
	case "workflow.deactivate":
		return rc.status(ctx, "/v1/workflows/"+id, "inactive", since)
	case "workflow.draft":
		return rc.status(ctx, "/v1/workflows/"+id, "draft", since)
	case "workflow.update", "provider_config.update":
		path := "/v1/workflows/"
		if det.Rule == "provider_config.update" {
			path = "/v1/provider-configurations/"
		}
		return rc.updated(ctx, path+id, det, since)
	case "workflow.delete":
		return rc.deleted(ctx, "/v1/workflows/"+id)
	case "provider_config.delete":
		return rc.deleted(ctx, "/v1/provider-configurations/"+id)
	case "execution.start":
		return rc.execution(ctx, det.Params["workflowId"], since)
	}
	return unknown("Flowker offers no way to learn the outcome of %s %s (rule %s)", det.Method, det.Path, det.Rule), nil
}

// get reads path from Flowker into v; it returns the status (404 is an answer, not an error).
func (rc *reconciler) get(ctx context.Context, path string, query url.Values, v any) (int, error) {
	u := rc.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	if rc.apiKey != "" {
		req.Header.Set("X-API-Key", rc.apiKey)
	}
	if rc.authorization != "" {
		req.Header.Set("Authorization", rc.authorization)
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: GET %s: %w", errFlowker, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, fmt.Errorf("%w: GET %s: %w", errFlowker, path, err)
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return resp.StatusCode, fmt.Errorf("%w: GET %s answered %d", errFlowker, path, resp.StatusCode)
	case resp.StatusCode == http.StatusOK && v != nil:
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

type resource struct {
	ID          string    `json:"id"`
	ExecutionID string    `json:"executionId"`
	WorkflowID  string    `json:"workflowId"`
	Name        string    `json:"name"`
	ProviderID  string    `json:"providerId"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	StartedAt   time.Time `json:"startedAt"`
}

type page struct {
	Items      []resource `json:"items"`
	NextCursor string     `json:"nextCursor"`
	HasMore    bool       `json:"hasMore"`
}

// list walks a list endpoint newest first (sortKey DESC) and returns the items whose time is at
// or after since. complete is false when the page bound stopped the walk.
func (rc *reconciler) list(ctx context.Context, path, sortKey string, q url.Values, at func(resource) time.Time, since time.Time) (items []resource, complete bool, err error) {
	q.Set("limit", "100")
	q.Set("sortBy", sortKey)
	q.Set("sortOrder", "DESC")
	for range rc.maxPages {
		var p page
		status, err := rc.get(ctx, path, q, &p)
		if err != nil {
			return nil, false, err
		}
		if status != http.StatusOK {
			return nil, false, fmt.Errorf("GET %s answered %d", path, status)
		}
		for _, it := range p.Items {
			if at(it).Before(since) {
				return items, true, nil
			}
			if !at(it).After(rc.until) {
				items = append(items, it)
			}
		}
		if !p.HasMore || p.NextCursor == "" {
			return items, true, nil
		}
		q.Set("cursor", p.NextCursor)
	}
	return items, false, nil
}

// created matches a create on the name it carried (and the provider), among the resources
// created since the request started.
func (rc *reconciler) created(ctx context.Context, path string, det proxy.IntentDetail, since time.Time, providerID string) (Outcome, error) {
	if det.Name == "" {
		return unknown("the request carried no name to find the created resource by"), nil
	}
	q := url.Values{}
	if providerID != "" {
		q.Set("providerId", providerID)
	}
	items, complete, err := rc.list(ctx, path, "createdAt", q, func(r resource) time.Time { return r.CreatedAt }, since)
	if err != nil {
		return Outcome{}, err
	}
	var match []resource
	for _, it := range items {
		id := it.ID
		if id == "" {
			id = it.WorkflowID
		}
		it.ID = id
		if it.Name == det.Name && (providerID == "" || it.ProviderID == providerID) && !rc.claimed[id] {
			match = append(match, it)
		}
	}
	window := "created at or after " + since.UTC().Format(time.RFC3339Nano)
	switch {
	case len(match) == 1:
		o := reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s lists %s %q %s (createdAt %s)", path, match[0].ID, det.Name, window,
			match[0].CreatedAt.UTC().Format(time.RFC3339Nano)))
		o.ResourceID = match[0].ID
		return o, nil
	case len(match) > 1:
		ids := make([]string, len(match))
		for i, m := range match {
			ids[i] = m.ID
		}
		return unknown("GET %s lists %d resources named %q %s: %s", path, len(match), det.Name, window, strings.Join(ids, ", ")), nil
	case !complete:
		return unknown("more than %d resources were %s; not all were read", rc.maxPages*100, window), nil
	}
	return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s lists no resource named %q %s: it was not created", path, det.Name, window)), nil
}

// status checks a status transition: the resource now has the target status and changed since
// the request started (applied), or did not change since (not applied).
func (rc *reconciler) status(ctx context.Context, path, target string, since time.Time) (Outcome, error) {
	var r resource
	code, err := rc.get(ctx, path, nil, &r)
	if err != nil {
		return Outcome{}, err
	}
	switch {
	case code == http.StatusNotFound:
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s answers 404: the resource does not exist", path)), nil
	case code != http.StatusOK:
		return unknown("GET %s answered %d", path, code), nil
	case r.UpdatedAt.After(rc.until):
		return unknown("GET %s: changed again after the sidecar restarted (updated %s)", path, r.UpdatedAt.UTC().Format(time.RFC3339Nano)), nil
	case r.UpdatedAt.Before(since):
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s: status %q, unchanged since %s (before the request)", path, r.Status,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano))), nil
	case r.Status == target:
		return reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s: status %q, updated %s (after the request started)", path, r.Status,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano))), nil
	}
	return unknown("GET %s: status %q (not %q), updated %s after the request started: changed since by another request", path, r.Status, target,
		r.UpdatedAt.UTC().Format(time.RFC3339Nano)), nil
}

// updated checks an update: changed since the request started, with the name it carried.
func (rc *reconciler) updated(ctx context.Context, path string, det proxy.IntentDetail, since time.Time) (Outcome, error) {
	var r resource
	code, err := rc.get(ctx, path, nil, &r)
	if err != nil {
		return Outcome{}, err
	}
	switch {
	case code == http.StatusNotFound:
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s answers 404: the resource does not exist", path)), nil
	case code != http.StatusOK:
		return unknown("GET %s answered %d", path, code), nil
	case r.UpdatedAt.After(rc.until):
		return unknown("GET %s: changed again after the sidecar restarted (updated %s)", path, r.UpdatedAt.UTC().Format(time.RFC3339Nano)), nil
	case r.UpdatedAt.Before(since):
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s: unchanged since %s (before the request)", path,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano))), nil
	case det.Name != "" && r.Name == det.Name:
		return reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s: name %q as requested, updated %s (after the request started)", path, r.Name,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano))), nil
	}
	return unknown("GET %s: updated %s, after the request started, but nothing it carried identifies the change as this request's", path,
		r.UpdatedAt.UTC().Format(time.RFC3339Nano)), nil
}

// deleted checks a delete: the resource answers 404 now.
func (rc *reconciler) deleted(ctx context.Context, path string) (Outcome, error) {
	code, err := rc.get(ctx, path, nil, nil)
	if err != nil {
		return Outcome{}, err
	}
	switch code {
	case http.StatusNotFound:
		return reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s answers 404 after the DELETE: the resource is gone", path)), nil
	case http.StatusOK:
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s answers 200: the resource still exists", path)), nil
	}
	return unknown("GET %s answered %d", path, code), nil
}

// execution finds the execution a start created: one of the workflow's executions started since
// the request, not yet recorded by any event nor claimed by another intent.
func (rc *reconciler) execution(ctx context.Context, workflowID string, since time.Time) (Outcome, error) {
	if workflowID == "" {
		return unknown("the request names no workflow"), nil
	}
	path := "/v1/executions"
	items, complete, err := rc.list(ctx, path, "startedAt", url.Values{"workflowId": {workflowID}},
		func(r resource) time.Time { return r.StartedAt }, since)
	if err != nil {
		return Outcome{}, err
	}
	var match []resource
	recorded := 0
	for _, it := range items {
		if rc.claimed[it.ExecutionID] {
			continue
		}
		used, err := rc.journal.OnceUsed("exec-start:" + it.ExecutionID)
		if err != nil {
			return Outcome{}, err
		}
		if used {
			recorded++
			continue
		}
		match = append(match, it)
	}
	window := fmt.Sprintf("of workflow %s started at or after %s", workflowID, since.UTC().Format(time.RFC3339Nano))
	switch {
	case len(match) == 1:
		m := match[0]
		o := reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s?workflowId=%s lists execution %s (startedAt %s, status %s), the only one %s without an event",
			path, workflowID, m.ExecutionID, m.StartedAt.UTC().Format(time.RFC3339Nano), m.Status, window))
		o.ResourceID = m.ExecutionID
		o.Once = "exec-start:" + m.ExecutionID
		o.Watch = &journal.Watch{ExecutionID: m.ExecutionID, WorkflowID: workflowID, Since: time.Now().UTC()}
		return o, nil
	case len(match) > 1:
		ids := make([]string, len(match))
		for i, m := range match {
			ids[i] = m.ExecutionID
		}
		return unknown("%d executions %s have no event, and the list does not show idempotency keys: %s", len(match), window, strings.Join(ids, ", ")), nil
	case !complete:
		return unknown("more than %d executions %s; not all were read", rc.maxPages*100, window), nil
	}
	return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s?workflowId=%s lists no execution %s without an event (%d with one): none was started",
		path, workflowID, window, recorded)), nil
}
