package fakeflowker

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Executor configuration statuses.
const (
	ExecutorUnconfigured = "unconfigured"
	ExecutorConfigured   = "configured"
	ExecutorTested       = "tested"
	ExecutorActive       = "active"
	ExecutorDisabled     = "disabled"
)

// IDs of the executor configurations every new Server starts with.
const (
	SeededExecutorConfigSandboxID = "6a0f4c1e-2b7d-4e58-9c3a-1f2e3d4c5b6a"
	SeededExecutorConfigLedgerID  = "9d8c7b6a-5f4e-4d3c-8b2a-0f1e2d3c4b5a"
)

// ExecutorEndpoint is one endpoint of an executor configuration.
type ExecutorEndpoint struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Method  string `json:"method"`
	Timeout int    `json:"timeout,omitempty"`
}

// ExecutorConfigSeed describes an executor configuration to pre-load
// (Flowker has no create route for them).
type ExecutorConfigSeed struct {
	// ID is the configuration id (canonical UUID); generated when empty.
	ID          string
	Name        string
	Description string
	BaseURL     string
	Endpoints   []ExecutorEndpoint
	// AuthType is none|api_key|bearer|basic|oidc_client_credentials|oidc_user
	// (default none).
	AuthType   string
	AuthConfig map[string]any
	// Status is one of the Executor* constants (default unconfigured).
	Status   string
	Metadata map[string]any
}

type executorAuth struct {
	Type   string         `json:"type"`
	Config map[string]any `json:"config,omitempty"`
}

type executorConfig struct {
	ID             uuid.UUID
	Name           string
	Description    *string
	BaseURL        string
	Endpoints      []ExecutorEndpoint
	Authentication executorAuth
	Status         string
	Metadata       map[string]any
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastTestedAt   *time.Time
}

type executorConfigOutput struct {
	ID             uuid.UUID          `json:"id"`
	Name           string             `json:"name"`
	Description    *string            `json:"description,omitempty"`
	BaseURL        string             `json:"baseUrl"`
	Endpoints      []ExecutorEndpoint `json:"endpoints"`
	Authentication executorAuth       `json:"authentication"`
	Status         string             `json:"status"`
	Metadata       map[string]any     `json:"metadata,omitempty"`
	CreatedAt      time.Time          `json:"createdAt"`
	UpdatedAt      time.Time          `json:"updatedAt"`
	LastTestedAt   *time.Time         `json:"lastTestedAt,omitempty"`
}

func (e *executorConfig) output() executorConfigOutput {
	return executorConfigOutput{
		ID: e.ID, Name: e.Name, Description: e.Description, BaseURL: e.BaseURL,
		Endpoints:      append(make([]ExecutorEndpoint, 0, len(e.Endpoints)), e.Endpoints...),
		Authentication: executorAuth{Type: e.Authentication.Type, Config: maskSensitiveConfig(e.Authentication.Config)},
		Status:         e.Status, Metadata: maps.Clone(e.Metadata),
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, LastTestedAt: e.LastTestedAt,
	}
}

func (e *executorConfig) meta() entityMeta {
	return entityMeta{id: e.ID, name: e.Name, createdAt: e.CreatedAt, updatedAt: e.UpdatedAt}
}

func (e *executorConfig) setUpdatedAt(t time.Time) { e.UpdatedAt = t }

var validAuthTypes = map[string]bool{
	"none": true, "api_key": true, "bearer": true, "basic": true,
	"oidc_client_credentials": true, "oidc_user": true,
}

var validEndpointMethods = map[string]bool{
	http.MethodGet: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true,
}

// validateExecutorConfig is the entity validation (FLK-0260..0273).
func validateExecutorConfig(name, baseURL string, description *string, endpoints []ExecutorEndpoint, authType string) error {
	switch {
	case name == "":
		return errors.New("FLK-0260: name is required")
	case utf8.RuneCountInString(name) > 100:
		return errors.New("FLK-0261: name too long")
	case description != nil && utf8.RuneCountInString(*description) > 500:
		return errors.New("FLK-0267: description too long")
	case baseURL == "":
		return errors.New("FLK-0262: baseUrl is required")
	case len(baseURL) > 2048:
		return errors.New("FLK-0264: baseUrl too long")
	case len(endpoints) == 0:
		return errors.New("FLK-0265: at least one endpoint is required")
	case authType == "":
		return errors.New("FLK-0268: authentication type is required")
	case !validAuthTypes[authType]:
		return errors.New("FLK-0269: invalid authentication type")
	}

	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return errors.New("FLK-0263: baseUrl is invalid")
	}

	for _, ep := range endpoints {
		switch {
		case ep.Name == "":
			return errors.New("FLK-0270: endpoint name is required")
		case ep.Path == "":
			return errors.New("FLK-0271: endpoint path is required")
		case ep.Method == "":
			return errors.New("FLK-0272: endpoint method is required")
		case !validEndpointMethods[strings.ToUpper(ep.Method)]:
			return errors.New("FLK-0273: endpoint method is invalid")
		}
	}

	return nil
}

// SeedExecutorConfig adds an executor configuration and returns its id.
func (s *Server) SeedExecutorConfig(seed ExecutorConfigSeed) (string, error) {
	id := uuid.New()

	if seed.ID != "" {
		parsed, err := uuid.Parse(seed.ID)
		if err != nil {
			return "", fmt.Errorf("parse executor configuration id %q: %w", seed.ID, err)
		}

		id = parsed
	}

	if seed.AuthType == "" {
		seed.AuthType = "none"
	}

	if seed.Status == "" {
		seed.Status = ExecutorUnconfigured
	}

	switch seed.Status {
	case ExecutorUnconfigured, ExecutorConfigured, ExecutorTested, ExecutorActive, ExecutorDisabled:
	default:
		return "", fmt.Errorf("seed executor configuration: unknown status %q", seed.Status)
	}

	var description *string
	if seed.Description != "" {
		description = &seed.Description
	}

	if err := validateExecutorConfig(seed.Name, seed.BaseURL, description, seed.Endpoints, seed.AuthType); err != nil {
		return "", fmt.Errorf("seed executor configuration: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if _, dup := s.executors[id]; dup {
		return "", fmt.Errorf("seed executor configuration: id %s already exists", id)
	}

	for _, e := range s.executors {
		if e.Name == seed.Name {
			return "", fmt.Errorf("seed executor configuration: name %q already exists", seed.Name)
		}
	}

	now := msTime(s.now())
	ec := &executorConfig{
		ID: id, Name: seed.Name, Description: description, BaseURL: seed.BaseURL,
		Endpoints:      append([]ExecutorEndpoint(nil), seed.Endpoints...),
		Authentication: executorAuth{Type: seed.AuthType, Config: maps.Clone(seed.AuthConfig)},
		Status:         seed.Status, Metadata: maps.Clone(seed.Metadata),
		CreatedAt: now, UpdatedAt: now,
	}

	if seed.Status == ExecutorTested || seed.Status == ExecutorActive {
		ec.LastTestedAt = &now
	}

	s.executors[id] = ec

	return id.String(), nil
}

// seedDefaults loads the two executor configurations every Server starts
// with. The seeds are static and valid, so errors cannot happen.
func (s *Server) seedDefaults() {
	seeds := []ExecutorConfigSeed{
		{
			ID: SeededExecutorConfigSandboxID, Name: "sandbox-http-echo",
			Description: "HTTP echo service used by the sandbox workflows",
			BaseURL:     "http://127.0.0.1:4031/sandbox/echo",
			Endpoints:   []ExecutorEndpoint{{Name: "echo", Path: "/echo", Method: http.MethodPost, Timeout: 30}},
			AuthType:    "none", Status: ExecutorConfigured,
		},
		{
			ID: SeededExecutorConfigLedgerID, Name: "ledger-gateway",
			Description: "Ledger gateway with API key authentication",
			BaseURL:     "https://ledger.example.com/api",
			Endpoints: []ExecutorEndpoint{
				{Name: "post-entry", Path: "/entries", Method: http.MethodPost, Timeout: 10},
				{Name: "get-balance", Path: "/balances/{account}", Method: http.MethodGet},
			},
			AuthType: "api_key", AuthConfig: map[string]any{"key": "ledger-demo-key-0000", "header_name": "X-API-Key"},
			Status: ExecutorActive, Metadata: map[string]any{"team": "ledger"},
		},
	}

	for _, seed := range seeds {
		if _, err := s.SeedExecutorConfig(seed); err != nil {
			s.log.Error("seed executor configuration", "error", err)
		}
	}
}

func errExecutorConfigNotFound() *apiErr {
	return errNotFound("FLK-0250", "executor configuration not found")
}

func errExecutorConfigCannotModify() *apiErr {
	return errUnprocessable("FLK-0252", "cannot modify executor configuration in current status")
}

func (s *Server) listExecutorConfigs(c *reqCtx) {
	p, e := parseMongoListParams(c, lenientLimit(c))
	if e != nil {
		// The executor-configuration handler maps no ValidationError: 500.
		c.internal()
		return
	}

	status := c.query("status")

	executorConfigFamily.list(s, c, p, func(ec *executorConfig) bool { return status == "" || ec.Status == status })
}

func (s *Server) getExecutorConfig(c *reqCtx) { executorConfigFamily.get(s, c) }

func (s *Server) updateExecutorConfig(c *reqCtx) {
	id, ok := executorConfigFamily.parseID(c, "id")
	if !ok {
		return
	}

	var in struct {
		Name           string             `json:"name"`
		Description    *string            `json:"description"`
		BaseURL        string             `json:"baseUrl"`
		Endpoints      []ExecutorEndpoint `json:"endpoints"`
		Authentication struct {
			Type   string         `json:"type"`
			Config map[string]any `json:"config"`
		} `json:"authentication"`
		Metadata map[string]any `json:"metadata"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	executorConfigFamily.update(s, c, id, func(ec *executorConfig) *apiErr {
		if ec.Status != ExecutorUnconfigured && ec.Status != ExecutorConfigured {
			return errExecutorConfigCannotModify()
		}

		if err := validateExecutorConfig(in.Name, in.BaseURL, in.Description, in.Endpoints, in.Authentication.Type); err != nil {
			s.log.Debug("executor configuration rejected", "error", err)
			return errInternal()
		}

		for _, other := range s.executors {
			if other.ID != ec.ID && other.Name == in.Name {
				return errConflict("FLK-0251", "executor configuration name already exists")
			}
		}

		ec.Name, ec.Description, ec.BaseURL = in.Name, in.Description, in.BaseURL
		ec.Endpoints = append([]ExecutorEndpoint(nil), in.Endpoints...)
		ec.Authentication = executorAuth{Type: in.Authentication.Type, Config: maps.Clone(in.Authentication.Config)}

		ec.Metadata = mergeMetadata(ec.Metadata, in.Metadata)

		return nil
	})
}

func (s *Server) deleteExecutorConfig(c *reqCtx) {
	executorConfigFamily.remove(s, c, func(ec *executorConfig) *apiErr {
		if ec.Status == ExecutorActive || ec.Status == ExecutorTested {
			return errExecutorConfigCannotModify()
		}

		return nil
	})
}
