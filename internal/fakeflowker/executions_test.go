package fakeflowker

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestExecuteCheckOrder(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	active := e.activeWorkflow("active", "/order", "", pc)

	draft := e.post("/v1/workflows", map[string]any{"name": "draft"}).str("workflowId")
	unknown := "50205d80-bb2d-48b0-a87d-0f298dd7bdc6"
	exec := func(wf string) string { return "/v1/workflows/" + wf + "/executions" }
	key := map[string]string{"Idempotency-Key": "k-order"}
	big := `{"inputData":{"pad":"` + strings.Repeat("x", maxExecutionBody) + `"}}`

	tests := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{name: "size before id", r: req{method: "POST", path: exec("bad"), body: big}, status: 413, code: "FLK-0506"},
		{name: "id before body", r: req{method: "POST", path: exec("bad"), body: "{", ctype: "text/plain"}, status: 400, code: "FLK-0002"},
		{name: "body before key", r: req{method: "POST", path: exec(active), body: "{"}, status: 400, code: "FLK-0001"},
		{name: "content type before key", r: req{method: "POST", path: exec(active), body: `{}`, ctype: "text/plain"}, status: 400, code: "FLK-0001"},
		{name: "missing key", r: req{method: "POST", path: exec(unknown), body: `{}`}, status: 400, code: "FLK-0509"},
		{name: "blank key", r: req{method: "POST", path: exec(active), body: `{}`, header: map[string]string{"Idempotency-Key": "   "}}, status: 400, code: "FLK-0509"},
		{name: "unknown workflow", r: req{method: "POST", path: exec(unknown), body: `{}`, header: key}, status: 404, code: "FLK-0100"},
		{name: "draft workflow", r: req{method: "POST", path: exec(draft), body: `{}`, header: key}, status: 422, code: "FLK-0501"},
		{name: "inputData may be absent", r: req{method: "POST", path: exec(active), body: `{}`, header: key}, status: 201},
		{name: "replay beats workflow lookup", r: req{method: "POST", path: exec(unknown), body: `{}`, header: key}, status: 201},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.expect(e.do(tc.r), tc.status, tc.code)
		})
	}
}

func TestIdempotentReplay(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	wfA := e.activeWorkflow("a", "/idem/a", "", pc)
	wfB := e.activeWorkflow("b", "/idem/b", "", pc)

	first := e.execute(wfA, "payout-1", map[string]any{"amount": 10})
	e.expect(first, http.StatusCreated, "")

	exID := first.str("executionId")
	if first.str("status") != "running" || first.str("workflowId") != wfA {
		t.Fatalf("first = %s", first.raw)
	}

	// Same key, different body, while running: 201 with the same execution.
	again := e.execute(wfA, " payout-1 ", map[string]any{"amount": 99})
	e.expect(again, http.StatusCreated, "")

	if again.str("executionId") != exID {
		t.Fatalf("replay created a new execution: %s", again.raw)
	}

	// Same key on another workflow: the existing execution, with its workflowId.
	other := e.execute(wfB, "payout-1", nil)
	e.expect(other, http.StatusCreated, "")

	if other.str("executionId") != exID || other.str("workflowId") != wfA {
		t.Fatalf("global key replay = %s", other.raw)
	}

	if !e.srv.FinishExecution(exID) {
		t.Fatal("FinishExecution did not find the execution")
	}

	terminal := e.execute(wfA, "payout-1", nil)
	e.expect(terminal, http.StatusOK, "")

	if terminal.str("executionId") != exID || terminal.str("status") != "completed" {
		t.Fatalf("terminal replay = %s", terminal.raw)
	}

	list := e.get("/v1/executions?workflowId=" + wfA)
	if n := len(list.body["items"].([]any)); n != 1 {
		t.Fatalf("executions of workflow A = %d, want 1: %s", n, list.raw)
	}

	// The input of the first request is the one kept.
	res := e.get("/v1/executions/" + exID + "/results")
	if v, _ := getPath(res.body, "finalOutput.workflow.amount"); v != float64(10) {
		t.Fatalf("finalOutput.workflow.amount = %v: %s", v, res.raw)
	}
}

func TestConcurrentSameKey(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	wf := e.activeWorkflow("conc", "/conc", "", pc)

	const n = 32

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  = make(map[string]int)
		errs []string
	)

	start := make(chan struct{})

	for i := range n {
		wg.Add(1)

		go func() {
			defer wg.Done()
			<-start

			body := fmt.Sprintf(`{"inputData":{"i":%d}}`, i)

			hr, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/v1/workflows/"+wf+"/executions", strings.NewReader(body))
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("X-API-Key", e.key)
			hr.Header.Set("Idempotency-Key", "same-key")

			res, err := e.ts.Client().Do(hr)
			if err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()

				return
			}

			var buf bytes.Buffer
			_, _ = buf.ReadFrom(res.Body)
			_ = res.Body.Close()

			mu.Lock()
			defer mu.Unlock()

			if res.StatusCode != http.StatusCreated {
				errs = append(errs, fmt.Sprintf("status %d: %s", res.StatusCode, buf.String()))
				return
			}

			i := bytes.Index(buf.Bytes(), []byte(`"executionId":"`))
			ids[buf.String()[i+15:i+15+36]]++
		}()
	}

	close(start)
	wg.Wait()

	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}

	if len(ids) != 1 {
		t.Fatalf("%d distinct executions for one key: %v", len(ids), ids)
	}

	list := e.get("/v1/executions?limit=100")
	if got := len(list.body["items"].([]any)); got != 1 {
		t.Fatalf("stored executions = %d, want exactly 1", got)
	}
}

func TestAsyncCompletion(t *testing.T) {
	e := newEnv(t, 20*time.Millisecond)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	wf := e.activeWorkflow("async", "/async", "", pc)

	r := e.execute(wf, "async-1", map[string]any{"amount": 2750, "currency": "BRL"})
	e.expect(r, http.StatusCreated, "")

	st := e.waitTerminal(r.str("executionId"))
	if st.str("status") != "completed" || st.str("completedAt") == "" || st.body["currentStepNumber"] != float64(1) || st.body["totalSteps"] != float64(1) {
		t.Fatalf("terminal status = %s", st.raw)
	}

	if _, ok := st.body["errorMessage"]; ok {
		t.Fatalf("completed execution has errorMessage: %s", st.raw)
	}

	res := e.get("/v1/executions/" + r.str("executionId") + "/results")
	e.expect(res, http.StatusOK, "")

	if v, _ := getPath(res.body, "finalOutput.screen.screening.decision"); v != "approved" {
		t.Fatalf("finalOutput = %s", res.raw)
	}

	steps := res.body["stepResults"].([]any)
	if len(steps) != 1 || steps[0].(map[string]any)["status"] != "completed" || steps[0].(map[string]any)["nodeId"] != "screen" {
		t.Fatalf("stepResults = %s", res.raw)
	}
}

func TestResultsBeforeTerminal(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	wf := e.activeWorkflow("slow", "/slow", "", pc)

	r := e.execute(wf, "slow-1", nil)
	id := r.str("executionId")

	res := e.get("/v1/executions/" + id + "/results")
	e.expect(res, http.StatusUnprocessableEntity, "FLK-0502")

	st := e.get("/v1/executions/" + id)
	if st.str("status") != "running" || st.body["currentStepNumber"] != float64(0) {
		t.Fatalf("running status = %s", st.raw)
	}

	for _, k := range []string{"completedAt", "errorMessage"} {
		if _, ok := st.body[k]; ok {
			t.Fatalf("running execution has %s: %s", k, st.raw)
		}
	}

	if got, _ := e.srv.ExecutionStatus(id); got != "running" {
		t.Fatalf("ExecutionStatus = %q", got)
	}

	e.srv.FinishExecution(id)
	e.waitTerminal(id)
	e.expect(e.get("/v1/executions/"+id+"/results"), http.StatusOK, "")

	e.expect(e.get("/v1/executions/50205d80-bb2d-48b0-a87d-0f298dd7bdc6"), http.StatusNotFound, "FLK-0500")
	e.expect(e.get("/v1/executions/50205d80-bb2d-48b0-a87d-0f298dd7bdc6/results"), http.StatusNotFound, "FLK-0500")
	e.expect(e.get("/v1/executions/nope"), http.StatusBadRequest, "FLK-0002")
	e.expect(e.get("/v1/executions/nope/results"), http.StatusBadRequest, "FLK-0002")

	if _, ok := e.srv.ExecutionStatus("nope"); ok {
		t.Fatal("ExecutionStatus found a bad id")
	}

	if e.srv.FinishExecution(uuid.NewString()) {
		t.Fatal("FinishExecution found an unknown id")
	}
}

func TestExecutionFailures(t *testing.T) {
	e := newEnv(t, 10*time.Millisecond)
	ok := e.tracerProvider("ok", "http://127.0.0.1:9/aml")
	outage := e.tracerProvider("outage", "http://127.0.0.1:9/sandbox/outage")
	later := e.tracerProvider("later", "http://127.0.0.1:9/later")
	gone := e.tracerProvider("gone", "http://127.0.0.1:9/gone")

	wfOK := e.activeWorkflow("ok", "/f/ok", "", ok)
	wfOutage := e.activeWorkflow("outage", "/f/outage", "", outage)
	wfLater := e.activeWorkflow("later", "/f/later", "", later)
	wfGone := e.activeWorkflow("gone", "/f/gone", "", gone)

	e.expect(e.post("/v1/provider-configurations/"+later+"/disable", nil), http.StatusOK, "")
	e.expect(e.do(req{method: "DELETE", path: "/v1/provider-configurations/" + gone}), http.StatusNoContent, "")

	tests := []struct {
		name  string
		wf    string
		input map[string]any
		msg   string
	}{
		{name: "provider outage", wf: wfOutage, msg: `node "screen": executor call failed after 5 attempts: executor error: http request failed with status 500`},
		{name: "provider disabled", wf: wfLater, msg: `node "screen": provider configuration is not active`},
		{name: "provider deleted", wf: wfGone, msg: `node "screen": provider config not found`},
		{name: "simulated failure", wf: wfOK, input: map[string]any{"simulateFailure": true}, msg: `node "screen": executor call failed after 5 attempts: simulated failure`},
	}

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t

			r := e.execute(tc.wf, fmt.Sprintf("fail-%d", i), tc.input)
			e.expect(r, http.StatusCreated, "")

			st := e.waitTerminal(r.str("executionId"))
			if st.str("status") != "failed" || st.str("errorMessage") != tc.msg || st.body["currentStepNumber"] != float64(1) {
				t.Fatalf("status = %s, want errorMessage %q", st.raw, tc.msg)
			}

			res := e.get("/v1/executions/" + r.str("executionId") + "/results")
			e.expect(res, http.StatusOK, "")

			if _, has := res.body["finalOutput"]; has {
				t.Fatalf("failed execution has finalOutput: %s", res.raw)
			}

			step := res.body["stepResults"].([]any)[0].(map[string]any)
			if step["status"] != "failed" || step["errorMessage"] == nil || step["output"] != nil {
				t.Fatalf("failed step = %v", step)
			}
		})
	}
}

func TestSimulationWithoutTrigger(t *testing.T) {
	srv := New(Options{})
	t.Cleanup(srv.Close)

	ex := &execution{ID: uuid.New(), Status: execRunning, InputData: map[string]any{}, done: make(chan struct{}),
		nodes: []nodeInput{{ID: "a", Type: nodeTypeAction}}}

	srv.mu.Lock()
	srv.executions[ex.ID] = ex
	srv.finishLocked(ex.ID)
	srv.mu.Unlock()

	if ex.Status != execFailed || ex.ErrorMessage == nil || *ex.ErrorMessage != "no trigger node found in workflow" || ex.CompletedAt == nil {
		t.Fatalf("execution = %+v", ex)
	}
}

func TestSimulationGraph(t *testing.T) {
	srv := New(Options{})
	t.Cleanup(srv.Close)

	pc := &providerConfig{ID: uuid.New(), ProviderID: "tracer", Status: statusActive, Config: map[string]any{"base_url": "http://p/x"}}
	srv.providers[pc.ID] = pc

	exec := func(id string) nodeInput {
		return nodeInput{ID: id, Type: nodeTypeExecutor, Data: map[string]any{"executorId": "tracer.validate-transaction", "providerConfigId": pc.ID.String()}}
	}

	tests := []struct {
		name   string
		nodes  []nodeInput
		edges  []edgeInput
		input  map[string]any
		status string
		msg    string
		steps  int
	}{
		{
			name:   "conditional takes the true branch and set_output wins",
			nodes:  []nodeInput{{ID: "t", Type: nodeTypeTrigger}, exec("x"), {ID: "c", Type: nodeTypeConditional, Data: map[string]any{"condition": "x.body.decision == \"ALLOW\""}}, {ID: "o", Type: nodeTypeAction, Data: map[string]any{"actionType": "set_output", "output": map[string]any{"done": true}}}, exec("never")},
			edges:  []edgeInput{{Source: "t", Target: "x"}, {Source: "x", Target: "c"}, {Source: "c", Target: "o", SourceHandle: strPtr("true")}, {Source: "c", Target: "never", SourceHandle: strPtr("false")}},
			status: execCompleted, steps: 3,
		},
		{
			name:   "cycle",
			nodes:  []nodeInput{{ID: "t", Type: nodeTypeTrigger}, exec("a"), exec("b")},
			edges:  []edgeInput{{Source: "t", Target: "a"}, {Source: "a", Target: "b"}, {Source: "b", Target: "a"}},
			status: execFailed, msg: `cycle detected at node "a": FLK-0508`, steps: 2,
		},
		{
			name:   "edge to a missing node",
			nodes:  []nodeInput{{ID: "t", Type: nodeTypeTrigger}},
			edges:  []edgeInput{{Source: "t", Target: "ghost"}},
			status: execFailed, msg: `node "ghost" not found in workflow: FLK-0504`,
		},
		{
			name:   "simulated failure without executors fails at the trigger",
			nodes:  []nodeInput{{ID: "t", Type: nodeTypeTrigger}},
			input:  map[string]any{"simulateFailure": true},
			status: execFailed, msg: `node "t": executor call failed after 5 attempts: simulated failure`,
		},
		{
			name:   "conditional without condition",
			nodes:  []nodeInput{{ID: "t", Type: nodeTypeTrigger}, {ID: "c", Type: nodeTypeConditional}},
			edges:  []edgeInput{{Source: "t", Target: "c"}},
			status: execFailed, msg: `node "c": missing condition expression`, steps: 1,
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := tc.input
			if input == nil {
				input = map[string]any{}
			}

			ex := &execution{ID: uuid.New(), Status: execRunning, InputData: input, done: make(chan struct{}), nodes: tc.nodes, edges: tc.edges}

			srv.mu.Lock()
			srv.executions[ex.ID] = ex
			srv.finishLocked(ex.ID)
			srv.mu.Unlock()

			if ex.Status != tc.status || len(ex.Steps) != tc.steps {
				t.Fatalf("status %s with %d steps, want %s with %d: %+v", ex.Status, len(ex.Steps), tc.status, tc.steps, ex.Steps)
			}

			if tc.msg != "" && (ex.ErrorMessage == nil || *ex.ErrorMessage != tc.msg) {
				t.Fatalf("errorMessage = %v, want %q", ex.ErrorMessage, tc.msg)
			}

			if tc.status == execCompleted && ex.Output["done"] != true {
				t.Fatalf("finalOutput = %v", ex.Output)
			}
		})
	}
}

func TestListExecutions(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	wf := e.activeWorkflow("list", "/list", "", pc)

	var ids []string

	for i := range 3 {
		r := e.execute(wf, fmt.Sprintf("list-%d", i), nil)
		e.expect(r, http.StatusCreated, "")
		ids = append(ids, r.str("executionId"))
	}

	e.srv.FinishExecution(ids[1])

	var got []string

	next := ""

	for range 5 {
		path := "/v1/executions?limit=1"
		if next != "" {
			path = "/v1/executions?limit=1&cursor=" + url.QueryEscape(next)
		}

		r := e.get(path)
		e.expect(r, http.StatusOK, "")

		for _, it := range r.body["items"].([]any) {
			got = append(got, it.(map[string]any)["executionId"].(string))
		}

		if next = r.str("nextCursor"); next == "" {
			break
		}
	}

	if want := []string{ids[2], ids[1], ids[0]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("startedAt DESC pages = %v, want %v", got, want)
	}

	r := e.get("/v1/executions?status=completed")
	if items := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["executionId"] != ids[1] {
		t.Fatalf("status filter = %s", r.raw)
	}

	r = e.get("/v1/executions?sortBy=completedAt&sortOrder=asc")
	if items := r.body["items"].([]any); len(items) != 3 || items[2].(map[string]any)["executionId"] != ids[1] {
		t.Fatalf("completedAt ASC (nulls first) = %s", r.raw)
	}

	if r := e.get("/v1/executions?limit=abc"); r.status != http.StatusOK || len(r.body["items"].([]any)) != 3 {
		t.Fatalf("non-integer limit = %d %s", r.status, r.raw)
	}

	tests := []struct {
		query string
		code  string
		title string
	}{
		{query: "limit=0", code: "FLK-0309", title: "Invalid Limit"},
		{query: "limit=101", code: "FLK-0309", title: "Pagination Limit Exceeded"},
		{query: "status=done", code: "FLK-0304", title: "Invalid Status Filter"},
		{query: "sortBy=name", code: "FLK-0304", title: "Invalid Sort Field"},
		{query: "sortOrder=up", code: "FLK-0310", title: "Invalid Sort Order"},
		{query: "cursor=abc&sortBy=startedAt", code: "FLK-0304", title: "Invalid Pagination Parameters"},
		{query: "workflowId=nope", code: "FLK-0002", title: "Bad Request"},
		{query: "cursor=!!!", code: "INVALID_CURSOR", title: ""},
		{query: "cursor=" + url.QueryEscape(encodeCursor(cursor{ID: "x", SortBy: "name"})), code: "INVALID_CURSOR", title: ""},
		{query: "cursor=" + url.QueryEscape(encodeCursor(cursor{ID: "x", SortBy: "startedAt", SortValue: ""})), code: "INVALID_CURSOR", title: ""},
	}

	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			e.t = t
			r := e.get("/v1/executions?" + tc.query)
			e.expect(r, http.StatusBadRequest, tc.code)

			if title, ok := r.body["title"].(string); !ok || title != tc.title {
				t.Fatalf("title = %v, want %q", r.body["title"], tc.title)
			}
		})
	}
}
