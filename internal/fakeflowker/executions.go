package fakeflowker

import (
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	execPending   = "pending"
	execRunning   = "running"
	execCompleted = "completed"
	execFailed    = "failed"
)

func isExecutionStatus(s string) bool {
	switch s {
	case execPending, execRunning, execCompleted, execFailed:
		return true
	default:
		return false
	}
}

type stepResult struct {
	StepNumber   int            `json:"stepNumber"`
	StepName     string         `json:"stepName"`
	NodeID       string         `json:"nodeId"`
	Status       string         `json:"status"`
	Output       map[string]any `json:"output,omitempty"`
	ErrorMessage *string        `json:"errorMessage,omitempty"`
	ExecutedAt   time.Time      `json:"executedAt"`
	DurationMs   int64          `json:"durationMs"`
}

type execution struct {
	ID             uuid.UUID
	WorkflowID     uuid.UUID
	Status         string
	InputData      map[string]any
	IdempotencyKey string
	TotalSteps     int
	CurrentStep    int
	StartedAt      time.Time
	CompletedAt    *time.Time
	ErrorMessage   *string
	Steps          []stepResult
	Output         map[string]any

	// The workflow graph as loaded when the execution started.
	nodes []nodeInput
	edges []edgeInput
	// done is closed when the execution reaches a terminal state.
	done chan struct{}
}

func (e *execution) terminal() bool { return e.Status == execCompleted || e.Status == execFailed }

type executionCreateOutput struct {
	ExecutionID uuid.UUID `json:"executionId"`
	WorkflowID  uuid.UUID `json:"workflowId"`
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"startedAt"`
}

type executionStatusOutput struct {
	ExecutionID       uuid.UUID  `json:"executionId"`
	WorkflowID        uuid.UUID  `json:"workflowId"`
	Status            string     `json:"status"`
	CurrentStepNumber int        `json:"currentStepNumber"`
	TotalSteps        int        `json:"totalSteps"`
	StartedAt         time.Time  `json:"startedAt"`
	CompletedAt       *time.Time `json:"completedAt,omitempty"`
	ErrorMessage      *string    `json:"errorMessage,omitempty"`
}

type executionResultsOutput struct {
	ExecutionID uuid.UUID      `json:"executionId"`
	WorkflowID  uuid.UUID      `json:"workflowId"`
	Status      string         `json:"status"`
	StepResults []stepResult   `json:"stepResults"`
	FinalOutput map[string]any `json:"finalOutput,omitempty"`
	StartedAt   time.Time      `json:"startedAt"`
	CompletedAt *time.Time     `json:"completedAt,omitempty"`
}

type executionListOutput struct {
	Items      []executionStatusOutput `json:"items"`
	NextCursor string                  `json:"nextCursor"`
	HasMore    bool                    `json:"hasMore"`
}

func (e *execution) statusOutput() executionStatusOutput {
	return executionStatusOutput{
		ExecutionID: e.ID, WorkflowID: e.WorkflowID, Status: e.Status,
		CurrentStepNumber: e.CurrentStep, TotalSteps: e.TotalSteps,
		StartedAt: e.StartedAt, CompletedAt: e.CompletedAt, ErrorMessage: e.ErrorMessage,
	}
}

func (e *execution) createOutput() executionCreateOutput {
	return executionCreateOutput{ExecutionID: e.ID, WorkflowID: e.WorkflowID, Status: e.Status, StartedAt: e.StartedAt}
}

// countExecutableNodes counts the nodes the state machine turns into steps.
func countExecutableNodes(nodes []nodeInput) int {
	n := 0

	for _, node := range nodes {
		switch node.Type {
		case nodeTypeExecutor, nodeTypeConditional, nodeTypeAction:
			n++
		}
	}

	return n
}

// startExecutionLocked is ExecuteWorkflowCommand.Execute from the
// idempotency fast path on. It returns the execution, whether it was
// created by this call, and the in-memory start time. Caller holds s.mu.
func (s *Server) startExecutionLocked(workflowID uuid.UUID, input map[string]any, key string) (*execution, bool, time.Time, *apiErr) {
	if key != "" {
		if id, ok := s.idempotency[key]; ok {
			if ex, ok := s.executions[id]; ok {
				return ex, false, ex.StartedAt, nil
			}
		}
	}

	w, ok := s.workflows[workflowID]
	if !ok {
		return nil, false, time.Time{}, errWorkflowNotFound()
	}

	if w.Status != statusActive {
		return nil, false, time.Time{}, errUnprocessable("FLK-0501", "workflow is not active")
	}

	if input == nil {
		input = make(map[string]any)
	}

	now := s.now()
	ex := &execution{
		ID:             uuid.New(),
		WorkflowID:     workflowID,
		Status:         execRunning,
		InputData:      input,
		IdempotencyKey: key,
		TotalSteps:     countExecutableNodes(w.Nodes),
		StartedAt:      msTime(now),
		nodes:          append([]nodeInput(nil), w.Nodes...),
		edges:          append([]edgeInput(nil), w.Edges...),
		done:           make(chan struct{}),
	}

	s.executions[ex.ID] = ex
	if key != "" {
		s.idempotency[key] = ex.ID
	}

	s.log.Debug("execution started", "execution.id", ex.ID, "workflow.id", workflowID)

	if s.ctx.Err() == nil {
		s.wg.Add(1)

		go s.awaitOutcome(ex.ID, ex.done)
	}

	return ex, true, now, nil
}

// awaitOutcome finishes the execution after the configured delay.
func (s *Server) awaitOutcome(id uuid.UUID, done <-chan struct{}) {
	defer s.wg.Done()

	t := time.NewTimer(s.delay)
	defer t.Stop()

	select {
	case <-t.C:
		s.mu.Lock()
		s.finishLocked(id)
		s.mu.Unlock()
	case <-done:
	case <-s.ctx.Done():
	}
}

// finishLocked runs the simulated state machine once. Caller holds s.mu.
func (s *Server) finishLocked(id uuid.UUID) {
	ex, ok := s.executions[id]
	if !ok || ex.terminal() {
		return
	}

	s.simulateLocked(ex)
	close(ex.done)

	s.log.Debug("execution finished", "execution.id", ex.ID, "status", ex.Status)
}

// FinishExecution drives the execution to its terminal state now instead of
// after ExecutionDelay. It reports whether the execution exists.
func (s *Server) FinishExecution(id string) bool {
	uid, err := uuid.Parse(id)
	if err != nil {
		return false
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if _, ok := s.executions[uid]; !ok {
		return false
	}

	s.finishLocked(uid)

	return true
}

// ExecutionStatus returns the execution's current status.
func (s *Server) ExecutionStatus(id string) (string, bool) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	ex, ok := s.executions[uid]
	if !ok {
		return "", false
	}

	return ex.Status, true
}

func (s *Server) executeWorkflow(c *reqCtx) {
	if len(c.body) > maxExecutionBody {
		c.fail(http.StatusRequestEntityTooLarge, "FLK-0506", "Payload Too Large", "request body must not exceed 1 MB")
		return
	}

	workflowID, ok := workflowFamily.parseID(c, "workflowId")
	if !ok {
		return
	}

	var in struct {
		InputData map[string]any `json:"inputData"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	key := strings.TrimSpace(c.r.Header.Get("Idempotency-Key"))
	if key == "" {
		c.badRequest("FLK-0509", "Idempotency-Key header is required")
		return
	}

	s.mu.Lock()

	ex, _, startedAt, e := s.startExecutionLocked(workflowID, in.InputData, key)

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

	if terminal {
		c.json(http.StatusOK, out)
		return
	}

	c.json(http.StatusCreated, out)
}

func (s *Server) parseExecutionID(c *reqCtx) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.param("id"))
	if err != nil {
		c.badRequest("FLK-0002", "invalid execution ID")
		return uuid.UUID{}, false
	}

	return id, true
}

func (s *Server) getExecution(c *reqCtx) {
	id, ok := s.parseExecutionID(c)
	if !ok {
		return
	}

	s.mu.Lock()
	ex, found := s.executions[id]

	var out executionStatusOutput
	if found {
		out = ex.statusOutput()
	}
	s.mu.Unlock()

	if !found {
		c.notFound("FLK-0500", "execution not found")
		return
	}

	c.json(http.StatusOK, out)
}

func (s *Server) getExecutionResults(c *reqCtx) {
	id, ok := s.parseExecutionID(c)
	if !ok {
		return
	}

	s.mu.Lock()

	ex, found := s.executions[id]

	var (
		out     executionResultsOutput
		running bool
	)

	if found {
		running = !ex.terminal()
		out = executionResultsOutput{
			ExecutionID: ex.ID, WorkflowID: ex.WorkflowID, Status: ex.Status,
			StepResults: append(make([]stepResult, 0, len(ex.Steps)), ex.Steps...),
			FinalOutput: ex.Output, StartedAt: ex.StartedAt, CompletedAt: ex.CompletedAt,
		}
	}

	s.mu.Unlock()

	switch {
	case !found:
		c.notFound("FLK-0500", "execution not found")
	case running:
		c.unprocessable("FLK-0502", "execution is still in progress")
	default:
		c.json(http.StatusOK, out)
	}
}

func executionSortKey(e *execution, sortBy string) sortKey {
	if sortBy == "completedAt" {
		return optTimeKey(e.CompletedAt)
	}

	return timeKey(e.StartedAt)
}

func isExecutionSortField(f string) bool { return f == "startedAt" || f == "completedAt" }

// executionListQuery parses and validates GET /v1/executions like
// Flowker's handler (validation before defaults).
type executionListQuery struct {
	limit      int
	cursor     string
	sortBy     string
	sortOrder  string
	workflowID *uuid.UUID
	status     string
}

func validationErr(code, title, msg string) *apiErr {
	return newAPIErr(http.StatusBadRequest, code, title, msg)
}

func parseExecutionListQuery(c *reqCtx) (executionListQuery, *apiErr) {
	q := executionListQuery{
		limit:     10,
		cursor:    c.query("cursor"),
		sortBy:    c.query("sortBy"),
		sortOrder: c.query("sortOrder"),
		status:    c.query("status"),
	}

	if v := c.query("limit"); v != "" {
		q.limit = queryIntDefault(v, 10)
	}

	if v := c.query("workflowId"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return q, errBadRequest("FLK-0002", "invalid workflowId filter")
		}

		q.workflowID = &id
	}

	switch {
	case q.limit < 1:
		return q, validationErr("FLK-0309", "Invalid Limit", "limit must be at least 1")
	case q.limit > 100:
		return q, validationErr("FLK-0309", "Pagination Limit Exceeded", "limit must not exceed 100")
	case q.status != "" && !isExecutionStatus(q.status):
		return q, validationErr("FLK-0304", "Invalid Status Filter", "status must be one of [pending, running, completed, failed]")
	case q.sortBy != "" && !isExecutionSortField(q.sortBy):
		return q, validationErr("FLK-0304", "Invalid Sort Field", "sortBy must be one of [startedAt, completedAt]")
	case q.sortOrder != "" && strings.ToUpper(q.sortOrder) != "ASC" && strings.ToUpper(q.sortOrder) != "DESC":
		return q, validationErr("FLK-0310", "Invalid Sort Order", "sortOrder must be ASC or DESC")
	case q.cursor != "" && (q.sortBy != "" || q.sortOrder != ""):
		return q, validationErr("FLK-0304", "Invalid Pagination Parameters",
			"sortBy and sortOrder cannot be used with cursor; cursor already contains sort configuration")
	}

	if q.cursor == "" {
		if q.sortBy == "" {
			q.sortBy = "startedAt"
		}

		if q.sortOrder == "" {
			q.sortOrder = "DESC"
		}
	}

	q.sortOrder = strings.ToUpper(q.sortOrder)

	return q, nil
}

func (s *Server) listExecutions(c *reqCtx) {
	q, e := parseExecutionListQuery(c)
	if e != nil {
		c.sendErr(e)
		return
	}

	var after *keyset

	if q.cursor != "" {
		dc, err := decodeCursor(q.cursor)
		if err != nil {
			c.fail(http.StatusBadRequest, "INVALID_CURSOR", "", "invalid cursor format")
			return
		}

		if dc.SortBy != "" {
			if !isExecutionSortField(dc.SortBy) {
				c.fail(http.StatusBadRequest, "INVALID_CURSOR", "", "invalid cursor sortBy")
				return
			}

			q.sortBy = dc.SortBy
		}

		if dc.SortOrder != "" {
			so := strings.ToUpper(dc.SortOrder)
			if so != "ASC" && so != "DESC" {
				c.fail(http.StatusBadRequest, "INVALID_CURSOR", "", "invalid cursor sortOrder")
				return
			}

			q.sortOrder = so
		}

		key, err := parseTimeCursorValue(dc.SortValue, q.sortBy == "completedAt")
		if err != nil {
			c.fail(http.StatusBadRequest, "INVALID_CURSOR", "", "invalid cursor sort value")
			return
		}

		after = &keyset{id: dc.ID, key: key}
	}

	if !isExecutionSortField(q.sortBy) {
		q.sortBy = "startedAt"
	}

	if q.sortOrder != "ASC" && q.sortOrder != "DESC" {
		q.sortOrder = "DESC"
	}

	s.mu.Lock()

	items := make([]pageItem[*execution], 0, len(s.executions))

	for _, ex := range s.executions {
		if q.workflowID != nil && ex.WorkflowID != *q.workflowID {
			continue
		}

		if q.status != "" && ex.Status != q.status {
			continue
		}

		items = append(items, pageItem[*execution]{id: ex.ID.String(), key: executionSortKey(ex, q.sortBy), v: ex})
	}

	page, hasMore := paginate(items, q.sortOrder == "ASC", after, q.limit)

	out := executionListOutput{Items: make([]executionStatusOutput, 0, len(page)), HasMore: hasMore}
	for _, it := range page {
		out.Items = append(out.Items, it.v.statusOutput())
	}

	s.mu.Unlock()

	out.NextCursor = nextCursorFor(page, hasMore, q.sortBy, q.sortOrder)

	c.json(http.StatusOK, out)
}
