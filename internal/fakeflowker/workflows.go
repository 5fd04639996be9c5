package fakeflowker

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	statusDraft    = "draft"
	statusActive   = "active"
	statusInactive = "inactive"
	statusDisabled = "disabled"

	nodeTypeTrigger     = "trigger"
	nodeTypeExecutor    = "executor"
	nodeTypeConditional = "conditional"
	nodeTypeAction      = "action"

	maxWorkflowNameLength = 100
	maxWorkflowNodes      = 100
	maxWorkflowEdges      = 200
)

type position struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// nodeInput is a workflow node as accepted and stored.
type nodeInput struct {
	ID       string         `json:"id"`
	Type     string         `json:"type"`
	Name     *string        `json:"name,omitempty"`
	Position position       `json:"position"`
	Data     map[string]any `json:"data,omitempty"`
}

func (n nodeInput) dataString(key string) string {
	s, _ := n.Data[key].(string)
	return s
}

func (n nodeInput) displayName() string {
	if n.Name != nil && *n.Name != "" {
		return *n.Name
	}

	return n.ID
}

// edgeInput is a workflow edge as accepted and stored.
type edgeInput struct {
	ID           string  `json:"id"`
	Source       string  `json:"source"`
	Target       string  `json:"target"`
	SourceHandle *string `json:"sourceHandle,omitempty"`
	Condition    *string `json:"condition,omitempty"`
	Label        *string `json:"label,omitempty"`
}

// workflowInput is CreateWorkflowInput / UpdateWorkflowInput.
type workflowInput struct {
	Name        string         `json:"name"`
	Description *string        `json:"description"`
	Nodes       []nodeInput    `json:"nodes"`
	Edges       []edgeInput    `json:"edges"`
	Metadata    map[string]any `json:"metadata"`
}

type workflow struct {
	ID          uuid.UUID
	Name        string
	Description *string
	Status      string
	Nodes       []nodeInput
	Edges       []edgeInput
	Metadata    map[string]any
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

type workflowOutput struct {
	ID          uuid.UUID      `json:"id"`
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	Status      string         `json:"status"`
	Nodes       []nodeInput    `json:"nodes"`
	Edges       []edgeInput    `json:"edges"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
}

type workflowCreateOutput struct {
	WorkflowID uuid.UUID `json:"workflowId"`
	Version    string    `json:"version"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"createdAt"`
}

// output copies the workflow for encoding outside the lock.
func (w *workflow) output() workflowOutput {
	nodes := make([]nodeInput, len(w.Nodes))
	copy(nodes, w.Nodes)

	edges := make([]edgeInput, len(w.Edges))
	copy(edges, w.Edges)

	return workflowOutput{
		ID: w.ID, Name: w.Name, Description: w.Description, Status: w.Status,
		Nodes: nodes, Edges: edges, Metadata: maps.Clone(w.Metadata),
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
	}
}

func (w *workflow) meta() entityMeta {
	return entityMeta{id: w.ID, name: w.Name, createdAt: w.CreatedAt, updatedAt: w.UpdatedAt}
}

func (w *workflow) setUpdatedAt(t time.Time) { w.UpdatedAt = t }

// validateWorkflowDraft is Flowker's validateWorkflowDataForDraft.
func validateWorkflowDraft(name string, nodes []nodeInput, edges []edgeInput) *apiErr {
	if name == "" {
		return errBadRequest("FLK-0110", "name is required")
	}

	if len(name) > maxWorkflowNameLength {
		return errBadRequest("FLK-0111", "name cannot exceed 100 characters")
	}

	if len(nodes) > maxWorkflowNodes {
		return errBadRequest("FLK-0113", "cannot exceed 100 nodes")
	}

	if len(edges) > maxWorkflowEdges {
		return errBadRequest("FLK-0114", "cannot exceed 200 edges")
	}

	return validateEdgeRefs(nodes, edges)
}

func validateEdgeRefs(nodes []nodeInput, edges []edgeInput) *apiErr {
	ids := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		ids[n.ID] = true
	}

	for _, e := range edges {
		if !ids[e.Source] || !ids[e.Target] {
			return errBadRequest("FLK-0115", "edge references non-existent node")
		}
	}

	return nil
}

// validateWorkflowStructure is Flowker's activation-time structure check.
func validateWorkflowStructure(w *workflow) *apiErr {
	if w.Name == "" {
		return errBadRequest("FLK-0110", "name is required")
	}

	if len(w.Name) > maxWorkflowNameLength {
		return errBadRequest("FLK-0111", "name cannot exceed 100 characters")
	}

	if len(w.Nodes) == 0 {
		return errUnprocessable("FLK-0112", "workflow must have at least one node to activate")
	}

	if len(w.Nodes) > maxWorkflowNodes {
		return errBadRequest("FLK-0113", "cannot exceed 100 nodes")
	}

	if len(w.Edges) > maxWorkflowEdges {
		return errBadRequest("FLK-0114", "cannot exceed 200 edges")
	}

	hasTrigger := false

	for _, n := range w.Nodes {
		if n.Type == nodeTypeTrigger {
			hasTrigger = true
		}
	}

	if !hasTrigger {
		return errUnprocessable("FLK-0116", "workflow must have a trigger node to activate")
	}

	return validateEdgeRefs(w.Nodes, w.Edges)
}

// validateNodesWithCatalog checks executor nodes against the catalog.
func validateNodesWithCatalog(nodes []nodeInput) *apiErr {
	for _, n := range nodes {
		if n.Type != nodeTypeExecutor {
			continue
		}

		execID := n.dataString("executorId")
		if execID == "" {
			return errBadRequest("WORKFLOW_INVALID_EXECUTOR_CONFIG", "executorId is required")
		}

		if findExecutor(execID) == nil {
			return errNotFound("FLK-0104", "referenced executor not found")
		}

		pcID := n.dataString("providerConfigId")
		if pcID == "" {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: providerConfigId is required for executor nodes", n.ID))
		}

		if _, err := uuid.Parse(pcID); err != nil {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: providerConfigId is not a valid UUID: %s", n.ID, pcID))
		}
	}

	return nil
}

// validateProviderConfigsLocked is the create/update provider check,
// including the executor/provider cross-check (FLK-0151). Caller holds s.mu.
func (s *Server) validateProviderConfigsLocked(nodes []nodeInput) *apiErr {
	for _, n := range nodes {
		if n.Type != nodeTypeExecutor {
			continue
		}

		pcID := n.dataString("providerConfigId")

		id, err := uuid.Parse(pcID)
		if err != nil {
			continue
		}

		pc, ok := s.providers[id]
		if !ok {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: provider configuration %s not found", n.ID, pcID))
		}

		if pc.Status != statusActive {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: provider configuration %s is not active", n.ID, pcID))
		}

		e := findExecutor(n.dataString("executorId"))
		if e == nil {
			continue
		}

		if e.ProviderID != "" && pc.ProviderID != e.ProviderID {
			return errBadRequest("FLK-0151", fmt.Sprintf("node %s: provider configuration %s belongs to provider %q but executor %s belongs to provider %q",
				n.ID, pcID, pc.ProviderID, e.ID, e.ProviderID))
		}
	}

	return nil
}

// validateProviderConfigsForActivationLocked is the activation-time check.
func (s *Server) validateProviderConfigsForActivationLocked(nodes []nodeInput) *apiErr {
	for _, n := range nodes {
		if n.Type != nodeTypeExecutor {
			continue
		}

		pcID := n.dataString("providerConfigId")
		if pcID == "" {
			continue
		}

		id, err := uuid.Parse(pcID)
		if err != nil {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: invalid providerConfigId: %s", n.ID, pcID))
		}

		pc, ok := s.providers[id]
		if !ok {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: provider configuration %s not found", n.ID, pcID))
		}

		if pc.Status != statusActive {
			return errBadRequest("FLK-0150", fmt.Sprintf("node %s: provider configuration %s is not active (status: %s)", n.ID, pcID, pc.Status))
		}
	}

	return nil
}

// createWorkflowLocked is CreateWorkflowCommand. Caller holds s.mu.
func (s *Server) createWorkflowLocked(in workflowInput) (*workflow, time.Time, *apiErr) {
	if e := validateWorkflowDraft(in.Name, in.Nodes, in.Edges); e != nil {
		return nil, time.Time{}, e
	}

	if len(in.Nodes) > 0 {
		if e := validateNodesWithCatalog(in.Nodes); e != nil {
			return nil, time.Time{}, e
		}

		if e := s.validateProviderConfigsLocked(in.Nodes); e != nil {
			return nil, time.Time{}, e
		}
	}

	now := s.now()
	w := &workflow{
		ID:          uuid.New(),
		Name:        in.Name,
		Description: in.Description,
		Status:      statusDraft,
		Nodes:       in.Nodes,
		Edges:       in.Edges,
		Metadata:    maps.Clone(in.Metadata),
		CreatedAt:   msTime(now),
		UpdatedAt:   msTime(now),
	}

	if w.Metadata == nil {
		w.Metadata = make(map[string]any)
	}

	s.workflows[w.ID] = w

	return w, now, nil
}

func errWorkflowNotFound() *apiErr { return errNotFound("FLK-0100", "workflow not found") }

func errInvalidTransition() *apiErr {
	return errUnprocessable("FLK-0102", "invalid workflow status transition")
}

func errCannotModifyWorkflow() *apiErr {
	return errUnprocessable("FLK-0103", "cannot modify non-draft workflow")
}

func (s *Server) createWorkflow(c *reqCtx) {
	var in workflowInput
	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	s.mu.Lock()
	w, now, e := s.createWorkflowLocked(in)
	s.mu.Unlock()

	if e != nil {
		c.sendErr(e)
		return
	}

	c.json(http.StatusCreated, workflowCreateOutput{WorkflowID: w.ID, Version: "1.0.0", Status: statusDraft, CreatedAt: now})
}

func (s *Server) createWorkflowFromTemplate(c *reqCtx) {
	var in struct {
		TemplateID string         `json:"templateId"`
		Params     map[string]any `json:"params"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	if in.TemplateID != templateID {
		c.notFound("FLK-0240", "template not found")
		return
	}

	if err := validateTemplateParams(in.Params); err != nil {
		c.badRequest("FLK-0242", err.Error())
		return
	}

	// The builder fails (500) on empty provider ids the schema lets through.
	for param := range templateProviderParams {
		if v, _ := in.Params[param].(string); v == "" {
			c.internal()
			return
		}
	}

	s.mu.Lock()
	w, now, e := s.createWorkflowLocked(buildTemplateWorkflow(in.Params))
	s.mu.Unlock()

	if e != nil {
		c.sendErr(e)
		return
	}

	c.json(http.StatusCreated, workflowCreateOutput{WorkflowID: w.ID, Version: "1.0.0", Status: statusDraft, CreatedAt: now})
}

// queryIntDefault mirrors Fiber's c.QueryInt: a non-integer gives def.
func queryIntDefault(v string, def int) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}

	return n
}

// listParams is the common parsing of Mongo-backed list endpoints that
// use the request's sortBy/sortOrder (workflows, provider and executor
// configurations).
type listParams struct {
	limit     int
	sortBy    string
	sortOrder string
	asc       bool
	after     *keyset
}

// parseMongoListParams returns a ValidationError-like *apiErr with code
// INVALID_CURSOR on a bad cursor.
func parseMongoListParams(c *reqCtx, limit int) (listParams, *apiErr) {
	p := listParams{limit: limit, sortBy: c.query("sortBy"), sortOrder: c.query("sortOrder")}
	if p.sortBy == "" {
		p.sortBy = "createdAt"
	}

	if p.sortOrder == "" {
		p.sortOrder = "DESC"
	}

	p.asc = p.sortOrder == "ASC"

	if cur := c.query("cursor"); cur != "" {
		dc, err := decodeCursor(cur)
		if err != nil {
			return p, errBadRequest("INVALID_CURSOR", "invalid cursor format")
		}

		var key sortKey

		switch p.sortBy {
		case "name":
			key = stringKey(dc.SortValue)
		default:
			key, err = parseTimeCursorValue(dc.SortValue, true)
			if err != nil {
				return p, errBadRequest("INVALID_CURSOR", "invalid cursor sort value")
			}
		}

		p.after = &keyset{id: dc.ID, key: key}
	}

	return p, nil
}

func (s *Server) listWorkflows(c *reqCtx) {
	p, e := parseMongoListParams(c, lenientLimit(c))
	if e != nil {
		c.sendErr(e)
		return
	}

	status := c.query("status")

	workflowFamily.list(s, c, p, func(w *workflow) bool { return status == "" || w.Status == status })
}

func (s *Server) getWorkflow(c *reqCtx) { workflowFamily.get(s, c) }

func (s *Server) updateWorkflow(c *reqCtx) {
	id, ok := workflowFamily.parseID(c, "id")
	if !ok {
		return
	}

	var in workflowInput
	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	workflowFamily.update(s, c, id, func(w *workflow) *apiErr {
		if w.Status != statusDraft {
			return errCannotModifyWorkflow()
		}

		if len(in.Nodes) > 0 {
			if e := validateNodesWithCatalog(in.Nodes); e != nil {
				return e
			}

			if e := s.validateProviderConfigsLocked(in.Nodes); e != nil {
				return e
			}
		}

		if e := validateWorkflowDraft(in.Name, in.Nodes, in.Edges); e != nil {
			return e
		}

		w.Name = in.Name
		w.Description = in.Description
		w.Nodes = in.Nodes
		w.Edges = in.Edges

		if w.Metadata == nil {
			w.Metadata = make(map[string]any)
		}

		maps.Copy(w.Metadata, in.Metadata)

		return nil
	})
}

func (s *Server) deleteWorkflow(c *reqCtx) {
	workflowFamily.remove(s, c, func(w *workflow) *apiErr {
		if w.Status == statusActive {
			return errCannotModifyWorkflow()
		}

		s.unregisterWebhooksLocked(w.ID)

		return nil
	})
}

func (s *Server) cloneWorkflow(c *reqCtx) {
	id, ok := workflowFamily.parseID(c, "id")
	if !ok {
		return
	}

	var in struct {
		Name string `json:"name"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	s.mu.Lock()

	src, found := s.workflows[id]

	var (
		e     *apiErr
		clone *workflow
		now   time.Time
	)

	switch {
	case !found:
		e = errWorkflowNotFound()
	default:
		e = validateWorkflowDraft(in.Name, src.Nodes, src.Edges)
	}

	if e == nil {
		now = s.now()
		clone = &workflow{
			ID:          uuid.New(),
			Name:        in.Name,
			Description: src.Description,
			Status:      statusDraft,
			Nodes:       append([]nodeInput(nil), src.Nodes...),
			Edges:       append([]edgeInput(nil), src.Edges...),
			Metadata:    make(map[string]any),
			CreatedAt:   msTime(now),
			UpdatedAt:   msTime(now),
		}
		s.workflows[clone.ID] = clone
	}

	s.mu.Unlock()

	if e != nil {
		c.sendErr(e)
		return
	}

	c.json(http.StatusCreated, workflowCreateOutput{WorkflowID: clone.ID, Version: "1.0.0", Status: statusDraft, CreatedAt: now})
}

func (s *Server) activateWorkflow(c *reqCtx) {
	workflowFamily.modify(s, c, func(w *workflow) *apiErr {
		if e := validateWorkflowStructure(w); e != nil {
			return e
		}

		if e := validateNodesWithCatalog(w.Nodes); e != nil {
			return e
		}

		if e := s.validateProviderConfigsForActivationLocked(w.Nodes); e != nil {
			return e
		}

		if w.Status != statusDraft {
			return errInvalidTransition()
		}

		if err := s.registerWebhooksLocked(w); err != nil {
			return errBadRequest("FLK-0360", err.Error())
		}

		w.Status = statusActive

		return nil
	})
}

func (s *Server) deactivateWorkflow(c *reqCtx) {
	workflowFamily.modify(s, c, func(w *workflow) *apiErr {
		if w.Status != statusActive {
			return errInvalidTransition()
		}

		w.Status = statusInactive
		s.unregisterWebhooksLocked(w.ID)

		return nil
	})
}

func (s *Server) draftWorkflow(c *reqCtx) {
	workflowFamily.modify(s, c, func(w *workflow) *apiErr {
		if w.Status != statusInactive {
			return errInvalidTransition()
		}

		w.Status = statusDraft

		return nil
	})
}

// webhookRoute is one entry of the in-memory webhook registry.
type webhookRoute struct {
	WorkflowID  uuid.UUID
	Method      string
	Path        string
	VerifyToken string
}

// normalizeWebhookPath adds a leading slash and strips trailing slashes.
func normalizeWebhookPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}

	return strings.TrimRight(p, "/")
}

func webhookKey(method, path string) string {
	return strings.ToUpper(method) + " " + normalizeWebhookPath(path)
}

// registerWebhooksLocked registers the workflow's webhook triggers; on a
// conflict it removes what it registered and returns Flowker's error.
func (s *Server) registerWebhooksLocked(w *workflow) error {
	for _, n := range w.Nodes {
		if n.Type != nodeTypeTrigger || n.dataString("triggerType") != "webhook" {
			continue
		}

		path, method := n.dataString("path"), n.dataString("method")
		if path == "" || method == "" {
			continue
		}

		key := webhookKey(method, path)
		if existing, ok := s.webhooks[key]; ok {
			s.unregisterWebhooksLocked(w.ID)

			return fmt.Errorf("FLK-0360: path %s %s already registered by workflow %s", method, path, existing.WorkflowID)
		}

		s.webhooks[key] = webhookRoute{WorkflowID: w.ID, Method: method, Path: path, VerifyToken: n.dataString("verify_token")}
	}

	return nil
}

func (s *Server) unregisterWebhooksLocked(id uuid.UUID) {
	for k, r := range s.webhooks {
		if r.WorkflowID == id {
			delete(s.webhooks, k)
		}
	}
}
