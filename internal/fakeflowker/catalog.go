package fakeflowker

import (
	"encoding/json"
	"net/http"
	"sort"
)

type catalogProvider struct {
	ID           string
	Name         string
	Description  string
	ConfigSchema string
	schema       *jsonSchema
}

type catalogExecutor struct {
	ID         string
	Name       string
	Category   string
	ProviderID string
	Schema     string
	schema     *jsonSchema
}

const (
	httpProviderSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "base_url": {
      "type": "string",
      "format": "uri",
      "description": "Base URL for all HTTP requests made through this provider"
    },
    "headers": {
      "type": "object",
      "additionalProperties": { "type": "string" },
      "description": "Default headers to include in all requests"
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 100,
      "maximum": 30000,
      "default": 5000,
      "description": "Default request timeout in milliseconds"
    }
  },
  "required": ["base_url"]
}`

	s3ProviderSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "region": {
      "type": "string",
      "description": "AWS region (e.g., us-east-1)"
    },
    "bucket": {
      "type": "string",
      "description": "S3 bucket name"
    },
    "access_key_id": {
      "type": "string",
      "description": "AWS access key ID"
    },
    "secret_access_key": {
      "type": "string",
      "description": "AWS secret access key"
    }
  },
  "required": ["region", "bucket", "access_key_id", "secret_access_key"]
}`

	midazProviderSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "onboarding_base_url": {
      "type": "string",
      "format": "uri",
      "description": "Midaz Onboarding component base URL (port 3000) for organizations, ledgers, assets, and accounts"
    },
    "transaction_base_url": {
      "type": "string",
      "format": "uri",
      "description": "Midaz Transaction component base URL (port 3001) for transactions, operations, and balances"
    },
    "organization_id": {
      "type": "string",
      "format": "uuid",
      "description": "Default organization ID for the nested URL path context"
    },
    "ledger_id": {
      "type": "string",
      "format": "uuid",
      "description": "Default ledger ID for the nested URL path context"
    },
    "auth": {
      "type": "object",
      "description": "OIDC authentication configuration for JWT Bearer Token via client_credentials flow",
      "properties": {
        "issuer_url": {
          "type": "string",
          "format": "uri",
          "description": "OIDC issuer URL for token exchange (e.g., Casdoor)"
        },
        "client_id": {
          "type": "string",
          "minLength": 1,
          "description": "OAuth2 client ID for client_credentials flow"
        },
        "client_secret": {
          "type": "string",
          "minLength": 1,
          "description": "OAuth2 client secret for client_credentials flow"
        },
        "scopes": {
          "type": "array",
          "items": {
            "type": "string"
          },
          "description": "OAuth2 scopes to request during token exchange"
        }
      },
      "required": ["issuer_url", "client_id", "client_secret"]
    }
  },
  "required": ["onboarding_base_url", "transaction_base_url", "organization_id", "ledger_id"]
}`

	tracerProviderSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "base_url": {
      "type": "string",
      "format": "uri",
      "description": "Tracer API base URL (e.g., https://tracer.lerian.studio)"
    },
    "api_key": {
      "type": "string",
      "minLength": 1,
      "description": "API key for authenticating with Tracer via X-API-Key header"
    }
  },
  "required": ["base_url", "api_key"]
}`

	httpExecutorSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["method", "url"],
  "properties": {
    "executorConfigId": { "type": "string", "format": "uuid" },
    "endpointName": { "type": "string" },
    "method": { "type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] },
    "url": { "type": "string" },
    "headers": { "type": "object", "additionalProperties": { "type": "string" } },
    "query": { "type": "object", "additionalProperties": { "type": "string" } },
    "body": {},
    "timeout_seconds": { "type": "integer", "minimum": 1, "maximum": 300, "default": 30 },
    "retry": { "type": "object" },
    "success_status_codes": { "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 } },
    "auth": { "type": "object" },
    "inputMapping": { "type": "array" },
    "outputMapping": { "type": "array" },
    "transforms": { "type": "array" }
  },
  "additionalProperties": false
}`

	providerExecutorSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "endpointName": { "type": "string" },
    "method": { "type": "string" },
    "path": { "type": "string" },
    "timeout_seconds": { "type": "integer", "minimum": 1, "maximum": 300 }
  }
}`

	webhookTriggerSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["path", "method"],
  "properties": {
    "path": { "type": "string", "minLength": 1, "description": "Webhook path under /v1/webhooks" },
    "method": { "type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"] },
    "verify_token": { "type": "string", "description": "Optional token checked against X-Webhook-Token" }
  }
}`
)

// providerCatalog returns the built-in providers (sorted by id).
func providerCatalog() []*catalogProvider {
	ps := []*catalogProvider{
		{ID: "http", Name: "HTTP", Description: "Generic HTTP/REST API provider for making external HTTP calls", ConfigSchema: httpProviderSchema},
		{ID: "midaz", Name: "Midaz", Description: "Lerian Midaz core banking ledger provider for managing transactions, accounts, and balances", ConfigSchema: midazProviderSchema},
		{ID: "s3", Name: "S3", Description: "AWS S3 object storage provider for uploading and retrieving files", ConfigSchema: s3ProviderSchema},
		{ID: "tracer", Name: "Tracer", Description: "Lerian Tracer provider for transaction validation against compliance rules and financial limits", ConfigSchema: tracerProviderSchema},
	}

	for _, p := range ps {
		p.schema = mustSchema(p.ConfigSchema)
	}

	return ps
}

// executorCatalog returns the built-in executors (sorted by id).
func executorCatalog() []*catalogExecutor {
	es := []*catalogExecutor{
		{ID: "http", Name: "HTTP Request", Category: "HTTP", ProviderID: "http", Schema: httpExecutorSchema},
		{ID: "midaz.create-account", Name: "Create Account", Category: "Midaz", ProviderID: "midaz", Schema: providerExecutorSchema},
		{ID: "midaz.create-transaction", Name: "Create Transaction", Category: "Midaz", ProviderID: "midaz", Schema: providerExecutorSchema},
		{ID: "midaz.get-account", Name: "Get Account", Category: "Midaz", ProviderID: "midaz", Schema: providerExecutorSchema},
		{ID: "midaz.get-account-balance", Name: "Get Account Balance", Category: "Midaz", ProviderID: "midaz", Schema: providerExecutorSchema},
		{ID: "tracer.list-validations", Name: "List Validations", Category: "Tracer", ProviderID: "tracer", Schema: providerExecutorSchema},
		{ID: "tracer.validate-transaction", Name: "Validate Transaction", Category: "Tracer", ProviderID: "tracer", Schema: providerExecutorSchema},
	}

	for _, e := range es {
		e.schema = mustSchema(e.Schema)
	}

	return es
}

var (
	builtinProviders = providerCatalog()
	builtinExecutors = executorCatalog()
)

func findProvider(id string) *catalogProvider {
	for _, p := range builtinProviders {
		if p.ID == id {
			return p
		}
	}

	return nil
}

func findExecutor(id string) *catalogExecutor {
	for _, e := range builtinExecutors {
		if e.ID == id {
			return e
		}
	}

	return nil
}

type executorSummary struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Category   string `json:"category"`
	Version    string `json:"version"`
	ProviderID string `json:"providerId,omitempty"`
}

type executorDetail struct {
	executorSummary
	Schema string `json:"schema"`
}

type triggerSummary struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

type triggerDetail struct {
	triggerSummary
	Schema string `json:"schema"`
}

type providerSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
}

type providerDetail struct {
	providerSummary
	ConfigSchema string `json:"configSchema"`
}

type templateSummary struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
	Category    string `json:"category"`
}

type templateDetail struct {
	templateSummary
	ParamSchema string `json:"paramSchema"`
}

type validationResponse struct {
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
}

func summarizeExecutor(e *catalogExecutor) executorSummary {
	return executorSummary{ID: e.ID, Name: e.Name, Category: e.Category, Version: "v1", ProviderID: e.ProviderID}
}

func (s *Server) listCatalogExecutors(c *reqCtx) {
	out := make([]executorSummary, 0, len(builtinExecutors))
	for _, e := range builtinExecutors {
		out = append(out, summarizeExecutor(e))
	}

	c.json(http.StatusOK, out)
}

func (s *Server) getCatalogExecutor(c *reqCtx) {
	e := findExecutor(c.param("id"))
	if e == nil {
		c.notFound("FLK-0200", "executor not found")
		return
	}

	c.json(http.StatusOK, executorDetail{executorSummary: summarizeExecutor(e), Schema: e.Schema})
}

func (s *Server) validateCatalogExecutor(c *reqCtx) {
	e := findExecutor(c.param("id"))
	if e == nil {
		c.notFound("FLK-0200", "executor not found")
		return
	}

	var req struct {
		Config map[string]any `json:"config"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &req); err != nil {
		c.json(http.StatusBadRequest, libResponse{Code: "FLK-0001", Title: "Bad Request", Message: "invalid request body"})
		return
	}

	var cfg any
	if req.Config != nil {
		cfg = req.Config
	}

	if err := validateSchema(e.schema, "urn:flowker:executor:"+e.ID, cfg); err != nil {
		c.json(http.StatusBadRequest, libResponse{Code: "FLK-0201", Title: "Bad Request", Message: "invalid config for executor " + e.ID + ": " + err.Error()})
		return
	}

	c.json(http.StatusOK, validationResponse{Valid: true})
}

func (s *Server) listCatalogTriggers(c *reqCtx) {
	c.json(http.StatusOK, []triggerSummary{{ID: "webhook", Name: "Webhook", Version: "v1"}})
}

func (s *Server) getCatalogTrigger(c *reqCtx) {
	if c.param("id") != "webhook" {
		c.notFound("FLK-0210", "trigger not found")
		return
	}

	c.json(http.StatusOK, triggerDetail{triggerSummary: triggerSummary{ID: "webhook", Name: "Webhook", Version: "v1"}, Schema: webhookTriggerSchema})
}

func summarizeProvider(p *catalogProvider) providerSummary {
	return providerSummary{ID: p.ID, Name: p.Name, Description: p.Description, Version: "v1"}
}

func (s *Server) listCatalogProviders(c *reqCtx) {
	out := make([]providerSummary, 0, len(builtinProviders))
	for _, p := range builtinProviders {
		out = append(out, summarizeProvider(p))
	}

	c.json(http.StatusOK, out)
}

func (s *Server) getCatalogProvider(c *reqCtx) {
	p := findProvider(c.param("id"))
	if p == nil {
		c.notFound("FLK-0230", "provider not found")
		return
	}

	c.json(http.StatusOK, providerDetail{providerSummary: summarizeProvider(p), ConfigSchema: p.ConfigSchema})
}

func (s *Server) listCatalogProviderExecutors(c *reqCtx) {
	p := findProvider(c.param("id"))
	if p == nil {
		c.notFound("FLK-0230", "provider not found")
		return
	}

	out := make([]executorSummary, 0)

	for _, e := range builtinExecutors {
		if e.ProviderID == p.ID {
			out = append(out, summarizeExecutor(e))
		}
	}

	c.json(http.StatusOK, out)
}

func summarizeTemplate() templateSummary {
	return templateSummary{ID: templateID, Name: templateName, Description: templateDescription, Version: "v1", Category: "Compliance"}
}

func (s *Server) listCatalogTemplates(c *reqCtx) {
	c.json(http.StatusOK, []templateSummary{summarizeTemplate()})
}

func (s *Server) getCatalogTemplate(c *reqCtx) {
	if c.param("id") != templateID {
		c.notFound("FLK-0240", "template not found")
		return
	}

	c.json(http.StatusOK, templateDetail{templateSummary: summarizeTemplate(), ParamSchema: s.enrichedTemplateSchema()})
}

// enrichedTemplateSchema adds a oneOf list of the active provider
// configurations to each provider-config parameter, like Flowker's catalog.
func (s *Server) enrichedTemplateSchema() string {
	var schema map[string]any
	if err := json.Unmarshal([]byte(templateParamSchema), &schema); err != nil {
		return templateParamSchema
	}

	props, ok := schema["properties"].(map[string]any)
	if !ok {
		return templateParamSchema
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	for param, providerID := range templateProviderParams {
		prop, ok := props[param].(map[string]any)
		if !ok {
			continue
		}

		var pcs []*providerConfig

		for _, pc := range s.providers {
			if pc.ProviderID == providerID && pc.Status == statusActive {
				pcs = append(pcs, pc)
			}
		}

		sort.Slice(pcs, func(i, j int) bool { return pcs[i].CreatedAt.Before(pcs[j].CreatedAt) })

		options := make([]map[string]any, 0, len(pcs))
		for _, pc := range pcs {
			options = append(options, map[string]any{"const": pc.ID.String(), "title": pc.Name})
		}

		prop["oneOf"] = options
	}

	b, err := json.Marshal(schema)
	if err != nil {
		return templateParamSchema
	}

	return string(b)
}

func (s *Server) validateCatalogTemplate(c *reqCtx) {
	if c.param("id") != templateID {
		c.notFound("FLK-0240", "template not found")
		return
	}

	var req struct {
		Params map[string]any `json:"params"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &req); err != nil {
		c.json(http.StatusBadRequest, libResponse{Code: "FLK-0001", Title: "Bad Request", Message: "invalid request body"})
		return
	}

	if err := validateTemplateParams(req.Params); err != nil {
		c.json(http.StatusBadRequest, libResponse{Code: "FLK-0242", Title: "Bad Request", Message: err.Error()})
		return
	}

	c.json(http.StatusOK, validationResponse{Valid: true})
}
