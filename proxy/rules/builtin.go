package rules

import (
	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
)

func src(s string) []Source {
	out, err := parseSources(s)
	if err != nil {
		panic(err) // built-in table: a typo here is a programming error caught by every test
	}
	return out
}

func parseSources(list string) ([]Source, error) {
	var out []Source
	for _, s := range splitComma(list) {
		v, err := ParseSource(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func meta(kv ...string) []MetaField {
	var out []MetaField
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, MetaField{Key: kv[i], Sources: src(kv[i+1])})
	}
	return out
}

// Builtin returns the built-in rule table: every mutating route of Flowker's HTTP contract
// (flowker-contract.md §1.5 and §3.2), with the event types and metadata keys Flowker's own audit
// module writes for the same change, plus the changes Flowker does not audit itself (clone,
// provider-config enable/disable, executor configurations) and the routes that change nothing.
// Literal routes come before parameterised ones.
func Builtin() []Rule {
	const (
		wf   = chain.ResourceWorkflow
		ex   = chain.ResourceExecution
		pc   = chain.ResourceProviderConfig
		exec = chain.ResourceExecutorConfig
	)
	pcRedact := []string{"config.*"}
	exRedact := []string{"authentication.config.*"}
	return []Rule{
		// Workflows.
		{Name: "workflow.create", Method: "POST", Path: "/v1/workflows", Audit: true, Builtin: true,
			EventType: chain.WorkflowCreated, Action: chain.ActionCreate, ResourceType: wf, ResourceID: src("response:workflowId"),
			Metadata: meta("workflow.name", "request:name")},
		{Name: "workflow.create_from_template", Method: "POST", Path: "/v1/workflows/from-template", Audit: true, Builtin: true,
			EventType: chain.WorkflowCreated, Action: chain.ActionCreate, ResourceType: wf, ResourceID: src("response:workflowId"),
			Metadata: meta("workflow.name", "request:params[workflowName]", "workflow.template_id", "request:templateId")},
		{Name: "workflow.update", Method: "PUT", Path: "/v1/workflows/{id}", Audit: true, Builtin: true,
			EventType: chain.WorkflowUpdated, Action: chain.ActionUpdate, ResourceType: wf, ResourceID: src("path:id"),
			Metadata: meta("workflow.name", "response:name,request:name")},
		{Name: "workflow.delete", Method: "DELETE", Path: "/v1/workflows/{id}", Audit: true, Builtin: true,
			EventType: chain.WorkflowDeleted, Action: chain.ActionDelete, ResourceType: wf, ResourceID: src("path:id"),
			Metadata: meta("workflow.id", "path:id")},
		{Name: "workflow.clone", Method: "POST", Path: "/v1/workflows/{id}/clone", Audit: true, Builtin: true,
			EventType: chain.WorkflowCreated, Action: chain.ActionCreate, ResourceType: wf, ResourceID: src("response:workflowId"),
			Metadata: meta("workflow.name", "request:name", "workflow.cloned_from", "path:id")},
		{Name: "workflow.activate", Method: "POST", Path: "/v1/workflows/{id}/activate", Audit: true, Builtin: true,
			EventType: chain.WorkflowActivated, Action: chain.ActionActivate, ResourceType: wf, ResourceID: src("path:id"),
			Metadata: meta("workflow.name", "response:name")},
		{Name: "workflow.deactivate", Method: "POST", Path: "/v1/workflows/{id}/deactivate", Audit: true, Builtin: true,
			EventType: chain.WorkflowDeactivated, Action: chain.ActionDeactivate, ResourceType: wf, ResourceID: src("path:id"),
			Metadata: meta("workflow.name", "response:name")},
		{Name: "workflow.draft", Method: "POST", Path: "/v1/workflows/{id}/draft", Audit: true, Builtin: true,
			EventType: chain.WorkflowDrafted, Action: chain.ActionDraft, ResourceType: wf, ResourceID: src("path:id"),
			Metadata: meta("workflow.name", "response:name")},

		// Executions: started by the execute route or by any webhook; outcomes observed later.
		{Name: "execution.start", Method: "POST", Path: "/v1/workflows/{workflowId}/executions", Audit: true, Builtin: true,
			Kind: config.KindExecutionStart, EventType: chain.ExecutionStarted, Action: chain.ActionExecute, ResourceType: ex,
			ResourceID: src("response:executionId"), Metadata: meta("workflow.id", "response:workflowId,path:workflowId")},
		{Name: "webhook.trigger", Method: "*", Path: "/v1/webhooks/*", Audit: true, Builtin: true,
			Kind: config.KindExecutionStart, EventType: chain.ExecutionStarted, Action: chain.ActionExecute, ResourceType: ex,
			ResourceID: src("response:executionId,response_header:X-Webhook-Execution-Id"),
			Metadata:   meta("workflow.id", "response:workflowId,response_header:X-Webhook-Workflow-Id")},
		{Name: "execution.status", Method: "GET", Path: "/v1/executions/{id}", Audit: false, Builtin: true,
			Kind: config.KindExecutionStatus},

		// Provider configurations. Their config holds credentials: every value under config is redacted.
		{Name: "provider_config.create", Method: "POST", Path: "/v1/provider-configurations", Audit: true, Builtin: true,
			EventType: chain.ProviderConfigCreated, Action: chain.ActionCreate, ResourceType: pc, ResourceID: src("response:id"),
			Metadata: meta("provider_config.name", "response:name,request:name", "provider_config.provider_id", "request:providerId"),
			Redact:   pcRedact},
		{Name: "provider_config.update", Method: "PATCH", Path: "/v1/provider-configurations/{id}", Audit: true, Builtin: true,
			EventType: chain.ProviderConfigUpdated, Action: chain.ActionUpdate, ResourceType: pc, ResourceID: src("path:id"),
			Metadata: meta("provider_config.name", "response:name,request:name"), Redact: pcRedact},
		{Name: "provider_config.delete", Method: "DELETE", Path: "/v1/provider-configurations/{id}", Audit: true, Builtin: true,
			EventType: chain.ProviderConfigDeleted, Action: chain.ActionDelete, ResourceType: pc, ResourceID: src("path:id"),
			Metadata: meta("provider_config.id", "path:id")},
		{Name: "provider_config.disable", Method: "POST", Path: "/v1/provider-configurations/{id}/disable", Audit: true, Builtin: true,
			EventType: chain.ProviderConfigUpdated, Action: chain.ActionUpdate, ResourceType: pc, ResourceID: src("path:id"),
			Metadata: meta("provider_config.name", "response:name", "provider_config.status", "response:status,literal:disabled"), Redact: pcRedact},
		{Name: "provider_config.enable", Method: "POST", Path: "/v1/provider-configurations/{id}/enable", Audit: true, Builtin: true,
			EventType: chain.ProviderConfigUpdated, Action: chain.ActionUpdate, ResourceType: pc, ResourceID: src("path:id"),
			Metadata: meta("provider_config.name", "response:name", "provider_config.status", "response:status,literal:active"), Redact: pcRedact},
		{Name: "provider_config.test", Method: "POST", Path: "/v1/provider-configurations/{id}/test", Audit: false, Builtin: true},

		// Executor configurations (Flowker has no create route and audits none of these).
		{Name: "executor_config.update", Method: "PATCH", Path: "/v1/executors/{id}", Audit: true, Builtin: true,
			EventType: chain.ExecutorConfigUpdated, Action: chain.ActionUpdate, ResourceType: exec, ResourceID: src("path:id"),
			Metadata: meta("executor_config.name", "response:name,request:name"), Redact: exRedact},
		{Name: "executor_config.delete", Method: "DELETE", Path: "/v1/executors/{id}", Audit: true, Builtin: true,
			EventType: chain.ExecutorConfigDeleted, Action: chain.ActionDelete, ResourceType: exec, ResourceID: src("path:id"),
			Metadata: meta("executor_config.id", "path:id")},

		// Catalog validation changes nothing.
		{Name: "catalog.executor_validate", Method: "POST", Path: "/v1/catalog/executors/{id}/validate", Audit: false, Builtin: true},
		{Name: "catalog.template_validate", Method: "POST", Path: "/v1/catalog/templates/{id}/validate", Audit: false, Builtin: true},
	}
}
