package fakeflowker

import (
	"fmt"
)

const (
	templateID          = "tracer-midaz-validation"
	templateName        = "Tracer Validation + Midaz Transaction"
	templateDescription = "Receives a webhook request, validates the transaction via Tracer, and creates a transaction in Midaz if approved"

	templateParamSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["workflowName", "tracerProviderConfigId", "midazProviderConfigId"],
  "properties": {
    "workflowName": {
      "type": "string",
      "minLength": 1,
      "maxLength": 100,
      "description": "Name for the created workflow"
    },
    "workflowDescription": {
      "type": "string",
      "maxLength": 500,
      "description": "Optional description"
    },
    "tracerProviderConfigId": {
      "type": "string",
      "format": "uuid",
      "description": "Provider configuration ID for Tracer (transaction validation)"
    },
    "midazProviderConfigId": {
      "type": "string",
      "format": "uuid",
      "description": "Provider configuration ID for Midaz (ledger transaction creation)"
    },
    "webhookPath": {
      "type": "string",
      "default": "/validate-and-transact",
      "description": "Webhook endpoint path"
    },
    "webhookMethod": {
      "type": "string",
      "enum": ["POST"],
      "default": "POST"
    }
  }
}`
)

// templateProviderParams maps the template's provider-config parameters to
// the provider they must belong to.
var templateProviderParams = map[string]string{
	"tracerProviderConfigId": "tracer",
	"midazProviderConfigId":  "midaz",
}

var templateSchema = mustSchema(templateParamSchema)

func validateTemplateParams(params map[string]any) error {
	var v any
	if params != nil {
		v = params
	}

	if err := validateSchema(templateSchema, "urn:flowker:template:"+templateID, v); err != nil {
		return fmt.Errorf("invalid params for template %s: %w", templateID, err)
	}

	return nil
}

func strPtr(s string) *string { return &s }

// buildTemplateWorkflow is the tracer-midaz-validation template's builder.
func buildTemplateWorkflow(params map[string]any) workflowInput {
	str := func(k, def string) string {
		if v, ok := params[k].(string); ok && v != "" {
			return v
		}

		return def
	}

	var description *string
	if d := str("workflowDescription", ""); d != "" {
		description = &d
	}

	mapping := func(pairs ...string) []any {
		out := make([]any, 0, len(pairs)/2)
		for i := 0; i+1 < len(pairs); i += 2 {
			out = append(out, map[string]any{"source": pairs[i], "target": pairs[i+1]})
		}

		return out
	}

	return workflowInput{
		Name:        str("workflowName", ""),
		Description: description,
		Nodes: []nodeInput{
			{
				ID: "webhook-trigger", Type: "trigger", Name: strPtr("Webhook Trigger"),
				Position: position{X: 250, Y: 0},
				Data: map[string]any{
					"triggerType": "webhook",
					"path":        str("webhookPath", "/validate-and-transact"),
					"method":      str("webhookMethod", "POST"),
				},
			},
			{
				ID: "tracer-validate", Type: "executor", Name: strPtr("Tracer Validate Transaction"),
				Position: position{X: 250, Y: 150},
				Data: map[string]any{
					"executorId":       "tracer.validate-transaction",
					"providerConfigId": str("tracerProviderConfigId", ""),
					"method":           "POST",
					"path":             "/v1/validations",
					"inputMapping": mapping(
						"workflow.requestId", "requestId",
						"workflow.transactionType", "transactionType",
						"workflow.amount", "amount",
						"workflow.currency", "currency",
						"workflow.transactionTimestamp", "transactionTimestamp",
						"workflow.account", "account",
					),
				},
			},
			{
				ID: "decision-check", Type: "conditional", Name: strPtr("Decision Check"),
				Position: position{X: 250, Y: 300},
				Data:     map[string]any{"condition": `tracer-validate.body.decision == "ALLOW"`},
			},
			{
				ID: "midaz-create-tx", Type: "executor", Name: strPtr("Midaz Create Transaction"),
				Position: position{X: 100, Y: 450},
				Data: map[string]any{
					"executorId":       "midaz.create-transaction",
					"providerConfigId": str("midazProviderConfigId", ""),
					"inputMapping": mapping(
						"workflow.transaction", "send",
						"workflow.transactionDescription", "description",
					),
				},
			},
		},
		Edges: []edgeInput{
			{ID: "webhook-to-tracer", Source: "webhook-trigger", Target: "tracer-validate"},
			{ID: "tracer-to-decision", Source: "tracer-validate", Target: "decision-check"},
			{ID: "decision-to-midaz", Source: "decision-check", Target: "midaz-create-tx", SourceHandle: strPtr("true"), Label: strPtr("Approved")},
		},
		Metadata: map[string]any{"templateId": templateID, "templateVersion": "v1"},
	}
}
