package fakeflowker

import (
	"maps"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// entity is a stored resource of one of the fake's three CRUD families
// (workflows, provider configurations, executor configurations) as the
// shared handlers of family see it. O is the entity's JSON answer.
type entity[O any] interface {
	// output copies the entity for encoding outside the lock.
	output() O
	// meta returns what lists sort and page by.
	meta() entityMeta
	// setUpdatedAt stores the entity's updatedAt.
	setUpdatedAt(t time.Time)
}

// entityMeta is the part of an entity the list handler sorts by.
type entityMeta struct {
	id        uuid.UUID
	name      string
	createdAt time.Time
	updatedAt time.Time
}

// sortKey maps sortBy like Flowker's mapSortField: updatedAt, name, and
// createdAt for anything else.
func (m entityMeta) sortKey(sortBy string) sortKey {
	switch sortBy {
	case "updatedAt":
		return timeKey(m.updatedAt)
	case "name":
		return stringKey(m.name)
	default:
		return timeKey(m.createdAt)
	}
}

// listOutput is the page every family's list route answers.
type listOutput[O any] struct {
	Items      []O    `json:"items"`
	NextCursor string `json:"nextCursor"`
	HasMore    bool   `json:"hasMore"`
}

// family holds what differs between the resource families in their list,
// get, update and delete handlers: where the entities are stored and the
// two errors those handlers answer.
type family[E entity[O], O any] struct {
	// invalidID is the FLK-0002 message for an id that is not a UUID.
	invalidID string
	notFound  func() *apiErr
	// store returns the family's map; the caller holds s.mu.
	store func(s *Server) map[uuid.UUID]E
}

var (
	workflowFamily = family[*workflow, workflowOutput]{
		invalidID: "invalid workflow ID",
		notFound:  errWorkflowNotFound,
		store:     func(s *Server) map[uuid.UUID]*workflow { return s.workflows },
	}
	providerConfigFamily = family[*providerConfig, providerConfigOutput]{
		invalidID: "invalid provider configuration ID",
		notFound:  errProviderConfigNotFound,
		store:     func(s *Server) map[uuid.UUID]*providerConfig { return s.providers },
	}
	executorConfigFamily = family[*executorConfig, executorConfigOutput]{
		invalidID: "invalid executor configuration ID",
		notFound:  errExecutorConfigNotFound,
		store:     func(s *Server) map[uuid.UUID]*executorConfig { return s.executors },
	}
)

// parseID reads the path parameter param as the family's id; on failure it
// answers 400 FLK-0002 and returns false.
func (f family[E, O]) parseID(c *reqCtx, param string) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.param(param))
	if err != nil {
		c.badRequest("FLK-0002", f.invalidID)
		return uuid.UUID{}, false
	}

	return id, true
}

// list answers one page of the entities keep accepts (nil keeps all),
// sorted and cut by p.
func (f family[E, O]) list(s *Server, c *reqCtx, p listParams, keep func(E) bool) {
	s.mu.Lock()

	store := f.store(s)
	items := make([]pageItem[E], 0, len(store))

	for _, e := range store {
		if keep != nil && !keep(e) {
			continue
		}

		m := e.meta()
		items = append(items, pageItem[E]{id: m.id.String(), key: m.sortKey(p.sortBy), v: e})
	}

	page, hasMore := paginate(items, p.asc, p.after, p.limit)

	out := listOutput[O]{Items: make([]O, 0, len(page)), HasMore: hasMore}
	for _, it := range page {
		out.Items = append(out.Items, it.v.output())
	}

	s.mu.Unlock()

	out.NextCursor = nextCursorFor(page, hasMore, p.sortBy, p.sortOrder)

	c.json(http.StatusOK, out)
}

// get answers the entity named by the "id" path parameter.
func (f family[E, O]) get(s *Server, c *reqCtx) {
	id, ok := f.parseID(c, "id")
	if !ok {
		return
	}

	s.mu.Lock()
	e, found := f.store(s)[id]

	var out O
	if found {
		out = e.output()
	}
	s.mu.Unlock()

	if !found {
		c.sendErr(f.notFound())
		return
	}

	c.json(http.StatusOK, out)
}

// update runs fn on the stored entity under the lock. When fn succeeds the
// entity's updatedAt is set (at MongoDB's millisecond precision) and the
// answer carries the in-memory, nanosecond updatedAt, as Flowker answers
// from the entity it just saved.
func (f family[E, O]) update(s *Server, c *reqCtx, id uuid.UUID, fn func(E) *apiErr) {
	s.mu.Lock()

	e, found := f.store(s)[id]

	var (
		fail *apiErr
		out  O
	)

	if !found {
		fail = f.notFound()
	} else {
		fail = fn(e)
	}

	if fail == nil {
		now := s.now()
		e.setUpdatedAt(now)
		out = e.output()
		e.setUpdatedAt(msTime(now))
	}

	s.mu.Unlock()

	if fail != nil {
		c.sendErr(fail)
		return
	}

	c.json(http.StatusOK, out)
}

// modify is update for the entity named by the "id" path parameter, for
// routes without a body.
func (f family[E, O]) modify(s *Server, c *reqCtx, fn func(E) *apiErr) {
	id, ok := f.parseID(c, "id")
	if !ok {
		return
	}

	f.update(s, c, id, fn)
}

// remove deletes the entity named by the "id" path parameter and answers
// 204. check, when not nil, runs under the lock first: an error it returns
// is answered instead and nothing is deleted; it may also release what the
// entity holds (the webhooks of a workflow).
func (f family[E, O]) remove(s *Server, c *reqCtx, check func(E) *apiErr) {
	id, ok := f.parseID(c, "id")
	if !ok {
		return
	}

	s.mu.Lock()

	store := f.store(s)
	e, found := store[id]

	var fail *apiErr

	switch {
	case !found:
		fail = f.notFound()
	case check != nil:
		fail = check(e)
	}

	if fail == nil {
		delete(store, id)
	}

	s.mu.Unlock()

	if fail != nil {
		c.sendErr(fail)
		return
	}

	writeNoContent(c.w)
}

// lenientLimit is the limit query parameter as the workflow and executor
// configuration handlers read it (Fiber's c.QueryInt): 10 when missing,
// not an integer, or not positive.
func lenientLimit(c *reqCtx) int {
	limit := 10
	if v := c.query("limit"); v != "" {
		limit = queryIntDefault(v, 10)
	}

	if limit <= 0 {
		limit = 10
	}

	return limit
}

// mergeMetadata adds src's keys to dst (made when nil) and returns dst; an
// empty src leaves dst as it is, nil included.
func mergeMetadata(dst, src map[string]any) map[string]any {
	if len(src) == 0 {
		return dst
	}

	if dst == nil {
		dst = make(map[string]any, len(src))
	}

	maps.Copy(dst, src)

	return dst
}
