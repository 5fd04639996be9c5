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
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
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
		return rc.created(ctx, workflows, nameOf(det.Name, in.Draft.Metadata, "workflow.name"), since, "")
	case "workflow.create_from_template":
		// The name is the template's params.workflowName, which the pending event's metadata holds.
		return rc.created(ctx, workflows, nameOf("", in.Draft.Metadata, "workflow.name"), since, "")
	case "provider_config.create":
		return rc.created(ctx, providerConfigs, nameOf(det.Name, in.Draft.Metadata, "provider_config.name"), since, det.ProviderID)
	case "workflow.activate":
		return rc.status(ctx, workflows, id, "active", since)
	case "workflow.deactivate":
		return rc.status(ctx, workflows, id, "inactive", since)
	case "workflow.draft":
		return rc.status(ctx, workflows, id, "draft", since)
	case "provider_config.enable":
		return rc.status(ctx, providerConfigs, id, "active", since)
	case "provider_config.disable":
		return rc.status(ctx, providerConfigs, id, "disabled", since)
	case "workflow.update":
		return rc.updated(ctx, workflows, id, nameOf(det.Name, in.Draft.Metadata, "workflow.name"), since)
	case "provider_config.update":
		return rc.updated(ctx, providerConfigs, id, nameOf(det.Name, in.Draft.Metadata, "provider_config.name"), since)
	case "executor_config.update":
		return rc.updated(ctx, executorConfigs, id, nameOf(det.Name, in.Draft.Metadata, "executor_config.name"), since)
	case "workflow.delete":
		return rc.deleted(ctx, workflows, id)
	case "provider_config.delete":
		return rc.deleted(ctx, providerConfigs, id)
	case "executor_config.delete":
		return rc.deleted(ctx, executorConfigs, id)
	case "execution.start":
		return rc.executionStart(ctx, det, since)
	case "webhook.trigger":
		return rc.webhook(ctx, det, since)
	}
	if det.Rule == "unclassified" {
		return unknown("%s %s matched no rule: which resource it changes, and how to observe it, is not known", det.Method, capture.Text(det.Path)), nil
	}
	if det.Kind == config.KindExecutionStart {
		// A configured rule that starts executions: its key, if it carried one, names the execution.
		if key, ok := usableKey(det.IdempotencyKey); ok {
			out, done, err := rc.byKey(ctx, key, since)
			if err != nil || done {
				return out, err
			}
		}
		return unknown("rule %s (%s %s) starts executions, but carried no Idempotency-Key to look its execution up by", det.Rule, det.Method, capture.Text(det.Path)), nil
	}
	return unknown("rule %s (%s %s) is not one whose outcome Flowker's read endpoints show", det.Rule, det.Method, capture.Text(det.Path)), nil
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
//
// Flowker's lists differ on the next pages (verified on v1.0.2, docs/FLOWKER-BEHAVIOUR.md): the
// workflow and provider-configuration lists take the sort from the query on every page (the
// cursor's own sort is ignored), while the execution list refuses sortBy or sortOrder beside a
// cursor (400 FLK-0304) and takes the sort from the cursor: sortInCursor.
func (rc *reconciler) list(ctx context.Context, path, sortKey string, sortInCursor bool, q url.Values, at func(resource) time.Time, since time.Time) (items []resource, complete bool, err error) {
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
		if sortInCursor {
			q.Del("sortBy")
			q.Del("sortOrder")
		}
	}
	return items, false, nil
}

// created matches a create on the name it carried (and the provider), among the resources
// created since the request started. Flowker's lists have no name filter: the list is read newest
// first (sortBy=createdAt, DESC) and matched here, page by page, until the window's start.
func (rc *reconciler) created(ctx context.Context, col collection, name wantName, since time.Time, providerID string) (Outcome, error) {
	if name.why != "" {
		return unknown("%s", name.why), nil
	}
	q := url.Values{}
	if providerID != "" {
		q.Set("providerId", providerID)
	}
	path := col.path
	items, complete, err := rc.list(ctx, path, "createdAt", false, q, func(r resource) time.Time { return r.CreatedAt }, since)
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
		if name.matches(it.Name) && (providerID == "" || it.ProviderID == providerID) && !rc.claimed[id] {
			match = append(match, it)
		}
	}
	window := "created at or after " + since.UTC().Format(time.RFC3339Nano)
	switch {
	case len(match) == 1:
		o := reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s lists %s %s %s (createdAt %s)", path, match[0].ID, name, window,
			match[0].CreatedAt.UTC().Format(time.RFC3339Nano)))
		o.ResourceID = match[0].ID
		return o, nil
	case len(match) > 1:
		ids := make([]string, len(match))
		for i, m := range match {
			ids[i] = m.ID
		}
		return unknown("GET %s lists %d resources %s %s: %s", path, len(match), name, window, strings.Join(ids, ", ")), nil
	case !complete:
		return unknown("more than %d resources were %s; not all were read", rc.maxPages*100, window), nil
	}
	return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s lists no resource %s %s: it was not created", path, name, window)), nil
}

// collection is one of Flowker's Mongo-backed resources: its path and the code of its 404.
type collection struct {
	path, notFound string
}

var (
	workflows       = collection{"/v1/workflows", "FLK-0100"}
	providerConfigs = collection{"/v1/provider-configurations", "FLK-0290"}
	executorConfigs = collection{"/v1/executors", "FLK-0250"}
)

// one reads one resource. gone is true when Flowker answers 404 with the collection's own
// not-found code (any other 404, from a route Flowker does not have or a proxy in between, is
// not an answer about the resource).
func (rc *reconciler) one(ctx context.Context, col collection, id string) (r resource, gone bool, unk *Outcome, err error) {
	path := col.path + "/" + id
	if id == "" {
		o := unknown("the request's path names no %s id", col.path)
		return r, false, &o, nil
	}
	var body struct {
		resource
		Code string `json:"code"`
	}
	code, err := rc.do(ctx, http.MethodGet, path, nil, nil, nil, &body)
	if err != nil {
		return r, false, nil, err
	}
	switch {
	case code == http.StatusOK:
		return body.resource, false, nil, nil
	case code == http.StatusNotFound && body.Code == col.notFound:
		return r, true, nil, nil
	}
	o := unknown("GET %s answered %d %s", path, code, body.Code)
	return r, false, &o, nil
}

// status checks a status transition: the resource now has the target status and changed since
// the request started (applied), or did not change since (not applied). Every transition
// Flowker makes (activate, deactivate, draft, enable, disable) sets updatedAt.
func (rc *reconciler) status(ctx context.Context, col collection, id, target string, since time.Time) (Outcome, error) {
	path := col.path + "/" + id
	r, gone, unk, err := rc.one(ctx, col, id)
	switch {
	case err != nil:
		return Outcome{}, err
	case unk != nil:
		return *unk, nil
	case gone:
		return unknown("GET %s answers 404 %s: the resource does not exist now (never, or deleted since), so whether this request changed it first cannot be told", path, col.notFound), nil
	case r.UpdatedAt.After(rc.until):
		return unknown("GET %s: changed again after the sidecar restarted (updated %s)", path, r.UpdatedAt.UTC().Format(time.RFC3339Nano)), nil
	case r.UpdatedAt.Before(since):
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s: status %q, unchanged since %s (before the request)", path, r.Status,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano))), nil
	case r.Status == target:
		return reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s: status %q, updated %s (%s)", path, r.Status,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano), rc.when(r.UpdatedAt, since))), nil
	}
	return unknown("GET %s: status %q (not %q), updated %s (%s): by an earlier request, or by this one and then another; which cannot be told",
		path, r.Status, target, r.UpdatedAt.UTC().Format(time.RFC3339Nano), rc.when(r.UpdatedAt, since)), nil
}

// when places t, a Flowker time at or after since (the request's start less the clock
// allowance), relative to the request's start.
func (rc *reconciler) when(t, since time.Time) string {
	start := since.Add(rc.skew)
	if t.Before(start) {
		return fmt.Sprintf("%v before the request started, within the %v clock allowance", start.Sub(t).Round(time.Millisecond), rc.skew)
	}
	return "after the request started"
}

// updated checks an update: changed since the request started, with the name it carried.
func (rc *reconciler) updated(ctx context.Context, col collection, id string, name wantName, since time.Time) (Outcome, error) {
	path := col.path + "/" + id
	r, gone, unk, err := rc.one(ctx, col, id)
	switch {
	case err != nil:
		return Outcome{}, err
	case unk != nil:
		return *unk, nil
	case gone:
		return unknown("GET %s answers 404 %s: the resource does not exist now (never, or deleted since), so whether this request changed it first cannot be told", path, col.notFound), nil
	case r.UpdatedAt.After(rc.until):
		return unknown("GET %s: changed again after the sidecar restarted (updated %s)", path, r.UpdatedAt.UTC().Format(time.RFC3339Nano)), nil
	case r.UpdatedAt.Before(since):
		return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s: unchanged since %s (before the request)", path,
			r.UpdatedAt.UTC().Format(time.RFC3339Nano))), nil
	case name.why == "" && name.matches(r.Name):
		return reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s: name %q as requested, updated %s (%s)", path, capture.Text(r.Name),
			r.UpdatedAt.UTC().Format(time.RFC3339Nano), rc.when(r.UpdatedAt, since))), nil
	case name.why == "":
		return unknown("GET %s: name %q (not %q), updated %s (%s): by an earlier request, or by this one and then another; which cannot be told",
			path, capture.Text(r.Name), capture.Text(name.text), r.UpdatedAt.UTC().Format(time.RFC3339Nano), rc.when(r.UpdatedAt, since)), nil
	}
	return unknown("GET %s: updated %s (%s), but %s, so nothing identifies the change as this request's", path,
		r.UpdatedAt.UTC().Format(time.RFC3339Nano), rc.when(r.UpdatedAt, since), name.why), nil
}

// deleted checks a delete (Flowker's deletes are hard deletes): the resource answers 404 now.
func (rc *reconciler) deleted(ctx context.Context, col collection, id string) (Outcome, error) {
	path := col.path + "/" + id
	_, gone, unk, err := rc.one(ctx, col, id)
	switch {
	case err != nil:
		return Outcome{}, err
	case unk != nil:
		return *unk, nil
	case gone:
		return reconciled(chain.ResultSuccess, fmt.Sprintf("GET %s answers 404 %s after the DELETE: the resource is gone", path, col.notFound)), nil
	}
	return reconciled(chain.ResultFailed, fmt.Sprintf("GET %s answers 200: the resource still exists", path)), nil
}

// wantName is the name a request carried, as far as its intent kept it.
type wantName struct {
	text string
	// prefix: the intent kept only the name's first bytes (a long name is clipped, ending "…").
	prefix bool
	// why, when set, says why there is no name to match on.
	why string
}

// nameOf is the name a request carried: from the intent's detail (read from the body) or else
// the pending event's metadata (metaKey). A name that was redacted or altered when recorded is
// not matched on: a mismatch would read as "not applied".
func nameOf(detail string, metadata []byte, metaKey string) wantName {
	n := detail
	if n == "" && len(metadata) > 0 {
		var m map[string]any
		if json.Unmarshal(metadata, &m) == nil {
			n, _ = m[metaKey].(string)
		}
	}
	switch {
	case n == "":
		return wantName{why: "the request carried no name to find the resource by"}
	case n == capture.Redacted:
		return wantName{why: "the name the request carried was redacted when recorded (it had the shape of a secret)"}
	case strings.ContainsRune(n, utf8.RuneError):
		return wantName{why: "the name the request carried was altered when recorded (invalid UTF-8 or U+0000)"}
	case len(n) > 256 && strings.HasSuffix(n, "…"):
		return wantName{text: strings.TrimSuffix(n, "…"), prefix: true}
	}
	return wantName{text: n}
}

func (w wantName) matches(s string) bool {
	if w.prefix {
		return strings.HasPrefix(s, w.text)
	}
	return s == w.text
}

func (w wantName) String() string {
	if w.prefix {
		return fmt.Sprintf("whose name starts %q", capture.Text(w.text))
	}
	// As the event's metadata shows names (a value shaped like a secret is redacted).
	return fmt.Sprintf("named %q", capture.Text(w.text))
}
