package fakeflowker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// execFailure is a failure of the simulated state machine; msg becomes the
// execution's errorMessage.
type execFailure struct{ msg string }

func (f *execFailure) Error() string { return f.msg }

// simulation is one run of the simulated state machine over an execution.
type simulation struct {
	s        *Server
	ex       *execution
	now      time.Time
	nodes    map[string]nodeInput
	graph    map[string][]edgeInput
	wfCtx    map[string]any
	step     int
	simulate bool
	sawExec  bool
}

// simulateLocked walks the execution's workflow graph and sets its terminal
// state. The rules are documented in the package comment. Caller holds s.mu.
func (s *Server) simulateLocked(ex *execution) {
	now := s.now()

	sim := &simulation{
		s:     s,
		ex:    ex,
		now:   now,
		nodes: make(map[string]nodeInput, len(ex.nodes)),
		graph: make(map[string][]edgeInput),
		wfCtx: map[string]any{"workflow": ex.InputData},
	}

	sim.simulate, _ = ex.InputData["simulateFailure"].(bool)

	trigger := ""

	for _, n := range ex.nodes {
		if _, dup := sim.nodes[n.ID]; !dup {
			sim.nodes[n.ID] = n
		}

		if trigger == "" && n.Type == nodeTypeTrigger {
			trigger = n.ID
		}
	}

	for _, e := range ex.edges {
		sim.graph[e.Source] = append(sim.graph[e.Source], e)
	}

	completedAt := msTime(now)

	if trigger == "" {
		ex.Status = execFailed
		ex.ErrorMessage = strPtr("no trigger node found in workflow")
		ex.CompletedAt = &completedAt

		return
	}

	err := sim.traverse(trigger, map[string]bool{})
	if err == nil && sim.simulate && !sim.sawExec {
		err = &execFailure{msg: fmt.Sprintf("node %q: executor call failed after 5 attempts: simulated failure", trigger)}
	}

	ex.CompletedAt = &completedAt

	if err != nil {
		ex.Status = execFailed
		ex.ErrorMessage = strPtr(err.Error())

		return
	}

	ex.Status = execCompleted

	if out, ok := sim.wfCtx["output"].(map[string]any); ok {
		ex.Output = out
	} else {
		ex.Output = sim.wfCtx
	}
}

func (sim *simulation) addStep(n nodeInput, output map[string]any, errMsg string) {
	st := stepResult{
		StepNumber: sim.step, StepName: n.displayName(), NodeID: n.ID,
		Status: execCompleted, Output: output, ExecutedAt: msTime(sim.now), DurationMs: 1,
	}

	if errMsg != "" {
		st.Status = execFailed
		st.Output = nil
		st.ErrorMessage = strPtr(errMsg)
	}

	sim.ex.Steps = append(sim.ex.Steps, st)
	sim.ex.CurrentStep = sim.step
}

func (sim *simulation) traverse(id string, inPath map[string]bool) error {
	if inPath[id] {
		return &execFailure{msg: fmt.Sprintf("cycle detected at node %q: FLK-0508", id)}
	}

	inPath[id] = true
	defer delete(inPath, id)

	n, ok := sim.nodes[id]
	if !ok {
		return &execFailure{msg: fmt.Sprintf("node %q not found in workflow: FLK-0504", id)}
	}

	switch n.Type {
	case nodeTypeExecutor:
		sim.step++
		if err := sim.runExecutor(n); err != nil {
			return err
		}
	case nodeTypeConditional:
		sim.step++

		cond := n.dataString("condition")
		if cond == "" {
			sim.addStep(n, nil, "conditional node missing condition expression")
			return &execFailure{msg: fmt.Sprintf("node %q: missing condition expression", n.ID)}
		}

		sim.addStep(n, map[string]any{"condition": cond, "result": true, "branchTaken": "true"}, "")

		for _, e := range sim.graph[n.ID] {
			if e.SourceHandle != nil && *e.SourceHandle == "true" {
				return sim.traverse(e.Target, inPath)
			}
		}

		return nil
	case nodeTypeAction:
		sim.step++

		var out map[string]any

		if at, _ := n.Data["actionType"].(string); at == "set_output" {
			if o, ok := n.Data["output"].(map[string]any); ok {
				out = o
				sim.wfCtx["output"] = o
			}
		}

		sim.addStep(n, out, "")
	}

	for _, e := range sim.graph[n.ID] {
		if err := sim.traverse(e.Target, inPath); err != nil {
			return err
		}
	}

	return nil
}

// runExecutor simulates one executor node call.
func (sim *simulation) runExecutor(n nodeInput) error {
	fail := func(stepMsg, execMsg string) error {
		sim.addStep(n, nil, stepMsg)
		return &execFailure{msg: fmt.Sprintf("node %q: %s", n.ID, execMsg)}
	}

	if sim.simulate && !sim.sawExec {
		sim.sawExec = true
		return fail("simulated failure", "executor call failed after 5 attempts: simulated failure")
	}

	sim.sawExec = true

	pcID := n.dataString("providerConfigId")
	if pcID == "" {
		return fail("executor node missing providerConfigId in data", "executor node missing providerConfigId")
	}

	id, err := uuid.Parse(pcID)
	if err != nil {
		return fail(fmt.Sprintf("invalid providerConfigId: %v", err), "invalid providerConfigId")
	}

	pc, ok := sim.s.providers[id]
	if !ok {
		return fail("provider config not found: FLK-0290", "provider config not found")
	}

	if pc.Status != statusActive {
		return fail("provider configuration is not active", "provider configuration is not active")
	}

	if providerDown(pc.Config) {
		const callErr = "executor error: http request failed with status 500"
		return fail(callErr, "executor call failed after 5 attempts: "+callErr)
	}

	request := buildRequestBody(n, sim.wfCtx)
	envelope := simulatedResponse(endpointURL(pc.Config, n), request, sim.now)

	output := envelope
	if mappings := mappingPairs(n.Data["outputMapping"]); len(mappings) > 0 {
		output = make(map[string]any)

		for _, m := range mappings {
			if v, ok := getPath(envelope, m[0]); ok {
				setPath(output, m[1], v)
			}
		}
	}

	sim.wfCtx[n.ID] = output
	sim.addStep(n, output, "")

	return nil
}

// providerDown reports whether a base URL of the config points at an
// "outage" endpoint (the fake's way to simulate a provider answering 500).
func providerDown(cfg map[string]any) bool {
	for k, v := range cfg {
		s, ok := v.(string)
		if ok && strings.HasSuffix(k, "base_url") && strings.Contains(s, "outage") {
			return true
		}
	}

	return false
}

func baseURLOf(cfg map[string]any) string {
	for _, k := range []string{"base_url", "transaction_base_url", "onboarding_base_url"} {
		if s, ok := cfg[k].(string); ok && s != "" {
			return s
		}
	}

	return ""
}

func endpointURL(cfg map[string]any, n nodeInput) string {
	base := baseURLOf(cfg)

	path := n.dataString("endpointName")
	if p := n.dataString("path"); p != "" {
		path = p
	}

	if base == "" || path == "" {
		return base
	}

	u, err := url.JoinPath(base, path)
	if err != nil {
		return base
	}

	return u
}

// mappingPairs reads an inputMapping/outputMapping list as (source, target).
func mappingPairs(v any) [][2]string {
	list, _ := v.([]any)

	var out [][2]string

	for _, item := range list {
		m, _ := item.(map[string]any)
		src, _ := m["source"].(string)
		dst, _ := m["target"].(string)

		if src != "" && dst != "" {
			out = append(out, [2]string{src, dst})
		}
	}

	return out
}

func buildRequestBody(n nodeInput, wfCtx map[string]any) any {
	mappings := mappingPairs(n.Data["inputMapping"])
	if len(mappings) == 0 {
		return wfCtx["workflow"]
	}

	body := make(map[string]any)

	for _, m := range mappings {
		if v, ok := getPath(wfCtx, m[0]); ok {
			setPath(body, m[1], v)
		}
	}

	return body
}

// simulatedResponse is the runner envelope of the simulated provider.
func simulatedResponse(endpoint string, request any, now time.Time) map[string]any {
	echo, _ := json.Marshal(request) // decoded JSON values always encode

	body := map[string]any{"decision": "approved", "score": 12, "echo": string(echo)}
	raw, _ := json.Marshal(body)

	return map[string]any{
		"status":      http.StatusOK,
		"status_text": "200 OK",
		"url":         endpoint,
		"headers": map[string]any{
			"Content-Length": strconv.Itoa(len(raw)),
			"Content-Type":   "application/json",
			"Date":           now.Format(http.TimeFormat),
			"Server":         "fakeflowker",
		},
		"body": body,
	}
}

func getPath(root map[string]any, path string) (any, bool) {
	var cur any = root

	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}

		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}

	return cur, true
}

func setPath(root map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := root

	for _, part := range parts[:len(parts)-1] {
		next, ok := cur[part].(map[string]any)
		if !ok {
			next = make(map[string]any)
			cur[part] = next
		}

		cur = next
	}

	cur[parts[len(parts)-1]] = v
}
