// Package fiberdiff is a small real Fiber v2 application laid out like Flowker's HTTP layer (same
// framework and version line, Flowker's CORS configuration, its route table and its input
// structs bound with BodyParser) that records what Fiber parsed from every request. The
// differential test sends generated requests through the sidecar to it and checks that each
// audit event agrees with what Fiber saw, or says that it cannot.
package fiberdiff

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/google/uuid"
)

// The input structs are copies of Flowker v1.0.2's pkg/model ones (the fields the built-in rules
// read, with Flowker's types and tags).
type createWorkflowInput struct {
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

type cloneWorkflowInput struct {
	Name string `json:"name"`
}

type fromTemplateInput struct {
	TemplateID string         `json:"templateId"`
	Params     map[string]any `json:"params"`
}

type createProviderConfigInput struct {
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	ProviderID  string         `json:"providerId"`
	Config      map[string]any `json:"config"`
}

type updateProviderConfigInput struct {
	Name   *string        `json:"name,omitempty"`
	Config map[string]any `json:"config,omitempty"`
}

// Hit is what one request made the app do.
type Hit struct {
	Rule       string // the sidecar rule name of the route Fiber ran
	Status     int
	BodyError  bool   // BodyParser refused the body (Flowker answers 400 FLK-0001)
	Name       string // the name Fiber bound (or, for routes that read none, the stored one)
	ProviderID string
	TemplateID string
	WFName     string // params["workflowName"] when it is a string
	ResourceID string
}

// App is the running application.
type App struct {
	URL  string
	app  *fiber.App
	mu   sync.Mutex
	hits map[string]Hit // by X-Request-Id
}

// Hit returns what the request with X-Request-Id id did, and whether any route ran.
func (a *App) Hit(id string) (Hit, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.hits[id]
	return h, ok
}

// record keeps h. Fiber's strings (parameters, headers, form values) point into fasthttp's
// buffers, which are reused after the handler returns: everything kept is copied.
func (a *App) record(c *fiber.Ctx, h Hit) {
	h.Rule, h.Name, h.ProviderID = strings.Clone(h.Rule), strings.Clone(h.Name), strings.Clone(h.ProviderID)
	h.TemplateID, h.WFName, h.ResourceID = strings.Clone(h.TemplateID), strings.Clone(h.WFName), strings.Clone(h.ResourceID)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hits[strings.Clone(c.Get("X-Request-Id"))] = h
}

// Close stops the app.
func (a *App) Close() error { return a.app.Shutdown() }

// Start listens on a loopback ephemeral port and serves.
func Start() (*App, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	a := &App{URL: "http://" + ln.Addr().String(), hits: map[string]Hit{}}
	a.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		// Flowker's framework error format: {"code":<status>,"title":"request_failed","message":...}.
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			code := fiber.StatusInternalServerError
			if fe, ok := err.(*fiber.Error); ok {
				code = fe.Code
			}
			return c.Status(code).JSON(fiber.Map{"code": code, "title": "request_failed", "message": err.Error()})
		},
	})
	a.app.Use(cors.New(cors.Config{
		AllowOrigins: "https://app.example",
		AllowMethods: "GET,POST,PUT,PATCH,DELETE,OPTIONS",
		AllowHeaders: "Origin,Content-Type,Accept,Authorization,X-Request-ID,X-API-Key",
		MaxAge:       3600,
	}))
	a.routes()
	go func() { _ = a.app.Listener(ln) }()
	return a, nil
}

func badBody(c *fiber.Ctx) error {
	return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"code": "FLK-0001", "title": "Bad Request", "message": "invalid request body"})
}

const storedName = "stored-name"

func (a *App) routes() {
	v1 := a.app.Group("/v1")
	wf := v1.Group("/workflows")
	wf.Post("/", func(c *fiber.Ctx) error {
		var in createWorkflowInput
		if err := c.BodyParser(&in); err != nil {
			a.record(c, Hit{Rule: "workflow.create", Status: 400, BodyError: true})
			return badBody(c)
		}
		id := uuid.NewString()
		a.record(c, Hit{Rule: "workflow.create", Status: 201, Name: in.Name, ResourceID: id})
		return c.Status(201).JSON(fiber.Map{"workflowId": id, "version": "1.0.0", "status": "draft", "createdAt": "2026-12-07T00:00:00Z"})
	})
	wf.Post("/from-template", func(c *fiber.Ctx) error {
		var in fromTemplateInput
		if err := c.BodyParser(&in); err != nil {
			a.record(c, Hit{Rule: "workflow.create_from_template", Status: 400, BodyError: true})
			return badBody(c)
		}
		id := uuid.NewString()
		n, _ := in.Params["workflowName"].(string)
		a.record(c, Hit{Rule: "workflow.create_from_template", Status: 201, WFName: n, TemplateID: in.TemplateID, ResourceID: id})
		return c.Status(201).JSON(fiber.Map{"workflowId": id, "version": "1.0.0", "status": "draft", "createdAt": "2026-12-07T00:00:00Z"})
	})
	wf.Put("/:id", func(c *fiber.Ctx) error {
		var in createWorkflowInput
		if err := c.BodyParser(&in); err != nil {
			a.record(c, Hit{Rule: "workflow.update", Status: 400, BodyError: true, ResourceID: c.Params("id")})
			return badBody(c)
		}
		a.record(c, Hit{Rule: "workflow.update", Status: 200, Name: in.Name, ResourceID: c.Params("id")})
		return c.JSON(fiber.Map{"workflowId": c.Params("id"), "name": in.Name, "status": "draft"})
	})
	wf.Delete("/:id", func(c *fiber.Ctx) error {
		a.record(c, Hit{Rule: "workflow.delete", Status: 204, ResourceID: c.Params("id")})
		return c.SendStatus(204)
	})
	wf.Post("/:id/clone", func(c *fiber.Ctx) error {
		var in cloneWorkflowInput
		if err := c.BodyParser(&in); err != nil {
			a.record(c, Hit{Rule: "workflow.clone", Status: 400, BodyError: true})
			return badBody(c)
		}
		id := uuid.NewString()
		a.record(c, Hit{Rule: "workflow.clone", Status: 201, Name: in.Name, ResourceID: id})
		return c.Status(201).JSON(fiber.Map{"workflowId": id, "version": "1.0.0", "status": "draft", "createdAt": "2026-12-07T00:00:00Z"})
	})
	for _, act := range []string{"activate", "deactivate", "draft"} {
		rule := "workflow." + act
		wf.Post("/:id/"+act, func(c *fiber.Ctx) error {
			a.record(c, Hit{Rule: rule, Status: 200, Name: storedName, ResourceID: c.Params("id")})
			return c.JSON(fiber.Map{"workflowId": c.Params("id"), "name": storedName, "status": "active"})
		})
	}
	pc := v1.Group("/provider-configurations")
	pc.Post("/", func(c *fiber.Ctx) error {
		var in createProviderConfigInput
		if err := c.BodyParser(&in); err != nil {
			a.record(c, Hit{Rule: "provider_config.create", Status: 400, BodyError: true})
			return badBody(c)
		}
		id := uuid.NewString()
		a.record(c, Hit{Rule: "provider_config.create", Status: 201, Name: in.Name, ProviderID: in.ProviderID, ResourceID: id})
		return c.Status(201).JSON(fiber.Map{"id": id, "name": in.Name, "status": "active", "createdAt": "2026-12-07T00:00:00Z"})
	})
	pc.Patch("/:id", func(c *fiber.Ctx) error {
		var in updateProviderConfigInput
		if err := c.BodyParser(&in); err != nil {
			a.record(c, Hit{Rule: "provider_config.update", Status: 400, BodyError: true, ResourceID: c.Params("id")})
			return badBody(c)
		}
		name := storedName
		if in.Name != nil {
			name = *in.Name
		}
		a.record(c, Hit{Rule: "provider_config.update", Status: 200, Name: name, ResourceID: c.Params("id")})
		return c.JSON(fiber.Map{"id": c.Params("id"), "name": name, "status": "active"})
	})
	pc.Post("/:id/test", func(c *fiber.Ctx) error {
		a.record(c, Hit{Rule: "provider_config.test", Status: 200})
		return c.JSON(fiber.Map{"success": true})
	})
	v1.Post("/workflows/:workflowId/executions", func(c *fiber.Ctx) error {
		id := uuid.NewString()
		a.record(c, Hit{Rule: "execution.start", Status: 201, ResourceID: id})
		return c.Status(201).JSON(fiber.Map{"executionId": id, "workflowId": c.Params("workflowId"), "status": "pending"})
	})
	v1.Group("/webhooks").All("/*", func(c *fiber.Ctx) error {
		if len(c.Body()) > 0 {
			var in map[string]any
			if err := c.BodyParser(&in); err != nil {
				a.record(c, Hit{Rule: "webhook.trigger", Status: 400, BodyError: true})
				return badBody(c)
			}
		}
		id := uuid.NewString()
		a.record(c, Hit{Rule: "webhook.trigger", Status: 201, ResourceID: id})
		return c.Status(201).JSON(fiber.Map{"executionId": id, "workflowId": uuid.NewString(), "status": "pending"})
	})
	v1.Get("/workflows", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"items": []any{}, "nextCursor": "", "hasMore": false})
	})
	v1.Get("/audit-events", func(c *fiber.Ctx) error {
		a.record(c, Hit{Rule: "flowker.audit_events", Status: 200})
		return c.JSON(fiber.Map{"items": []any{}, "nextCursor": "", "hasMore": false})
	})
}
