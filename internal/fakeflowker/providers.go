package fakeflowker

import (
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

type providerConfig struct {
	ID          uuid.UUID
	Name        string
	Description *string
	ProviderID  string
	Config      map[string]any
	Status      string
	Metadata    map[string]any
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

type providerConfigOutput struct {
	ID          uuid.UUID      `json:"id"`
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	ProviderID  string         `json:"providerId"`
	Config      map[string]any `json:"config"`
	Status      string         `json:"status"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
}

type providerConfigCreateOutput struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

func (p *providerConfig) output() providerConfigOutput {
	return providerConfigOutput{
		ID: p.ID, Name: p.Name, Description: p.Description, ProviderID: p.ProviderID,
		Config: maskSensitiveConfig(p.Config), Status: p.Status, Metadata: maps.Clone(p.Metadata),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

func (p *providerConfig) meta() entityMeta {
	return entityMeta{id: p.ID, name: p.Name, createdAt: p.CreatedAt, updatedAt: p.UpdatedAt}
}

func (p *providerConfig) setUpdatedAt(t time.Time) { p.UpdatedAt = t }

// isSensitiveKey reports whether a config key holds a secret.
func isSensitiveKey(k string) bool {
	lk := strings.ToLower(k)
	for _, frag := range []string{"key", "secret", "password", "token"} {
		if strings.Contains(lk, frag) {
			return true
		}
	}

	return false
}

// maskSensitiveConfig masks top-level secrets: "****" + the last 4
// characters, or "********" for values shorter than 8 and non-strings.
func maskSensitiveConfig(cfg map[string]any) map[string]any {
	if cfg == nil {
		return nil
	}

	out := make(map[string]any, len(cfg))

	for k, v := range cfg {
		if !isSensitiveKey(k) {
			out[k] = v
			continue
		}

		s, ok := v.(string)
		if !ok || utf8.RuneCountInString(s) < 8 {
			out[k] = "********"
			continue
		}

		r := []rune(s)
		out[k] = "****" + string(r[len(r)-4:])
	}

	return out
}

func errProviderConfigNotFound() *apiErr {
	return errNotFound("FLK-0290", "provider configuration not found")
}

func errProviderConfigCannotModify() *apiErr {
	return errUnprocessable("FLK-0292", "cannot modify provider configuration in current status")
}

// validateProviderConfigDomain is the provider configuration entity
// validation; Flowker answers its errors (FLK-0295..0299) with 500.
func validateProviderConfigDomain(name string, description *string, cfg map[string]any) bool {
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return false
	}

	if description != nil && utf8.RuneCountInString(*description) > 500 {
		return false
	}

	return len(cfg) > 0
}

func (s *Server) nameTakenLocked(name string, except uuid.UUID) bool {
	for _, p := range s.providers {
		if p.Name == name && p.ID != except {
			return true
		}
	}

	return false
}

func (s *Server) createProviderConfig(c *reqCtx) {
	var in struct {
		Name        string         `json:"name"`
		Description *string        `json:"description"`
		ProviderID  string         `json:"providerId"`
		Config      map[string]any `json:"config"`
		Metadata    map[string]any `json:"metadata"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	prov := findProvider(in.ProviderID)
	if prov == nil {
		c.notFound("FLK-0294", "provider not found in catalog")
		return
	}

	var cfg any
	if in.Config != nil {
		cfg = in.Config
	}

	// Schema violations (FLK-0293) and entity validation errors answer 500
	// in Flowker: the handler's errors.Is never matches them.
	if err := validateSchema(prov.schema, "schema.json", cfg); err != nil {
		s.log.Debug("provider configuration rejected by schema", "error", err)
		c.internal()

		return
	}

	if !validateProviderConfigDomain(in.Name, in.Description, in.Config) {
		c.internal()
		return
	}

	s.mu.Lock()

	if s.nameTakenLocked(in.Name, uuid.Nil) {
		s.mu.Unlock()
		c.conflict("FLK-0291", "provider configuration name already exists")

		return
	}

	now := s.now()
	pc := &providerConfig{
		ID: uuid.New(), Name: in.Name, Description: in.Description, ProviderID: prov.ID,
		Config: maps.Clone(in.Config), Status: statusActive, Metadata: maps.Clone(in.Metadata),
		CreatedAt: msTime(now), UpdatedAt: msTime(now),
	}
	s.providers[pc.ID] = pc

	s.mu.Unlock()

	c.json(http.StatusCreated, providerConfigCreateOutput{ID: pc.ID, Name: pc.Name, Status: pc.Status, CreatedAt: now})
}

func (s *Server) listProviderConfigs(c *reqCtx) {
	limit := 10

	if v := c.query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			c.badRequest("FLK-0304", "invalid limit parameter: must be an integer between 1 and 100")
			return
		}

		limit = n
	}

	status := c.query("status")
	if status != "" && status != statusActive && status != statusDisabled {
		c.badRequest("FLK-0304", "invalid status parameter: must be 'active' or 'disabled'")
		return
	}

	providerID := c.query("providerId")

	// ProviderConfigListFilter.Validate accepts only ASC or DESC (case-sensitive) and returns a
	// ValidationError the handler does not map: 500 (verified on the real v1.0.2).
	if so := c.query("sortOrder"); so != "" && so != "ASC" && so != "DESC" {
		c.internal()
		return
	}

	p, e := parseMongoListParams(c, limit)
	if e != nil {
		// The provider-configuration handler maps no ValidationError: 500.
		c.internal()
		return
	}

	providerConfigFamily.list(s, c, p, func(pc *providerConfig) bool {
		return (status == "" || pc.Status == status) && (providerID == "" || pc.ProviderID == providerID)
	})
}

func (s *Server) getProviderConfig(c *reqCtx) { providerConfigFamily.get(s, c) }

func (s *Server) updateProviderConfig(c *reqCtx) {
	id, ok := providerConfigFamily.parseID(c, "id")
	if !ok {
		return
	}

	var in struct {
		Name        *string        `json:"name"`
		Description *string        `json:"description"`
		Config      map[string]any `json:"config"`
		Metadata    map[string]any `json:"metadata"`
	}

	if err := parseBody(c.r.Header.Get("Content-Type"), c.body, &in); err != nil {
		c.invalidBody()
		return
	}

	providerConfigFamily.update(s, c, id, func(pc *providerConfig) *apiErr {
		name, description, cfg := pc.Name, pc.Description, pc.Config

		if in.Config != nil {
			if prov := findProvider(pc.ProviderID); prov != nil {
				if err := validateSchema(prov.schema, "schema.json", in.Config); err != nil {
					return errInternal()
				}
			}

			cfg = in.Config
		}

		if in.Name != nil {
			name = *in.Name
		}

		if in.Description != nil {
			description = in.Description
		}

		if !validateProviderConfigDomain(name, description, cfg) {
			return errInternal()
		}

		if name != pc.Name && s.nameTakenLocked(name, pc.ID) {
			return errConflict("FLK-0291", "provider configuration name already exists")
		}

		pc.Name, pc.Description, pc.Config = name, description, maps.Clone(cfg)

		pc.Metadata = mergeMetadata(pc.Metadata, in.Metadata)

		return nil
	})
}

func (s *Server) deleteProviderConfig(c *reqCtx) { providerConfigFamily.remove(s, c, nil) }

func (s *Server) disableProviderConfig(c *reqCtx) {
	providerConfigFamily.modify(s, c, changeProviderConfigStatus(statusActive, statusDisabled))
}

func (s *Server) enableProviderConfig(c *reqCtx) {
	providerConfigFamily.modify(s, c, changeProviderConfigStatus(statusDisabled, statusActive))
}

// changeProviderConfigStatus moves a configuration from status from to
// status to, and refuses any other starting status.
func changeProviderConfigStatus(from, to string) func(*providerConfig) *apiErr {
	return func(pc *providerConfig) *apiErr {
		if pc.Status != from {
			return errProviderConfigCannotModify()
		}

		pc.Status = to

		return nil
	}
}

type testStage struct {
	Name       string         `json:"name"`
	Status     string         `json:"status"`
	DurationMs int64          `json:"durationMs"`
	Message    string         `json:"message"`
	Details    map[string]any `json:"details,omitempty"`
}

type testResultOutput struct {
	ProviderConfigID uuid.UUID   `json:"providerConfigId"`
	ProviderID       string      `json:"providerId"`
	OverallStatus    string      `json:"overallStatus"`
	DurationMs       int64       `json:"durationMs"`
	Stages           []testStage `json:"stages"`
	Summary          string      `json:"summary"`
	StartedAt        time.Time   `json:"startedAt"`
	CompletedAt      *time.Time  `json:"completedAt,omitempty"`
}

// testProviderConfig simulates the connectivity test; it changes nothing.
func (s *Server) testProviderConfig(c *reqCtx) {
	id, ok := providerConfigFamily.parseID(c, "id")
	if !ok {
		return
	}

	s.mu.Lock()

	pc, found := s.providers[id]

	var (
		providerID string
		cfg        map[string]any
	)

	if found {
		providerID = pc.ProviderID
		cfg = maps.Clone(pc.Config)
	}

	s.mu.Unlock()

	if !found {
		c.sendErr(errProviderConfigNotFound())
		return
	}

	base, _ := cfg["base_url"].(string)
	if base == "" {
		c.unprocessable("FLK-0340", "provider configuration config missing required field 'base_url'")
		return
	}

	started := s.now()
	_, hasKey := cfg["api_key"]
	headers, _ := cfg["headers"].(map[string]any)

	res := testResultOutput{
		ProviderConfigID: id,
		ProviderID:       providerID,
		OverallStatus:    "passed",
		DurationMs:       3,
		Stages: []testStage{
			{Name: "connectivity", Status: "passed", DurationMs: 1, Message: "Provider is reachable",
				Details: map[string]any{"responseTimeMs": 1, "statusCode": http.StatusOK, "url": base}},
			{Name: "authentication", Status: "passed", DurationMs: 1, Message: "Authentication successful",
				Details: map[string]any{"hasApiKey": hasKey, "headerCount": len(headers), "responseTimeMs": 1, "statusCode": http.StatusOK}},
			{Name: "end_to_end", Status: "passed", DurationMs: 1, Message: "Full request/response cycle completed successfully",
				Details: map[string]any{"contentType": "application/json", "responseBodyLen": 49, "responseTimeMs": 1, "statusCode": http.StatusOK}},
		},
		Summary:   "All tests passed - provider configuration connectivity verified",
		StartedAt: started,
	}

	if providerDown(cfg) {
		res.OverallStatus = "failed"
		res.Stages[2] = testStage{Name: "end_to_end", Status: "failed", DurationMs: 1, Message: "Provider returned HTTP 500",
			Details: map[string]any{"contentType": "application/json", "responseBodyLen": 0, "responseTimeMs": 1, "statusCode": http.StatusInternalServerError}}
		res.Summary = "1 of 3 tests failed - check provider configuration"
	}

	completed := s.now()
	res.CompletedAt = &completed

	c.json(http.StatusOK, res)
}
