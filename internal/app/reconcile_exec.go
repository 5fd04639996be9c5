package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

// Executions. Flowker's idempotency keys are global and looked up before the workflow
// (ExecuteWorkflowCommand's fast path): a start sent with the key to the nil workflow id returns
// the execution that holds the key, or 404 FLK-0100 (no such workflow) when none does, and never
// creates one (no workflow has the nil id). That is an exact, read-only lookup by key. Without a
// usable key, the execution is looked for among the workflow's executions started in the window.

// keyProbeWorkflow is the workflow id the key lookup is sent to: Flowker generates UUID v4 ids,
// so no workflow ever has it.
const keyProbeWorkflow = "00000000-0000-0000-0000-000000000000"

// executionStart learns what became of POST /v1/workflows/{workflowId}/executions.
func (rc *reconciler) executionStart(ctx context.Context, det proxy.IntentDetail, since time.Time) (Outcome, error) {
	if key, ok := usableKey(det.IdempotencyKey); ok {
		out, done, err := rc.byKey(ctx, key, since)
		if err != nil || done {
			return out, err
		}
	}
	workflowID := det.Params["workflowId"]
	if workflowID == "" {
		return unknown("the request names no workflow"), nil
	}
	return rc.execution(ctx, workflowID, since, "")
}

// usableKey is the Idempotency-Key as Flowker compared it (trimmed), when the intent kept it
// whole: a key clipped or altered when recorded would look up another key.
func usableKey(k string) (string, bool) {
	k = strings.TrimSpace(k)
	if k == "" || len(k) > 256 || strings.ContainsRune(k, utf8.RuneError) {
		return "", false
	}
	return k, true
}

// byKey looks the execution up by its idempotency key. done is false when Flowker's answer does
// not settle it (the caller then looks in the window).
func (rc *reconciler) byKey(ctx context.Context, key string, since time.Time) (out Outcome, done bool, err error) {
	path := "/v1/workflows/" + keyProbeWorkflow + "/executions"
	var ex struct {
		ExecutionID string    `json:"executionId"`
		WorkflowID  string    `json:"workflowId"`
		Status      string    `json:"status"`
		StartedAt   time.Time `json:"startedAt"`
		Code        string    `json:"code"`
	}
	code, err := rc.do(ctx, http.MethodPost, path, nil, []byte(`{"inputData":{}}`), map[string]string{"Idempotency-Key": key}, &ex)
	if err != nil {
		return Outcome{}, false, err
	}
	// The key is shown as the event's context shows it (a value shaped like a secret is redacted).
	lookup := fmt.Sprintf("POST %s with Idempotency-Key %q (a lookup: Flowker checks the key before the workflow, and no workflow has this id)", path, capture.Text(key))
	switch {
	case (code == http.StatusOK || code == http.StatusCreated) && ex.ExecutionID != "" && ex.StartedAt.After(rc.until):
		// Started after this process did: by a later request with the same key (a client's
		// retry), or by this one, handled very late. Who made it cannot be told.
		return unknown("%s answers %d: execution %s of workflow %s, started %s, after the sidecar restarted: a later request with the same key started it, or this one did late",
			lookup, code, ex.ExecutionID, ex.WorkflowID, ex.StartedAt.UTC().Format(time.RFC3339Nano)), true, nil
	case (code == http.StatusOK || code == http.StatusCreated) && ex.ExecutionID != "":
		started := ex.StartedAt.UTC().Format(time.RFC3339Nano)
		var o Outcome
		if ex.StartedAt.Before(since) {
			// A replay: the key was used before this request.
			o = reconciled(chain.ResultSuccess, fmt.Sprintf("%s answers %d: execution %s of workflow %s, status %s, started %s, before the request: the request replayed it",
				lookup, code, ex.ExecutionID, ex.WorkflowID, ex.Status, started))
		} else {
			o = reconciled(chain.ResultSuccess, fmt.Sprintf("%s answers %d: execution %s of workflow %s, status %s, started %s (after the request started)",
				lookup, code, ex.ExecutionID, ex.WorkflowID, ex.Status, started))
		}
		o.ResourceID = ex.ExecutionID
		o.Once = "exec-start:" + ex.ExecutionID
		o.Watch = &journal.Watch{ExecutionID: ex.ExecutionID, WorkflowID: ex.WorkflowID, Since: time.Now().UTC()}
		return o, true, nil
	case code == http.StatusNotFound && ex.Code == "FLK-0100":
		return reconciled(chain.ResultFailed, fmt.Sprintf("%s answers 404 FLK-0100: no execution holds the key, so the request started none", lookup)), true, nil
	}
	return Outcome{}, false, nil
}

// webhook learns what became of a request to /v1/webhooks/*: by its idempotency key when it
// carried one, else among the executions, started in the window, of the active workflow whose
// webhook trigger has the request's method and path.
func (rc *reconciler) webhook(ctx context.Context, det proxy.IntentDetail, since time.Time) (Outcome, error) {
	if key, ok := usableKey(det.IdempotencyKey); ok {
		out, done, err := rc.byKey(ctx, key, since)
		if err != nil || done {
			return out, err
		}
	}
	rest, ok := strings.CutPrefix(det.Path, "/v1/webhooks/")
	if !ok {
		return unknown("the path %q is not under /v1/webhooks/", capture.Text(det.Path)), nil
	}
	ids, complete, err := rc.webhookWorkflows(ctx, det.Method, rest)
	if err != nil {
		return Outcome{}, err
	}
	route := fmt.Sprintf("%s %s", strings.ToUpper(det.Method), capture.Text(normalizeWebhookPath(rest)))
	switch {
	case len(ids) == 1:
		return rc.execution(ctx, ids[0], since, " (the active workflow whose webhook trigger is "+route+")")
	case len(ids) > 1:
		return unknown("%d active workflows declare the webhook %s: %s", len(ids), route, strings.Join(ids, ", ")), nil
	case !complete:
		return unknown("more than %d active workflows; not all were read to find the webhook %s", rc.maxPages*100, route), nil
	}
	return unknown("no active workflow declares the webhook %s now (it may have been deactivated since), so its executions cannot be told apart", route), nil
}

// normalizeWebhookPath is Flowker's webhook.NormalizePath.
func normalizeWebhookPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return strings.TrimRight(p, "/")
}

// webhookWorkflows lists the active workflows (GET /v1/workflows?status=active) whose webhook
// trigger node has this method and path, as Flowker's registry keys them.
func (rc *reconciler) webhookWorkflows(ctx context.Context, method, path string) (ids []string, complete bool, err error) {
	want := strings.ToUpper(method) + " " + normalizeWebhookPath(path)
	q := url.Values{"status": {"active"}, "limit": {"100"}, "sortBy": {"createdAt"}, "sortOrder": {"DESC"}}
	for range rc.maxPages {
		var p struct {
			Items []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Nodes  []struct {
					Type string         `json:"type"`
					Data map[string]any `json:"data"`
				} `json:"nodes"`
			} `json:"items"`
			NextCursor string `json:"nextCursor"`
			HasMore    bool   `json:"hasMore"`
		}
		status, err := rc.get(ctx, "/v1/workflows", q, &p)
		if err != nil {
			return nil, false, err
		}
		if status != http.StatusOK {
			return nil, false, fmt.Errorf("GET /v1/workflows answered %d", status)
		}
		for _, w := range p.Items {
			if w.Status != "active" {
				continue
			}
			for _, n := range w.Nodes {
				tt, _ := n.Data["triggerType"].(string)
				np, _ := n.Data["path"].(string)
				nm, _ := n.Data["method"].(string)
				if n.Type == "trigger" && tt == "webhook" && np != "" && nm != "" && strings.ToUpper(nm)+" "+normalizeWebhookPath(np) == want {
					ids = append(ids, w.ID)
					break
				}
			}
		}
		if !p.HasMore || p.NextCursor == "" {
			return ids, true, nil
		}
		q.Set("cursor", p.NextCursor)
	}
	return ids, false, nil
}

// execution finds the execution a start created: one of the workflow's executions started since
// the request, not yet recorded by any event nor claimed by another intent.
func (rc *reconciler) execution(ctx context.Context, workflowID string, since time.Time, about string) (Outcome, error) {
	path := "/v1/executions"
	items, complete, err := rc.list(ctx, path, "startedAt", true, url.Values{"workflowId": {workflowID}},
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
	window := fmt.Sprintf("of workflow %s%s started at or after %s", workflowID, about, since.UTC().Format(time.RFC3339Nano))
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
		return unknown("%d executions %s have no event, and Flowker's list does not show idempotency keys: %s", len(match), window, strings.Join(ids, ", ")), nil
	case !complete:
		return unknown("more than %d executions %s; not all were read", rc.maxPages*100, window), nil
	}
	return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s?workflowId=%s lists no execution %s without an event (%d with one): none was started",
		path, workflowID, window, recorded)), nil
}

// do sends a request to Flowker and decodes a JSON answer (any status) into v; it returns the
// status. 5xx and 429 are errFlowker (asked again later).
func (rc *reconciler) do(ctx context.Context, method, path string, query url.Values, body []byte, hdr map[string]string, v any) (int, error) {
	u := rc.base.JoinPath(path)
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	if rc.apiKey != "" {
		req.Header.Set("X-API-Key", rc.apiKey)
	}
	if rc.authorization != "" {
		req.Header.Set("Authorization", rc.authorization)
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %w", errFlowker, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %w", errFlowker, method, path, err)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return resp.StatusCode, fmt.Errorf("%w: %s %s answered %d", errFlowker, method, path, resp.StatusCode)
	}
	if v != nil && len(b) > 0 && json.Valid(b) {
		if err := json.Unmarshal(b, v); err != nil && resp.StatusCode < 300 {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// recoveryOrder puts first the intents whose event was observed (Intent.Completion: appended as
// it is, in the order the requests were answered), then those whose execution can be looked up by
// key: both are exact, and the resources they claim are then no longer candidates for the
// intents matched by time window (a create matched on its name, a keyless webhook on the same
// workflow).
func recoveryOrder(in []journal.Intent) []journal.Intent {
	out := make([]journal.Intent, 0, len(in))
	var keyedStarts, later []journal.Intent
	for _, i := range in {
		det, err := proxy.ParseIntentDetail(i.Detail)
		_, keyed := usableKey(det.IdempotencyKey)
		if i.Completion != nil {
			out = append(out, i)
		} else if err == nil && keyed && (det.Kind == config.KindExecutionStart || det.Rule == "execution.start" || det.Rule == "webhook.trigger") {
			keyedStarts = append(keyedStarts, i)
		} else {
			later = append(later, i)
		}
	}
	return append(append(out, keyedStarts...), later...)
}
